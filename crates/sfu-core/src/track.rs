//! A published track: where its packets come from, who receives them, and what we keep of it
//! (packet cache for NACKs, reception stats, the publisher's last sender report).

use crate::forward::PacketCache;
use crate::ids::{MediaKind, PeerId, TrackId};
use crate::peer::PayloadTypes;
use crate::receive_stats::ReceiveStats;
use std::time::Instant;

/// The publisher's latest sender report: the NTP/RTP pair that keeps audio and video in sync.
#[derive(Debug, Clone, Copy)]
pub struct SenderReportInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub received_at: Instant,
}

pub struct Track {
    pub id: TrackId,
    pub publisher: PeerId,
    pub kind: MediaKind,
    pub mid: String,
    pub stream_id: String,
    pub payload_types: Vec<PayloadTypes>,
    pub ssrc: Option<u32>,
    pub rtx_ssrc: Option<u32>,
    /// With simulcast, the one RTP stream id forwarded until layer selection exists.
    pub rid: Option<String>,
    /// Subscriber peer and the index of its send slot.
    pub subscribers: Vec<(PeerId, usize)>,
    pub cache: Option<PacketCache>,
    pub receive: ReceiveStats,
    pub clock_rate: u32,
    pub last_sender_report: Option<SenderReportInfo>,
    pub last_keyframe_request: Option<Instant>,
    /// A subscriber waits for a keyframe: PLIs repeat until one arrives.
    pub keyframe_wanted: bool,
    pub last_packet_at: Option<Instant>,
}

impl Track {
    pub fn codec_of(&self, payload_type: u8) -> Option<PayloadTypes> {
        self.payload_types
            .iter()
            .copied()
            .find(|p| p.pt == payload_type)
    }
}
