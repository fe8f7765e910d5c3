//! RTP forwards: a published track's decrypted RTP copied as plain RTP to a local UDP address (a
//! recorder's ffmpeg), in its own SSRC and sequence space. Not a peer: no ICE, DTLS, SRTP, RTCP
//! or retransmissions; which addresses may receive one is the control plane's policy.

use super::{keep_vp8_continuous, write_rtp_header, Engine, Outbox};
use crate::api::{EngineStats, RtpForwardInfo};
use crate::error::SfuError;
use crate::forward::SequenceRewriter;
use crate::ids::{IdBuildHasher, MediaKind, RtpForwardId, TrackId};
use crate::peer::{CodecKind, Vp8Continuity};
use crate::rtp::{RtpHeader, Vp8Descriptor};
use crate::track::{Track, MAX_LAYERS};
use rand_chacha::rand_core::RngCore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A video forward that saw no keyframe for this long asks the publisher for one. A recorder
/// cannot ask by itself (it sends no RTCP to the engine), so this bounds how long a picture
/// broken by a lost packet stays broken in the file. Costs about one keyframe per interval.
pub const KEYFRAME_REFRESH: Duration = Duration::from_secs(10);

/// How often a simulcast forward looks for a better layer.
const LAYER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// One forward of one track.
struct RtpForward {
    id: RtpForwardId,
    destination: SocketAddr,
    ssrc: u32,
    /// The one codec the receiver was told about; packets of the m-line's other codecs are not
    /// forwarded.
    codec: CodecKind,
    payload_type: u8,
    rewriter: SequenceRewriter,
    /// The layer being forwarded; `None` until the first keyframe of `target_layer` (audio starts
    /// at once).
    layer: Option<usize>,
    /// With simulcast, the best layer that is sending; forwarding switches at its next keyframe.
    target_layer: usize,
    vp8: Vp8Continuity,
    /// When a keyframe is requested again if none was forwarded before.
    keyframe_due_at: Instant,
}

/// One packet of a track, as the packet path hands it to the forwards.
pub(super) struct ForwardedPacket<'a> {
    pub track: TrackId,
    pub layer: usize,
    pub codec: CodecKind,
    pub header: &'a RtpHeader,
    pub payload: &'a [u8],
    pub vp8: Option<Vp8Descriptor>,
    pub is_keyframe: bool,
    pub now: Instant,
    pub now_ticks: u64,
}

/// Every RTP forward of an engine, by track.
pub(super) struct RtpForwards {
    by_track: HashMap<TrackId, Vec<RtpForward>, IdBuildHasher>,
    next_id: u32,
    next_layer_check: Option<Instant>,
    /// Keyframe requests found by `housekeeping`, reused so that timers allocate nothing.
    due: Vec<(TrackId, usize)>,
}

impl RtpForwards {
    pub(super) fn new(first_id: u32) -> Self {
        RtpForwards {
            by_track: HashMap::default(),
            next_id: first_id.max(1),
            next_layer_check: None,
            due: Vec::new(),
        }
    }

    /// Sends `packet` to every forward of its track that wants it. Allocates nothing: buffers
    /// come from the outbox's pool.
    pub(super) fn forward(
        &mut self,
        packet: &ForwardedPacket<'_>,
        outbox: &mut Outbox,
        stats: &mut EngineStats,
    ) {
        let Some(forwards) = self.by_track.get_mut(&packet.track) else {
            return;
        };
        for forward in forwards.iter_mut() {
            if forward.codec != packet.codec {
                continue;
            }
            if forward.layer != Some(packet.layer) {
                // As for subscribers: a decoder (or a muxer) can only start at a keyframe.
                if forward.target_layer != packet.layer || !packet.is_keyframe {
                    continue;
                }
                if forward.layer.is_some() {
                    forward.rewriter.switch_source();
                    forward.vp8.resync = true;
                }
                forward.layer = Some(packet.layer);
            }
            let header = packet.header;
            let Some((sequence, timestamp)) =
                forward
                    .rewriter
                    .rewrite(header.sequence, header.timestamp, packet.now_ticks)
            else {
                continue;
            };
            if packet.is_keyframe {
                forward.keyframe_due_at = packet.now + KEYFRAME_REFRESH;
            }
            let mut out = outbox.buffer();
            write_rtp_header(
                &mut out,
                header.marker,
                forward.payload_type,
                sequence,
                timestamp,
                forward.ssrc,
            );
            let payload_start = out.len();
            out.extend_from_slice(packet.payload);
            if let Some(descriptor) = packet.vp8 {
                keep_vp8_continuous(&mut forward.vp8, &descriptor, &mut out[payload_start..]);
            }
            stats.packets_forwarded += 1;
            outbox.send(forward.destination, out);
        }
    }

