//! An RTP forward tees a published track to a plain UDP address (a recorder): decrypted, in its
//! own SSRC and sequence space, video from a keyframe, until removed or the track ends.

use sfu_core::{rtp, Event, MediaKind, Output, PeerId, RtpForwardId, SfuError, TrackId};
use sfu_testkit::*;
use std::net::SocketAddr;
use std::time::Duration;

const RECORDER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    47000,
);

struct Publisher {
    net: SimNetwork,
    index: usize,
    peer: PeerId,
    video: TrackId,
    audio: TrackId,
}

fn publisher(seed: u64) -> Publisher {
    let mut net = SimNetwork::new(seed);
    let (index, peer) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let audio = net.published(MediaKind::Audio).expect("audio published");
    Publisher {
        net,
        index,
        peer,
        video,
        audio,
    }
}

/// Delivers what the publisher queued to the engine; returns the datagrams the engine sent to
/// the recorder, in order.
fn deliver(p: &mut Publisher) -> Vec<Vec<u8>> {
    let source = p.net.peers[p.index].address;
    let mut to_recorder = Vec::new();
    while let Some(datagram) = p.net.peers[p.index].take_pending() {
        p.net.engine.handle_input(sfu_core::Input::Datagram {
            at: p.net.now,
            source,
            data: &datagram,
        });
        loop {
            match p.net.engine.poll_output() {
                Output::Transmit(transmit) => {
                    if transmit.destination == RECORDER {
                        to_recorder.push(transmit.contents.clone());
                    }
                    p.net.engine.recycle(transmit.contents);
                }
                Output::Event(event) => p.net.events.push(event),
                Output::Timeout(_) => break,
            }
        }
    }
    to_recorder
}

fn send_video(p: &mut Publisher, sequence: u16, keyframe: bool) -> Vec<Vec<u8>> {
    let payload = vp8_payload(keyframe, sequence as u8, 900);
    p.net.peers[p.index].send_rtp(
        VP8_PT,
        VIDEO_SSRC,
        sequence,
        u32::from(sequence) * 3000,
        true,
        &payload,
    );
    deliver(p)
}

fn keyframe_requests(p: &Publisher, track: TrackId) -> usize {
    p.net
        .events
        .iter()
        .filter(|e| matches!(e, Event::KeyframeRequested { track: t, by: None } if *t == track))
        .count()
}

#[test]
fn a_video_forward_sends_plain_rtp_in_its_own_ssrc_from_the_first_keyframe() {
    let mut p = publisher(1);
    let info = p
        .net
        .engine
        .add_rtp_forward(p.video, RECORDER, p.net.now)
        .expect("forward added");
    p.net.run();
    assert_eq!(info.track, p.video);
    assert_eq!(info.kind, MediaKind::Video);
    assert_eq!(info.destination, RECORDER);
    assert_eq!(
        (info.codec, info.clock_rate, info.channels),
        ("VP8", 90_000, None)
    );
    assert_eq!(info.payload_type, VP8_PT);
    assert_ne!(info.ssrc, VIDEO_SSRC, "the forward has its own SSRC");
    assert_eq!(
        keyframe_requests(&p, p.video),
        1,
        "starting a video forward asks the publisher for a keyframe"
    );

    let mut received = Vec::new();
    received.extend(send_video(&mut p, 200, false));
    received.extend(send_video(&mut p, 201, false));
    assert!(received.is_empty(), "nothing before a keyframe");
    for (sequence, keyframe) in [(202, true), (203, false), (204, false), (205, false)] {
        received.extend(send_video(&mut p, sequence, keyframe));
    }

    assert_eq!(received.len(), 4);
    let headers: Vec<rtp::RtpHeader> = received
        .iter()
        .map(|d| rtp::parse_rtp(d).expect("plain RTP, no SRTP to remove"))
        .collect();
    for (datagram, (header, original)) in received.iter().zip(headers.iter().zip(202u16..)) {
        assert_eq!(header.ssrc, info.ssrc);
        assert_eq!(header.payload_type, VP8_PT);
        assert_eq!(
            &datagram[header.payload_start..header.payload_end],
            vp8_payload(original == 202, original as u8, 900).as_slice(),
            "the payload is the publisher's, decrypted"
        );
    }
    for pair in headers.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(3000));
    }
}

