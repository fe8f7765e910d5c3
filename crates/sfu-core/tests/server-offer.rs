//! The engine offers a negotiated peer new m-lines to send on (a subscriber needs a receive
//! m-line for a new track) and applies the peer's answer; the peer's own offers wait meanwhile.

use sfu_core::{sdp, Event, MediaKind, PeerId, SfuError, Subscription, TrackId};
use sfu_testkit::*;

struct Room {
    net: SimNetwork,
    bob: (usize, PeerId),
    /// Ada's camera: on bob's only video m-line.
    ada_video: TrackId,
    /// Cy's camera: bob has no video m-line left for it.
    cy_video: TrackId,
}

impl Room {
    /// The engine's offer to bob of one more video m-line.
    fn offer_bob_video(&mut self) -> String {
        self.net
            .engine
            .create_offer(self.bob.1, &[MediaKind::Video])
            .unwrap()
    }

    fn subscribe_bob_to_cy(&mut self) -> Result<Subscription, SfuError> {
        self.net
            .engine
            .subscribe(self.bob.1, self.cy_video, self.net.now)
    }
}

const CY_VIDEO_SSRC: u32 = 0x5555_0001;
const CY_VIDEO_RTX_SSRC: u32 = 0x5555_0002;
const CY_AUDIO_SSRC: u32 = 0x5555_0003;

fn room(seed: u64) -> Room {
    let mut net = SimNetwork::new(seed);
    net.join("ada", 5000, SimPeer::publisher_offer);
    let ada_video = net.published(MediaKind::Video).expect("ada's camera");
    let bob = net.join("bob", 5001, |p| p.subscriber_offer(1, 1));
    net.join("cy", 5002, |p| {
        p.publisher_offer()
            .replace(&VIDEO_SSRC.to_string(), &CY_VIDEO_SSRC.to_string())
            .replace(&VIDEO_RTX_SSRC.to_string(), &CY_VIDEO_RTX_SSRC.to_string())
            .replace(&AUDIO_SSRC.to_string(), &CY_AUDIO_SSRC.to_string())
    });
    let cy_video = net
        .events
        .iter()
        .filter_map(|event| match event {
            Event::TrackPublished {
                track,
                kind: MediaKind::Video,
                ..
            } => Some(*track),
            _ => None,
        })
        .nth(1)
        .expect("cy's camera");
    let subscription = net.engine.subscribe(bob.1, ada_video, net.now).unwrap();
    assert_eq!(subscription.mid, "v0");
    Room {
        net,
        bob,
        ada_video,
        cy_video,
    }
}

/// A browser's answer to `offer`: every m-line mirrored (sendonly answered recvonly and the other
/// way round), its own ICE and DTLS lines, active DTLS role. `reject` mids are answered port 0.
fn answer_to(peer: &SimPeer, offer: &str, reject: &[&str]) -> String {
    let parsed = sdp::parse(offer).expect("our offer parses");
    let mut out = String::new();
    for line in offer.split("\r\n").filter(|l| !l.is_empty()) {
        let kept = match line {
            "a=ice-lite" | "a=end-of-candidates" => None,
            "a=sendonly" => Some("a=recvonly".to_owned()),
            "a=recvonly" => Some("a=sendonly".to_owned()),
            "a=setup:passive" => Some("a=setup:active".to_owned()),
            l if l.starts_with("a=candidate:")
                || l.starts_with("a=ssrc")
                || l.starts_with("a=msid:") =>
            {
                None
            }
            l if l.starts_with("a=ice-ufrag:") => Some(format!("a=ice-ufrag:{}", peer.ice_ufrag)),
            l if l.starts_with("a=ice-pwd:") => Some(format!("a=ice-pwd:{}", peer.ice_pwd)),
            l => Some(l.to_owned()),
        };
        if let Some(kept) = kept {
            out.push_str(&kept);
            out.push_str("\r\n");
        }
    }
    for mid in reject {
        let section = parsed.media_by_mid(mid).expect("the offer has the mid");
        let m_line = format!("m=video 9 {} ", section.protocol);
        let at = out
            .find(&format!("a=mid:{mid}\r\n"))
            .expect("the answer has the mid");
        let start = out[..at].rfind(&m_line).expect("its m-line");
        out.replace_range(
            start..start + m_line.len(),
            &format!("m=video 0 {} ", section.protocol),
        );
    }
    out
}

