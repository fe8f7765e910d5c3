//! One peer's state: its ICE-lite and DTLS transport, SRTP contexts, and what each of its
//! m-lines does (publishes a track, or is a slot that sends a subscribed track to it).

use crate::allocator::Allotment;
use crate::bwe::{BandwidthEstimator, Prober};
use crate::dtls::DtlsTransport;
use crate::forward::SequenceRewriter;
use crate::ice::IceLite;
use crate::ids::{MediaKind, PeerId, TrackId};
use crate::srtp::SrtpContext;
use crate::twcc::{PacketResult, TwccRecorder, TwccSender};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

/// The codecs the engine forwards; a track's packets keep their codec, only the payload type
/// number changes per subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Opus,
    Vp8,
    H264,
    /// VP9 profile 0; with SVC, layers are chosen from the Dependency Descriptor.
    Vp9,
    /// AV1 profile 0; with SVC, layers are chosen from the Dependency Descriptor.
    Av1,
    /// RFC 2198 redundant Opus; stripped to its primary for subscribers without it (`red.rs`).
    Red,
}

impl CodecKind {
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("opus") {
            Some(CodecKind::Opus)
        } else if name.eq_ignore_ascii_case("vp8") {
            Some(CodecKind::Vp8)
        } else if name.eq_ignore_ascii_case("h264") {
            Some(CodecKind::H264)
        } else if name.eq_ignore_ascii_case("vp9") {
            Some(CodecKind::Vp9)
        } else if name.eq_ignore_ascii_case("av1") {
            Some(CodecKind::Av1)
        } else if name.eq_ignore_ascii_case("red") {
            Some(CodecKind::Red)
        } else {
            None
        }
    }

    /// The codec's name as an SDP rtpmap spells it.
    pub fn rtp_name(self) -> &'static str {
        match self {
            CodecKind::Opus => "opus",
            CodecKind::Vp8 => "VP8",
            CodecKind::H264 => "H264",
            CodecKind::Vp9 => "VP9",
            CodecKind::Av1 => "AV1",
            CodecKind::Red => "red",
        }
    }

    pub fn clock_rate(self) -> u32 {
        match self {
            CodecKind::Opus | CodecKind::Red => 48_000,
            CodecKind::Vp8 | CodecKind::H264 | CodecKind::Vp9 | CodecKind::Av1 => 90_000,
        }
    }
}

/// Payload types one m-line negotiated for a codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadTypes {
    pub codec: CodecKind,
    pub pt: u8,
    pub rtx_pt: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    New,
    Connected,
    Disconnected,
}

/// An incoming SSRC of a publisher, and which track it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingStream {
    /// A track's layer (index into `Track::layers`).
    Media(TrackId, u8),
    Retransmission(TrackId, u8),
}

/// What the subscriber's slot carries right now.
pub struct SlotSubscription {
    pub track: TrackId,
    pub rewriter: SequenceRewriter,
    /// The layer being forwarded; `None` until the first keyframe of `target_layer` (video
    /// starts at a keyframe so the first frame the subscriber decodes is whole).
    pub layer: Option<usize>,
    /// The layer to switch to at its next keyframe.
    pub target_layer: usize,
    /// Always this layer (a relay link carries each simulcast layer on a slot of its own).
    pub pinned_layer: Option<usize>,
    /// A relay slot's layer is wanted by the other engine's subscribers; when not, it is not
    /// sent and counts for no one's dynacast.
    pub relay_wanted: bool,
    /// The subscriber's wish: at most this layer (0 = lowest quality) and this picture height.
    pub max_spatial_layer: Option<u8>,
    pub max_height: Option<u16>,
    /// The subscriber's wish for VP8 temporal layers (`None`: all), and the limit in force:
    /// lowering takes effect at the next frame, raising at a frame the decoder can start from.
    pub max_temporal_layer: Option<u8>,
    pub temporal_limit: u8,
    pub vp8: Vp8Continuity,
    /// Decode target selection when the track carries the Dependency Descriptor (VP9/AV1 SVC).
    pub svc: crate::svc::SvcSelection,
    pub has_sent: bool,
    /// Its priority and share of the subscriber's downlink (see [`crate::allocator`]).
    pub allotment: Allotment,
}

/// Keeps VP8 PictureID and TL0PICIDX continuous for the subscriber across layer switches
/// (each simulcast encoding numbers its pictures on its own; a decoder seeing them jump back
/// would take new frames for old ones).
#[derive(Debug, Clone, Copy, Default)]
pub struct Vp8Continuity {
    pub picture_id_offset: u16,
    pub tl0_offset: u8,
    pub last_picture_id: Option<u16>,
    pub last_tl0: Option<u8>,
    /// The next picture starts a new source: offsets are recomputed from it.
    pub resync: bool,
}

/// A recvonly m-line of the browser: we send one subscribed track into it.
pub struct SendSlot {
    pub mid: String,
    pub kind: MediaKind,
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub payload_types: Vec<PayloadTypes>,
    pub subscription: Option<SlotSubscription>,
    pub rtx_sequence: u16,
    pub packets_sent: u32,
    pub octets_sent: u32,
    /// Where the last subscription's stream stopped; the next track sent on the slot continues it.
    pub continuation: Option<SlotContinuation>,
}

/// The output state of an ended subscription. The browser's receiver keeps the slot's SSRC, so a
/// new track must continue its sequence numbers, timestamps and VP8 picture ids: a jump back
/// reads as old packets and old frames, which it drops.
#[derive(Debug, Clone)]
pub struct SlotContinuation {
    pub rewriter: SequenceRewriter,
    pub vp8: Vp8Continuity,
}

