//! A publisher's media reaches subscribers through the engine: rewritten into each subscriber's
//! own SSRC/sequence space, starting on a keyframe, with PLI, NACK/RTX and reports.

use sfu_core::{rtcp, Event, MediaKind, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

struct Room {
    net: SimNetwork,
    publisher: (usize, PeerId),
    video: TrackId,
    audio: TrackId,
}

fn connected_publisher(seed: u64) -> Room {
    let mut net = SimNetwork::new(seed);
    let publisher = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let audio = net.published(MediaKind::Audio).expect("audio published");
    Room {
        net,
        publisher,
        video,
        audio,
    }
}

fn add_subscriber(room: &mut Room, name: &str, port: u16) -> (usize, PeerId) {
    room.net.join(name, port, |p| p.subscriber_offer(1, 1))
}

fn send_video(room: &mut Room, sequence: u16, keyframe: bool) {
    let (p, _) = room.publisher;
    let payload = vp8_payload(keyframe, sequence as u8, 900);
    room.net.peers[p].send_rtp(
        VP8_PT,
        VIDEO_SSRC,
        sequence,
        sequence as u32 * 3000,
        true,
        &payload,
    );
    room.net.run();
}

#[test]
fn a_subscriber_receives_video_from_the_first_keyframe_in_its_own_ssrc_space() {
    let mut room = connected_publisher(1);
    let (bob, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    let subscription = room
        .net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .expect("subscribed");
    assert_eq!(subscription.mid, "v0");
    assert_eq!(
        room.net.peers[bob].announced_ssrc("v0"),
        Some(subscription.ssrc)
    );

    send_video(&mut room, 100, false);
    send_video(&mut room, 101, false);
    assert!(
        room.net.peers[bob].received_rtp.is_empty(),
        "nothing before a keyframe"
    );
    send_video(&mut room, 102, true);
    send_video(&mut room, 103, false);
    send_video(&mut room, 104, false);

    let received = &room.net.peers[bob].received_rtp;
    assert_eq!(received.len(), 3);
    assert!(received
        .iter()
        .all(|p| p.ssrc == subscription.ssrc && p.payload_type == VP8_PT));
    assert_eq!(received[0].payload, vp8_payload(true, 102, 900));
    for pair in received.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "no gaps"
        );
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(3000),
            "timestamps keep their spacing"
        );
    }
    assert_ne!(
        received[0].sequence, 102,
        "sequence space is the subscriber's own"
    );
}