/// Bob's offer after answering ours: the engine's m-line `s0` is now one of his transceivers.
fn bob_reoffer(peer: &SimPeer) -> String {
    let base = peer.subscriber_offer(1, 1);
    let at = base.find("m=video").expect("video m-line");
    let s0 = base[at..].replace("a=mid:v0\r\n", "a=mid:s0\r\n");
    base.replace("BUNDLE a0 v0", "BUNDLE a0 v0 s0") + &s0
}

#[test]
fn a_new_m_line_offered_and_answered_becomes_a_slot_a_track_is_forwarded_on() {
    let mut r = room(21);
    let (bob, bob_peer) = r.bob;
    assert_eq!(r.subscribe_bob_to_cy().unwrap_err().code(), "no_free_slot");

    let offer = r.offer_bob_video();

    let parsed = sdp::parse(&offer).expect("the offer parses");
    let mids: Vec<_> = parsed
        .media
        .iter()
        .map(|m| m.mid.clone().unwrap())
        .collect();
    assert_eq!(
        mids,
        ["a0", "v0", "s0"],
        "negotiated m-lines first, in order"
    );
    assert!(offer.contains("a=group:BUNDLE a0 v0 s0\r\n"));
    assert!(offer.contains("a=ice-lite\r\n"));
    assert!(
        offer.contains("a=setup:passive\r\n"),
        "the DTLS role in use"
    );
    let answer_we_gave = r.net.peers[bob].answer.clone().unwrap();
    assert_eq!(
        parsed.ice_credentials(),
        answer_we_gave.ice_credentials(),
        "same ICE credentials"
    );
    let s0 = parsed.media_by_mid("s0").unwrap();
    assert_eq!(s0.direction, sdp::Direction::SendOnly);
    assert!(s0.codecs.iter().any(|c| c.is("VP8")));
    let v0 = parsed.media_by_mid("v0").unwrap();
    assert_eq!(
        v0.direction,
        sdp::Direction::SendOnly,
        "v0 still sends ada's camera"
    );
    assert!(r.net.engine.has_local_offer(bob_peer));

    let answer = answer_to(&r.net.peers[bob], &offer, &[]);
    r.net.engine.apply_answer(bob_peer, &answer).unwrap();
    assert!(!r.net.engine.has_local_offer(bob_peer));

    let subscription = r.subscribe_bob_to_cy().unwrap();
    assert_eq!(subscription.mid, "s0");
    assert_eq!(
        Some(subscription.ssrc),
        s0.ssrcs.first().map(|l| l.ssrc),
        "the SSRC the offer announced"
    );
    let cy = 2;
    for (sequence, keyframe) in [(1u16, true), (2, false)] {
        let payload = vp8_payload(keyframe, sequence as u8, 900);
        r.net.peers[cy].send_rtp(
            VP8_PT,
            CY_VIDEO_SSRC,
            sequence,
            sequence as u32 * 3000,
            true,
            &payload,
        );
        r.net.run();
    }
    let received = r.net.peers[bob]
        .received_rtp
        .iter()
        .filter(|p| p.ssrc == subscription.ssrc)
        .count();
    assert_eq!(received, 2, "cy's camera reaches bob on s0");
}

