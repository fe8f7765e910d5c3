//! Spatial and temporal layer selection for SVC streams (VP9, AV1) that carry the Dependency
//! Descriptor: per track, what each packet's frame is; per subscriber, which decode target it
//! gets and whether a packet belongs to it. Policy only; the format is `dependency_descriptor`.

use crate::dependency_descriptor::{
    DependencyDescriptorReader, Dti, Dtis, FrameDependencyStructure, MAX_DECODE_TARGETS,
};
use crate::ids::MediaKind;
use crate::peer::Peer;
use crate::rtp::{self, RtpHeader};
use crate::track::RateMeter;
use std::time::Instant;

/// (spatial id, temporal id).
type LayerIds = (u8, u8);

/// What the forwarding loop needs to know of one packet's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvcFrame {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    pub spatial_id: u8,
    pub temporal_id: u8,
    pub dtis: Dtis,
    /// The first packet of a keyframe: it carries a new structure and starts every target.
    pub starts_keyframe: bool,
    /// The frame references no earlier frame.
    pub intra: bool,
}

/// Per track: the descriptor reader and how many bits per second each decode target needs.
#[derive(Debug, Default)]
pub struct SvcTrack {
    pub reader: DependencyDescriptorReader,
    rates: [RateMeter; MAX_DECODE_TARGETS],
}

impl SvcTrack {
    /// Reads the Dependency Descriptor (extension `extension_id`) of a publisher's packet and
    /// accounts its `bytes` to the decode targets that use its frame. `None` if the packet has
    /// none or it is unusable (malformed, or before the first structure): such a packet is
    /// forwarded as if the track were not scalable.
    pub fn on_packet(
        &mut self,
        packet: &[u8],
        header: &RtpHeader,
        extension_id: u8,
        bytes: usize,
        now: Instant,
    ) -> Option<SvcFrame> {
        let (_, data) = rtp::extensions(packet, header).find(|(id, _)| *id == extension_id)?;
        let descriptor = self.reader.read(data).ok()?;
        let frame = descriptor.frame;
        let structure = self.reader.structure()?;
        for (dt, rate) in self.rates[..structure.decode_target_count()]
            .iter_mut()
            .enumerate()
        {
            if frame.dtis.get(dt) != Dti::NotPresent {
                rate.record(now, bytes);
            }
        }
        Some(SvcFrame {
            start_of_frame: descriptor.start_of_frame,
            end_of_frame: descriptor.end_of_frame,
            spatial_id: frame.spatial_id,
            temporal_id: frame.temporal_id,
            dtis: frame.dtis,
            starts_keyframe: descriptor.structure_attached && descriptor.start_of_frame,
            intra: frame.fdiffs().is_empty(),
        })
    }

    pub fn structure(&self) -> Option<&FrameDependencyStructure> {
        self.reader.structure()
    }
}

/// What a subscriber asked for (the same wishes as for simulcast).
#[derive(Debug, Clone, Copy, Default)]
pub struct SvcPreferences {
    pub max_spatial_layer: Option<u8>,
    pub max_height: Option<u16>,
    pub max_temporal_layer: Option<u8>,
}

/// A new decode target for a subscriber. Going up in spatial layers needs a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetChange {
    pub spatial_id: u8,
    pub temporal_id: u8,
    pub needs_keyframe: bool,
}

/// Per subscription: the decode target being forwarded and the one wanted. Lowering takes
/// effect at the next picture (temporal unit), raising at a switch point of the wanted target
/// (DTI switch) that the subscriber can decode: one referencing only its current spatial layer
/// (a temporal step up), or one referencing nothing (a keyframe, for a spatial step up).
#[derive(Debug, Clone, Copy, Default)]
pub struct SvcSelection {
    current: Option<u8>,
    pub(crate) target: Option<u8>,
    last_timestamp: Option<u32>,
}

