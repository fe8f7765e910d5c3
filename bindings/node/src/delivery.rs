//! One ordered queue from the worker thread to the JS thread: replies settle their promises and
//! event batches call `onEvents`, in the order the worker pushed them.
//!
//! Why one raw threadsafe function instead of napi-rs' per-promise ones: Node runs the queues of
//! different threadsafe functions in no promised order, so a reply settled through its own queue
//! could reach JS after the events its command caused. Through one queue the worker's order
//! (reply first, then events) is the order JS sees.

use crate::error::Failure;
use crate::objects::MediaEvent;
use napi::bindgen_prelude::*;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, RwLock, Weak};

/// A promise's resolver. Used only on the JS thread (in `call_js` or `settle_now`).
pub struct Deferred(sys::napi_deferred);

// SAFETY: a `napi_deferred` is an opaque handle; it only travels through the worker thread
// inside a `Delivery` and is dereferenced by Node on the JS thread alone.
unsafe impl Send for Deferred {}

/// Builds the value a promise resolves with, on the JS thread.
type MakeValue = Box<dyn FnOnce(sys::napi_env) -> Result<sys::napi_value> + Send>;

enum Delivery {
    Settle {
        deferred: Deferred,
        outcome: std::result::Result<MakeValue, Failure>,
    },
    Events(Vec<MediaEvent>),
}

/// The sending side of the queue; clones share it. The last clone dropped releases it, which
/// lets Node's event loop end once nothing else keeps it alive.
#[derive(Clone)]
pub struct Deliveries(Arc<Queue>);

struct Queue {
    tsfn: AtomicPtr<sys::napi_threadsafe_function__>,
    /// Set when Node finalized the threadsafe function (at environment teardown); it must not
    /// be called or released after that.
    finalized: RwLock<bool>,
}

impl Deliveries {
    /// A queue whose event batches call `on_events(null, events)`.
    pub fn new(env: &Env, on_events: sys::napi_value) -> Result<Self> {
        let queue = Arc::new(Queue {
            tsfn: AtomicPtr::new(ptr::null_mut()),
            finalized: RwLock::new(false),
        });
        let mut name = ptr::null_mut();
        let label = "conclave-media-deliveries";
        // SAFETY: `env` is the live environment of this JS thread; `label` outlives the call.
        check_status!(unsafe {
            sys::napi_create_string_utf8(
                env.raw(),
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            )
        })?;
        let finalize_data = Weak::into_raw(Arc::downgrade(&queue))
            .cast_mut()
            .cast::<c_void>();
        let mut tsfn = ptr::null_mut();
        // SAFETY: as above; `on_events` is a function value of this environment (napi checks),
        // and `finalized` reclaims `finalize_data` exactly once.
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                env.raw(),
                on_events,
                ptr::null_mut(),
                name,
                0,
                1,
                finalize_data,
                Some(finalized),
                ptr::null_mut(),
                Some(call_js),
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: Node did not take `finalize_data`; it is still ours to free.
            drop(unsafe { Weak::from_raw(finalize_data.cast::<Queue>()) });
            check_status!(status, "cannot create the delivery queue")?;
        }
        queue.tsfn.store(tsfn, Ordering::Release);
        Ok(Deliveries(queue))
    }

    /// Queues a promise's outcome; `value` becomes JS on the JS thread.
    pub fn settle<T: ToNapiValue + Send + 'static>(
        &self,
        deferred: Deferred,
        outcome: std::result::Result<T, Failure>,
    ) {
        let outcome = outcome.map(|value| -> MakeValue {
            // SAFETY (of the call inside): run by `call_js` with the live JS environment.
            Box::new(move |env| unsafe { T::to_napi_value(env, value) })
        });
        self.push(Delivery::Settle { deferred, outcome });
    }

    /// Queues one batch for `onEvents`.
    pub fn events(&self, events: Vec<MediaEvent>) {
        self.push(Delivery::Events(events));
    }

    fn push(&self, delivery: Delivery) {
        let finalized = self
            .0
            .finalized
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *finalized {
            // Node is gone; there is no promise left to settle and no one to call.
            return;
        }
        let data = Box::into_raw(Box::new(delivery));
        // SAFETY: the threadsafe function is alive (not finalized, checked under the lock that
        // finalization takes) and Node calls `call_js` with `data` exactly once if queued.
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                self.0.tsfn.load(Ordering::Acquire),
                data.cast(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // Not queued (Node is closing the queue): the delivery is still ours.
            // SAFETY: `data` came from `Box::into_raw` above and Node did not take it.
            drop(unsafe { Box::from_raw(data) });
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let finalized = *self
            .finalized
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !finalized {
            // SAFETY: this is the one release of the one thread count taken at creation.
            unsafe {
                sys::napi_release_threadsafe_function(
                    *self.tsfn.get_mut(),
                    sys::ThreadsafeFunctionReleaseMode::release,
                )
            };
        }
    }
}

