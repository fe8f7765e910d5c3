//! Voice activity from the audio-level extension: speaking starts after sustained sound and
//! ends after a hangover of quiet or of no packets at all (Opus DTX).

use sfu_core::{Event, MediaKind, TrackId};
use sfu_testkit::*;
use std::time::Duration;

const AUDIO_LEVEL_EXT: u8 = 1;

fn publisher() -> (SimNetwork, usize, TrackId) {
    let mut net = SimNetwork::new(51);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let audio = net.published(MediaKind::Audio).unwrap();
    (net, alice, audio)
}

/// 20 ms Opus packets at `level` (-dBov) for `duration`.
fn talk(net: &mut SimNetwork, alice: usize, seq: &mut u16, level: u8, duration: Duration) {
    for _ in 0..duration.as_millis() / 20 {
        *seq = seq.wrapping_add(1);
        let extensions: [(u8, &[u8]); 1] = [(AUDIO_LEVEL_EXT, &[0x80 | level])];
        net.peers[alice].send_rtp_with_extensions(
            OPUS_PT,
            AUDIO_SSRC,
            *seq,
            *seq as u32 * 960,
            false,
            &[0xfc, 1, 2, 3],
            &extensions,
        );
        net.advance(Duration::from_millis(20));
    }
}

fn speaking_changes(net: &SimNetwork, audio: TrackId) -> Vec<bool> {
    net.events
        .iter()
        .filter_map(|e| match e {
            Event::SpeakingChanged {
                track, speaking, ..
            } if *track == audio => Some(*speaking),
            _ => None,
        })
        .collect()
}

#[test]
fn speaking_starts_after_sustained_sound_and_ends_after_quiet() {
    let (mut net, alice, audio) = publisher();
    let mut seq = 0;
    talk(&mut net, alice, &mut seq, 127, Duration::from_millis(500));
    talk(&mut net, alice, &mut seq, 30, Duration::from_millis(100));
    assert_eq!(
        speaking_changes(&net, audio),
        Vec::<bool>::new(),
        "a short sound is not speech"
    );
    talk(&mut net, alice, &mut seq, 127, Duration::from_millis(300));
    talk(&mut net, alice, &mut seq, 30, Duration::from_millis(400));
    assert_eq!(speaking_changes(&net, audio), vec![true]);
    talk(&mut net, alice, &mut seq, 127, Duration::from_millis(400));
    assert_eq!(
        speaking_changes(&net, audio),
        vec![true],
        "a pause within the hangover keeps the turn"
    );
    talk(&mut net, alice, &mut seq, 127, Duration::from_millis(600));
    assert_eq!(speaking_changes(&net, audio), vec![true, false]);
}

#[test]
fn speaking_ends_when_packets_stop_as_with_opus_dtx() {
    let (mut net, alice, audio) = publisher();
    let mut seq = 0;
    talk(&mut net, alice, &mut seq, 25, Duration::from_millis(600));
    assert_eq!(speaking_changes(&net, audio), vec![true]);
    net.advance(Duration::from_millis(1000));
    assert_eq!(speaking_changes(&net, audio), vec![true, false]);
}