#[test]
fn an_audio_forward_starts_at_once_without_the_publishers_header_extensions() {
    let mut p = publisher(2);
    let info = p
        .net
        .engine
        .add_rtp_forward(p.audio, RECORDER, p.net.now)
        .expect("forward added");
    assert_eq!(
        (
            info.codec,
            info.clock_rate,
            info.channels,
            info.payload_type
        ),
        ("opus", 48_000, Some(2), OPUS_PT)
    );
    assert_eq!(keyframe_requests(&p, p.audio), 0);
    let mut received = Vec::new();
    for sequence in 10u16..20 {
        let level: &[u8] = &[0x20];
        p.net.peers[p.index].send_rtp_with_extensions(
            OPUS_PT,
            AUDIO_SSRC,
            sequence,
            u32::from(sequence) * 960,
            false,
            &[0xfc, sequence as u8, 0x55],
            &[(1, level)],
        );
        received.extend(deliver(&mut p));
    }
    assert_eq!(received.len(), 10);
    for (datagram, sequence) in received.iter().zip(10u16..) {
        let header = rtp::parse_rtp(datagram).expect("plain RTP");
        assert_eq!(header.ssrc, info.ssrc);
        assert_eq!(header.payload_start, 12, "a bare 12-byte header");
        assert_eq!(datagram[0] & 0x10, 0, "no extension bit");
        assert_eq!(&datagram[12..], &[0xfc, sequence as u8, 0x55]);
    }
}

#[test]
fn two_forwards_of_one_track_have_their_own_ssrcs_and_removing_one_stops_only_it() {
    let mut p = publisher(3);
    let first = p
        .net
        .engine
        .add_rtp_forward(p.video, RECORDER, p.net.now)
        .unwrap();
    let second = p
        .net
        .engine
        .add_rtp_forward(p.video, RECORDER, p.net.now)
        .unwrap();
    assert_ne!(first.id, second.id);
    assert_ne!(first.ssrc, second.ssrc);
    let received = send_video(&mut p, 1, true);
    assert_eq!(received.len(), 2, "one copy per forward");

    assert!(p.net.engine.remove_rtp_forward(first.id));
    let received = send_video(&mut p, 2, false);
    assert_eq!(received.len(), 1);
    assert_eq!(rtp::parse_rtp(&received[0]).unwrap().ssrc, second.ssrc);

    assert!(p.net.engine.remove_rtp_forward(second.id));
    assert!(
        send_video(&mut p, 3, false).is_empty(),
        "removed forwards send nothing"
    );
    assert!(
        !p.net.engine.remove_rtp_forward(second.id),
        "removing twice is no error, only false"
    );
    assert!(!p.net.engine.remove_rtp_forward(RtpForwardId(999)));
}

#[test]
fn forwarding_an_unknown_track_is_track_not_found() {
    let mut p = publisher(4);
    let error = p
        .net
        .engine
        .add_rtp_forward(TrackId(77), RECORDER, p.net.now)
        .unwrap_err();
    assert_eq!(error, SfuError::UnknownTrack(TrackId(77)));
    assert_eq!(error.code(), "track_not_found");
}

#[test]
fn a_forward_ends_with_its_track() {
    let mut p = publisher(5);
    let info = p
        .net
        .engine
        .add_rtp_forward(p.audio, RECORDER, p.net.now)
        .unwrap();
    p.net.engine.close_peer(p.peer).unwrap();
    p.net.run(); // delivers the events; no time passes, so no housekeeping ran
    assert!(p
        .net
        .events
        .iter()
        .any(|e| matches!(e, Event::TrackEnded { track, .. } if *track == p.audio)));
    assert!(
        !p.net.engine.remove_rtp_forward(info.id),
        "the forward went with the track"
    );
    let other = p.net.engine.add_rtp_forward(p.video, RECORDER, p.net.now);
    assert_eq!(other, Err(SfuError::UnknownTrack(p.video)));
}

