//! Breakout rooms as engine partitions: media, keyframe requests and reports stay inside a
//! partition; coming back resumes on a keyframe with the subscriber's stream continuous, and no
//! subscription or m-line changes on the way.

use sfu_core::{rtcp, Event, MediaKind, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

/// Video frames are stamped 3000 ticks of 90 kHz apart and sent every `FRAME_INTERVAL`.
const FRAME_TICKS: u32 = 3000;
const FRAME_INTERVAL: Duration = Duration::from_millis(30);

struct Room {
    net: SimNetwork,
    alice: (usize, PeerId),
    bob: (usize, PeerId),
    carol: (usize, PeerId),
    video: TrackId,
    /// The publisher's next sequence numbers (video, audio).
    next_video: u16,
    next_audio: u16,
}

/// Alice publishes audio and video; Bob and Carol receive both.
fn meeting(seed: u64) -> Room {
    let mut net = SimNetwork::new(seed);
    let alice = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let audio = net.published(MediaKind::Audio).expect("audio published");
    let bob = net.join("bob", 5001, |p| p.subscriber_offer(1, 1));
    let carol = net.join("carol", 5002, |p| p.subscriber_offer(1, 1));
    for (_, peer) in [bob, carol] {
        for track in [video, audio] {
            net.engine
                .subscribe(peer, track, net.now)
                .expect("subscribed");
        }
    }
    let mut room = Room {
        net,
        alice,
        bob,
        carol,
        video,
        next_video: 1000,
        next_audio: 500,
    };
    send_frame(&mut room, true);
    room
}

/// One video frame (one packet) and one audio packet from Alice, `FRAME_INTERVAL` after the
/// previous.
fn send_frame(room: &mut Room, keyframe: bool) {
    room.net.advance(FRAME_INTERVAL);
    let (alice, _) = room.alice;
    let video_seq = room.next_video;
    let audio_seq = room.next_audio;
    room.next_video = video_seq.wrapping_add(1);
    room.next_audio = audio_seq.wrapping_add(1);
    let payload = vp8_payload(keyframe, video_seq as u8, 900);
    room.net.peers[alice].send_rtp(
        VP8_PT,
        VIDEO_SSRC,
        video_seq,
        u32::from(video_seq) * FRAME_TICKS,
        true,
        &payload,
    );
    room.net.peers[alice].send_rtp(
        OPUS_PT,
        AUDIO_SSRC,
        audio_seq,
        u32::from(audio_seq) * 960,
        false,
        &[0xfc, audio_seq as u8, 1, 2, 3],
    );
    room.net.run();
}

fn frames(room: &mut Room, count: usize) {
    for _ in 0..count {
        send_frame(room, false);
    }
}

fn received(room: &Room, who: (usize, PeerId), kind: u8) -> Vec<ReceivedRtp> {
    room.net.peers[who.0]
        .received_rtp
        .iter()
        .filter(|p| p.payload_type == kind)
        .cloned()
        .collect()
}

fn count(room: &Room, who: (usize, PeerId), kind: u8) -> usize {
    received(room, who, kind).len()
}

fn plis_to_alice(room: &Room) -> usize {
    room.net.peers[room.alice.0].plis_received(VIDEO_SSRC)
}

#[test]
fn packets_do_not_cross_partitions() {
    let mut room = meeting(1);
    frames(&mut room, 3);
    assert_eq!(count(&room, room.bob, VP8_PT), 4);
    assert_eq!(count(&room, room.bob, OPUS_PT), 4);

    room.net
        .engine
        .set_partition(room.bob.1, 1, room.net.now)
        .unwrap();
    let (bob_video, bob_audio) = (
        count(&room, room.bob, VP8_PT),
        count(&room, room.bob, OPUS_PT),
    );
    let (carol_video, carol_audio) = (
        count(&room, room.carol, VP8_PT),
        count(&room, room.carol, OPUS_PT),
    );
    send_frame(&mut room, true);
    frames(&mut room, 10);

    assert_eq!(
        count(&room, room.bob, VP8_PT),
        bob_video,
        "no video for Bob"
    );
    assert_eq!(
        count(&room, room.bob, OPUS_PT),
        bob_audio,
        "no audio for Bob"
    );
    assert_eq!(count(&room, room.carol, VP8_PT), carol_video + 11);
    assert_eq!(count(&room, room.carol, OPUS_PT), carol_audio + 11);
    let bob_stats = room.net.engine.peer_stats(room.bob.1).unwrap();
    assert_eq!(
        bob_stats.subscriptions, 2,
        "subscriptions stay as they are: nothing to renegotiate"
    );
}

#[test]
fn keyframe_requests_and_nacks_from_another_partition_are_not_relayed() {
    let mut room = meeting(2);
    frames(&mut room, 3);
    room.net
        .engine
        .set_partition(room.bob.1, 7, room.net.now)
        .unwrap();
    room.net.advance(Duration::from_millis(500));
    let plis_before = plis_to_alice(&room);
    let bob_video_ssrc = room.net.peers[room.bob.0].announced_ssrc("v0").unwrap();
    let mut pli = Vec::new();
    rtcp::write_pli(&mut pli, 0xb0b, bob_video_ssrc);
    room.net.peers[room.bob.0].send_rtcp(pli);
    let last = received(&room, room.bob, VP8_PT).last().unwrap().sequence;
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 0xb0b, bob_video_ssrc, [last].into_iter());
    room.net.peers[room.bob.0].send_rtcp(nack);
    room.net.run();
    room.net.peers[room.bob.0].received_rtcp.clear();
    room.net.advance(Duration::from_millis(1500));

    assert_eq!(
        plis_to_alice(&room),
        plis_before,
        "Bob's PLI stays in his partition"
    );
    assert_eq!(
        room.net
            .engine
            .peer_stats(room.bob.1)
            .unwrap()
            .retransmissions_sent,
        0,
        "no retransmission of another partition's media"
    );
    let reports_for_bob_video = room.net.peers[room.bob.0]
        .received_rtcp
        .iter()
        .flat_map(|c| rtcp::packets(c).filter_map(Result::ok).collect::<Vec<_>>())
        .filter(|p| matches!(p, rtcp::RtcpPacket::SenderReport(r) if r.ssrc == bob_video_ssrc))
        .count();
    assert_eq!(
        reports_for_bob_video, 0,
        "no sender report for a silent slot"
    );
}