impl SendSlot {
    /// Ends the slot's subscription (if any), keeping where its stream stopped.
    pub fn end_subscription(&mut self) -> Option<SlotSubscription> {
        let subscription = self.subscription.take()?;
        if subscription.has_sent {
            let mut rewriter = subscription.rewriter.clone();
            rewriter.switch_source();
            let mut vp8 = subscription.vp8;
            vp8.resync = true;
            self.continuation = Some(SlotContinuation { rewriter, vp8 });
        }
        Some(subscription)
    }

    pub fn payload_types_for(&self, codec: CodecKind) -> Option<PayloadTypes> {
        self.payload_types
            .iter()
            .copied()
            .find(|p| p.codec == codec)
    }
}

/// An offer the engine made to the peer and the peer has not answered yet.
pub struct LocalOffer {
    /// Every m-line offered, in order: the negotiated ones, then the new ones.
    pub media: Vec<crate::sdp::AnswerMedia>,
    /// The send slot each new m-line becomes if the answer accepts it, in order.
    pub new_slots: Vec<SendSlot>,
}

/// One accepted or rejected m-line, in offer order.
pub enum MediaLine {
    Publish { mid: String, track: TrackId },
    Send { slot: usize },
    Rejected { mid: String },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PeerCounters {
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub nacks_received: u64,
    /// NACKs sent to the peer as a publisher (packets it did not deliver).
    pub nacks_sent: u64,
    pub retransmissions_sent: u64,
    pub keyframe_requests_sent: u64,
}

/// Send-side congestion control towards one subscriber.
pub struct DownlinkControl {
    pub sender: TwccSender,
    pub estimator: BandwidthEstimator,
    pub prober: Prober,
    /// Reused for each feedback's per-packet results.
    pub results: Vec<PacketResult>,
}

impl DownlinkControl {
    /// Start at 1 Mbit/s (probing finds more within a second), never below 50 kbit/s.
    pub fn new() -> Self {
        DownlinkControl {
            sender: TwccSender::new(),
            estimator: BandwidthEstimator::new(1_000_000, 50_000, 50_000_000),
            prober: Prober::new(MAX_PADDING_BYTES),
            results: Vec::with_capacity(512),
        }
    }
}

impl Default for DownlinkControl {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest padding-only probe packet: RTP padding length is one byte (RFC 3550 §5.1).
pub const MAX_PADDING_BYTES: usize = 255 + 12 + 8 + 16;

pub struct Peer {
    pub id: PeerId,
    pub ice: IceLite,
    pub dtls: Option<DtlsTransport>,
    pub remote_fingerprint: Option<Vec<u8>>,
    pub srtp_outbound: Option<SrtpContext>,
    pub srtp_inbound: Option<SrtpContext>,
    pub state: ConnectionState,
    pub media: Vec<MediaLine>,
    /// Our side of every m-line as last negotiated, in order: what a re-offer of ours repeats.
    pub negotiated: Vec<crate::sdp::AnswerMedia>,
    /// Our offer awaiting the peer's answer; while it waits, the peer's own offers are refused.
    pub local_offer: Option<Box<LocalOffer>>,
    pub slots: Vec<SendSlot>,
    pub incoming: HashMap<u32, IncomingStream>,
    /// RTP header extension ids this peer negotiated (same for every m-line under BUNDLE).
    pub mid_extension: Option<u8>,
    pub rid_extension: Option<u8>,
    pub repaired_rid_extension: Option<u8>,
    pub twcc_extension: Option<u8>,
    pub audio_level_extension: Option<u8>,
    pub dependency_descriptor_extension: Option<u8>,
    /// Transport-wide feedback for what this peer sends us (its browser's bandwidth estimate
    /// depends on it).
    pub twcc_recorder: Option<TwccRecorder>,
    /// Our estimate of the bandwidth towards this peer, from its transport-wide feedback.
    pub downlink: Option<Box<DownlinkControl>>,
    /// SSRC we use as the sender of RTCP feedback (PLI, receiver reports) to this peer.
    pub rtcp_ssrc: u32,
    pub cname: String,
    /// Only peers of the same partition exchange media (breakout rooms); 0 is the main room.
    pub partition: u32,
    /// See [`Peer::is_relay`].
    pub relay: bool,
    pub counters: PeerCounters,
    pub next_report_at: Instant,
    pub created_at: Instant,
}

impl Peer {
    pub fn destination(&self) -> Option<SocketAddr> {
        self.ice.selected()
    }

    /// A relay link to another engine: keyed by the control plane, no ICE or DTLS, and in every
    /// partition (it carries tracks of all of them; the receiving engine partitions them again).
    pub fn is_relay(&self) -> bool {
        self.relay
    }

    pub fn is_connected(&self) -> bool {
        self.state == ConnectionState::Connected
    }

    /// The send slot that carries `track` to this peer, if it is subscribed.
    pub fn slot_of_track(&self, track: TrackId) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.subscription
                .as_ref()
                .is_some_and(|sub| sub.track == track)
        })
    }

    pub fn slot_by_ssrc(&self, ssrc: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.ssrc == ssrc)
    }

    pub fn published_tracks(&self) -> impl Iterator<Item = TrackId> + '_ {
        self.media.iter().filter_map(|m| match m {
            MediaLine::Publish { track, .. } => Some(*track),
            _ => None,
        })
    }
}