#[test]
fn the_peers_own_offer_is_refused_while_ours_waits_and_accepted_after() {
    let mut r = room(22);
    let (bob, bob_peer) = r.bob;
    let offer = r.offer_bob_video();

    let colliding = r.net.peers[bob].subscriber_offer(1, 1);
    let err = r
        .net
        .engine
        .apply_offer(bob_peer, &colliding, r.net.now)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_state", "glare: our offer stands");
    assert_eq!(
        r.net
            .engine
            .create_offer(bob_peer, &[MediaKind::Audio])
            .unwrap_err()
            .code(),
        "invalid_state",
        "one offer of ours at a time"
    );

    let answer = answer_to(&r.net.peers[bob], &offer, &[]);
    r.net.engine.apply_answer(bob_peer, &answer).unwrap();
    r.subscribe_bob_to_cy().unwrap();
    // Bob's retried offer carries s0 as one of his own receive m-lines now.
    let reoffer = bob_reoffer(&r.net.peers[bob]);
    let reanswer = r
        .net
        .engine
        .apply_offer(bob_peer, &reoffer, r.net.now)
        .expect("the retried offer is answered");
    let reanswer = sdp::parse(&reanswer).unwrap();
    assert_eq!(
        reanswer.media_by_mid("s0").unwrap().direction,
        sdp::Direction::SendOnly
    );
    assert!(reanswer.media_by_mid("s0").unwrap().port != 0);
    r.net
        .engine
        .unsubscribe(bob_peer, r.cy_video)
        .expect("still subscribed on s0");
    r.net
        .engine
        .unsubscribe(bob_peer, r.ada_video)
        .expect("still subscribed on v0");
}

#[test]
fn a_new_m_line_the_answer_rejects_carries_nothing() {
    let mut r = room(23);
    let (bob, bob_peer) = r.bob;
    let offer = r.offer_bob_video();
    let answer = answer_to(&r.net.peers[bob], &offer, &["s0"]);
    r.net.engine.apply_answer(bob_peer, &answer).unwrap();
    assert_eq!(r.subscribe_bob_to_cy().unwrap_err().code(), "no_free_slot");
    let next = r.offer_bob_video();
    let next = sdp::parse(&next).unwrap();
    let mids: Vec<_> = next
        .media
        .iter()
        .map(|m| (m.mid.clone().unwrap(), m.port))
        .collect();
    assert_eq!(mids[2], ("s0".to_owned(), 0), "s0 stays rejected");
    assert_eq!(mids[3].0, "s1", "a new mid");
}

#[test]
fn offers_and_answers_out_of_turn_are_refused() {
    let mut r = room(24);
    let (bob, bob_peer) = r.bob;
    assert_eq!(
        r.net
            .engine
            .apply_answer(bob_peer, "v=0")
            .unwrap_err()
            .code(),
        "invalid_state",
        "no offer to answer"
    );
    let fresh = r.net.engine.create_peer(r.net.now);
    assert_eq!(
        r.net
            .engine
            .create_offer(fresh, &[MediaKind::Video])
            .unwrap_err()
            .code(),
        "invalid_state",
        "the peer opens the session"
    );
    assert_eq!(
        r.net
            .engine
            .create_offer(PeerId(999), &[])
            .unwrap_err()
            .code(),
        "peer_not_found"
    );

    let offer = r.offer_bob_video();
    let short = answer_to(
        &r.net.peers[bob],
        &r.net.peers[bob].subscriber_offer(1, 1),
        &[],
    );
    assert_eq!(
        r.net
            .engine
            .apply_answer(bob_peer, &short)
            .unwrap_err()
            .code(),
        "invalid_sdp",
        "two m-lines for an offer of three"
    );
    assert!(
        !r.net.engine.has_local_offer(bob_peer),
        "a bad answer drops the offer"
    );
    assert_eq!(
        r.net
            .engine
            .apply_answer(bob_peer, &answer_to(&r.net.peers[bob], &offer, &[]))
            .unwrap_err()
            .code(),
        "invalid_state"
    );
    for garbage in ["", "garbage", "\u{0}\u{1}"] {
        r.offer_bob_video();
        assert!(r.net.engine.apply_answer(bob_peer, garbage).is_err());
    }
}
