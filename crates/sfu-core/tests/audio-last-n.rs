//! Audio last-N: a subscriber is sent only the N loudest of its audio subscriptions, with
//! hysteresis; a track that falls silent (Opus DTX sends nothing) gives its place up, and a
//! resumed track continues its slot's sequence numbers.

use sfu_core::{Engine, EngineConfig, Event, MediaKind, PeerId, TrackId};
use sfu_testkit::*;
use std::time::Duration;

const AUDIO_LEVEL_EXT: u8 = 1;

struct Room {
    net: SimNetwork,
    /// Simulated peer index and audio track of each speaker.
    speakers: Vec<(usize, TrackId)>,
    sequences: Vec<u16>,
    bob: usize,
    /// The SSRC on which Bob receives each speaker.
    slots: Vec<u32>,
}

fn room(last_n: usize) -> Room {
    let mut net = SimNetwork::new(61);
    let mut config = EngineConfig::new(SERVER);
    config.audio_last_n = last_n;
    net.engine = Engine::new(config, net.now).unwrap();
    let mut speakers = Vec::new();
    for (i, name) in ["alice", "carol", "dave"].iter().enumerate() {
        let before = net.events.len();
        let (index, _) = net.join(name, 5000 + i as u16, SimPeer::publisher_offer);
        let track = net.events[before..]
            .iter()
            .find_map(|e| match e {
                Event::TrackPublished {
                    track,
                    kind: MediaKind::Audio,
                    ..
                } => Some(*track),
                _ => None,
            })
            .unwrap();
        speakers.push((index, track));
    }
    let (bob, bob_peer): (usize, PeerId) = net.join("bob", 5100, |p| p.subscriber_offer(3, 0));
    let slots = speakers
        .iter()
        .map(|&(_, track)| net.engine.subscribe(bob_peer, track, net.now).unwrap().ssrc)
        .collect();
    Room {
        net,
        sequences: vec![0; speakers.len()],
        speakers,
        bob,
        slots,
    }
}

impl Room {
    /// `duration` of 20 ms Opus packets; `levels[i]` is speaker i's level (-dBov), `None` for
    /// silence sent as nothing (DTX).
    fn talk(&mut self, levels: [Option<u8>; 3], duration: Duration) {
        for _ in 0..duration.as_millis() / 20 {
            for (i, level) in levels.iter().enumerate() {
                let Some(level) = level else { continue };
                self.sequences[i] = self.sequences[i].wrapping_add(1);
                let seq = self.sequences[i];
                let extensions: [(u8, &[u8]); 1] = [(AUDIO_LEVEL_EXT, &[0x80 | level])];
                self.net.peers[self.speakers[i].0].send_rtp_with_extensions(
                    OPUS_PT,
                    AUDIO_SSRC,
                    seq,
                    seq as u32 * 960,
                    false,
                    &[0xfc, 1, 2, 3],
                    &extensions,
                );
            }
            self.net.advance(Duration::from_millis(20));
        }
    }

    /// Which speakers Bob received in the packets from `since` on.
    fn heard(&self, since: usize) -> [bool; 3] {
        let mut heard = [false; 3];
        for packet in &self.net.peers[self.bob].received_rtp[since..] {
            if let Some(i) = self.slots.iter().position(|&ssrc| ssrc == packet.ssrc) {
                heard[i] = true;
            }
        }
        heard
    }

    fn received(&self) -> usize {
        self.net.peers[self.bob].received_rtp.len()
    }
}

#[test]
fn only_the_two_loudest_are_forwarded_and_a_louder_newcomer_takes_a_place() {
    let mut room = room(2);
    room.talk([Some(20), Some(40), Some(70)], Duration::from_millis(600));
    let since = room.received();
    room.talk([Some(20), Some(40), Some(70)], Duration::from_millis(400));
    assert_eq!(
        room.heard(since),
        [true, true, false],
        "dave is the quietest"
    );

    // Carol stops (DTX: no packets) and Dave speaks up.
    room.talk([Some(20), None, Some(15)], Duration::from_millis(600));
    let since = room.received();
    room.talk([Some(20), None, Some(15)], Duration::from_millis(400));
    assert_eq!(room.heard(since), [true, false, true]);

    // Alice falls silent and Carol speaks again: she continues her slot with no gap.
    room.talk([None, Some(25), Some(15)], Duration::from_millis(1000));
    let since = room.received();
    room.talk([None, Some(25), Some(15)], Duration::from_millis(400));
    assert_eq!(room.heard(since), [false, true, true]);
    let carol: Vec<u16> = room.net.peers[room.bob]
        .received_rtp
        .iter()
        .filter(|p| p.ssrc == room.slots[1])
        .map(|p| p.sequence)
        .collect();
    for pair in carol.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1), "carol's slot has no gap");
    }
}

#[test]
fn about_equal_voices_do_not_take_turns() {
    let mut room = room(1);
    room.talk([Some(30), Some(32), None], Duration::from_millis(600));
    let first = room.heard(room.received().saturating_sub(10));
    let since = room.received();
    // Carol gets a little louder than Alice, within the hysteresis.
    room.talk([Some(30), Some(27), None], Duration::from_millis(2000));
    assert_eq!(first, [true, false, false]);
    assert_eq!(room.heard(since), [true, false, false]);
}

#[test]
fn with_last_n_off_every_track_is_forwarded() {
    let mut room = room(0);
    room.talk([Some(20), Some(40), Some(70)], Duration::from_millis(600));
    assert_eq!(room.heard(0), [true, true, true]);
}
