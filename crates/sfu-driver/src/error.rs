//! Errors a command can end with: the engine's own, or the worker's (socket, thread, restart).

use sfu_core::SfuError;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverError {
    /// The engine refused the command.
    Engine(SfuError),
    /// The UDP socket could not be bound or set up; the string says why.
    Bind(String),
    /// The worker thread could not be started.
    Spawn(String),
    /// The worker is shut down (or its thread is gone); nothing more will be answered.
    WorkerClosed,
    /// The engine panicked while this command was running or waiting; the worker restarted with
    /// a fresh engine. The string is the panic message.
    WorkerRestarted(String),
    /// `InjectPanic` on a worker started without `fault_injection`.
    FaultInjectionDisabled,
}

impl DriverError {
    /// Stable code shared with TypeScript: the engine's code, or one of the worker's own.
    pub fn code(&self) -> &'static str {
        match self {
            DriverError::Engine(e) => e.code(),
            DriverError::Bind(_) => "bind_failed",
            DriverError::Spawn(_) | DriverError::WorkerClosed => "worker_closed",
            DriverError::WorkerRestarted(_) => "worker_restarted",
            DriverError::FaultInjectionDisabled => "invalid_state",
        }
    }
}

impl From<SfuError> for DriverError {
    fn from(e: SfuError) -> Self {
        DriverError::Engine(e)
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Engine(e) => e.fmt(f),
            DriverError::Bind(why) => write!(f, "cannot bind the UDP socket: {why}"),
            DriverError::Spawn(why) => write!(f, "cannot start the worker thread: {why}"),
            DriverError::WorkerClosed => f.write_str("the media worker is closed"),
            DriverError::WorkerRestarted(why) => {
                write!(
                    f,
                    "the media worker restarted after a panic ({why}); its peers are gone"
                )
            }
            DriverError::FaultInjectionDisabled => {
                f.write_str("fault injection is disabled for this worker")
            }
        }
    }
}

impl std::error::Error for DriverError {}
