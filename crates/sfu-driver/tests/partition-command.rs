//! The `SetPartition` command (breakout rooms) reaches the engine through a real worker, and
//! misuse answers the engine's stable code.

use sfu_core::PeerId;
use sfu_driver::{Worker, WorkerConfig};

#[test]
fn a_partition_reaches_the_engine_and_an_unknown_peer_answers_peer_not_found() {
    let mut config =
        WorkerConfig::new("127.0.0.1:0".parse().unwrap(), "127.0.0.1".parse().unwrap());
    config.engine.seed = 11;
    let handle = Worker::start(config, |_| {}).expect("the worker starts");
    let peer = handle.create_peer().unwrap();
    handle.set_partition(peer, 3).expect("a known peer moves");
    handle
        .set_partition(peer, 0)
        .expect("and back to the main room");
    let unknown = handle.set_partition(PeerId(999), 1).unwrap_err();
    assert_eq!(unknown.code(), "peer_not_found");
    handle.shutdown().unwrap();
}
