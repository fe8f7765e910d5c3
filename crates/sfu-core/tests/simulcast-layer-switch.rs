//! Simulcast: each subscriber receives one layer, chosen from what is sent and what it wants;
//! switches happen on the new layer's keyframe and keep its stream continuous.

use sfu_core::rtp;
use sfu_core::{Event, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

const MID_EXT: u8 = 4;
const RID_EXT: u8 = 10;
const LAYERS: [(&str, u32, (u16, u16)); 3] = [
    ("q", 0xa1, (320, 180)),
    ("h", 0xa2, (640, 360)),
    ("f", 0xa3, (1280, 720)),
];

struct Sim {
    net: SimNetwork,
    publisher: usize,
    track: TrackId,
    frame: u16,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut net = SimNetwork::new(seed);
        let (publisher, answer, track) = net.join_simulcast_publisher("alice", 5000, |offer| offer);
        assert!(answer.contains("a=simulcast:recv q;h;f"), "{answer}");
        Sim {
            net,
            publisher,
            track,
            frame: 0,
        }
    }

    fn subscriber(&mut self, name: &str, port: u16) -> (usize, PeerId) {
        self.net.join(name, port, |p| p.subscriber_offer(0, 1))
    }

    /// One frame (one packet) on every layer; `keyframes` selects which layers send a keyframe.
    fn frame(&mut self, keyframes: [bool; 3]) {
        self.frame += 1;
        let n = self.frame;
        for (i, (rid, ssrc, size)) in LAYERS.iter().enumerate() {
            let payload = vp8_payload_with_ids(
                keyframes[i],
                1000 * (i as u16 + 1) + n,
                (10 * i as u8).wrapping_add(n as u8),
                *size,
                200 + 10 * i,
            );
            let extensions: [(u8, &[u8]); 2] = [(MID_EXT, b"0"), (RID_EXT, rid.as_bytes())];
            self.net.peers[self.publisher].send_rtp_with_extensions(
                VP8_PT,
                *ssrc,
                n,
                n as u32 * 3000,
                true,
                &payload,
                &extensions,
            );
        }
        self.net.run();
        self.net.advance(Duration::from_millis(33));
    }
}

/// Which layer a forwarded payload came from: each layer's payloads have their own length.
fn layer_of(payload: &[u8]) -> usize {
    (payload.len() - 200) / 10
}

fn picture_id(payload: &[u8]) -> u16 {
    rtp::parse_vp8_descriptor(payload)
        .unwrap()
        .picture_id
        .unwrap()
        .0
}

#[test]
fn a_subscriber_gets_the_best_layer_and_drops_to_the_small_one_it_asks_for_at_a_keyframe() {
    let mut sim = Sim::new(21);
    let (bob, bob_peer) = sim.subscriber("bob", 5001);
    sim.net
        .engine
        .subscribe(bob_peer, sim.track, sim.net.now)
        .unwrap();
    // Every layer starts with a keyframe so the engine learns the sizes, then keeps sending.
    sim.frame([true, true, true]);
    for _ in 0..30 {
        sim.frame([false, false, false]);
    }
    sim.frame([true, true, true]);
    sim.frame([false, false, false]);
    let full = LAYERS[2].2;
    let received = &sim.net.peers[bob].received_rtp;
    let last = received.last().expect("video flows");
    assert_eq!(
        rtp::vp8_keyframe_dimensions(
            &received
                .iter()
                .rev()
                .find(|p| rtp::vp8_is_keyframe(&p.payload))
                .unwrap()
                .payload
        ),
        Some(full)
    );
    assert_eq!(layer_of(&last.payload), 2, "forwarding layer f");

    // Bob's video element is small now.
    let before = sim.net.peers[bob].received_rtp.len();
    sim.net
        .engine
        .set_layer_preference(bob_peer, sim.track, None, Some(200), sim.net.now)
        .unwrap();
    sim.frame([false, false, false]);
    sim.frame([false, false, false]);
    let still_full = sim.net.peers[bob].received_rtp.len() - before;
    assert!(
        sim.net.peers[bob].received_rtp[before..]
            .iter()
            .all(|p| layer_of(&p.payload) == 2),
        "no switch before the keyframe of q"
    );
    sim.frame([true, false, false]);
    sim.frame([false, false, false]);
    let switched = &sim.net.peers[bob].received_rtp[before + still_full..];
    assert_eq!(switched.len(), 2, "only layer q reaches bob now");
    assert!(switched.iter().all(|p| layer_of(&p.payload) == 0));
    assert_eq!(
        rtp::vp8_keyframe_dimensions(&switched[0].payload),
        Some(LAYERS[0].2)
    );

    let all = &sim.net.peers[bob].received_rtp;
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence numbers have no gap across the switch"
        );
        assert_eq!(
            picture_id(&pair[1].payload),
            (picture_id(&pair[0].payload) + 1) % 0x8000,
            "PictureID continues"
        );
        assert!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp) < 0x8000_0000,
            "timestamps move forward"
        );
    }
    assert!(sim
        .net
        .events
        .iter()
        .any(|e| matches!(e, Event::LayerSwitched { layer: 0, .. })));
}

