//! A publisher adds and removes a track by renegotiating (a screen share): a new sending m-line
//! publishes a track, the same m-line stopped (port 0) or no longer sending ends it, and a later
//! transceiver may reuse the rejected m-line under a new mid.

use sfu_core::{Event, PeerId, TrackId};
use sfu_testkit::*;

const SCREEN_SSRC: u32 = 0x3333_0001;
const SCREEN_RTX_SSRC: u32 = 0x3333_0002;
const SECOND_SCREEN_SSRC: u32 = 0x4444_0001;
const SECOND_SCREEN_RTX_SSRC: u32 = 0x4444_0002;

/// How the screen m-line (the third) appears in the publisher's offer.
enum Screen {
    Sending {
        mid: &'static str,
        ssrc: u32,
        rtx: u32,
    },
    /// `transceiver.stop()`: port 0, inactive, out of the BUNDLE group (as Chromium writes it).
    Stopped { mid: &'static str },
    /// `direction = 'inactive'` on a live transceiver.
    Inactive {
        mid: &'static str,
        ssrc: u32,
        rtx: u32,
    },
}

/// The publisher's microphone and camera offer plus a third, video m-line for the screen.
fn offer_with_screen(peer: &SimPeer, screen: Screen) -> String {
    let base = peer.publisher_offer();
    let camera_at = base.find("m=video").expect("camera m-line");
    let camera = &base[camera_at..];
    let section = |mid: &str, ssrc: u32, rtx: u32| {
        camera
            .replace("a=mid:1\r\n", &format!("a=mid:{mid}\r\n"))
            .replace(&VIDEO_SSRC.to_string(), &ssrc.to_string())
            .replace(&VIDEO_RTX_SSRC.to_string(), &rtx.to_string())
            .replace("sim-video", "sim-screen")
    };
    let (bundled, text) = match screen {
        Screen::Sending { mid, ssrc, rtx } => (Some(mid), section(mid, ssrc, rtx)),
        Screen::Inactive { mid, ssrc, rtx } => (
            Some(mid),
            section(mid, ssrc, rtx).replace("a=sendonly\r\n", "a=inactive\r\n"),
        ),
        Screen::Stopped { mid } => (
            None,
            section(mid, SCREEN_SSRC, SCREEN_RTX_SSRC)
                .replacen("m=video 9 ", "m=video 0 ", 1)
                .replace("a=sendonly\r\n", "a=inactive\r\n"),
        ),
    };
    let bundle = match bundled {
        Some(mid) => format!("a=group:BUNDLE 0 1 {mid}\r\n"),
        None => "a=group:BUNDLE 0 1\r\n".to_owned(),
    };
    base.replace("a=group:BUNDLE 0 1\r\n", &bundle) + &text
}

struct Meeting {
    net: SimNetwork,
    alice: (usize, PeerId),
    bob: (usize, PeerId),
}

fn meeting(seed: u64) -> Meeting {
    let mut net = SimNetwork::new(seed);
    let alice = net.join("alice", 5000, SimPeer::publisher_offer);
    let bob = net.join("bob", 5001, |p| p.subscriber_offer(1, 2));
    Meeting { net, alice, bob }
}

impl Meeting {
    fn renegotiate(&mut self, screen: Screen) -> String {
        let (index, peer) = self.alice;
        let offer = offer_with_screen(&self.net.peers[index], screen);
        let answer = self
            .net
            .engine
            .apply_offer(peer, &offer, self.net.now)
            .expect("the engine accepts the renegotiation");
        self.net.peers[index].apply_answer(&answer);
        self.net.run();
        answer
    }

    fn published_on(&self, mid: &str) -> Option<TrackId> {
        self.net.events.iter().find_map(|event| match event {
            Event::TrackPublished { track, mid: on, .. } if on == mid => Some(*track),
            _ => None,
        })
    }

    fn ended(&self, track: TrackId) -> bool {
        self.net
            .events
            .iter()
            .any(|event| matches!(event, Event::TrackEnded { track: ended, .. } if *ended == track))
    }

    /// Alice sends a keyframe then a delta frame on `ssrc`; returns how many packets bob got.
    fn send_frames(&mut self, ssrc: u32, first_sequence: u16) -> usize {
        let before = self.net.peers[self.bob.0].received_rtp.len();
        for (offset, keyframe) in [(0u16, true), (1, false)] {
            let sequence = first_sequence + offset;
            let payload = vp8_payload(keyframe, sequence as u8, 900);
            self.net.peers[self.alice.0].send_rtp(
                VP8_PT,
                ssrc,
                sequence,
                sequence as u32 * 3000,
                true,
                &payload,
            );
            self.net.run();
        }
        self.net.peers[self.bob.0].received_rtp.len() - before
    }
}

fn media_line<'a>(answer: &'a str, mid: &str) -> &'a str {
    let mid_line = format!("a=mid:{mid}\r\n");
    let at = answer.find(&mid_line).expect("the answer has the mid");
    let start = answer[..at].rfind("m=").expect("an m-line before the mid");
    answer[start..].lines().next().expect("m-line")
}

#[test]
fn a_third_sending_m_line_publishes_a_track_that_subscribers_receive() {
    let mut m = meeting(11);
    let answer = m.renegotiate(Screen::Sending {
        mid: "2",
        ssrc: SCREEN_SSRC,
        rtx: SCREEN_RTX_SSRC,
    });
    assert!(media_line(&answer, "2").starts_with("m=video 9 "));
    let screen = m.published_on("2").expect("screen published");
    let camera = m.published_on("1").expect("camera published");
    assert_ne!(screen, camera);
    let subscription = m
        .net
        .engine
        .subscribe(m.bob.1, screen, m.net.now)
        .expect("bob subscribes to the screen");
    assert_eq!(m.send_frames(SCREEN_SSRC, 10), 2);
    assert!(m.net.peers[m.bob.0]
        .received_rtp
        .iter()
        .all(|packet| packet.ssrc == subscription.ssrc));
}

