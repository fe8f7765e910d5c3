//! Transport-wide congestion control on both legs: publishers get feedback for what they send,
//! and what subscribers receive carries transport sequence numbers whose feedback drives the
//! engine's estimate of their downlink.

use sfu_core::twcc::{TransportFeedback, TwccRecorder};
use sfu_core::{rtcp, MediaKind, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

fn room(seed: u64) -> (SimNetwork, usize, TrackId, usize, PeerId) {
    let mut net = SimNetwork::new(seed);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).unwrap();
    let (bob, bob_peer) = net.join("bob", 5001, |p| p.subscriber_offer(0, 1));
    net.engine.subscribe(bob_peer, video, net.now).unwrap();
    (net, alice, video, bob, bob_peer)
}

#[test]
fn the_answer_keeps_transport_wide_congestion_control() {
    let net = SimNetwork::new(30);
    let alice = SimPeer::new("alice", 5000);
    let mut engine = net.engine;
    let peer = engine.create_peer(net.now);
    let answer = engine
        .apply_offer(peer, &alice.publisher_offer(), net.now)
        .unwrap();
    assert!(answer.contains(TWCC_URI));
}

fn send_video(net: &mut SimNetwork, alice: usize, n: u16) {
    let seq = n.to_be_bytes();
    let extensions: [(u8, &[u8]); 1] = [(TWCC_EXT, &seq)];
    let payload = vp8_payload(n == 0, 1, 1000);
    net.peers[alice].send_rtp_with_extensions(
        VP8_PT,
        VIDEO_SSRC,
        n,
        n as u32 * 3000,
        true,
        &payload,
        &extensions,
    );
    net.run();
}

#[test]
fn a_publisher_receives_transport_wide_feedback_for_every_packet_it_sent() {
    let (mut net, alice, _, _, _) = room(31);
    net.peers[alice].received_rtcp.clear();
    for n in 0..20 {
        send_video(&mut net, alice, n);
    }
    net.advance(Duration::from_millis(200));
    let mut acknowledged = Vec::new();
    for compound in &net.peers[alice].received_rtcp {
        for packet in rtcp::packets(compound).flatten() {
            if let rtcp::RtcpPacket::TransportCc(cc) = packet {
                let feedback = TransportFeedback::parse(&cc).expect("well-formed feedback");
                acknowledged.extend(
                    feedback
                        .packets()
                        .filter(|p| p.arrival_us.is_some())
                        .map(|p| p.seq),
                );
            }
        }
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, (0..20).collect::<Vec<u16>>());
}

#[test]
fn what_a_subscriber_receives_carries_consecutive_transport_sequence_numbers() {
    let (mut net, alice, _, bob, _) = room(32);
    for n in 0..50 {
        send_video(&mut net, alice, n);
        net.advance(Duration::from_millis(10));
    }
    let sequences: Vec<u16> = net.peers[bob]
        .received_rtp
        .iter()
        .filter_map(|p| p.transport_sequence)
        .collect();
    assert!(sequences.len() >= 50, "{}", sequences.len());
    for pair in sequences.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1));
    }
}

/// Plays Bob's browser: every 100 ms, transport-wide feedback on what arrived, where
/// `arrived(i)` says whether the i-th packet did.
fn run_with_feedback(
    net: &mut SimNetwork,
    alice: usize,
    bob: usize,
    seconds: u64,
    arrived: impl Fn(usize) -> bool,
) {
    let mut recorder = TwccRecorder::new();
    let mut seen = 0;
    let mut n = 0u16;
    for _ in 0..seconds * 10 {
        for _ in 0..10 {
            send_video(net, alice, n);
            n = n.wrapping_add(1);
            net.advance(Duration::from_millis(10));
        }
        let received = &net.peers[bob].received_rtp;
        for (i, packet) in received.iter().enumerate().skip(seen) {
            if let Some(seq) = packet.transport_sequence {
                if arrived(i) {
                    recorder.record(seq, net.now);
                }
            }
        }
        seen = received.len();
        let mut feedback = Vec::new();
        while recorder.poll_feedback(
            net.now + Duration::from_millis(100),
            0xb0b,
            0,
            &mut feedback,
        ) {}
        if !feedback.is_empty() {
            net.peers[bob].send_rtcp(feedback);
            net.run();
        }
    }
}

#[test]
fn the_downlink_estimate_falls_when_a_subscriber_reports_heavy_loss() {
    let (mut net, alice, _, bob, bob_peer) = room(33);
    let before = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    run_with_feedback(&mut net, alice, bob, 3, |i| i % 3 == 0);
    let after = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    assert!(
        after < before / 2,
        "heavy loss lowers the estimate: {before} -> {after}"
    );
}

#[test]
fn the_downlink_estimate_holds_when_everything_arrives() {
    let (mut net, alice, _, bob, bob_peer) = room(34);
    let before = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    run_with_feedback(&mut net, alice, bob, 3, |_| true);
    let after = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    assert!(
        after >= before * 8 / 10,
        "no loss, no delay growth: {before} -> {after}"
    );
}
