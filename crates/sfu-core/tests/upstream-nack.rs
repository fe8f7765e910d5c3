//! NACKs to publishers: a gap in a publisher's video is asked for at once, the RTX answer is
//! unwrapped and reaches subscribers in its place (their stream shows no hole), a second copy or
//! a probe does not, and resends stop once the packet came.

use sfu_core::MediaKind;
use sfu_testkit::*;
use std::time::Duration;

const FRAME_TICKS: u32 = 3000;

fn video_packet(net: &mut SimNetwork, alice: usize, sequence: u16, keyframe: bool) {
    net.peers[alice].send_rtp(
        VP8_PT,
        VIDEO_SSRC,
        sequence,
        u32::from(sequence) * FRAME_TICKS,
        true,
        &vp8_payload(keyframe, sequence as u8, 600),
    );
}

/// The RTX answer for `sequence` (RFC 4588: the original sequence number before the payload).
fn retransmission(net: &mut SimNetwork, alice: usize, rtx_sequence: u16, sequence: u16) {
    let mut payload = sequence.to_be_bytes().to_vec();
    payload.extend_from_slice(&vp8_payload(false, sequence as u8, 600));
    net.peers[alice].send_rtp(
        VP8_RTX_PT,
        VIDEO_RTX_SSRC,
        rtx_sequence,
        u32::from(sequence) * FRAME_TICKS,
        true,
        &payload,
    );
}

#[test]
fn a_lost_publisher_packet_is_asked_for_and_its_retransmission_fills_the_hole() {
    let mut net = SimNetwork::new(21);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).unwrap();
    let bob = net.join("bob", 5001, |p| p.subscriber_offer(1, 1));
    net.engine.subscribe(bob.1, video, net.now).unwrap();

    video_packet(&mut net, alice, 1000, true);
    video_packet(&mut net, alice, 1001, false);
    // 1002 is lost on the way.
    video_packet(&mut net, alice, 1003, false);
    net.run();
    assert_eq!(
        net.peers[alice].nacked(VIDEO_SSRC),
        vec![1002],
        "the gap is asked for as soon as it shows"
    );

    retransmission(&mut net, alice, 7, 1002);
    net.run();
    let received: Vec<_> = net.peers[bob.0]
        .received_rtp
        .iter()
        .filter(|p| p.payload_type == VP8_PT)
        .cloned()
        .collect();
    assert_eq!(received.len(), 4, "Bob gets the retransmitted packet too");
    let late = &received[3];
    assert_eq!(late.payload, vp8_payload(false, 1002u16 as u8, 600));
    assert_eq!(
        late.sequence,
        received[1].sequence.wrapping_add(1),
        "in its place: between 1001 and 1003 of Bob's numbering"
    );
    assert_eq!(received[2].sequence, late.sequence.wrapping_add(1));

    // A second copy and a padding-only probe on the RTX stream reach no one.
    retransmission(&mut net, alice, 8, 1002);
    net.peers[alice].send_rtp(VP8_RTX_PT, VIDEO_RTX_SSRC, 9, 0, false, &[]);
    net.run();
    let count = net.peers[bob.0]
        .received_rtp
        .iter()
        .filter(|p| p.payload_type == VP8_PT)
        .count();
    assert_eq!(count, 4);

    // Nothing is missing any more: no resends.
    let asked = net.peers[alice].nacked(VIDEO_SSRC).len();
    net.advance(Duration::from_millis(500));
    assert_eq!(net.peers[alice].nacked(VIDEO_SSRC).len(), asked);
}

#[test]
fn an_unanswered_nack_is_resent_paced_then_given_up() {
    let mut net = SimNetwork::new(22);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    video_packet(&mut net, alice, 2000, true);
    video_packet(&mut net, alice, 2002, false);
    net.run();
    assert_eq!(net.peers[alice].nacked(VIDEO_SSRC), vec![2001]);
    net.advance(Duration::from_millis(2000));
    let asks = net.peers[alice].nacked(VIDEO_SSRC).len();
    assert!(
        (2..=11).contains(&asks),
        "resent about once per assumed round trip, at most 10 times in all: {asks}"
    );
    net.advance(Duration::from_millis(2000));
    assert_eq!(
        net.peers[alice].nacked(VIDEO_SSRC).len(),
        asks,
        "given up after its age limit"
    );
}

#[test]
fn a_retransmission_that_comes_before_the_gap_shows_is_forwarded_as_new() {
    // Chromium probes bandwidth with RTX copies of recent packets: one may carry a packet whose
    // original was lost before any later packet revealed the loss.
    let mut net = SimNetwork::new(23);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).unwrap();
    let bob = net.join("bob", 5001, |p| p.subscriber_offer(1, 1));
    net.engine.subscribe(bob.1, video, net.now).unwrap();
    video_packet(&mut net, alice, 3000, true);
    video_packet(&mut net, alice, 3001, false);
    retransmission(&mut net, alice, 40, 3002);
    video_packet(&mut net, alice, 3003, false);
    net.run();
    let sequences: Vec<u16> = net.peers[bob.0]
        .received_rtp
        .iter()
        .filter(|p| p.payload_type == VP8_PT)
        .map(|p| p.sequence)
        .collect();
    assert_eq!(sequences.len(), 4, "{sequences:?}");
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "no hole: {sequences:?}"
    );
    assert!(net.peers[alice].nacked(VIDEO_SSRC).is_empty());
}