/// Settles a promise right here on the JS thread, without the queue (for calls that fail
/// before reaching the worker).
pub fn settle_now<T: ToNapiValue>(
    env: &Env,
    deferred: Deferred,
    outcome: std::result::Result<T, Failure>,
) {
    // SAFETY: we are on the JS thread of `env`.
    unsafe {
        settle(
            env.raw(),
            deferred,
            outcome.map(|value| -> std::result::Result<sys::napi_value, Failure> {
                T::to_napi_value(env.raw(), value).map_err(Failure::from)
            }),
        )
    };
}

/// A new promise and its resolver.
pub fn promise<'env, T>(env: &'env Env) -> Result<(Deferred, PromiseRaw<'env, T>)> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: `env` is the live environment of this JS thread.
    check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
    Ok((Deferred(deferred), PromiseRaw::new(env.raw(), promise)))
}

/// # Safety
/// On the JS thread of `env`, which must be live.
unsafe fn settle(
    env: sys::napi_env,
    deferred: Deferred,
    outcome: std::result::Result<std::result::Result<sys::napi_value, Failure>, Failure>,
) {
    // SAFETY (all calls): the caller's contract; `deferred` is settled exactly once since it is
    // consumed here.
    let status = match outcome.and_then(|value| value) {
        Ok(value) => unsafe { sys::napi_resolve_deferred(env, deferred.0, value) },
        Err(failure) => unsafe { sys::napi_reject_deferred(env, deferred.0, failure.to_js(env)) },
    };
    debug_assert!(
        status == sys::Status::napi_ok,
        "settling a promise failed: {status}"
    );
}

unsafe extern "C" fn call_js(
    env: sys::napi_env,
    on_events: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: `data` is the boxed delivery `push` queued; Node hands it over exactly once.
    let delivery = unsafe { Box::from_raw(data.cast::<Delivery>()) };
    if env.is_null() {
        // The environment is tearing down: nothing to settle, no one to call.
        return;
    }
    match *delivery {
        Delivery::Settle { deferred, outcome } => {
            let outcome = outcome.map(|make| make(env).map_err(Failure::from));
            // SAFETY: Node calls `call_js` on the JS thread with its live environment.
            unsafe { settle(env, deferred, outcome) };
        }
        // SAFETY: as above.
        Delivery::Events(events) => unsafe { call_on_events(env, on_events, events) },
    }
}

/// # Safety
/// On the JS thread of the live `env`; `on_events` is the queue's function.
unsafe fn call_on_events(env: sys::napi_env, on_events: sys::napi_value, events: Vec<MediaEvent>) {
    // SAFETY (all calls): the caller's contract.
    let batch = match unsafe { Vec::<MediaEvent>::to_napi_value(env, events) } {
        Ok(batch) => batch,
        Err(error) => {
            // SAFETY: as above; a conversion failure leaves no exception pending.
            unsafe { sys::napi_fatal_exception(env, Failure::from(error).to_js(env)) };
            return;
        }
    };
    let mut null = ptr::null_mut();
    let mut this = ptr::null_mut();
    unsafe {
        sys::napi_get_null(env, &mut null);
        sys::napi_get_undefined(env, &mut this);
    }
    let args = [null, batch];
    let mut returned = ptr::null_mut();
    let status = unsafe {
        sys::napi_call_function(
            env,
            this,
            on_events,
            args.len(),
            args.as_ptr(),
            &mut returned,
        )
    };
    if status == sys::Status::napi_pending_exception {
        // A throwing handler is the app's uncaught exception, as for any Node callback.
        let mut exception = ptr::null_mut();
        unsafe {
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
}

unsafe extern "C" fn finalized(
    _env: sys::napi_env,
    finalize_data: *mut c_void,
    _hint: *mut c_void,
) {
    // SAFETY: `finalize_data` is the `Weak<Queue>` leaked at creation; Node finalizes once.
    let queue = unsafe { Weak::from_raw(finalize_data.cast::<Queue>().cast_const()) };
    if let Some(queue) = queue.upgrade() {
        *queue
            .finalized
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
    }
}
