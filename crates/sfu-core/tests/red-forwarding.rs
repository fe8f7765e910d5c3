//! RFC 2198 RED audio: a RED publisher's packets reach subscribers that negotiated RED unchanged
//! and the others as plain Opus (the primary block); malformed RED is dropped and counted; Opus
//! DTX silences are neither loss nor a stall.

use sfu_core::{rtcp, rtp, Input, MediaKind, Output, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

/// 20 ms of 48 kHz audio.
const FRAME_TICKS: u32 = 960;

struct Room {
    net: SimNetwork,
    alice: usize,
    audio: TrackId,
    /// Negotiated RED.
    bob: (usize, u32),
    /// Did not.
    carol: (usize, u32),
}

fn room(seed: u64) -> Room {
    let mut net = SimNetwork::new(seed);
    let (alice, _) = net.join("alice", 5000, |p| with_red(&p.publisher_offer()));
    let audio = net.published(MediaKind::Audio).expect("audio published");
    let (bob, bob_peer) = net.join("bob", 5001, |p| with_red(&p.subscriber_offer(1, 0)));
    let (carol, carol_peer) = net.join("carol", 5002, |p| p.subscriber_offer(1, 0));
    let mut subscribe = |peer: PeerId| {
        net.engine
            .subscribe(peer, audio, net.now)
            .expect("subscribed")
            .ssrc
    };
    let (bob_ssrc, carol_ssrc) = (subscribe(bob_peer), subscribe(carol_peer));
    Room {
        net,
        alice,
        audio,
        bob: (bob, bob_ssrc),
        carol: (carol, carol_ssrc),
    }
}

/// A RED payload: one redundant block (the previous frame, if any), then the primary.
fn red_payload(previous: Option<&[u8]>, primary: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(previous) = previous {
        let word = (FRAME_TICKS << 10) | previous.len() as u32;
        out.push(0x80 | OPUS_PT);
        out.extend_from_slice(&word.to_be_bytes()[1..]);
    }
    out.push(OPUS_PT);
    out.extend(previous.into_iter().flatten());
    out.extend_from_slice(primary);
    out
}

fn opus_frame(n: u16) -> Vec<u8> {
    // A TOC byte (CELT FB 20 ms) and a body that names the frame.
    let mut frame = vec![0xfc];
    frame.extend_from_slice(&n.to_be_bytes());
    frame.extend_from_slice(&[n as u8; 37]);
    frame
}

fn send_red(room: &mut Room, sequence: u16, timestamp: u32) {
    let primary = opus_frame(sequence);
    let previous = opus_frame(sequence.wrapping_sub(1));
    let payload = red_payload(Some(&previous), &primary);
    room.net.peers[room.alice].send_rtp(RED_PT, AUDIO_SSRC, sequence, timestamp, false, &payload);
    room.net.run();
}

fn answer_audio_pts(room: &Room, peer: usize) -> Vec<u8> {
    let answer = room.net.peers[peer].answer.as_ref().expect("answered");
    let audio = answer
        .media
        .iter()
        .find(|m| m.kind_name == "audio")
        .expect("an audio m-line");
    audio.codecs.iter().map(|c| c.payload_type).collect()
}

#[test]
fn the_publisher_answer_puts_red_before_opus_and_only_red_subscribers_get_it() {
    let room = room(1);
    assert_eq!(answer_audio_pts(&room, room.alice), [RED_PT, OPUS_PT]);
    assert_eq!(answer_audio_pts(&room, room.bob.0), [RED_PT, OPUS_PT]);
    assert_eq!(answer_audio_pts(&room, room.carol.0), [OPUS_PT]);
}

#[test]
fn red_goes_unchanged_to_red_subscribers_and_as_its_primary_to_the_others() {
    let mut room = room(2);
    for i in 0..10u16 {
        send_red(&mut room, 4000 + i, 100_000 + u32::from(i) * FRAME_TICKS);
    }
    let (bob, bob_ssrc) = room.bob;
    let (carol, carol_ssrc) = room.carol;
    let to_bob = &room.net.peers[bob].received_rtp;
    let to_carol = &room.net.peers[carol].received_rtp;
    assert_eq!(to_bob.len(), 10);
    assert_eq!(to_carol.len(), 10);
    for (i, (b, c)) in to_bob.iter().zip(to_carol).enumerate() {
        let n = 4000 + i as u16;
        assert_eq!((b.ssrc, b.payload_type), (bob_ssrc, RED_PT));
        assert_eq!(
            b.payload,
            red_payload(Some(&opus_frame(n - 1)), &opus_frame(n))
        );
        assert_eq!((c.ssrc, c.payload_type), (carol_ssrc, OPUS_PT));
        assert_eq!(c.payload, opus_frame(n), "the primary block alone");
    }
    for received in [to_bob, to_carol] {
        for pair in received.windows(2) {
            assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
            assert_eq!(
                pair[1].timestamp,
                pair[0].timestamp.wrapping_add(FRAME_TICKS)
            );
        }
    }
}

#[test]
fn plain_opus_from_a_red_publisher_reaches_everyone_as_opus() {
    let mut room = room(3);
    let frame = opus_frame(7);
    room.net.peers[room.alice].send_rtp(OPUS_PT, AUDIO_SSRC, 10, 960, false, &frame);
    room.net.run();
    for peer in [room.bob.0, room.carol.0] {
        let received = &room.net.peers[peer].received_rtp;
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].payload_type, OPUS_PT);
        assert_eq!(received[0].payload, frame);
    }
}

