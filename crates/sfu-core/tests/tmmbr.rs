//! A subscriber's TMMBR (RFC 5104) for a stream the engine sends it caps what the engine plans to
//! send it, like REMB; a request about a stream it does not receive changes nothing.

use sfu_core::{rtcp, MediaKind};
use sfu_testkit::*;

fn tmmbr(requests: &[(u32, u64)]) -> Vec<u8> {
    let mut packet = vec![0x83, rtcp::PT_RTPFB, 0, (2 + 2 * requests.len()) as u8];
    packet.extend_from_slice(&0x5151u32.to_be_bytes());
    packet.extend_from_slice(&0u32.to_be_bytes());
    for &(ssrc, bps) in requests {
        // Exact for the values used here: mantissa below 2^17, no overhead.
        let exponent = (64 - bps.leading_zeros()).saturating_sub(17);
        let word = exponent << 26 | ((bps >> exponent) as u32) << 9;
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(&word.to_be_bytes());
    }
    packet
}

#[test]
fn a_tmmbr_for_a_received_stream_caps_the_subscribers_estimate_and_others_do_not() {
    let mut net = SimNetwork::new(61);
    net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let (bob, bob_peer) = net.join("bob", 5001, |p| p.subscriber_offer(0, 1));
    let sent_to_bob = net.engine.subscribe(bob_peer, video, net.now).unwrap().ssrc;
    net.run();
    let before = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    assert!(
        before > 200_000,
        "the starting estimate is above the cap: {before}"
    );

    net.peers[bob].send_rtcp(tmmbr(&[(sent_to_bob ^ 1, 100_000)]));
    net.run();
    let unrelated = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    assert_eq!(
        unrelated, before,
        "a request about a stream bob does not get"
    );

    net.peers[bob].send_rtcp(tmmbr(&[(sent_to_bob, 200_000)]));
    net.run();
    let capped = net
        .engine
        .peer_stats(bob_peer)
        .unwrap()
        .available_outgoing_bitrate_bps;
    assert_eq!(capped, 200_000);
}
