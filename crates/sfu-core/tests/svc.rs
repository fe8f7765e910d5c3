//! VP9/AV1 SVC by the Dependency Descriptor: each subscriber gets only the frames of its decode
//! target (chosen from its preferences and budget), in a stream without sequence holes, with
//! the marker on the last packet of its top spatial layer; going up waits for a keyframe.

use sfu_core::dependency_descriptor::{
    self as dd, DescriptorFields, Dti, FrameDependencyStructure,
};
use sfu_core::{Event, MediaKind, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

const DD_EXT: u8 = 6;
const PACKETS_PER_FRAME: usize = 2;

/// L3T3 in the key-SVC shape Chromium uses for `L3T3_KEY`: decode target `3 * s + t`; spatial
/// layers predict from each other only in keyframes. Templates per spatial layer: keyframe,
/// T0, T1, T2.
fn l3t3_key() -> FrameDependencyStructure {
    use Dti::*;
    let mut s = FrameDependencyStructure::new(0, 9);
    for spatial in 0..3u8 {
        let dtis = |frame_t: u8, key: bool| -> [Dti; 9] {
            core::array::from_fn(|dt| {
                let (ds, dtt) = (dt as u8 / 3, dt as u8 % 3);
                if key && spatial <= ds {
                    if spatial == 0 {
                        Switch
                    } else {
                        Required
                    }
                } else if ds != spatial || frame_t > dtt {
                    NotPresent
                } else if frame_t == 0 {
                    Required
                } else if frame_t == dtt {
                    Discardable
                } else {
                    Switch
                }
            })
        };
        let key_fdiffs: &[u8] = if spatial == 0 { &[] } else { &[1] };
        s.push_template(spatial, 0, &dtis(0, true), key_fdiffs, &[])
            .unwrap();
        s.push_template(spatial, 0, &dtis(0, false), &[12], &[])
            .unwrap();
        s.push_template(spatial, 1, &dtis(1, false), &[6], &[])
            .unwrap();
        s.push_template(spatial, 2, &dtis(2, false), &[3], &[])
            .unwrap();
    }
    s.set_resolutions(&[(320, 180), (640, 360), (1280, 720)]);
    s
}

/// Temporal layer of picture `n`: T0, T2, T1, T2, ...
fn temporal_id(n: u32) -> u8 {
    [0, 2, 1, 2][n as usize % 4]
}

/// What a test payload says about itself: (spatial, temporal, picture).
fn layer_of(payload: &[u8]) -> (u8, u8, u32) {
    (
        payload[1],
        payload[2],
        u32::from_be_bytes([payload[3], payload[4], payload[5], payload[6]]),
    )
}

/// An offer's VP8 made VP9, with the Dependency Descriptor and the two-byte headers its
/// structure needs (`a=extmap-allow-mixed`), as Chromium offers them when asked.
fn with_descriptor(offer: String) -> String {
    offer
        .replace("VP8/90000", "VP9/90000")
        .replace(
            "a=msid-semantic: WMS\r\n",
            "a=msid-semantic: WMS\r\na=extmap-allow-mixed\r\n",
        )
        .replace(
            &format!("a=extmap:5 {TWCC_URI}\r\n"),
            &format!("a=extmap:5 {TWCC_URI}\r\na=extmap:{DD_EXT} {}\r\n", dd::URI),
        )
}

struct Svc {
    net: SimNetwork,
    alice: usize,
    video: TrackId,
    structure: FrameDependencyStructure,
    sequence: u16,
    /// Payload bytes per packet, and packets per frame, of each spatial layer.
    sizes: [usize; 3],
    packets: [usize; 3],
}

impl Svc {
    fn new() -> Self {
        let mut net = SimNetwork::new(7);
        let (alice, _) = net.join("alice", 5000, |p| with_descriptor(p.publisher_offer()));
        let video = net.published(MediaKind::Video).unwrap();
        Svc {
            net,
            alice,
            video,
            structure: l3t3_key(),
            sequence: 1000,
            sizes: [100, 150, 200],
            packets: [PACKETS_PER_FRAME; 3],
        }
    }

    fn subscriber(&mut self, name: &str, port: u16) -> (usize, PeerId) {
        let (index, peer) = self.net.join(name, port, |p| {
            p.subscriber_offer(0, 1).replace("VP8/90000", "VP9/90000")
        });
        self.net
            .engine
            .subscribe(peer, self.video, self.net.now)
            .unwrap();
        (index, peer)
    }

    /// Sends picture `n` (all three spatial layers, two packets each), then lets 33 ms pass.
    fn picture(&mut self, n: u32, keyframe: bool) {
        let t = temporal_id(n);
        for spatial in 0..3u8 {
            let template = spatial * 4 + if keyframe { 0 } else { 1 + t };
            let packets = self.packets[usize::from(spatial)];
            for packet in 0..packets {
                let first = packet == 0;
                let last = packet == packets - 1;
                let mut descriptor = Vec::new();
                dd::write(
                    &self.structure,
                    &DescriptorFields {
                        start_of_frame: first,
                        end_of_frame: last,
                        template_index: template,
                        frame_number: (n * 3 + u32::from(spatial)) as u16,
                        attach_structure: keyframe && spatial == 0 && first,
                        active_decode_targets: None,
                    },
                    &mut descriptor,
                );
                // Byte 0 clear: not a VP9 descriptor's B bit, so only the DD marks keyframes.
                let mut payload = vec![0, spatial, t];
                payload.extend_from_slice(&n.to_be_bytes());
                payload.resize(self.sizes[usize::from(spatial)], 0xaa);
                self.net.peers[self.alice].send_rtp_with_extensions(
                    VP8_PT,
                    VIDEO_SSRC,
                    self.sequence,
                    n * 3000,
                    spatial == 2 && last,
                    &payload,
                    &[(DD_EXT, &descriptor)],
                );
                self.sequence = self.sequence.wrapping_add(1);
            }
        }
        self.net.run();
        self.net.advance(Duration::from_millis(33));
    }

    fn pictures(&mut self, range: std::ops::Range<u32>, keyframe_at: &[u32]) {
        for n in range {
            self.picture(n, keyframe_at.contains(&n));
        }
    }

    fn received(&self, subscriber: usize) -> Vec<(u8, u8, u32)> {
        self.net.peers[subscriber]
            .received_rtp
            .iter()
            .map(|p| layer_of(&p.payload))
            .collect()
    }

    fn assert_continuous(&self, subscriber: usize) {
        let received = &self.net.peers[subscriber].received_rtp;
        assert!(!received.is_empty());
        for pair in received.windows(2) {
            assert_eq!(
                pair[1].sequence,
                pair[0].sequence.wrapping_add(1),
                "no sequence hole"
            );
        }
    }
}

#[test]
fn a_small_subscriber_gets_only_the_base_spatial_layer_without_sequence_holes() {
    let mut svc = Svc::new();
    let (bob, bob_peer) = svc.subscriber("bob", 5001);
    svc.net
        .engine
        .set_layer_preference(bob_peer, svc.video, None, Some(180), svc.net.now)
        .unwrap();
    let (carol, carol_peer) = svc.subscriber("carol", 5002);
    svc.net
        .engine
        .set_layer_preference(carol_peer, svc.video, None, Some(200), svc.net.now)
        .unwrap();
    svc.net
        .engine
        .set_temporal_preference(carol_peer, svc.video, Some(0))
        .unwrap();
    svc.pictures(0..40, &[0]);

    let bob_got = svc.received(bob);
    assert_eq!(bob_got.len(), 40 * PACKETS_PER_FRAME, "every S0 packet");
    assert!(bob_got.iter().all(|&(s, _, _)| s == 0));
    svc.assert_continuous(bob);
    // The receiver renders at the end of its top layer, S0 here.
    let markers: Vec<bool> = svc.net.peers[bob]
        .received_rtp
        .iter()
        .map(|p| p.marker)
        .collect();
    assert!(markers
        .chunks(PACKETS_PER_FRAME)
        .all(|frame| frame == [false, true]));

    let carol_got = svc.received(carol);
    assert_eq!(
        carol_got.len(),
        10 * PACKETS_PER_FRAME,
        "S0 T0: pictures 0, 4, 8, ..."
    );
    assert!(carol_got
        .iter()
        .all(|&(s, t, n)| s == 0 && t == 0 && n % 4 == 0));
    svc.assert_continuous(carol);
}

#[test]
fn a_large_subscriber_gets_the_top_layer_with_one_marker_per_picture() {
    let mut svc = Svc::new();
    let (bob, _) = svc.subscriber("bob", 5001);
    svc.pictures(0..12, &[0]);
    let got = svc.received(bob);
    // Key-SVC: S2's decode target needs S0 and S1 only in the keyframe.
    assert_eq!(got.len(), (3 + 11) * PACKETS_PER_FRAME);
    assert!(got.iter().all(|&(s, _, n)| n == 0 || s == 2));
    assert!(
        (0..12).all(|n| got.iter().any(|&(s, _, m)| s == 2 && m == n)),
        "every picture at S2, all temporal layers"
    );
    svc.assert_continuous(bob);
    let marked: Vec<(u8, u8, u32)> = svc.net.peers[bob]
        .received_rtp
        .iter()
        .filter(|p| p.marker)
        .map(|p| layer_of(&p.payload))
        .collect();
    assert_eq!(marked.len(), 12);
    assert!(marked.iter().all(|&(s, _, _)| s == 2));
}

#[test]
fn going_up_waits_for_a_keyframe_and_asks_for_one_going_down_is_immediate() {
    let mut svc = Svc::new();
    let (bob, bob_peer) = svc.subscriber("bob", 5001);
    svc.net
        .engine
        .set_layer_preference(bob_peer, svc.video, None, Some(180), svc.net.now)
        .unwrap();
    svc.pictures(0..8, &[0]);
    let requests_before = count_keyframe_requests(&svc.net.events);
    svc.net
        .engine
        .set_layer_preference(bob_peer, svc.video, None, None, svc.net.now)
        .unwrap();
    svc.net.run();
    assert!(svc.net.events.iter().any(|e| matches!(
        e,
        Event::LayerSwitched { peer, layer: 2, .. } if *peer == bob_peer
    )));
    // No keyframe yet: still S0 only; the delta frames of S2 cannot be decoded.
    svc.pictures(8..16, &[]);
    assert!(
        count_keyframe_requests(&svc.net.events) > requests_before,
        "a higher spatial layer needs a keyframe"
    );
    assert!(svc.received(bob).iter().all(|&(s, _, _)| s == 0));
    // The keyframe brings all three layers.
    svc.pictures(16..20, &[16]);
    let from_key: Vec<u8> = svc
        .received(bob)
        .iter()
        .filter(|&&(_, _, n)| n >= 16)
        .map(|&(s, _, _)| s)
        .collect();
    assert_eq!(
        from_key.len(),
        (3 + 3) * PACKETS_PER_FRAME,
        "keyframe, then S2"
    );
    assert_eq!(&from_key[..6], [0, 0, 1, 1, 2, 2]);

    // Down to S1 at once: the next picture has no S2.
    svc.net
        .engine
        .set_layer_preference(bob_peer, svc.video, Some(1), None, svc.net.now)
        .unwrap();
    svc.pictures(20..24, &[]);
    let after: Vec<(u8, u8, u32)> = svc
        .received(bob)
        .into_iter()
        .filter(|&(_, _, n)| n >= 20)
        .collect();
    assert_eq!(
        after.len(),
        4 * PACKETS_PER_FRAME,
        "S1 only (key-SVC: no S0 deltas)"
    );
    assert!(svc.net.events.iter().any(|e| matches!(
        e,
        Event::LayerSwitched { peer, layer: 1, .. } if *peer == bob_peer
    )));
    assert!(after.iter().all(|&(s, _, _)| s == 1));
    svc.assert_continuous(bob);
}

#[test]
fn the_budget_keeps_a_subscriber_below_layers_it_cannot_afford() {
    let mut svc = Svc::new();
    // Decode targets' rates (kbit/s) with 1200-byte packets: S2 at T0 576, T0+T1 1152, all
    // 2304; S1 half of that; S0 48 at most. A new subscriber's estimate starts at 1 Mbit/s, so
    // 90 % of it affords S2 at T0 only: the highest spatial layer that fits, at the frame rate
    // that fits.
    svc.sizes = [200, 1200, 1200];
    svc.packets = [1, 4, 8];
    let (bob, _) = svc.subscriber("bob", 5001);
    svc.pictures(0..60, &[0, 30]);
    let settled: Vec<(u8, u8, u32)> = svc
        .received(bob)
        .into_iter()
        .filter(|&(_, _, n)| n >= 31)
        .collect();
    assert!(!settled.is_empty());
    assert!(
        settled.iter().all(|&(s, t, _)| s == 2 && t == 0),
        "S2 T0: {settled:?}"
    );
    svc.assert_continuous(bob);
}

#[test]
fn subscribers_that_negotiated_the_descriptor_get_it_with_the_structure_first() {
    let mut svc = Svc::new();
    let (bob, bob_peer) = svc
        .net
        .join("bob", 5001, |p| with_descriptor(p.subscriber_offer(0, 1)));
    svc.net
        .engine
        .subscribe(bob_peer, svc.video, svc.net.now)
        .unwrap();
    svc.net
        .engine
        .set_layer_preference(bob_peer, svc.video, None, Some(360), svc.net.now)
        .unwrap();
    let (carol, _) = svc.subscriber("carol", 5002);
    svc.pictures(0..8, &[0]);

    let mut reader = dd::DependencyDescriptorReader::new();
    let received = &svc.net.peers[bob].received_rtp;
    assert_eq!(
        received.len(),
        (2 + 7) * PACKETS_PER_FRAME,
        "S0 and S1 keyframe, then S1"
    );
    for packet in received {
        let (_, descriptor) = packet
            .extensions
            .iter()
            .find(|(id, _)| *id == DD_EXT)
            .expect("every packet carries the descriptor");
        let parsed = reader
            .read(descriptor)
            .expect("the first one has the structure");
        let (spatial, temporal, _) = layer_of(&packet.payload);
        assert_eq!(
            (parsed.frame.spatial_id, parsed.frame.temporal_id),
            (spatial, temporal)
        );
        assert!(
            packet.transport_sequence.is_some(),
            "next to the transport-wide sequence"
        );
    }
    assert_eq!(reader.structure().unwrap().decode_target_count(), 9);
    // Carol did not negotiate it: she gets none.
    assert!(svc.net.peers[carol]
        .received_rtp
        .iter()
        .all(|p| p.extensions.iter().all(|(id, _)| *id != DD_EXT)));
}

fn count_keyframe_requests(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::KeyframeRequested { .. }))
        .count()
}