#[test]
fn malformed_red_is_dropped_for_everyone_and_counted() {
    let mut room = room(4);
    let before = room.net.engine.stats().dropped_malformed;
    let overrun = {
        let mut payload = red_payload(Some(&opus_frame(1)), &opus_frame(2));
        payload.truncate(10);
        payload
    };
    let unterminated = vec![0x80 | OPUS_PT, 0, 0];
    let wraps_video = red_payload(None, &[1, 2, 3])
        .into_iter()
        .enumerate()
        .map(|(i, b)| if i == 0 { VP8_PT } else { b })
        .collect::<Vec<u8>>();
    for (sequence, payload) in [(1u16, overrun), (2, unterminated), (3, wraps_video)] {
        room.net.peers[room.alice].send_rtp(RED_PT, AUDIO_SSRC, sequence, 0, false, &payload);
        room.net.run();
    }
    assert_eq!(room.net.engine.stats().dropped_malformed - before, 3);
    assert!(room.net.peers[room.bob.0].received_rtp.is_empty());
    assert!(room.net.peers[room.carol.0].received_rtp.is_empty());
    send_red(&mut room, 4, 4 * FRAME_TICKS);
    assert_eq!(
        room.net.peers[room.bob.0].received_rtp.len(),
        1,
        "later packets still flow"
    );
    assert_eq!(room.net.peers[room.carol.0].received_rtp.len(), 1);
}

#[test]
fn a_dtx_silence_is_neither_loss_nor_a_stall() {
    let mut room = room(5);
    let mut timestamp = 0u32;
    for i in 0..5u16 {
        send_red(&mut room, 100 + i, timestamp);
        timestamp += FRAME_TICKS;
        room.net.advance(Duration::from_millis(20));
    }
    room.net.peers[room.alice].received_rtcp.clear();
    // Opus DTX: no packets for 3 s, the sequence continues, the timestamp jumps with the clock.
    room.net.advance(Duration::from_secs(3));
    timestamp += 3 * 48_000;
    for i in 5..8u16 {
        send_red(&mut room, 100 + i, timestamp);
        timestamp += FRAME_TICKS;
        room.net.advance(Duration::from_millis(20));
    }
    for peer in [room.bob.0, room.carol.0] {
        let received = &room.net.peers[peer].received_rtp;
        assert_eq!(received.len(), 8, "nothing held back after the silence");
        for pair in received.windows(2) {
            assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        }
        assert_eq!(
            received[5].timestamp.wrapping_sub(received[4].timestamp),
            FRAME_TICKS + 3 * 48_000,
            "the silence keeps its length"
        );
    }
    let feedback_to_alice = room.net.peers[room.alice]
        .received_rtcp
        .iter()
        .flat_map(|c| rtcp::packets(c).filter_map(Result::ok).collect::<Vec<_>>())
        .filter(|p| matches!(p, rtcp::RtcpPacket::Nack(_) | rtcp::RtcpPacket::Pli { .. }))
        .count();
    assert_eq!(feedback_to_alice, 0, "no NACK or PLI for a silence");
}

#[test]
fn a_plain_rtp_forward_of_a_red_track_gets_the_primary_as_opus() {
    let mut room = room(6);
    let recorder = std::net::SocketAddr::from(([127, 0, 0, 1], 7000));
    let info = room
        .net
        .engine
        .add_rtp_forward(room.audio, recorder, room.net.now)
        .expect("forward added");
    assert_eq!((info.codec, info.payload_type), ("opus", OPUS_PT));
    let payload = red_payload(Some(&opus_frame(1)), &opus_frame(2));
    let alice = &mut room.net.peers[room.alice];
    alice.send_rtp(RED_PT, AUDIO_SSRC, 2, 1920, false, &payload);
    let datagram = alice.take_pending().expect("a datagram");
    let source = alice.address;
    room.net.engine.handle_input(Input::Datagram {
        at: room.net.now,
        source,
        data: &datagram,
    });
    let mut to_recorder = Vec::new();
    loop {
        match room.net.engine.poll_output() {
            Output::Transmit(t) if t.destination == recorder => to_recorder.push(t.contents),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(to_recorder.len(), 1);
    let header = rtp::parse_rtp(&to_recorder[0]).expect("plain RTP");
    assert_eq!(header.payload_type, OPUS_PT);
    assert_eq!(
        to_recorder[0][header.payload_start..header.payload_end],
        opus_frame(2)
    );
}