impl SvcSelection {
    /// The decode target being forwarded.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// Whether to forward a packet of `frame` (RTP timestamp `timestamp`, marker `marker`) and
    /// with which marker: set on the end of the highest spatial layer forwarded, which the
    /// receiver needs to render the picture (the publisher's own marker sits on a layer the
    /// subscriber may not get). `None`: drop it.
    pub fn admit(
        &mut self,
        frame: &SvcFrame,
        structure: &FrameDependencyStructure,
        timestamp: u32,
        marker: bool,
    ) -> Option<bool> {
        let new_picture = self.last_timestamp != Some(timestamp);
        self.last_timestamp = Some(timestamp);
        if frame.start_of_frame {
            if let Some(target) = self.target.filter(|&t| Some(t) != self.current) {
                let current_layer = self
                    .current
                    .map(|c| structure.decode_target_layer(usize::from(c)));
                let (ts, tt) = structure.decode_target_layer(usize::from(target));
                let lowering = current_layer.is_some_and(|(cs, ct)| ts <= cs && tt <= ct);
                // A switch frame's references are frames of its own spatial layer, which the
                // subscriber has only if it already gets that layer.
                let decodable = frame.intra
                    || current_layer.is_some_and(|(cs, _)| cs == ts && frame.spatial_id == ts);
                let switch_point = frame.dtis.get(usize::from(target)) == Dti::Switch;
                if (lowering && new_picture) || (switch_point && decodable) {
                    self.current = Some(target);
                }
            }
        }
        let current = usize::from(self.current?);
        if frame.dtis.get(current) == Dti::NotPresent {
            return None;
        }
        let (top_spatial, _) = structure.decode_target_layer(current);
        Some(marker || (frame.end_of_frame && frame.spatial_id >= top_spatial))
    }

    /// Picks the decode target for a subscriber: the highest (spatial, then temporal) that the
    /// publisher sends, within the preferences and, with a budget, within it (moving up needs
    /// 15 % to spare, as for simulcast). Falls back to the lowest acceptable target rather than
    /// to nothing. Returns the change if the target changed.
    pub fn choose(
        &mut self,
        track: &mut SvcTrack,
        preferences: SvcPreferences,
        budget_bps: Option<u64>,
        now: Instant,
    ) -> Option<TargetChange> {
        let structure = track.reader.structure()?;
        let active = track.reader.active_decode_targets();
        let current_layer = self
            .target
            .map(|t| structure.decode_target_layer(usize::from(t)));
        let mut best: Option<(u8, LayerIds)> = None;
        // The fallback: (decode target, (outside the temporal wish, layer)).
        let mut lowest: Option<(u8, (bool, LayerIds))> = None;
        for dt in 0..structure.decode_target_count() {
            if active & (1 << dt) == 0 {
                continue;
            }
            let layer = structure.decode_target_layer(dt);
            let (spatial, temporal) = layer;
            let temporal_ok = preferences
                .max_temporal_layer
                .is_none_or(|max| temporal <= max);
            // The fallback prefers targets within the temporal wish, then the lowest layers.
            let rank = (!temporal_ok, layer);
            if lowest.is_none_or(|(_, r)| rank < r) {
                lowest = Some((dt as u8, rank));
            }
            let height = structure.resolution(spatial).map(|(_, h)| h);
            let wanted = temporal_ok
                && preferences
                    .max_spatial_layer
                    .is_none_or(|max| spatial <= max)
                && preferences
                    .max_height
                    .is_none_or(|max| height.is_none_or(|h| h == 0 || h <= max));
            let affordable = budget_bps.is_none_or(|budget| {
                let needed = track.rates[dt].bitrate_bps(now);
                if current_layer.is_none_or(|c| layer > c) {
                    needed <= budget * 85 / 100
                } else {
                    needed <= budget
                }
            });
            if wanted && affordable && best.is_none_or(|(_, b)| layer > b) {
                best = Some((dt as u8, layer));
            }
        }
        let (decode_target, (spatial_id, temporal_id)) =
            best.or(lowest.map(|(dt, (_, layer))| (dt, layer)))?;
        if self.target == Some(decode_target) {
            return None;
        }
        let previous_spatial = current_layer.map(|(s, _)| s);
        self.target = Some(decode_target);
        Some(TargetChange {
            spatial_id,
            temporal_id,
            needs_keyframe: previous_spatial.is_none_or(|s| spatial_id > s),
        })
    }
}

/// Reads a publisher packet's Dependency Descriptor into the track's SVC state, creating it
/// at the first packet that carries one (once per track). `None` without the extension.
pub fn on_publisher_packet(
    svc: &mut Option<Box<SvcTrack>>,
    extension_id: Option<u8>,
    packet: &[u8],
    header: &RtpHeader,
    bytes: usize,
    now: Instant,
) -> Option<SvcFrame> {
    let id = extension_id?;
    if svc.is_none() {
        rtp::extensions(packet, header).find(|(i, _)| *i == id)?;
        *svc = Some(Box::default());
    }
    svc.as_deref_mut()?
        .on_packet(packet, header, id, bytes, now)
}