    /// Forgets forwards of tracks that ended (however they ended), picks each simulcast
    /// forward's layer and collects the keyframe requests that fell due. The caller sends them
    /// and hands the list back with [`RtpForwards::restore_due`].
    pub(super) fn housekeeping(
        &mut self,
        tracks: &mut HashMap<TrackId, Track, IdBuildHasher>,
        now: Instant,
    ) -> Vec<(TrackId, usize)> {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        if self.by_track.is_empty() {
            return due;
        }
        self.by_track
            .retain(|track, forwards| !forwards.is_empty() && tracks.contains_key(track));
        let check_layers = self.next_layer_check.is_none_or(|at| now >= at);
        if check_layers {
            self.next_layer_check = Some(now + LAYER_CHECK_INTERVAL);
        }
        for (track_id, forwards) in &mut self.by_track {
            let Some(track) = tracks.get_mut(track_id) else {
                continue;
            };
            if track.kind != MediaKind::Video {
                continue;
            }
            let best = (check_layers && track.layers.len() > 1)
                .then(|| best_layer(track, now))
                .flatten();
            for forward in forwards.iter_mut() {
                if let Some(best) = best.filter(|&best| best != forward.target_layer) {
                    forward.target_layer = best;
                    due.push((*track_id, best));
                } else if now >= forward.keyframe_due_at {
                    due.push((*track_id, forward.target_layer));
                }
                if now >= forward.keyframe_due_at {
                    forward.keyframe_due_at = now + KEYFRAME_REFRESH;
                }
            }
        }
        due
    }

    pub(super) fn restore_due(&mut self, due: Vec<(TrackId, usize)>) {
        self.due = due;
    }
}

/// The highest-quality layer that is sending, if any is.
fn best_layer(track: &mut Track, now: Instant) -> Option<usize> {
    let mut ranked = [0usize; MAX_LAYERS];
    let count = track.layers_by_quality(now, &mut ranked);
    ranked[..count]
        .iter()
        .rev()
        .copied()
        .find(|&index| track.layers[index].is_active(now))
}

impl Engine {
    /// Starts sending `track`'s RTP, decrypted, as plain RTP to `destination` from the engine's
    /// UDP port: its own random SSRC, sequence numbers and timestamps continuous, no header
    /// extensions, the publisher's payload type of the track's first codec. Video starts at a
    /// keyframe (one is requested now, and again whenever none came for [`KEYFRAME_REFRESH`]);
    /// with simulcast the best sending layer is forwarded. The forward ends with the track
    /// (no event of its own: `TrackEnded` says it) or with [`Engine::remove_rtp_forward`].
    pub fn add_rtp_forward(
        &mut self,
        track_id: TrackId,
        destination: SocketAddr,
        now: Instant,
    ) -> Result<RtpForwardInfo, SfuError> {
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let kind = track.kind;
        let Some(primary) = track.payload_types.first().copied() else {
            return Err(SfuError::UnknownTrack(track_id));
        };
        let target_layer = match track.layers.len() {
            0 | 1 => 0,
            _ => best_layer(track, now).unwrap_or(track.layers.len() - 1),
        };
        let ssrc = self.random_ssrc();
        let initial_sequence = self.rng.next_u32() as u16;
        let initial_timestamp = self.rng.next_u32();
        let forwards = &mut self.rtp_forwards;
        let id = RtpForwardId(forwards.next_id);
        forwards.next_id += 1;
        forwards
            .by_track
            .entry(track_id)
            .or_default()
            .push(RtpForward {
                id,
                destination,
                ssrc,
                codec: primary.codec,
                payload_type: primary.pt,
                rewriter: SequenceRewriter::new(initial_sequence, initial_timestamp),
                layer: None,
                target_layer,
                vp8: Vp8Continuity::default(),
                keyframe_due_at: now + KEYFRAME_REFRESH,
            });
        if kind == MediaKind::Video {
            self.request_keyframe_from_publisher(track_id, Some(target_layer), None, now);
        }
        Ok(RtpForwardInfo {
            id,
            track: track_id,
            kind,
            destination,
            ssrc,
            payload_type: primary.pt,
            codec: primary.codec.rtp_name(),
            clock_rate: primary.codec.clock_rate(),
            channels: (primary.codec == CodecKind::Opus).then_some(2),
        })
    }

    /// Stops a forward. Returns false if there was none by that id: it was removed before or
    /// ended with its track, which is not a mistake of the caller's.
    pub fn remove_rtp_forward(&mut self, id: RtpForwardId) -> bool {
        for (track, forwards) in self.rtp_forwards.by_track.iter_mut() {
            if let Some(index) = forwards.iter().position(|f| f.id == id) {
                forwards.swap_remove(index);
                // Housekeeping forgets the forwards of ended tracks a moment later; they
                // already ended.
                return self.tracks.contains_key(track);
            }
        }
        false
    }

    /// The RTP forwards' timers: layer choice and keyframe refreshes.
    pub(super) fn rtp_forward_housekeeping(&mut self, now: Instant) {
        let due = self.rtp_forwards.housekeeping(&mut self.tracks, now);
        for &(track, layer) in &due {
            self.request_keyframe_from_publisher(track, Some(layer), None, now);
        }
        self.rtp_forwards.restore_due(due);
    }
}
