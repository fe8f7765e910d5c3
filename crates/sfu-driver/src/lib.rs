//! Conclave's I/O around [`sfu_core`]: one UDP socket and one worker thread per engine.
//! No media logic lives here; this is the only Rust that touches sockets and clocks.
//!
//! [`Worker::start`] binds the socket and spawns the thread that owns the [`sfu_core::Engine`].
//! The thread waits (mio) for datagrams, commands or the engine's timeout; reads datagrams in
//! batches (recvmmsg, GRO) into the engine; drains its outputs; sends datagrams in batches (GSO
//! trains per destination); and delivers the iteration's events in one call. Commands arrive
//! over a channel from [`WorkerHandle`], each with a [`Reply`] that is answered before any event
//! the command caused.
//!
//! A panic in the engine is caught: the worker builds a fresh engine on the same socket, answers
//! the command in flight and the queued ones with [`DriverError::WorkerRestarted`], reports
//! [`WorkerEvent::Restarted`] and a `PeerDisconnected` per lost peer, and keeps serving.

mod command;
mod error;
mod udp;
mod worker;

pub use command::{Command, Reply};
pub use error::DriverError;
pub use udp::IoCounters;
pub use worker::{
    Worker, WorkerConfig, WorkerEvent, WorkerHandle, WorkerStats, RESTART_DISCONNECT_REASON,
};
