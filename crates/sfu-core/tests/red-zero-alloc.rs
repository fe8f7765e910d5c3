//! RED audio forwarding allocates nothing per packet once warm, whether a subscriber gets RED or
//! its primary as plain Opus: counted by a global allocator.

use sfu_core::MediaKind;
use sfu_testkit::alloc_counter::CountingAllocator;
use sfu_testkit::packet_path::assert_forwards_without_allocating;
use sfu_testkit::*;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn forwarding_red_as_is_and_stripped_allocates_nothing_per_packet() {
    let mut net = SimNetwork::new(12);
    let (alice, _) = net.join("alice", 5000, |p| with_red(&p.publisher_offer()));
    let audio = net.published(MediaKind::Audio).unwrap();
    for i in 0..10u16 {
        let (_, peer) = net.join(&format!("listener{i}"), 6000 + i, |p| {
            let offer = p.subscriber_offer(1, 0);
            if i % 2 == 0 {
                with_red(&offer)
            } else {
                offer
            }
        });
        net.engine.subscribe(peer, audio, net.now).unwrap();
    }
    net.run();

    // One redundant block of 60 bytes, then a primary of 70: Chromium's shape.
    let mut payload = vec![0x80 | OPUS_PT, 0x0f, 0x00, 60, OPUS_PT];
    payload.extend_from_slice(&[0x78; 130]);
    let datagrams: Vec<Vec<u8>> = (0..2000u16)
        .map(|seq| {
            net.peers[alice].send_rtp(RED_PT, AUDIO_SSRC, seq, seq as u32 * 960, false, &payload);
            net.peers[alice].take_pending().unwrap()
        })
        .collect();
    assert_forwards_without_allocating(&mut net, alice, &datagrams, 10_000);
}
