//! ICE-lite, DTLS and SRTP refuse what they must: unchecked addresses, wrong certificates,
//! replays, silence past consent, and garbage of every shape.

use sfu_core::{Event, PeerId};
use sfu_testkit::*;
use std::time::Duration;

fn connected(net: &mut SimNetwork, name: &str, port: u16, publisher: bool) -> (usize, PeerId) {
    if publisher {
        net.join(name, port, SimPeer::publisher_offer)
    } else {
        net.join(name, port, |p| p.subscriber_offer(1, 1))
    }
}

#[test]
fn broken_sdp_is_a_typed_error() {
    let mut net = SimNetwork::new(1);
    let peer = net.engine.create_peer(net.now);
    for offer in [
        "",
        "garbage",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        "\u{0}\u{1}\u{2}",
    ] {
        let err = net.engine.apply_offer(peer, offer, net.now).unwrap_err();
        assert_eq!(err.code(), "invalid_sdp", "{offer:?}");
    }
    assert_eq!(
        net.engine
            .apply_offer(PeerId(999), "v=0", net.now)
            .unwrap_err()
            .code(),
        "peer_not_found"
    );
}

#[test]
fn a_peer_whose_certificate_does_not_match_its_fingerprint_is_refused() {
    let mut net = SimNetwork::new(2);
    let index = net.add_peer(SimPeer::new("mallory", 6000));
    let peer = net.engine.create_peer(net.now);
    // The offer carries someone else's fingerprint.
    let other = SimPeer::new("other", 6001);
    let offer = net.peers[index].publisher_offer();
    let theirs = other.publisher_offer();
    let fingerprint_line = |sdp: &str| {
        sdp.lines()
            .find(|l| l.starts_with("a=fingerprint"))
            .unwrap()
            .to_owned()
    };
    let forged = offer.replace(&fingerprint_line(&offer), &fingerprint_line(&theirs));
    let answer = net.engine.apply_offer(peer, &forged, net.now).unwrap();
    net.peers[index].apply_answer(&answer);
    net.connect(index);
    assert!(!net.engine.peer_stats(peer).unwrap().connected);
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, Event::PeerDisconnected { peer: p, .. } if *p == peer)));
}

#[test]
fn datagrams_from_an_address_that_passed_no_check_are_dropped() {
    let mut net = SimNetwork::new(3);
    let (alice, _) = connected(&mut net, "alice", 5000, true);
    let dropped_before = net.engine.stats().dropped_unknown_source;
    // Same keys, other address: an attacker replaying from elsewhere.
    net.peers[alice].send_rtp(OPUS_PT, AUDIO_SSRC, 1, 960, false, &[1, 2, 3]);
    net.peers[alice].address = "127.0.0.1:7777".parse().unwrap();
    net.run();
    assert_eq!(
        net.engine.stats().dropped_unknown_source,
        dropped_before + 1
    );
    assert_eq!(net.engine.stats().packets_received, 0);
}

#[test]
fn a_replayed_srtp_packet_is_dropped() {
    let mut net = SimNetwork::new(4);
    let (alice, _) = connected(&mut net, "alice", 5000, true);
    net.peers[alice].send_rtp(OPUS_PT, AUDIO_SSRC, 1, 960, false, &[1, 2, 3]);
    let copy = net.peers[alice]
        .pending_datagrams()
        .back()
        .cloned()
        .unwrap();
    net.run();
    net.peers[alice].send_raw(copy);
    net.run();
    let stats = net.engine.stats();
    assert_eq!(stats.packets_received, 1);
    assert_eq!(stats.dropped_replay, 1);
}

#[test]
fn a_peer_silent_past_consent_freshness_is_disconnected() {
    let mut net = SimNetwork::new(5);
    let (_, peer) = connected(&mut net, "alice", 5000, true);
    net.advance(Duration::from_secs(29));
    assert!(net.engine.peer_stats(peer).unwrap().connected);
    net.advance(Duration::from_secs(2));
    assert!(!net.engine.peer_stats(peer).unwrap().connected);
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, Event::PeerDisconnected { peer: p, reason: "consent_expired" } if *p == peer)));
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, Event::TrackEnded { .. })));
}

#[test]
fn consent_checks_keep_a_peer_alive() {
    let mut net = SimNetwork::new(6);
    let (alice, peer) = connected(&mut net, "alice", 5000, true);
    for _ in 0..8 {
        net.advance(Duration::from_secs(5));
        net.peers[alice].send_connectivity_check(false);
        net.run();
    }
    assert!(net.engine.peer_stats(peer).unwrap().connected);
}

#[test]
fn garbage_on_the_port_never_panics_and_media_keeps_flowing() {
    let mut net = SimNetwork::new(7);
    let (alice, _) = connected(&mut net, "alice", 5000, true);
    let (bob, bob_peer) = connected(&mut net, "bob", 5001, false);
    let audio = net.published(sfu_core::MediaKind::Audio).unwrap();
    net.engine.subscribe(bob_peer, audio, net.now).unwrap();
    let mut state = 0x1234_5678_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let stranger = net.add_peer(SimPeer::new("stranger", 6666));
    for round in 0..2000u32 {
        let len = (next() % 300) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Steer some garbage into each demultiplexing branch.
        if let Some(first) = datagram.first_mut() {
            *first = match round % 4 {
                0 => *first & 0x03,
                1 => 20 + *first % 44,
                2 => 128 + *first % 64,
                _ => *first,
            };
        }
        if round % 2 == 0 {
            net.peers[alice].send_raw(datagram);
        } else {
            net.peers[stranger].send_raw(datagram.clone());
            net.peers[bob].send_raw(datagram);
        }
        net.run();
    }
    let before = net.peers[bob].received_rtp.len();
    for seq in 0..5u16 {
        net.peers[alice].send_rtp(
            OPUS_PT,
            AUDIO_SSRC,
            500 + seq,
            seq as u32 * 960,
            false,
            &[9, 9, 9],
        );
    }
    net.run();
    assert_eq!(net.peers[bob].received_rtp.len(), before + 5);
    let stats = net.engine.stats();
    assert!(
        stats.dropped_malformed + stats.dropped_srtp_auth + stats.stun_rejected > 1000,
        "{stats:?}"
    );
}
