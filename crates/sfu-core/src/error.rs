//! Errors for misuse of the engine's API. Bad network input is never an error value: it is dropped and counted.

use crate::ids::{PeerId, TrackId};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfuError {
    UnknownPeer(PeerId),
    UnknownTrack(TrackId),
    /// The remote SDP could not be parsed or cannot be answered; the string says why.
    InvalidSdp(String),
    InvalidState {
        peer: PeerId,
        state: &'static str,
    },
    /// No free receive slot (recvonly m-line) of the track's kind on the subscriber.
    NoFreeSlot {
        peer: PeerId,
        track: TrackId,
    },
    AlreadySubscribed {
        peer: PeerId,
        track: TrackId,
    },
    NotSubscribed {
        peer: PeerId,
        track: TrackId,
    },
    /// Certificate generation or another crypto setup step failed.
    Crypto(String),
    /// A command's argument cannot be used (a relay link's keys or address); the string says why.
    InvalidArgument(String),
}

impl SfuError {
    /// Stable code shared with TypeScript and the protocol. Changing one is a breaking change.
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::UnknownPeer(_) => "peer_not_found",
            SfuError::UnknownTrack(_) => "track_not_found",
            SfuError::InvalidSdp(_) => "invalid_sdp",
            SfuError::InvalidState { .. } => "invalid_state",
            SfuError::NoFreeSlot { .. } => "no_free_slot",
            SfuError::AlreadySubscribed { .. } => "already_subscribed",
            SfuError::NotSubscribed { .. } => "not_subscribed",
            SfuError::Crypto(_) => "crypto_failure",
            SfuError::InvalidArgument(_) => "invalid_argument",
        }
    }
}

impl fmt::Display for SfuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SfuError::UnknownPeer(p) => write!(f, "{p} does not exist"),
            SfuError::UnknownTrack(t) => write!(f, "{t} does not exist"),
            SfuError::InvalidSdp(why) => write!(f, "invalid SDP: {why}"),
            SfuError::InvalidState { peer, state } => write!(f, "{peer} is {state}"),
            SfuError::NoFreeSlot { peer, track } => {
                write!(
                    f,
                    "{peer} has no free receive m-line for {track}; renegotiate first"
                )
            }
            SfuError::AlreadySubscribed { peer, track } => {
                write!(f, "{peer} already receives {track}")
            }
            SfuError::NotSubscribed { peer, track } => write!(f, "{peer} does not receive {track}"),
            SfuError::Crypto(why) => write!(f, "crypto failure: {why}"),
            SfuError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl std::error::Error for SfuError {}