#[test]
fn subscribing_asks_the_publisher_for_a_keyframe() {
    let mut room = connected_publisher(2);
    let (_, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    let (alice, _) = room.publisher;
    room.net.peers[alice].received_rtcp.clear();
    room.net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    room.net.run();
    let plis = room.net.peers[alice].plis_received(VIDEO_SSRC);
    assert_eq!(plis, 1);
    assert!(room
        .net
        .events
        .iter()
        .any(|e| matches!(e, Event::KeyframeRequested { track, .. } if *track == room.video)));
}

#[test]
fn audio_is_forwarded_to_every_subscriber() {
    let mut room = connected_publisher(3);
    let (bob, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    let (carol, carol_peer) = add_subscriber(&mut room, "carol", 5002);
    let bob_sub = room
        .net
        .engine
        .subscribe(bob_peer, room.audio, room.net.now)
        .unwrap();
    let carol_sub = room
        .net
        .engine
        .subscribe(carol_peer, room.audio, room.net.now)
        .unwrap();
    let (alice, _) = room.publisher;
    for seq in 0..10u16 {
        room.net.peers[alice].send_rtp(
            OPUS_PT,
            AUDIO_SSRC,
            seq,
            seq as u32 * 960,
            false,
            &[0xfc, seq as u8, 1, 2, 3],
        );
    }
    room.net.run();
    for (peer, sub) in [(bob, &bob_sub), (carol, &carol_sub)] {
        let received = &room.net.peers[peer].received_rtp;
        assert_eq!(received.len(), 10);
        assert!(received
            .iter()
            .all(|p| p.ssrc == sub.ssrc && p.payload_type == OPUS_PT));
    }
    assert_ne!(bob_sub.ssrc, carol_sub.ssrc);
}

#[test]
fn a_nack_is_answered_with_an_rtx_packet_from_the_cache() {
    let mut room = connected_publisher(4);
    let (bob, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    let sub = room
        .net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    for seq in 10..20u16 {
        send_video(&mut room, seq, seq == 10);
    }
    let lost = room.net.peers[bob].received_rtp[4].clone();
    let rtx_ssrc = {
        let answer = room.net.peers[bob].answer.as_ref().unwrap();
        let section = answer
            .media
            .iter()
            .find(|m| m.mid.as_deref() == Some("v0"))
            .unwrap();
        section
            .ssrc_groups
            .iter()
            .find(|g| g.semantics == "FID")
            .unwrap()
            .ssrcs[1]
    };
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 0xb0b, sub.ssrc, [lost.sequence].into_iter());
    room.net.peers[bob].send_rtcp(nack);
    room.net.run();
    let rtx = room.net.peers[bob].received_rtp.last().unwrap().clone();
    assert_eq!(rtx.ssrc, rtx_ssrc);
    assert_eq!(rtx.payload_type, VP8_RTX_PT);
    assert_eq!(
        &rtx.payload[..2],
        &lost.sequence.to_be_bytes(),
        "RFC 4588 original sequence number"
    );
    assert_eq!(&rtx.payload[2..], &lost.payload[..]);
    assert_eq!(rtx.timestamp, lost.timestamp);
    assert_eq!(
        room.net
            .engine
            .peer_stats(bob_peer)
            .unwrap()
            .retransmissions_sent,
        1
    );
}

#[test]
fn sender_reports_map_the_publishers_clock_into_the_subscribers_timeline() {
    let mut room = connected_publisher(5);
    let (bob, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    let sub = room
        .net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    send_video(&mut room, 1, true);
    let first = room.net.peers[bob].received_rtp[0].clone();
    let (alice, _) = room.publisher;
    let mut sr = Vec::new();
    // The publisher says: RTP time 3000 (packet 1's) was NTP time 0x0000_1000_0000_0000.
    rtcp::write_sender_report(
        &mut sr,
        VIDEO_SSRC,
        0x0000_1000_0000_0000,
        3000,
        1,
        900,
        &[],
    );
    room.net.peers[alice].send_rtcp(sr);
    room.net.run();
    room.net.peers[bob].received_rtcp.clear();
    room.net.advance(Duration::from_millis(1100));
    let reports: Vec<(u64, u32)> = room.net.peers[bob]
        .received_rtcp
        .iter()
        .flat_map(|c| rtcp::packets(c).filter_map(Result::ok).collect::<Vec<_>>())
        .filter_map(|p| match p {
            rtcp::RtcpPacket::SenderReport(r) if r.ssrc == sub.ssrc => {
                Some((r.ntp, r.rtp_timestamp))
            }
            _ => None,
        })
        .collect();
    let (ntp, rtp_time) = *reports
        .first()
        .expect("a sender report for the subscriber's stream");
    // Both clocks advanced by the same elapsed time from the publisher's pair.
    let elapsed_seconds = (ntp - 0x0000_1000_0000_0000) as f64 / 4_294_967_296.0;
    let expected_rtp = first.timestamp as f64 + elapsed_seconds * 90_000.0;
    assert!(
        (rtp_time as f64 - expected_rtp).abs() < 2.0,
        "rtp {rtp_time} vs {expected_rtp}"
    );
}

#[test]
fn closing_the_publisher_ends_its_tracks_and_frees_subscriptions() {
    let mut room = connected_publisher(6);
    let (_, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    room.net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    assert_eq!(room.net.engine.stats().subscriptions, 1);
    let (_, alice_peer) = room.publisher;
    room.net.engine.close_peer(alice_peer).unwrap();
    room.net.run();
    let stats = room.net.engine.stats();
    assert_eq!((stats.peers, stats.tracks, stats.subscriptions), (1, 0, 0));
    assert!(room
        .net
        .events
        .iter()
        .any(|e| matches!(e, Event::TrackEnded { track, .. } if *track == room.video)));
    assert_eq!(
        room.net.engine.peer_stats(bob_peer).unwrap().subscriptions,
        0
    );
    assert!(
        room.net.engine.close_peer(alice_peer).is_err(),
        "closing twice is an error, not a panic"
    );
}

#[test]
fn a_slot_freed_by_unsubscribe_carries_the_next_track() {
    let mut room = connected_publisher(7);
    let (_, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    let first = room
        .net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    let err = room
        .net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap_err();
    assert_eq!(err.code(), "already_subscribed");
    room.net.engine.unsubscribe(bob_peer, room.video).unwrap();
    let again = room
        .net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    assert_eq!(first.mid, again.mid);
}

fn plis_received(room: &Room) -> usize {
    let (alice, _) = room.publisher;
    room.net.peers[alice].plis_received(VIDEO_SSRC)
}

#[test]
fn keyframe_requests_repeat_until_a_keyframe_arrives_and_then_stop() {
    let mut room = connected_publisher(8);
    let (bob, bob_peer) = add_subscriber(&mut room, "bob", 5001);
    room.net
        .engine
        .subscribe(bob_peer, room.video, room.net.now)
        .unwrap();
    room.net.run();
    // The publisher ignores the first requests (as a browser does within 300 ms of another).
    room.net.advance(Duration::from_millis(1000));
    let asked = plis_received(&room);
    assert!(asked >= 3, "PLIs repeat while no keyframe comes: {asked}");
    send_video(&mut room, 1, true);
    let after_keyframe = plis_received(&room);
    room.net.advance(Duration::from_millis(2000));
    assert_eq!(
        plis_received(&room),
        after_keyframe,
        "no more requests once a keyframe came"
    );
    assert_eq!(room.net.peers[bob].received_rtp.len(), 1);
}
