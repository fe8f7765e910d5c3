//! Errors as JS sees them: an `Error` whose `code` is the stable code and whose message says why.

use napi::bindgen_prelude::*;
use sfu_driver::DriverError;

/// The stable code, put in the JS error's `code` property by napi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for ErrorCode {
    /// napi's own failures (a value that cannot be built, a torn-down environment).
    fn from(status: Status) -> Self {
        match status {
            Status::InvalidArg
            | Status::ObjectExpected
            | Status::StringExpected
            | Status::NumberExpected => ErrorCode("invalid_argument"),
            _ => ErrorCode("internal"),
        }
    }
}

/// A failed command or call, ready to become a JS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Failure {
            code: "invalid_argument",
            message: message.into(),
        }
    }

    pub fn worker_closed() -> Self {
        Failure::from(DriverError::WorkerClosed)
    }

    /// Builds the JS `Error`; null if the environment can no longer make one.
    pub fn to_js(&self, env: sys::napi_env) -> sys::napi_value {
        let error = Error::new(ErrorCode(self.code), &self.message);
        // SAFETY: `env` is the live environment of the calling JS thread.
        unsafe { JsError::from(error).into_value(env) }
    }

    pub fn into_napi(self) -> Error<ErrorCode> {
        Error::new(ErrorCode(self.code), self.message)
    }
}

impl From<DriverError> for Failure {
    fn from(error: DriverError) -> Self {
        Failure {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            code: ErrorCode::from(error.status).0,
            message: error.reason.clone(),
        }
    }
}