/// The subscriber's estimated downlink shared equally by its video subscriptions, as simulcast
/// layer choice uses it; `None` without an estimate.
fn video_budget_bps(peer: &Peer) -> Option<u64> {
    let downlink = peer.downlink.as_ref()?;
    let videos = peer
        .slots
        .iter()
        .filter(|s| s.kind == MediaKind::Video && s.subscription.is_some())
        .count();
    Some(downlink.estimator.estimate_bps() * 9 / 10 / videos.max(1) as u64)
}

/// Chooses the decode target of the subscription in `peer`'s slot `slot_index` from its
/// preferences and budget. Returns the change, if any.
pub fn choose_for(
    peer: &mut Peer,
    slot_index: usize,
    track: &mut SvcTrack,
    now: Instant,
) -> Option<TargetChange> {
    let budget_bps = video_budget_bps(peer);
    let subscription = peer.slots.get_mut(slot_index)?.subscription.as_mut()?;
    let preferences = SvcPreferences {
        max_spatial_layer: subscription.max_spatial_layer,
        max_height: subscription.max_height,
        max_temporal_layer: subscription.max_temporal_layer,
    };
    subscription.svc.choose(track, preferences, budget_bps, now)
}

/// [`choose_for`] for a subscription that has no target yet (it began before the track's first
/// structure arrived); the periodic selection takes over from there.
pub fn choose_if_unset(peer: &mut Peer, slot_index: usize, track: &mut SvcTrack, now: Instant) {
    let unset = peer
        .slots
        .get(slot_index)
        .and_then(|s| s.subscription.as_ref())
        .is_some_and(|s| s.svc.target.is_none());
    if unset {
        choose_for(peer, slot_index, track, now);
    }
}

/// Whether the one-byte extension form (RFC 8285 §4.2) can carry a Dependency Descriptor of
/// `descriptor_len` bytes (ids are at most 14: the answer keeps no others).
fn fits_one_byte_form(descriptor_len: usize) -> bool {
    (1..=16).contains(&descriptor_len)
}

/// Bytes of the extension block [`append_extensions`] writes: 4 bytes of header, then the
/// transport-wide sequence number (when `with_twcc`) and the descriptor, padded to 32 bits.
pub fn extension_block_len(with_twcc: bool, descriptor_len: usize) -> usize {
    let per_element = if fits_one_byte_form(descriptor_len) {
        1
    } else {
        2
    };
    let twcc = if with_twcc { per_element + 2 } else { 0 };
    4 + (twcc + per_element + descriptor_len).next_multiple_of(4)
}

