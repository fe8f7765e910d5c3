//! Conclave's SFU engine, sans-IO.
//!
//! The driver feeds [`Input`]s (datagrams from the one UDP port, and ticks of time) to
//! [`Engine::handle_input`], then drains [`Engine::poll_output`] until it returns
//! [`Output::Timeout`]: every [`Output::Transmit`] is sent, every [`Output::Event`] goes to the
//! control plane, and the timeout says when to call again with [`Input::Tick`] if nothing arrives.
//! Commands (`create_peer`, `apply_offer`, `subscribe`, ...) are plain method calls between inputs.
//!
//! Invariant: the engine never reads a clock, never touches a socket and never panics on
//! network input; bad datagrams are dropped and counted in [`EngineStats`].

pub mod allocator;
pub mod api;
pub mod bwe;
pub mod dependency_descriptor;
pub mod dtls;
pub mod engine;
pub mod error;
pub mod forward;
pub mod fuzzing;
pub mod ice;
pub mod ids;
pub mod peer;
pub mod receive_stats;
pub mod red;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
pub mod stun;
pub mod svc;
pub mod track;
pub mod twcc;

pub use api::{
    EngineConfig, EngineStats, Event, Input, Output, PeerStats, RtpForwardInfo, Subscription,
    Transmit,
};
pub use engine::Engine;
pub use error::SfuError;
pub use ids::{MediaKind, PeerId, RtpForwardId, Ssrc, TrackId};

/// A starting instant for unit tests; any will do, since time only moves by inputs.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
