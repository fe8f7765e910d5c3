//! VP8 temporal scalability: a subscriber limited to fewer temporal layers receives only those
//! frames, in a stream without sequence or PictureID holes, and gets the rest back at a frame
//! its decoder can start from.

use sfu_core::{rtp, MediaKind, PeerId, TrackId};
use sfu_testkit::*;

/// L1T3: temporal layer of frame `n` (0, 2, 1, 2, 0, ...).
fn temporal_id(n: u16) -> u8 {
    match n % 4 {
        0 => 0,
        2 => 1,
        _ => 2,
    }
}

/// A VP8 payload with PictureID, TL0PICIDX and TID/Y, as Chromium sends with temporal layers.
fn vp8_temporal_payload(n: u16) -> Vec<u8> {
    let tid = temporal_id(n);
    let tl0 = (n / 4) as u8;
    let layer_sync = tid != 0; // every TL1/TL2 frame here depends only on TL0
    let mut payload = vec![
        0x90,
        0xe0,
        0x80 | ((n >> 8) as u8 & 0x7f),
        n as u8,
        tl0,
        (tid << 6) | ((layer_sync as u8) << 5),
    ];
    let keyframe = n == 0;
    payload.extend_from_slice(&[if keyframe { 0x00 } else { 0x01 }, 0, 0]);
    if keyframe {
        payload.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    }
    payload.resize(300, tid);
    payload
}

fn setup() -> (SimNetwork, usize, usize, PeerId, TrackId) {
    let mut net = SimNetwork::new(41);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).unwrap();
    let (bob, bob_peer) = net.join("bob", 5001, |p| p.subscriber_offer(0, 1));
    net.engine.subscribe(bob_peer, video, net.now).unwrap();
    (net, alice, bob, bob_peer, video)
}

fn send_frames(net: &mut SimNetwork, alice: usize, frames: std::ops::Range<u16>) {
    for n in frames {
        net.peers[alice].send_rtp(
            VP8_PT,
            VIDEO_SSRC,
            n,
            n as u32 * 3000,
            true,
            &vp8_temporal_payload(n),
        );
        net.run();
    }
}

fn descriptor(payload: &[u8]) -> rtp::Vp8Descriptor {
    rtp::parse_vp8_descriptor(payload).unwrap()
}

#[test]
fn a_subscriber_limited_to_the_base_layer_gets_only_its_frames_without_holes() {
    let (mut net, alice, bob, bob_peer, video) = setup();
    net.engine
        .set_temporal_preference(bob_peer, video, Some(0))
        .unwrap();
    send_frames(&mut net, alice, 0..40);
    let received = &net.peers[bob].received_rtp;
    assert_eq!(received.len(), 10, "frames 0, 4, 8, ... only");
    assert!(received
        .iter()
        .all(|p| descriptor(&p.payload).temporal == Some((0, false))));
    for pair in received.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "no sequence hole"
        );
        let (a, b) = (descriptor(&pair[0].payload), descriptor(&pair[1].payload));
        assert_eq!(
            b.picture_id.unwrap().0,
            a.picture_id.unwrap().0 + 1,
            "no PictureID hole"
        );
        assert_eq!(
            b.tl0_pic_idx.unwrap().0,
            a.tl0_pic_idx.unwrap().0.wrapping_add(1)
        );
    }
}

#[test]
fn raising_the_limit_resumes_the_upper_layers_at_a_frame_the_decoder_can_start_from() {
    let (mut net, alice, bob, bob_peer, video) = setup();
    net.engine
        .set_temporal_preference(bob_peer, video, Some(1))
        .unwrap();
    send_frames(&mut net, alice, 0..8);
    let tids: Vec<u8> = net.peers[bob]
        .received_rtp
        .iter()
        .map(|p| descriptor(&p.payload).temporal.unwrap().0)
        .collect();
    assert_eq!(tids, vec![0, 1, 0, 1], "15 of 30 fps");
    net.engine
        .set_temporal_preference(bob_peer, video, None)
        .unwrap();
    send_frames(&mut net, alice, 8..16);
    let after: Vec<u8> = net.peers[bob].received_rtp[4..]
        .iter()
        .map(|p| descriptor(&p.payload).temporal.unwrap().0)
        .collect();
    assert_eq!(after, vec![0, 2, 1, 2, 0, 2, 1, 2], "all layers again");
    let received = &net.peers[bob].received_rtp;
    for pair in received.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(
            descriptor(&pair[1].payload).picture_id.unwrap().0,
            descriptor(&pair[0].payload).picture_id.unwrap().0 + 1
        );
    }
    assert!(net
        .engine
        .set_temporal_preference(PeerId(999), video, None)
        .is_err());
}
