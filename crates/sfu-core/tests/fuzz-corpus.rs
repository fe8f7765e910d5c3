//! Replays the committed fuzz seed corpus (`fuzz/corpus/seed/<target>/`) through the same entry
//! points the fuzzers use, so a crash found once stays fixed.

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/seed")
        .join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        entry(&std::fs::read(&path).unwrap());
        count += 1;
    }
    count
}

#[test]
fn seed_corpora_replay_without_panicking() {
    for (target, entry) in [
        ("stun", sfu_core::fuzzing::stun as fn(&[u8])),
        ("rtp", sfu_core::fuzzing::rtp),
        ("rtcp", sfu_core::fuzzing::rtcp),
        ("red", sfu_core::fuzzing::red),
        ("sdp", sfu_core::fuzzing::sdp),
        (
            "dependency_descriptor",
            sfu_core::fuzzing::dependency_descriptor,
        ),
        ("engine_datagram", sfu_core::fuzzing::engine_datagram),
    ] {
        assert!(replay(target, entry) > 0, "{target} has seeds");
    }
}
