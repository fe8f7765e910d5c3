//! The engine's face: inputs, outputs, events, commands' results and stats.

use crate::ids::{MediaKind, PeerId, RtpForwardId, TrackId};
use std::net::SocketAddr;
use std::time::Instant;

/// Something that happened to the engine from outside.
pub enum Input<'a> {
    /// A datagram arrived at `at` on the engine's UDP port.
    Datagram {
        at: Instant,
        source: SocketAddr,
        data: &'a [u8],
    },
    /// Time moved on with nothing received.
    Tick(Instant),
}

/// A datagram to send from the engine's UDP port.
///
/// `contents` is a pooled buffer: give it back with [`crate::Engine::recycle`] once sent, so the
/// packet path allocates nothing in steady state.
#[derive(Debug)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// What the engine wants done. Drain `poll_output` until it returns `Timeout`.
#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Event(Event),
    /// Nothing more to do until this instant (or until the next input).
    Timeout(Instant),
}

/// Facts for the control plane. Never one per packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// ICE nominated a path and DTLS completed: media can flow.
    PeerConnected {
        peer: PeerId,
        remote: SocketAddr,
    },
    /// The peer is gone for `reason` ("consent_expired", "dtls_failed", "dtls_closed",
    /// "fingerprint_mismatch"). The peer's tracks end (with `TrackEnded`) but the peer must
    /// still be closed with `close_peer` to free its id.
    PeerDisconnected {
        peer: PeerId,
        reason: &'static str,
    },
    /// A publisher's offer announced a track we now receive.
    TrackPublished {
        peer: PeerId,
        track: TrackId,
        kind: MediaKind,
        mid: String,
        stream_id: String,
    },
    TrackEnded {
        peer: PeerId,
        track: TrackId,
    },
    /// An audio track's voice activity changed (from its audio-level header extension, with
    /// hysteresis). The control plane picks each room's active speaker from these.
    SpeakingChanged {
        peer: PeerId,
        track: TrackId,
        speaking: bool,
    },
    /// A subscription's target layer changed; the switch happens at that layer's next keyframe.
    LayerSwitched {
        peer: PeerId,
        track: TrackId,
        layer: u8,
    },
    /// Dynacast: which of a simulcast track's encodings (in the publisher's offer order, its
    /// RIDs' order) some subscriber needs. The control plane has the publisher's client set
    /// `encodings[i].active` accordingly, which stops (or restarts) that encoder. Sent only on a
    /// change; a layer is paused only after nobody needed it for a while.
    LayersNeeded {
        peer: PeerId,
        track: TrackId,
        active: Vec<bool>,
    },
    /// A subscriber lost its picture (PLI/FIR) or subscribed: the engine asked the publisher for a
    /// keyframe. Informational, rate limited like the request itself.
    KeyframeRequested {
        track: TrackId,
        by: Option<PeerId>,
    },
}

/// The result of a successful `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscriber's m-line (transceiver mid) that now carries the track.
    pub mid: String,
    /// The SSRC the subscriber sees for it.
    pub ssrc: u32,
}

/// The result of a successful `add_rtp_forward`: what a receiver's SDP needs to describe the
/// plain RTP stream it will get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpForwardInfo {
    pub id: RtpForwardId,
    pub track: TrackId,
    pub kind: MediaKind,
    pub destination: SocketAddr,
    /// The SSRC of the forwarded stream (the engine's own, not the publisher's).
    pub ssrc: u32,
    pub payload_type: u8,
    /// The codec's RTP name as SDP spells it: "opus", "VP8", "H264", "VP9" or "AV1".
    pub codec: &'static str,
    pub clock_rate: u32,
    /// Audio channels of the rtpmap (2 for Opus, RFC 7587 §7); `None` for video.
    pub channels: Option<u8>,
}

/// Counters for one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub peer: Option<PeerId>,
    pub connected: bool,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub nacks_received: u64,
    pub retransmissions_sent: u64,
    pub keyframe_requests_sent: u64,
    pub published_tracks: u32,
    pub subscriptions: u32,
    /// Estimated bandwidth towards the peer from its transport-wide feedback; 0 without any.
    pub available_outgoing_bitrate_bps: u64,
}

/// Engine-wide counters; `dropped_*` count bad input that was discarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub peers: u32,
    pub connected_peers: u32,
    pub tracks: u32,
    pub subscriptions: u32,
    pub packets_received: u64,
    pub packets_forwarded: u64,
    pub dropped_unknown_source: u64,
    pub dropped_malformed: u64,
    pub dropped_srtp_auth: u64,
    pub dropped_replay: u64,
    pub stun_requests: u64,
    pub stun_rejected: u64,
}

/// How the engine is set up; the driver fills this in.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The address and port put in every answer's ICE candidate (what browsers send to).
    pub announced_addr: SocketAddr,
    /// A peer silent this long (no STUN consent) is disconnected. Default 30 s.
    pub consent_timeout_ms: u64,
    /// Minimum gap between keyframe requests sent for one track; requests repeat at this pace
    /// until a keyframe arrives. Default 350 ms, just above the 300 ms within which Chromium
    /// ignores a repeated request.
    pub keyframe_request_interval_ms: u64,
    /// Packets kept per video track for answering NACKs. Default 1024.
    pub nack_cache_packets: usize,
    /// Seed for every random number the engine draws (ICE credentials, SSRCs); tests fix it.
    pub seed: u64,
    /// Audio last-N: each subscriber is sent only the `audio_last_n` loudest of the audio tracks
    /// it subscribes to (the others pause, their slots' sequence numbers stay continuous). 0 (the
    /// default) forwards every audio track.
    pub audio_last_n: usize,
    /// First peer and track id handed out. A replacement engine starts above its predecessor's
    /// [`crate::Engine::id_watermark`] so that ids the control plane still holds never collide.
    pub first_id: u32,
}

impl EngineConfig {
    pub fn new(announced_addr: SocketAddr) -> Self {
        EngineConfig {
            announced_addr,
            consent_timeout_ms: 30_000,
            keyframe_request_interval_ms: 350,
            nack_cache_packets: 1024,
            seed: 0x5eed_c0c1_a7e5_0001,
            audio_last_n: 0,
            first_id: 1,
        }
    }
}
