//! Adaptive media: a subscriber's downlink goes to its subscriptions by priority, and simulcast
//! layers nobody needs are announced as pausable (dynacast) and resumed on demand.

use sfu_core::{rtcp, Event, MediaKind, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

const MID_EXT: u8 = 4;
const RID_EXT: u8 = 10;
/// Per layer: RID, SSRC, picture size, packets per frame, payload bytes per packet. At 30 fps
/// that is about 70 kbit/s, 380 kbit/s and 1 Mbit/s.
type LayerSpec = (&'static str, u32, (u16, u16), u16, usize);
const LAYERS: [LayerSpec; 3] = [
    ("q", 0xa1, (320, 180), 1, 300),
    ("h", 0xa2, (640, 360), 2, 800),
    ("f", 0xa3, (1280, 720), 4, 1100),
];

/// A simulcast publisher of the simulation and the state of its three encoders.
struct Publisher {
    index: usize,
    track: TrackId,
    sequences: [u16; 3],
    frame: u32,
    /// Which encodings send (what `setParameters` would switch in a browser).
    active: [bool; 3],
    /// The next frame of each encoding is a keyframe.
    keyframe: [bool; 3],
    /// RTCP packets from the engine already looked at for keyframe requests.
    rtcp_seen: usize,
}

fn publish(net: &mut SimNetwork, name: &str, port: u16) -> Publisher {
    let before = net.events.len();
    let (index, _) = net.join(name, port, SimPeer::simulcast_offer);
    let track = net.events[before..]
        .iter()
        .find_map(|e| match e {
            Event::TrackPublished {
                track,
                kind: MediaKind::Video,
                ..
            } => Some(*track),
            _ => None,
        })
        .expect("the simulcast track is published");
    Publisher {
        index,
        track,
        sequences: [0; 3],
        frame: 0,
        active: [true; 3],
        keyframe: [true; 3],
        rtcp_seen: 0,
    }
}

impl Publisher {
    /// One frame on every active encoding; the payload's length tells its layer.
    fn send_frame(&mut self, net: &mut SimNetwork) {
        self.frame += 1;
        for (i, (rid, ssrc, size, packets, bytes)) in LAYERS.iter().enumerate() {
            if !self.active[i] {
                continue;
            }
            let keyframe = std::mem::take(&mut self.keyframe[i]);
            for p in 0..*packets {
                let mut payload = vp8_payload_with_ids(
                    keyframe && p == 0,
                    self.frame as u16,
                    self.frame as u8,
                    *size,
                    *bytes,
                );
                if p > 0 {
                    // Continuation packets: not the start of a partition.
                    payload[0] &= !0x10;
                }
                let extensions: [(u8, &[u8]); 2] = [(MID_EXT, b"0"), (RID_EXT, rid.as_bytes())];
                self.sequences[i] = self.sequences[i].wrapping_add(1);
                net.peers[self.index].send_rtp_with_extensions(
                    VP8_PT,
                    *ssrc,
                    self.sequences[i],
                    self.frame * 3000,
                    p + 1 == *packets,
                    &payload,
                    &extensions,
                );
            }
        }
    }

    /// Applies what the engine told about this track (as the publisher's client would) and
    /// answers its keyframe requests (as an encoder does).
    fn obey(&mut self, net: &SimNetwork, seen_events: usize) {
        let received = &net.peers[self.index].received_rtcp;
        for compound in &received[self.rtcp_seen..] {
            for packet in rtcp::packets(compound).flatten() {
                if let rtcp::RtcpPacket::Pli { media_ssrc, .. } = packet {
                    if let Some(i) = LAYERS.iter().position(|l| l.1 == media_ssrc) {
                        self.keyframe[i] = true;
                    }
                }
            }
        }
        self.rtcp_seen = received.len();
        for event in &net.events[seen_events..] {
            if let Event::LayersNeeded { track, active, .. } = event {
                if *track == self.track {
                    for (i, &on) in active.iter().enumerate().take(3) {
                        if on && !self.active[i] {
                            self.keyframe[i] = true;
                        }
                        self.active[i] = on;
                    }
                }
            }
        }
    }
}

fn layer_of_payload(payload: &[u8]) -> Option<usize> {
    LAYERS.iter().position(|l| l.4 == payload.len())
}

/// The layer the latest packets on `ssrc` came from (`None` if nothing arrived lately).
fn latest_layer(net: &SimNetwork, peer: usize, ssrc: u32, since: usize) -> Option<usize> {
    net.peers[peer].received_rtp[since..]
        .iter()
        .rev()
        .find(|p| p.ssrc == ssrc)
        .and_then(|p| layer_of_payload(&p.payload))
}

/// Runs `frames` frames at 30 fps of every publisher; the subscriber `remb` caps its downlink
/// estimate at that many bits per second (re-sent each second, as browsers do).
fn run_frames(
    net: &mut SimNetwork,
    publishers: &mut [&mut Publisher],
    frames: usize,
    remb: Option<(usize, u64)>,
) {
    for n in 0..frames {
        let seen = net.events.len();
        for publisher in publishers.iter_mut() {
            publisher.send_frame(net);
        }
        if let (Some((subscriber, bps)), 0) = (remb, n % 30) {
            let mut packet = Vec::new();
            rtcp::write_remb(&mut packet, 0x5151, bps, &[]);
            net.peers[subscriber].send_rtcp(packet);
        }
        net.run();
        net.advance(Duration::from_millis(33));
        for publisher in publishers.iter_mut() {
            publisher.obey(net, seen);
        }
    }
}

struct Viewer {
    index: usize,
    peer: PeerId,
}

fn viewer(net: &mut SimNetwork, videos: usize) -> Viewer {
    let (index, peer) = net.join("bob", 5100, |p| p.subscriber_offer(0, videos));
    Viewer { index, peer }
}

#[test]
fn with_room_for_one_high_layer_the_priority_subscription_gets_it_and_the_other_the_low_one() {
    let mut net = SimNetwork::new(51);
    let mut camera = publish(&mut net, "alice", 5000);
    let mut screen = publish(&mut net, "carol", 5001);
    let bob = viewer(&mut net, 2);
    let camera_ssrc = net
        .engine
        .subscribe(bob.peer, camera.track, net.now)
        .unwrap()
        .ssrc;
    let screen_ssrc = net
        .engine
        .subscribe(bob.peer, screen.track, net.now)
        .unwrap()
        .ssrc;
    net.engine
        .set_priority(bob.peer, screen.track, 3, net.now)
        .unwrap();
    // Room for f (~0.9 Mbit/s) plus q (~70 kbit/s), not for f plus h (~0.33 Mbit/s).
    let remb = Some((bob.index, 1_300_000));
    run_frames(&mut net, &mut [&mut camera, &mut screen], 90, remb);
    let since = net.peers[bob.index].received_rtp.len();
    run_frames(&mut net, &mut [&mut camera, &mut screen], 30, remb);
    assert_eq!(latest_layer(&net, bob.index, screen_ssrc, since), Some(2));
    assert_eq!(latest_layer(&net, bob.index, camera_ssrc, since), Some(0));

    // The camera's speaker takes the floor: the priorities swap, and so do the layers.
    net.engine
        .set_priority(bob.peer, screen.track, 1, net.now)
        .unwrap();
    net.engine
        .set_priority(bob.peer, camera.track, 3, net.now)
        .unwrap();
    run_frames(&mut net, &mut [&mut camera, &mut screen], 60, remb);
    let since = net.peers[bob.index].received_rtp.len();
    run_frames(&mut net, &mut [&mut camera, &mut screen], 30, remb);
    assert_eq!(latest_layer(&net, bob.index, camera_ssrc, since), Some(2));
    assert_eq!(latest_layer(&net, bob.index, screen_ssrc, since), Some(0));
}

#[test]
fn the_lowest_priority_pauses_when_nothing_is_left_and_resumes_at_a_keyframe() {
    let mut net = SimNetwork::new(52);
    let mut camera = publish(&mut net, "alice", 5000);
    let mut screen = publish(&mut net, "carol", 5001);
    let bob = viewer(&mut net, 2);
    let camera_ssrc = net
        .engine
        .subscribe(bob.peer, camera.track, net.now)
        .unwrap()
        .ssrc;
    net.engine
        .subscribe(bob.peer, screen.track, net.now)
        .unwrap();
    net.engine
        .set_priority(bob.peer, screen.track, 3, net.now)
        .unwrap();
    net.engine
        .set_layer_preference(bob.peer, screen.track, Some(1), None, net.now)
        .unwrap();
    let roomy = Some((bob.index, 3_000_000));
    run_frames(&mut net, &mut [&mut camera, &mut screen], 60, roomy);
    // The estimate falls to about the screen share's h layer (~0.33 Mbit/s) and no more.
    let tight = Some((bob.index, 400_000));
    run_frames(&mut net, &mut [&mut camera, &mut screen], 60, tight);
    let since = net.peers[bob.index].received_rtp.len();
    run_frames(&mut net, &mut [&mut camera, &mut screen], 30, tight);
    assert!(
        !net.peers[bob.index].received_rtp[since..]
            .iter()
            .any(|p| p.ssrc == camera_ssrc),
        "the camera is paused"
    );

    run_frames(&mut net, &mut [&mut camera, &mut screen], 30, roomy);
    let since = net.peers[bob.index].received_rtp.len();
    for publisher in [&mut camera, &mut screen] {
        publisher.keyframe = [true; 3];
    }
    run_frames(&mut net, &mut [&mut camera, &mut screen], 60, roomy);
    let resumed: Vec<&ReceivedRtp> = net.peers[bob.index].received_rtp[since..]
        .iter()
        .filter(|p| p.ssrc == camera_ssrc)
        .collect();
    assert!(!resumed.is_empty(), "the camera resumed");
    assert!(sfu_core::rtp::vp8_is_keyframe(&resumed[0].payload));
    for pair in resumed.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }
}

#[test]
fn layers_nobody_watches_are_paused_and_a_new_need_resumes_them() {
    let mut net = SimNetwork::new(53);
    let mut camera = publish(&mut net, "alice", 5000);
    let bob = viewer(&mut net, 1);
    let ssrc = net
        .engine
        .subscribe(bob.peer, camera.track, net.now)
        .unwrap()
        .ssrc;
    // Bob's tile is small: q (180 lines) is all it needs.
    net.engine
        .set_layer_preference(bob.peer, camera.track, None, Some(200), net.now)
        .unwrap();
    let roomy = Some((bob.index, 3_000_000));
    run_frames(&mut net, &mut [&mut camera], 30 * 6, roomy);
    let paused: Vec<&Vec<bool>> = net
        .events
        .iter()
        .filter_map(|e| match e {
            Event::LayersNeeded { track, active, .. } if *track == camera.track => Some(active),
            _ => None,
        })
        .collect();
    assert_eq!(paused, [&vec![true, false, false]], "told once");
    assert_eq!(camera.active, [true, false, false]);

    // Bob maximises the tile: f is needed at once (and h, below it), and forwarded once it
    // sends again.
    let seen = net.events.len();
    net.engine
        .set_layer_preference(bob.peer, camera.track, None, None, net.now)
        .unwrap();
    net.run();
    assert!(net.events[seen..].iter().any(|e| matches!(
        e,
        Event::LayersNeeded { active, .. } if active == &vec![true, true, true]
    )));
    camera.obey(&net, seen);
    let since = net.peers[bob.index].received_rtp.len();
    run_frames(&mut net, &mut [&mut camera], 45, roomy);
    assert_eq!(latest_layer(&net, bob.index, ssrc, since), Some(2));
}

#[test]
fn a_track_nobody_subscribes_to_keeps_every_layer_and_pauses_once_its_last_subscriber_left() {
    let mut net = SimNetwork::new(54);
    let mut camera = publish(&mut net, "alice", 5000);
    run_frames(&mut net, &mut [&mut camera], 30 * 6, None);
    assert_eq!(camera.active, [true, true, true]);

    let bob = viewer(&mut net, 1);
    net.engine
        .subscribe(bob.peer, camera.track, net.now)
        .unwrap();
    net.engine
        .set_layer_preference(bob.peer, camera.track, Some(0), None, net.now)
        .unwrap();
    run_frames(&mut net, &mut [&mut camera], 30 * 3, None);
    assert_eq!(camera.active, [true, false, false]);
    net.engine.unsubscribe(bob.peer, camera.track).unwrap();
    run_frames(&mut net, &mut [&mut camera], 30, None);
    assert_eq!(
        camera.active,
        [true, true, true],
        "resumed for whoever comes next"
    );
}

#[test]
fn layers_below_the_best_needed_one_keep_sending() {
    let mut net = SimNetwork::new(55);
    let mut camera = publish(&mut net, "alice", 5000);
    let small = viewer(&mut net, 1);
    let (_, large) = net.join("carol", 5101, |p| p.subscriber_offer(0, 1));
    for peer in [small.peer, large] {
        net.engine.subscribe(peer, camera.track, net.now).unwrap();
    }
    net.engine
        .set_layer_preference(small.peer, camera.track, Some(0), None, net.now)
        .unwrap();
    let carol = net.peers.len() - 1;
    for _ in 0..3 {
        // Carol's downlink has room for f.
        let mut remb = Vec::new();
        rtcp::write_remb(&mut remb, 0x5152, 3_000_000, &[]);
        net.peers[carol].send_rtcp(remb);
        run_frames(
            &mut net,
            &mut [&mut camera],
            60,
            Some((small.index, 3_000_000)),
        );
    }
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::LayersNeeded { .. })),
        "q and f are needed, and h between them stays on"
    );
    assert_eq!(camera.active, [true, true, true]);
}