#[test]
fn a_video_forward_asks_for_a_keyframe_again_when_none_came_for_ten_seconds() {
    let mut p = publisher(6);
    p.net
        .engine
        .add_rtp_forward(p.video, RECORDER, p.net.now)
        .unwrap();
    assert_eq!(send_video(&mut p, 1, true).len(), 1);
    let after_start = keyframe_requests(&p, p.video);
    // Delta frames only, at 10 fps, for 9 s: no refresh yet.
    for i in 0..90u16 {
        p.net.advance(Duration::from_millis(100));
        send_video(&mut p, 2 + i, false);
    }
    assert_eq!(keyframe_requests(&p, p.video), after_start);
    for i in 0..20u16 {
        p.net.advance(Duration::from_millis(100));
        send_video(&mut p, 92 + i, false);
    }
    assert!(
        keyframe_requests(&p, p.video) > after_start,
        "a refresh was requested after 10 s without a keyframe"
    );
}

const MID_EXT: u8 = 4;
const RID_EXT: u8 = 10;
/// RID, SSRC, picture size and payload length of each simulcast layer, lowest first.
const LAYERS: [(&str, u32, (u16, u16), usize); 3] = [
    ("q", 0xa1, (320, 180), 200),
    ("h", 0xa2, (640, 360), 210),
    ("f", 0xa3, (1280, 720), 220),
];

/// One packet on each layer in `sending`, keyframes where `keyframe`; returns what reached the
/// recorder.
fn simulcast_frame(
    p: &mut Publisher,
    frame: u16,
    sending: [bool; 3],
    keyframe: bool,
) -> Vec<Vec<u8>> {
    for (i, (rid, ssrc, size, len)) in LAYERS.iter().enumerate() {
        if !sending[i] {
            continue;
        }
        let payload = vp8_payload_with_ids(keyframe, frame, frame as u8, *size, *len);
        let extensions: [(u8, &[u8]); 2] = [(MID_EXT, b"0"), (RID_EXT, rid.as_bytes())];
        p.net.peers[p.index].send_rtp_with_extensions(
            VP8_PT,
            *ssrc,
            frame,
            u32::from(frame) * 3000,
            true,
            &payload,
            &extensions,
        );
    }
    deliver(p)
}

#[test]
fn a_simulcast_forward_sends_the_best_sending_layer_and_falls_back_when_it_stops() {
    let mut net = SimNetwork::new(7);
    let (index, peer) = net.join("alice", 5000, SimPeer::simulcast_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let mut p = Publisher {
        net,
        index,
        peer,
        video,
        audio: video,
    };
    simulcast_frame(&mut p, 1, [true; 3], true);
    p.net.advance(Duration::from_millis(40));
    p.net
        .engine
        .add_rtp_forward(p.video, RECORDER, p.net.now)
        .unwrap();

    let mut received = simulcast_frame(&mut p, 2, [true; 3], true);
    for frame in 3..10 {
        p.net.advance(Duration::from_millis(40));
        received.extend(simulcast_frame(&mut p, frame, [true; 3], false));
    }
    assert_eq!(received.len(), 8, "one layer of eight frames");
    let full = 12 + LAYERS[2].3;
    assert!(
        received.iter().all(|d| d.len() == full),
        "all from the full layer"
    );

    // The full layer stops (the publisher's uplink shrank): the forward goes to the half layer
    // at its next keyframe, which it asks for.
    let requests = keyframe_requests(&p, p.video);
    for frame in 10..50 {
        p.net.advance(Duration::from_millis(40));
        received.extend(simulcast_frame(&mut p, frame, [true, true, false], false));
    }
    assert!(keyframe_requests(&p, p.video) > requests);
    received.extend(simulcast_frame(&mut p, 50, [true, true, false], true));
    received.extend(simulcast_frame(&mut p, 51, [true, true, false], false));
    let half = 12 + LAYERS[1].3;
    let switched: Vec<&Vec<u8>> = received.iter().filter(|d| d.len() == half).collect();
    assert_eq!(switched.len(), 2, "the half layer from its keyframe on");
    let sequences: Vec<u16> = received
        .iter()
        .map(|d| rtp::parse_rtp(d).unwrap().sequence)
        .collect();
    for pair in sequences.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1), "no gap across the switch");
    }
}
