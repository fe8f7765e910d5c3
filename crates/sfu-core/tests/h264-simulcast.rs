//! H.264 simulcast: the engine learns each layer's size from its SPS, so a subscriber asking for
//! a small picture drops to the small layer at that layer's keyframe, as with VP8.

use sfu_core::rtp;
use sfu_core::{PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

const MID_EXT: u8 = 4;
const RID_EXT: u8 = 10;
const H264: &str = "H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Each layer's RID, SSRC and SPS (constrained baseline from x264, emulation prevention kept).
const LAYERS: [(&str, u32, &str); 3] = [
    (
        "q",
        0xa1,
        "6742c00bd901419f9f011000000300100000030020f142a480",
    ),
    (
        "h",
        0xa2,
        "6742c016d900a02ff97011000003000100000300020f162e48",
    ),
    (
        "f",
        0xa3,
        "6742c01fd9005005bb011000000300100000030020f1832480",
    ),
];
const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A keyframe's first packet as browsers send it: SPS, PPS and the IDR slice's start in a STAP-A.
fn keyframe_start(sps: &[u8], layer: usize) -> Vec<u8> {
    let idr = [&[0x65, 0x88][..], &vec![layer as u8; 100 + 10 * layer]].concat();
    let mut payload = vec![0x78];
    for unit in [sps, &PPS[..], &idr] {
        payload.extend_from_slice(&(unit.len() as u16).to_be_bytes());
        payload.extend_from_slice(unit);
    }
    payload
}

/// A non-IDR slice whose filler names its layer.
fn delta_frame(layer: usize) -> Vec<u8> {
    [&[0x41, 0x9a][..], &vec![layer as u8; 100 + 10 * layer]].concat()
}

fn layer_of(payload: &[u8]) -> u8 {
    *payload.last().unwrap()
}

struct Sim {
    net: SimNetwork,
    publisher: usize,
    track: TrackId,
    frame: u16,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut net = SimNetwork::new(seed);
        let (publisher, answer, track) =
            net.join_simulcast_publisher("alice", 5000, |offer| offer.replace("VP8/90000", H264));
        assert!(answer.contains("a=simulcast:recv q;h;f"), "{answer}");
        assert!(answer.contains("H264/90000"), "{answer}");
        Sim {
            net,
            publisher,
            track,
            frame: 0,
        }
    }

    fn subscriber(&mut self, name: &str, port: u16) -> (usize, PeerId) {
        self.net.join(name, port, |p| {
            p.subscriber_offer(0, 1).replace("VP8/90000", H264)
        })
    }

    /// One frame (one packet) on every layer; `keyframes` selects which layers start a keyframe.
    fn frame(&mut self, keyframes: [bool; 3]) {
        self.frame += 1;
        let n = self.frame;
        for (i, (rid, ssrc, sps)) in LAYERS.iter().enumerate() {
            let payload = if keyframes[i] {
                keyframe_start(&hex(sps), i)
            } else {
                delta_frame(i)
            };
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

#[test]
fn a_subscriber_asking_for_a_small_picture_drops_to_the_small_h264_layer_at_its_keyframe() {
    let mut sim = Sim::new(31);
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
    // The best layer takes over at its next keyframe.
    sim.frame([true, true, true]);
    sim.frame([false, false, false]);
    let last = sim.net.peers[bob].received_rtp.last().expect("video flows");
    assert_eq!(layer_of(&last.payload), 2, "the best layer first");

    // Bob's video element is 200 pixels tall: only q (180 rows) fits.
    sim.net
        .engine
        .set_layer_preference(bob_peer, sim.track, None, Some(200), sim.net.now)
        .unwrap();
    sim.frame([false, false, false]);
    sim.frame([true, true, true]);
    sim.frame([false, false, false]);
    sim.frame([false, false, false]);
    let received = &sim.net.peers[bob].received_rtp;
    let keyframe = received
        .iter()
        .rev()
        .find(|p| rtp::h264_is_keyframe(&p.payload))
        .expect("a keyframe after the switch");
    assert_eq!(
        rtp::h264_keyframe_dimensions(&keyframe.payload),
        Some((320, 180))
    );
    assert!(
        received[received.len() - 3..]
            .iter()
            .all(|p| layer_of(&p.payload) == 0),
        "only layer q reaches bob now"
    );
    for pair in received.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence numbers have no gap across the switch"
        );
    }

    // A 720-row element takes the full layer again.
    sim.net
        .engine
        .set_layer_preference(bob_peer, sim.track, None, Some(720), sim.net.now)
        .unwrap();
    sim.frame([true, true, true]);
    sim.frame([false, false, false]);
    let last = sim.net.peers[bob].received_rtp.last().unwrap();
    assert_eq!(layer_of(&last.payload), 2, "back to layer f");
}