#[test]
fn switching_up_waits_for_the_target_layers_keyframe_and_asks_for_it() {
    let mut sim = Sim::new(22);
    let (bob, bob_peer) = sim.subscriber("bob", 5001);
    sim.net
        .engine
        .subscribe(bob_peer, sim.track, sim.net.now)
        .unwrap();
    sim.net
        .engine
        .set_layer_preference(bob_peer, sim.track, Some(0), None, sim.net.now)
        .unwrap();
    sim.frame([true, true, true]);
    for _ in 0..20 {
        sim.frame([false, false, false]);
    }
    assert!(
        sim.net.peers[bob]
            .received_rtp
            .iter()
            .all(|p| layer_of(&p.payload) == 0),
        "only q"
    );
    sim.net.peers[sim.publisher].received_rtcp.clear();
    sim.net
        .engine
        .set_layer_preference(bob_peer, sim.track, None, None, sim.net.now)
        .unwrap();
    sim.net.run();
    let asked_for_f = sim.net.peers[sim.publisher].received_rtcp.iter().any(|c| {
        sfu_core::rtcp::packets(c).any(|p| {
            matches!(
                p,
                Ok(sfu_core::rtcp::RtcpPacket::Pli {
                    media_ssrc: 0xa3,
                    ..
                })
            )
        })
    });
    assert!(asked_for_f, "a PLI for layer f");
    let before = sim.net.peers[bob].received_rtp.len();
    sim.frame([false, false, false]);
    assert!(
        sim.net.peers[bob].received_rtp[before..]
            .iter()
            .all(|p| layer_of(&p.payload) == 0),
        "q until f's keyframe"
    );
    sim.frame([false, false, true]);
    let last = sim.net.peers[bob].received_rtp.last().unwrap();
    assert_eq!(
        rtp::vp8_keyframe_dimensions(&last.payload),
        Some(LAYERS[2].2)
    );
}

#[test]
fn when_the_forwarded_layer_stops_the_subscriber_falls_back_to_one_that_still_sends() {
    let mut sim = Sim::new(23);
    let (bob, bob_peer) = sim.subscriber("bob", 5001);
    sim.net
        .engine
        .subscribe(bob_peer, sim.track, sim.net.now)
        .unwrap();
    sim.frame([true, true, true]);
    for _ in 0..10 {
        sim.frame([false, false, false]);
    }
    // The publisher's uplink shrinks: its browser stops layer f (and h).
    for _ in 0..60 {
        sim.frame_only_q();
    }
    let last = sim.net.peers[bob].received_rtp.last().unwrap();
    assert_eq!(layer_of(&last.payload), 0, "bob gets q once f stopped");
}

impl Sim {
    fn frame_only_q(&mut self) {
        self.frame += 1;
        let n = self.frame;
        let keyframe = n.is_multiple_of(15);
        let payload = vp8_payload_with_ids(keyframe, 1000 + n, n as u8, LAYERS[0].2, 200);
        let extensions: [(u8, &[u8]); 2] = [(MID_EXT, b"0"), (RID_EXT, b"q")];
        self.net.peers[self.publisher].send_rtp_with_extensions(
            VP8_PT,
            LAYERS[0].1,
            n,
            n as u32 * 3000,
            true,
            &payload,
            &extensions,
        );
        self.net.run();
        self.net.advance(Duration::from_millis(33));
    }
}
