//! RTP forwards (tees to a recorder) allocate nothing per packet once warm: counted by a global
//! allocator, in a test binary of their own so that no other test allocates meanwhile.

use sfu_core::MediaKind;
use sfu_testkit::alloc_counter::CountingAllocator;
use sfu_testkit::packet_path::{assert_forwards_without_allocating, pump, vp8_datagrams};
use sfu_testkit::*;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn teeing_a_track_to_ten_rtp_forwards_allocates_nothing_per_packet() {
    let mut net = SimNetwork::new(12);
    let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).unwrap();
    for i in 0..10u16 {
        let destination = std::net::SocketAddr::from(([127, 0, 0, 1], 47000 + 2 * i));
        net.engine
            .add_rtp_forward(video, destination, net.now)
            .unwrap();
    }
    net.run();

    let datagrams = vp8_datagrams(&mut net.peers[alice], 2000);
    assert_forwards_without_allocating(&mut net, alice, &datagrams, 10_000);
}

/// For the record, never asserted: `cargo test --release -p sfu-core --test
/// rtp-forward-allocations -- --ignored --nocapture` prints the engine's CPU time per packet with
/// ten RTP forwards and with ten subscribers, on this thread's CPU clock so that a busy machine
/// does not inflate it.
#[test]
#[ignore = "a measurement, run by hand in release"]
fn cpu_time_of_ten_rtp_forwards_against_ten_subscribers() {
    let packets = 20_000u16;
    for tee in [true, false] {
        let mut net = SimNetwork::new(13);
        let (alice, _) = net.join("alice", 5000, SimPeer::publisher_offer);
        let video = net.published(MediaKind::Video).unwrap();
        for i in 0..10u16 {
            if tee {
                let destination = std::net::SocketAddr::from(([127, 0, 0, 1], 47000 + 2 * i));
                net.engine
                    .add_rtp_forward(video, destination, net.now)
                    .unwrap();
            } else {
                let (_, peer) = net.join(&format!("viewer{i}"), 6000 + i, |p| {
                    p.subscriber_offer(1, 1)
                });
                net.engine.subscribe(peer, video, net.now).unwrap();
            }
        }
        net.run();
        let datagrams = vp8_datagrams(&mut net.peers[alice], packets);
        let source = net.peers[alice].address;
        let mut now = net.now;
        let warm = usize::from(packets / 10);
        pump(&mut net.engine, &datagrams[..warm], source, &mut now);
        let before = thread_cpu_ns();
        let sent = pump(&mut net.engine, &datagrams[warm..], source, &mut now);
        let cpu_ns = thread_cpu_ns() - before;
        let packets_in = datagrams.len() - warm;
        println!(
            "{}: {:.2} us CPU per packet in, {:.3} us per delivered packet ({sent} delivered)",
            if tee {
                "10 RTP forwards"
            } else {
                "10 subscribers"
            },
            cpu_ns as f64 / 1e3 / packets_in as f64,
            cpu_ns as f64 / 1e3 / sent as f64
        );
    }
}

/// Nanoseconds this thread has run on a CPU (first field of /proc/thread-self/schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
