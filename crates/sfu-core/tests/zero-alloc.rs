//! The forwarding path allocates nothing per packet once warm: counted by a global allocator.

use sfu_core::MediaKind;
use sfu_testkit::alloc_counter::CountingAllocator;
use sfu_testkit::packet_path::{assert_forwards_without_allocating, vp8_datagrams};
use sfu_testkit::*;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn forwarding_to_ten_subscribers_allocates_nothing_per_packet() {
    let mut net = SimNetwork::new(11);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).unwrap();
    for i in 0..10u16 {
        let (_, peer) = net.join(&format!("viewer{i}"), 6000 + i, |p| {
            p.subscriber_offer(1, 1)
        });
        net.engine.subscribe(peer, video, net.now).unwrap();
    }
    net.run();

    let datagrams = vp8_datagrams(&mut net.peers[alice], 2000);
    assert_forwards_without_allocating(&mut net, alice, &datagrams, 10_000);
}
