//! A published track and its layers: where packets come from, who receives them, and what we
//! keep of each layer (packet cache for NACKs, reception stats, the last sender report, its
//! bitrate and picture size). A track without simulcast has one layer.

use crate::allocator::LayerNeeds;
use crate::forward::{NackConfig, NackTracker, PacketCache};
use crate::ids::{MediaKind, PeerId, TrackId};
use crate::peer::PayloadTypes;
use crate::receive_stats::ReceiveStats;
use std::time::{Duration, Instant};

/// The publisher's latest sender report: the NTP/RTP pair that keeps audio and video in sync.
#[derive(Debug, Clone, Copy)]
pub struct SenderReportInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub received_at: Instant,
}

/// Bytes received over the last second, in two half-second buckets.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateMeter {
    bucket_start: Option<Instant>,
    current: u64,
    previous: u64,
}

const RATE_BUCKET: Duration = Duration::from_millis(500);

impl RateMeter {
    pub fn record(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.current += bytes as u64;
    }

    fn roll(&mut self, now: Instant) {
        match self.bucket_start {
            None => self.bucket_start = Some(now),
            Some(start) if now >= start + RATE_BUCKET * 2 => {
                self.previous = 0;
                self.current = 0;
                self.bucket_start = Some(now);
            }
            Some(start) if now >= start + RATE_BUCKET => {
                self.previous = self.current;
                self.current = 0;
                self.bucket_start = Some(start + RATE_BUCKET);
            }
            _ => {}
        }
    }

    /// Bits per second over the last half second to second (the previous bucket and the
    /// current one so far).
    pub fn bitrate_bps(&mut self, now: Instant) -> u64 {
        self.roll(now);
        let Some(start) = self.bucket_start else {
            return 0;
        };
        let window = RATE_BUCKET + now.saturating_duration_since(start);
        ((self.previous + self.current) * 8 * 1000) / (window.as_millis().max(1) as u64)
    }
}

/// One encoding of a track: the only one without simulcast, else one per RID.
pub struct Layer {
    pub rid: Option<String>,
    pub ssrc: Option<u32>,
    pub rtx_ssrc: Option<u32>,
    pub cache: Option<PacketCache>,
    /// What the publisher did not deliver and we ask again for (video: a lost packet costs a
    /// frame, and without it every subscriber's decoder waits for a keyframe).
    pub nack: Option<NackTracker>,
    pub receive: ReceiveStats,
    pub last_sender_report: Option<SenderReportInfo>,
    pub last_packet_at: Option<Instant>,
    pub last_keyframe_request: Option<Instant>,
    /// A subscriber waits for a keyframe of this layer: PLIs repeat until one arrives.
    pub keyframe_wanted: bool,
    pub rate: RateMeter,
    /// The bitrate measured while the layer last sent: what resuming a paused layer will cost.
    pub known_bitrate_bps: u64,
    /// Picture size from the latest keyframe (VP8); 0 until one was seen.
    pub width: u16,
    pub height: u16,
}

impl Layer {
    pub fn new(
        rid: Option<String>,
        ssrc: Option<u32>,
        rtx_ssrc: Option<u32>,
        cache: Option<PacketCache>,
    ) -> Self {
        Layer {
            rid,
            ssrc,
            rtx_ssrc,
            nack: cache.is_some().then(|| NackTracker::new(UPSTREAM_NACK)),
            cache,
            receive: ReceiveStats::default(),
            last_sender_report: None,
            last_packet_at: None,
            last_keyframe_request: None,
            keyframe_wanted: false,
            rate: RateMeter::default(),
            known_bitrate_bps: 0,
            width: 0,
            height: 0,
        }
    }

    /// Sent a packet within the last second.
    pub fn is_active(&self, now: Instant) -> bool {
        self.last_packet_at
            .is_some_and(|at| now < at + Duration::from_secs(1))
    }
}

/// Voice activity of an audio track from its RFC 6464 audio levels: speaking starts after
/// `VOICE_ONSET` of sound and ends after `VOICE_HANGOVER` without (Opus DTX sends nothing in
/// silence, so no packets counts as quiet too).
#[derive(Debug, Clone, Copy, Default)]
pub struct VoiceActivity {
    pub speaking: bool,
    loud_since: Option<Instant>,
    last_loud: Option<Instant>,
    /// Recent loudness (127 minus the level, smoothed over about ten packets) and when the last
    /// level came: what audio last-N ranks tracks by.
    loudness: f32,
    last_level_at: Option<Instant>,
}

/// Audio louder than this level (-dBov; 0 is loudest, 127 silence) counts as voice.
pub const VOICE_LEVEL: u8 = 60;
pub const VOICE_ONSET: Duration = Duration::from_millis(200);
pub const VOICE_HANGOVER: Duration = Duration::from_millis(800);
/// Weight of each packet's level in the recent loudness (about 200 ms at 50 packets/s).
const LOUDNESS_SMOOTHING: f32 = 0.1;
/// No level for this long (DTX, or the track stopped) counts as silence.
const LOUDNESS_STALE: Duration = Duration::from_millis(300);
/// A dip shorter than this between loud packets does not restart the onset.
const VOICE_GAP: Duration = Duration::from_millis(150);

