//! What the control plane asks of a worker, and how the answer comes back.

use crate::error::DriverError;
use crate::worker::WorkerStats;
use sfu_core::engine::RelayedTrack;
use sfu_core::{PeerId, PeerStats, RtpForwardId, RtpForwardInfo, Subscription, TrackId};
use std::net::SocketAddr;
use std::sync::mpsc;

/// Where a command's result goes. Called exactly once, on the worker thread.
///
/// A reply dropped unanswered (the worker is gone, or the command never reached it) answers
/// [`DriverError::WorkerClosed`], so a caller waiting on it never hangs.
pub struct Reply<T> {
    deliver: Option<Deliver<T>>,
}

type Deliver<T> = Box<dyn FnOnce(Result<T, DriverError>) + Send>;

impl<T> Reply<T> {
    /// A reply that calls `deliver` with the result. `deliver` runs on the worker thread and
    /// must not block it: hand the result over (channel, threadsafe function) and return.
    pub fn new(deliver: impl FnOnce(Result<T, DriverError>) + Send + 'static) -> Self {
        Reply {
            deliver: Some(Box::new(deliver)),
        }
    }

    pub fn send(mut self, result: Result<T, DriverError>) {
        if let Some(deliver) = self.deliver.take() {
            deliver(result);
        }
    }
}

impl<T: Send + 'static> Reply<T> {
    /// A reply and the receiver to wait on for it.
    pub fn channel() -> (Self, mpsc::Receiver<Result<T, DriverError>>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let reply = Reply::new(move |result| {
            // The waiter may have given up; nobody is left to tell.
            let _ = tx.send(result);
        });
        (reply, rx)
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(deliver) = self.deliver.take() {
            deliver(Err(DriverError::WorkerClosed));
        }
    }
}

/// One request to a worker. Each carries the [`Reply`] its result goes to; the reply is sent
/// before any event the command caused is delivered.
pub enum Command {
    CreatePeer {
        reply: Reply<PeerId>,
    },
    /// Answers with the answer SDP.
    ApplyOffer {
        peer: PeerId,
        sdp: String,
        reply: Reply<String>,
    },
    ClosePeer {
        peer: PeerId,
        reply: Reply<()>,
    },
    /// Answers with an offer of one new m-line we send on per kind (`Engine::create_offer`).
    CreateOffer {
        peer: PeerId,
        kinds: Vec<sfu_core::MediaKind>,
        reply: Reply<String>,
    },
    /// The peer's answer to our offer (`Engine::apply_answer`).
    ApplyAnswer {
        peer: PeerId,
        sdp: String,
        reply: Reply<()>,
    },
    Subscribe {
        peer: PeerId,
        track: TrackId,
        reply: Reply<Subscription>,
    },
    Unsubscribe {
        peer: PeerId,
        track: TrackId,
        reply: Reply<()>,
    },
    RequestKeyframe {
        track: TrackId,
        reply: Reply<()>,
    },
    /// What `peer` wants of a simulcast `track` it receives: at most `max_spatial_layer` (0 is
    /// the lowest quality) and pictures at most `max_height` tall; `None` lifts a limit.
    SetLayerPreference {
        peer: PeerId,
        track: TrackId,
        max_spatial_layer: Option<u8>,
        max_height: Option<u16>,
        reply: Reply<()>,
    },
    /// How `peer`'s downlink favours `track` over its other video subscriptions (higher first).
    SetPriority {
        peer: PeerId,
        track: TrackId,
        priority: u8,
        reply: Reply<()>,
    },
    /// Moves `peer` into media partition `partition` (0 is the main room; breakout rooms):
    /// media flows only between peers of one partition, with no renegotiation.
    SetPartition {
        peer: PeerId,
        partition: u32,
        reply: Reply<()>,
    },
    /// Tees `track`'s RTP, decrypted, as plain RTP to `destination` (a local recorder).
    AddRtpForward {
        track: TrackId,
        destination: SocketAddr,
        reply: Reply<RtpForwardInfo>,
    },
    /// Answers whether a forward by that id still existed.
    RemoveRtpForward {
        id: RtpForwardId,
        reply: Reply<bool>,
    },
    /// Opens a relay link to the engine at `remote` (cascading between nodes), keyed with
    /// `keying_material` shared by both ends; `initiator` is true on exactly one of them.
    CreateRelayPeer {
        remote: SocketAddr,
        keying_material: Vec<u8>,
        initiator: bool,
        reply: Reply<PeerId>,
    },
    /// Starts sending `track` over the link `relay`.
    RelayExport {
        relay: PeerId,
        track: TrackId,
        reply: Reply<RelayedTrack>,
    },
    RelayUnexport {
        relay: PeerId,
        track: TrackId,
        reply: Reply<()>,
    },
    /// Takes a stream the other end exports as a track of this engine, in `partition`.
    RelayImport {
        relay: PeerId,
        relayed: RelayedTrack,
        stream_id: String,
        partition: u32,
        reply: Reply<TrackId>,
    },
    RelayEndImport {
        relay: PeerId,
        track: TrackId,
        reply: Reply<()>,
    },
    /// Which simulcast layers of `track` the other end of `relay` wants (dynacast across a link).
    RelaySetWantedLayers {
        relay: PeerId,
        track: TrackId,
        wanted: Vec<bool>,
        reply: Reply<()>,
    },
    /// Moves a relayed track into `partition` (its publisher moved on the other node).
    SetTrackPartition {
        track: TrackId,
        partition: u32,
        reply: Reply<()>,
    },
    PeerStats {
        peer: PeerId,
        reply: Reply<PeerStats>,
    },
    Stats {
        reply: Reply<WorkerStats>,
    },
    /// Panics inside the engine's guard, to test the restart path. Refused with
    /// [`DriverError::FaultInjectionDisabled`] unless the worker was started with `fault_injection`.
    InjectPanic {
        reply: Reply<()>,
    },
    /// Stops the worker. The reply comes after the socket is closed and the engine dropped.
    Shutdown {
        reply: Reply<()>,
    },
}