#[test]
fn back_in_one_partition_media_resumes_on_a_keyframe_with_continuous_sequence_numbers() {
    let mut room = meeting(3);
    frames(&mut room, 3);
    let before_video = received(&room, room.bob, VP8_PT).last().unwrap().clone();
    let before_audio = received(&room, room.bob, OPUS_PT).last().unwrap().clone();

    room.net
        .engine
        .set_partition(room.bob.1, 1, room.net.now)
        .unwrap();
    frames(&mut room, 60);
    let plis_apart = plis_to_alice(&room);
    let keyframe_events = room.net.events.len();

    room.net
        .engine
        .set_partition(room.bob.1, 0, room.net.now)
        .unwrap();
    room.net.run();
    assert!(
        plis_to_alice(&room) > plis_apart,
        "coming back asks the publisher for a keyframe"
    );
    assert!(room.net.events[keyframe_events..].iter().any(|e| matches!(
        e,
        Event::KeyframeRequested { track, by: Some(by) } if *track == room.video && *by == room.bob.1
    )));

    send_frame(&mut room, false);
    assert_eq!(
        received(&room, room.bob, VP8_PT).len(),
        4,
        "video waits for a keyframe"
    );
    let audio_after = received(&room, room.bob, OPUS_PT);
    assert_eq!(audio_after.len(), 5, "audio resumes at once");
    send_frame(&mut room, true);
    frames(&mut room, 2);

    let video = received(&room, room.bob, VP8_PT);
    assert_eq!(video.len(), 7);
    let resumed = &video[4];
    assert_eq!(
        resumed.payload[1] & 0x01,
        0,
        "the first packet back is a keyframe"
    );
    assert_eq!(
        resumed.sequence,
        before_video.sequence.wrapping_add(1),
        "no sequence jump across the breakout"
    );
    // 62 frame intervals passed between the last frame before and the keyframe after.
    let paused_ticks = 62 * FRAME_INTERVAL.as_millis() as u32 * 90;
    let gap = resumed.timestamp.wrapping_sub(before_video.timestamp);
    assert!(
        gap.abs_diff(paused_ticks) <= FRAME_TICKS,
        "timestamps advance by the pause ({paused_ticks} ticks): {gap}"
    );
    for pair in video[4..].windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(FRAME_TICKS)
        );
    }
    let audio_back = &audio_after[4];
    assert_eq!(audio_back.sequence, before_audio.sequence.wrapping_add(1));
    assert!(audio_back.timestamp.wrapping_sub(before_audio.timestamp) as i32 > 0);
}

#[test]
fn moving_the_publisher_switches_who_hears_it() {
    let mut room = meeting(4);
    room.net
        .engine
        .set_partition(room.bob.1, 2, room.net.now)
        .unwrap();
    frames(&mut room, 2);
    let bob_audio = count(&room, room.bob, OPUS_PT);
    let carol_audio = count(&room, room.carol, OPUS_PT);

    room.net
        .engine
        .set_partition(room.alice.1, 2, room.net.now)
        .unwrap();
    frames(&mut room, 5);
    assert_eq!(count(&room, room.bob, OPUS_PT), bob_audio + 5);
    assert_eq!(count(&room, room.carol, OPUS_PT), carol_audio);
    assert_eq!(room.net.engine.partition_of(room.alice.1), Some(2));
}

#[test]
fn a_subscription_made_across_partitions_stays_silent_and_asks_for_nothing() {
    let mut net = SimNetwork::new(5);
    let alice = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let dave = net.join("dave", 5003, |p| p.subscriber_offer(0, 1));
    net.engine.set_partition(dave.1, 3, net.now).unwrap();
    net.engine.subscribe(dave.1, video, net.now).unwrap();
    net.run();
    assert!(!net
        .events
        .iter()
        .any(|e| matches!(e, Event::KeyframeRequested { by: Some(by), .. } if *by == dave.1)));
    net.peers[alice.0].send_rtp(VP8_PT, VIDEO_SSRC, 1, 0, true, &vp8_payload(true, 1, 900));
    net.run();
    assert!(net.peers[dave.0].received_rtp.is_empty());
}

#[test]
fn partitioning_an_unknown_peer_is_an_error() {
    let mut net = SimNetwork::new(6);
    let err = net
        .engine
        .set_partition(PeerId(4242), 1, net.now)
        .unwrap_err();
    assert_eq!(err.code(), "peer_not_found");
}