/// Appends the header extension block of an outgoing packet whose 12-byte header starts `out`
/// and sets its X bit: the transport-wide sequence number `(id, value)` if any, then the
/// Dependency Descriptor `(id, data)`, in the one-byte form when the descriptor fits it, else
/// the two-byte form (the peer allowed mixing, or it would not have the extension). A
/// descriptor longer than 255 bytes cannot be carried and is left out.
pub fn append_extensions(out: &mut Vec<u8>, twcc: Option<(u8, u16)>, descriptor: (u8, &[u8])) {
    let (descriptor_id, data) = descriptor;
    if data.len() > 255 {
        if let Some((id, sequence)) = twcc {
            append_extensions(out, None, (id, &sequence.to_be_bytes()));
        }
        return;
    }
    let Some(first) = out.first_mut() else {
        return;
    };
    *first |= 0x10;
    let one_byte = fits_one_byte_form(data.len());
    let start = out.len();
    let profile = if one_byte {
        rtp::ONE_BYTE_PROFILE
    } else {
        rtp::TWO_BYTE_PROFILE
    };
    out.extend_from_slice(&profile.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    let sequence_bytes = twcc.map(|(id, sequence)| (id, sequence.to_be_bytes()));
    let twcc_element = sequence_bytes.as_ref().map(|(id, bytes)| (*id, &bytes[..]));
    for (id, value) in twcc_element.into_iter().chain([(descriptor_id, data)]) {
        if one_byte {
            // Lengths 1..=16, checked above (the sequence number is 2).
            out.push(id << 4 | (value.len() - 1) as u8);
        } else {
            out.push(id);
            out.push(value.len() as u8);
        }
        out.extend_from_slice(value);
    }
    let elements = out.len() - start - 4;
    out.resize(start + 4 + elements.next_multiple_of(4), 0);
    let words = ((out.len() - start - 4) / 4) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dependency_descriptor::{write, DescriptorFields};

    /// L2T2 key-SVC: decode targets 0 (S0T0), 1 (S0T1), 2 (S1T0), 3 (S1T1).
    fn l2t2() -> FrameDependencyStructure {
        use Dti::*;
        let mut s = FrameDependencyStructure::new(0, 4);
        s.push_template(0, 0, &[Switch, Switch, Switch, Switch], &[], &[])
            .unwrap();
        s.push_template(
            0,
            0,
            &[Required, Required, NotPresent, NotPresent],
            &[4],
            &[],
        )
        .unwrap();
        s.push_template(
            0,
            1,
            &[NotPresent, Discardable, NotPresent, NotPresent],
            &[2],
            &[],
        )
        .unwrap();
        s.push_template(
            1,
            0,
            &[NotPresent, NotPresent, Required, Required],
            &[1],
            &[],
        )
        .unwrap();
        s.push_template(
            1,
            0,
            &[NotPresent, NotPresent, Required, Required],
            &[4],
            &[],
        )
        .unwrap();
        s.push_template(
            1,
            1,
            &[NotPresent, NotPresent, NotPresent, Discardable],
            &[2],
            &[],
        )
        .unwrap();
        s.set_resolutions(&[(640, 360), (1280, 720)]);
        s
    }

    fn frame(s: &FrameDependencyStructure, template: usize, end: bool) -> SvcFrame {
        let t = &s.templates()[template];
        SvcFrame {
            start_of_frame: true,
            end_of_frame: end,
            spatial_id: t.spatial_id,
            temporal_id: t.temporal_id,
            dtis: t.dtis,
            starts_keyframe: template == 0,
            intra: t.fdiffs().is_empty(),
        }
    }

    fn track_with(s: &FrameDependencyStructure) -> SvcTrack {
        let mut track = SvcTrack::default();
        let mut out = Vec::new();
        write(
            s,
            &DescriptorFields {
                start_of_frame: true,
                end_of_frame: true,
                template_index: 0,
                frame_number: 0,
                attach_structure: true,
                active_decode_targets: None,
            },
            &mut out,
        );
        track.reader.read(&out).unwrap();
        track
    }

    #[test]
    fn preferences_pick_the_decode_target_and_marker_moves_to_its_top_layer() {
        let s = l2t2();
        let mut track = track_with(&s);
        let now = crate::test_epoch();
        let mut selection = SvcSelection::default();
        let small = SvcPreferences {
            max_height: Some(360),
            ..Default::default()
        };
        let change = selection.choose(&mut track, small, None, now).unwrap();
        assert_eq!((change.spatial_id, change.temporal_id), (0, 1));
        assert!(change.needs_keyframe);
        assert_eq!(selection.choose(&mut track, small, None, now), None);
        // Nothing before a switch point.
        assert_eq!(selection.admit(&frame(&s, 1, true), &s, 0, false), None);
        assert_eq!(
            selection.admit(&frame(&s, 0, true), &s, 1, false),
            Some(true)
        );
        assert_eq!(selection.admit(&frame(&s, 3, true), &s, 1, true), None);
        assert_eq!(
            selection.admit(&frame(&s, 2, true), &s, 2, false),
            Some(true)
        );
        assert_eq!(selection.admit(&frame(&s, 5, true), &s, 2, true), None);

        let base_only = SvcPreferences {
            max_temporal_layer: Some(0),
            ..small
        };
        let change = selection.choose(&mut track, base_only, None, now).unwrap();
        assert_eq!((change.spatial_id, change.temporal_id), (0, 0));
        assert!(!change.needs_keyframe);
        assert_eq!(
            selection.admit(&frame(&s, 1, true), &s, 3, false),
            Some(true)
        );
        assert_eq!(selection.admit(&frame(&s, 2, true), &s, 4, false), None);

        // Up to S1T1: S1 delta frames do not switch; the keyframe does.
        let change = selection
            .choose(&mut track, SvcPreferences::default(), None, now)
            .unwrap();
        assert_eq!((change.spatial_id, change.temporal_id), (1, 1));
        assert!(change.needs_keyframe);
        assert_eq!(
            selection.admit(&frame(&s, 1, false), &s, 5, false),
            Some(false)
        );
        assert_eq!(selection.admit(&frame(&s, 4, true), &s, 5, true), None);
        assert_eq!(
            selection.admit(&frame(&s, 0, false), &s, 6, false),
            Some(false)
        );
        assert_eq!(
            selection.admit(&frame(&s, 3, true), &s, 6, true),
            Some(true)
        );
        assert_eq!(selection.current(), Some(3));
    }

    #[test]
    fn extension_blocks_carry_the_descriptor_in_the_form_it_needs_and_parse_back() {
        for (twcc, len) in [
            (Some((3, 0xabcd)), 3),
            (Some((3, 7)), 40),
            (None, 16),
            (None, 17),
        ] {
            let descriptor: Vec<u8> = (0..len as u8).collect();
            let mut out = vec![0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
            append_extensions(&mut out, twcc, (12, &descriptor));
            assert_eq!(out.len() - 12, extension_block_len(twcc.is_some(), len));
            out.extend_from_slice(b"payload");
            let header = rtp::parse_rtp(&out).unwrap();
            let found: Vec<(u8, Vec<u8>)> = rtp::extensions(&out, &header)
                .map(|(id, value)| (id, value.to_vec()))
                .collect();
            let mut expected = Vec::new();
            if let Some((id, sequence)) = twcc {
                expected.push((id, u16::to_be_bytes(sequence).to_vec()));
            }
            expected.push((12, descriptor.clone()));
            assert_eq!(found, expected, "{len} bytes");
            assert_eq!(header.payload(&out), b"payload");
        }
        // Too long for any form: only the sequence number goes out.
        let mut out = vec![0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        append_extensions(&mut out, Some((3, 9)), (12, &[0; 256]));
        let header = rtp::parse_rtp(&out).unwrap();
        assert_eq!(
            rtp::extensions(&out, &header).collect::<Vec<_>>(),
            vec![(3, &[0, 9][..])]
        );
    }

    #[test]
    fn going_down_waits_for_the_next_picture() {
        let s = l2t2();
        let mut track = track_with(&s);
        let now = crate::test_epoch();
        let mut selection = SvcSelection::default();
        selection.choose(&mut track, SvcPreferences::default(), None, now);
        assert_eq!(
            selection.admit(&frame(&s, 0, false), &s, 1, false),
            Some(false)
        );
        let small = SvcPreferences {
            max_spatial_layer: Some(0),
            ..Default::default()
        };
        selection.choose(&mut track, small, None, now).unwrap();
        // The picture in flight completes at S1 ...
        assert_eq!(
            selection.admit(&frame(&s, 3, true), &s, 1, true),
            Some(true)
        );
        // ... the next one is S0 only, marked at its end.
        assert_eq!(
            selection.admit(&frame(&s, 1, true), &s, 2, false),
            Some(true)
        );
        assert_eq!(selection.admit(&frame(&s, 4, true), &s, 2, true), None);
    }

    #[test]
    fn a_budget_keeps_the_subscriber_on_what_fits() {
        let s = l2t2();
        let mut track = track_with(&s);
        let start = crate::test_epoch();
        // One second of S0 frames at ~100 kbit/s and S1 frames at ~400 kbit/s.
        for i in 0..30u64 {
            let at = start + std::time::Duration::from_millis(i * 33);
            let s0 = frame(&s, 1, true);
            let s1 = frame(&s, 4, true);
            for (f, bytes) in [(s0, 400), (s1, 1600)] {
                for (dt, rate) in track.rates[..4].iter_mut().enumerate() {
                    if f.dtis.get(dt) != Dti::NotPresent {
                        rate.record(at, bytes);
                    }
                }
            }
        }
        let now = start + std::time::Duration::from_secs(1);
        let mut selection = SvcSelection::default();
        let change = selection
            .choose(&mut track, SvcPreferences::default(), Some(200_000), now)
            .unwrap();
        assert_eq!(change.spatial_id, 0);
        let change = selection
            .choose(&mut track, SvcPreferences::default(), Some(2_000_000), now)
            .unwrap();
        assert_eq!(change.spatial_id, 1);
        // Nothing fits: the lowest target rather than nothing.
        let change = selection
            .choose(&mut track, SvcPreferences::default(), Some(1_000), now)
            .unwrap();
        assert_eq!((change.spatial_id, change.temporal_id), (0, 0));
    }
}