impl VoiceActivity {
    /// Records one packet's level; returns the new state if it changed.
    pub fn record(&mut self, level: u8, now: Instant) -> Option<bool> {
        let loudness = f32::from(127u8.saturating_sub(level));
        self.loudness += (loudness - self.loudness) * LOUDNESS_SMOOTHING;
        self.last_level_at = Some(now);
        if level <= VOICE_LEVEL {
            if self.last_loud.is_none_or(|at| now > at + VOICE_GAP) {
                self.loud_since = Some(now);
            }
            self.last_loud = Some(now);
            if !self.speaking
                && self
                    .loud_since
                    .is_some_and(|since| now >= since + VOICE_ONSET)
            {
                self.speaking = true;
                return Some(true);
            }
        }
        self.poll(now)
    }

    /// How loud the track was lately, 0 (silent) to 127. A track that sent nothing lately is
    /// silent: Opus DTX stops sending in silence.
    pub fn recent_loudness(&self, now: Instant) -> f32 {
        match self.last_level_at {
            Some(at) if now < at + LOUDNESS_STALE => self.loudness,
            _ => 0.0,
        }
    }

    /// Ends speaking after the hangover; returns `Some(false)` when it did.
    pub fn poll(&mut self, now: Instant) -> Option<bool> {
        if self.speaking && self.last_loud.is_none_or(|at| now >= at + VOICE_HANGOVER) {
            self.speaking = false;
            self.loud_since = None;
            return Some(false);
        }
        None
    }
}

pub struct Track {
    pub id: TrackId,
    pub publisher: PeerId,
    pub kind: MediaKind,
    pub mid: String,
    pub stream_id: String,
    pub payload_types: Vec<PayloadTypes>,
    pub layers: Vec<Layer>,
    /// Subscriber peer and the index of its send slot.
    pub subscribers: Vec<(PeerId, usize)>,
    pub clock_rate: u32,
    pub voice: VoiceActivity,
    /// Set at the first packet with a Dependency Descriptor: the track is VP9/AV1 SVC.
    pub svc: Option<Box<crate::svc::SvcTrack>>,
    /// Which simulcast layers the publisher was told to send (dynacast).
    pub needs: LayerNeeds,
    /// The partition its media belongs to when that is not its publisher's: a track a relay
    /// link brought from another engine carries its original publisher's partition.
    pub partition: Option<u32>,
}

impl Track {
    pub fn codec_of(&self, payload_type: u8) -> Option<PayloadTypes> {
        self.payload_types
            .iter()
            .copied()
            .find(|p| p.pt == payload_type)
    }

    pub fn layer_of_ssrc(&self, ssrc: u32) -> Option<usize> {
        self.layers.iter().position(|l| l.ssrc == Some(ssrc))
    }

    /// Layer indices from the lowest quality to the highest: by picture width once keyframes
    /// told it, else by bitrate, else in SDP order.
    pub fn layers_by_quality(&mut self, now: Instant, out: &mut [usize; MAX_LAYERS]) -> usize {
        let count = self.layers.len().min(MAX_LAYERS);
        let mut keys = [(0u16, 0u64, 0usize); MAX_LAYERS];
        for (i, layer) in self.layers.iter_mut().take(count).enumerate() {
            // A paused layer keeps the rank its last bitrate gave it (measured while packets
            // still came, not while the meter drained after the last one).
            if layer
                .last_packet_at
                .is_some_and(|at| now < at + STILL_SENDING)
            {
                layer.known_bitrate_bps = layer.rate.bitrate_bps(now);
            }
            keys[i] = (layer.width, layer.known_bitrate_bps, i);
        }
        keys[..count].sort_unstable();
        for (slot, key) in out.iter_mut().zip(keys[..count].iter()) {
            *slot = key.2;
        }
        count
    }
}

/// Asking a publisher again: a packet still missing after half a second is past any
/// subscriber's jitter buffer, and a keyframe serves them better.
const UPSTREAM_NACK: NackConfig = NackConfig {
    window: 512,
    max_retries: 10,
    min_resend_interval: Duration::from_millis(10),
    reorder_delay: Duration::ZERO,
    max_age: Duration::from_millis(500),
};

/// A layer whose last packet is this recent is still sending.
const STILL_SENDING: Duration = Duration::from_millis(200);

/// Simulcast encodings per track that the engine tracks (browsers send at most 3 or 4).
pub const MAX_LAYERS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_meter_reports_about_the_last_second() {
        let start = crate::test_epoch();
        let mut meter = RateMeter::default();
        for ms in 0..2000u64 {
            meter.record(start + Duration::from_millis(ms), 125); // 1 Mbit/s
        }
        let bps = meter.bitrate_bps(start + Duration::from_millis(2000));
        assert!((900_000..=1_100_000).contains(&bps), "{bps}");
        assert_eq!(meter.bitrate_bps(start + Duration::from_secs(10)), 0);
    }
}