impl Command {
    /// Answers the command with `error` without running it.
    pub(crate) fn fail(self, error: DriverError) {
        match self {
            Command::CreatePeer { reply } => reply.send(Err(error)),
            Command::ApplyOffer { reply, .. } | Command::CreateOffer { reply, .. } => {
                reply.send(Err(error))
            }
            Command::ClosePeer { reply, .. }
            | Command::ApplyAnswer { reply, .. }
            | Command::Unsubscribe { reply, .. }
            | Command::RequestKeyframe { reply, .. }
            | Command::SetLayerPreference { reply, .. }
            | Command::SetPriority { reply, .. }
            | Command::SetPartition { reply, .. }
            | Command::RelayUnexport { reply, .. }
            | Command::RelayEndImport { reply, .. }
            | Command::RelaySetWantedLayers { reply, .. }
            | Command::SetTrackPartition { reply, .. }
            | Command::InjectPanic { reply }
            | Command::Shutdown { reply } => reply.send(Err(error)),
            Command::Subscribe { reply, .. } => reply.send(Err(error)),
            Command::CreateRelayPeer { reply, .. } => reply.send(Err(error)),
            Command::RelayExport { reply, .. } => reply.send(Err(error)),
            Command::RelayImport { reply, .. } => reply.send(Err(error)),
            Command::PeerStats { reply, .. } => reply.send(Err(error)),
            Command::AddRtpForward { reply, .. } => reply.send(Err(error)),
            Command::RemoveRtpForward { reply, .. } => reply.send(Err(error)),
            Command::Stats { reply } => reply.send(Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_reply_answers_worker_closed() {
        let (reply, rx) = Reply::<u32>::channel();
        drop(reply);
        assert_eq!(rx.recv().unwrap(), Err(DriverError::WorkerClosed));
    }

    #[test]
    fn a_sent_reply_answers_once() {
        let (reply, rx) = Reply::<u32>::channel();
        reply.send(Ok(7));
        assert_eq!(rx.recv().unwrap(), Ok(7));
        assert!(
            rx.recv().is_err(),
            "the sender is gone after the one answer"
        );
    }
}