#[test]
fn stopping_the_screen_transceiver_ends_its_track_and_frees_the_subscribers_slot() {
    let mut m = meeting(12);
    m.renegotiate(Screen::Sending {
        mid: "2",
        ssrc: SCREEN_SSRC,
        rtx: SCREEN_RTX_SSRC,
    });
    let screen = m.published_on("2").expect("screen published");
    let camera = m.published_on("1").expect("camera published");
    m.net.engine.subscribe(m.bob.1, screen, m.net.now).unwrap();
    m.net.engine.subscribe(m.bob.1, camera, m.net.now).unwrap();
    assert_eq!(m.send_frames(SCREEN_SSRC, 10), 2);

    let answer = m.renegotiate(Screen::Stopped { mid: "2" });

    assert!(media_line(&answer, "2").starts_with("m=video 0 "));
    assert!(m.ended(screen), "TrackEnded for the screen");
    assert!(!m.ended(camera), "the camera goes on");
    assert_eq!(
        m.net
            .engine
            .unsubscribe(m.bob.1, screen)
            .unwrap_err()
            .code(),
        "not_subscribed"
    );
    assert_eq!(
        m.send_frames(SCREEN_SSRC, 20),
        0,
        "the screen's SSRC is forgotten"
    );
    assert_eq!(m.send_frames(VIDEO_SSRC, 30), 2, "the camera still flows");
    let ended = m
        .net
        .events
        .iter()
        .filter(|e| matches!(e, Event::TrackEnded { .. }))
        .count();
    m.renegotiate(Screen::Stopped { mid: "2" });
    let ended_again = m
        .net
        .events
        .iter()
        .filter(|e| matches!(e, Event::TrackEnded { .. }))
        .count();
    assert_eq!(ended, ended_again, "a track ends once");
}

#[test]
fn a_sending_m_line_turned_inactive_ends_its_track() {
    let mut m = meeting(13);
    m.renegotiate(Screen::Sending {
        mid: "2",
        ssrc: SCREEN_SSRC,
        rtx: SCREEN_RTX_SSRC,
    });
    let screen = m.published_on("2").expect("screen published");
    m.renegotiate(Screen::Inactive {
        mid: "2",
        ssrc: SCREEN_SSRC,
        rtx: SCREEN_RTX_SSRC,
    });
    assert!(m.ended(screen));
}

#[test]
fn a_new_transceiver_reusing_the_rejected_m_line_publishes_a_new_track() {
    let mut m = meeting(14);
    m.renegotiate(Screen::Sending {
        mid: "2",
        ssrc: SCREEN_SSRC,
        rtx: SCREEN_RTX_SSRC,
    });
    let first = m.published_on("2").expect("first screen share");
    m.renegotiate(Screen::Stopped { mid: "2" });

    let answer = m.renegotiate(Screen::Sending {
        mid: "3",
        ssrc: SECOND_SCREEN_SSRC,
        rtx: SECOND_SCREEN_RTX_SSRC,
    });

    assert!(media_line(&answer, "3").starts_with("m=video 9 "));
    let second = m.published_on("3").expect("second screen share");
    assert_ne!(first, second);
    let subscription = m.net.engine.subscribe(m.bob.1, second, m.net.now).unwrap();
    assert!(subscription.mid.starts_with('v'), "a video m-line");
    assert_eq!(m.send_frames(SECOND_SCREEN_SSRC, 40), 2);
}

#[test]
fn a_known_m_line_that_is_not_rejected_still_may_not_change_its_mid() {
    let mut m = meeting(15);
    let (index, peer) = m.alice;
    let offer = m.net.peers[index]
        .publisher_offer()
        .replace("a=mid:1\r\n", "a=mid:7\r\n")
        .replace("BUNDLE 0 1", "BUNDLE 0 7");
    let err = m
        .net
        .engine
        .apply_offer(peer, &offer, m.net.now)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_sdp");
}

#[test]
fn a_slot_reused_for_the_next_screen_share_continues_its_sequence_numbers_and_timestamps() {
    let mut m = meeting(16);
    m.renegotiate(Screen::Sending {
        mid: "2",
        ssrc: SCREEN_SSRC,
        rtx: SCREEN_RTX_SSRC,
    });
    let first = m.published_on("2").expect("first screen share");
    let slot = m.net.engine.subscribe(m.bob.1, first, m.net.now).unwrap();
    assert_eq!(m.send_frames(SCREEN_SSRC, 10), 2);
    m.renegotiate(Screen::Stopped { mid: "2" });
    m.renegotiate(Screen::Sending {
        mid: "3",
        ssrc: SECOND_SCREEN_SSRC,
        rtx: SECOND_SCREEN_RTX_SSRC,
    });
    let second = m.published_on("3").expect("second screen share");
    let again = m.net.engine.subscribe(m.bob.1, second, m.net.now).unwrap();
    assert_eq!(
        again.mid, slot.mid,
        "the freed m-line carries the new share"
    );
    // Far from the first share's numbers, as a new encoder's are.
    assert_eq!(m.send_frames(SECOND_SCREEN_SSRC, 50_000), 2);

    let on_slot: Vec<_> = m.net.peers[m.bob.0]
        .received_rtp
        .iter()
        .filter(|packet| packet.ssrc == slot.ssrc)
        .collect();
    assert_eq!(on_slot.len(), 4);
    for pair in on_slot.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "no jump in sequence numbers"
        );
        assert!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp) < 90_000 * 10,
            "timestamps move forward"
        );
    }
}
