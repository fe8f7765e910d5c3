//! RTP forwards (tees to a recorder) allocate nothing per packet once warm: counted by a global
//! allocator, in a test binary of their own so that no other test allocates meanwhile.

use sfu_core::MediaKind;
use sfu_testkit::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct CountingAllocator;

thread_local! {
    /// Counts only this thread's allocations: the ignored measurement may run alongside.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

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

    let datagrams: Vec<Vec<u8>> = (0..2000u16)
        .map(|seq| {
            net.peers[alice].send_rtp(
                VP8_PT,
                VIDEO_SSRC,
                seq,
                seq as u32 * 3000,
                true,
                &vp8_payload(seq % 500 == 0, 7, 1100),
            );
            net.peers[alice].take_pending().unwrap()
        })
        .collect();
    let source = net.peers[alice].address;
    let mut now = net.now;
    // Warm-up fills the buffer pool and the queues.
    pump(&mut net.engine, &datagrams[..1000], source, &mut now);
    COUNTING.with(|c| c.set(true));
    let measured = pump(&mut net.engine, &datagrams[1000..], source, &mut now);
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    println!("forwarded {measured} packets with {allocations} allocations");
    assert!(measured >= 10_000, "forwarded {measured}");
    assert_eq!(
        allocations, 0,
        "allocations per forwarded packet must be zero"
    );
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
        let datagrams: Vec<Vec<u8>> = (0..packets)
            .map(|seq| {
                net.peers[alice].send_rtp(
                    VP8_PT,
                    VIDEO_SSRC,
                    seq,
                    seq as u32 * 3000,
                    true,
                    &vp8_payload(seq % 500 == 0, 7, 1100),
                );
                net.peers[alice].take_pending().unwrap()
            })
            .collect();
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

/// Feeds `datagrams` from `source`, 1 ms apart, sending nothing anywhere; returns datagrams sent.
fn pump(
    engine: &mut sfu_core::Engine,
    datagrams: &[Vec<u8>],
    source: std::net::SocketAddr,
    now: &mut std::time::Instant,
) -> usize {
    let mut sent = 0;
    for datagram in datagrams {
        *now += std::time::Duration::from_millis(1);
        engine.handle_input(sfu_core::Input::Datagram {
            at: *now,
            source,
            data: datagram,
        });
        loop {
            match engine.poll_output() {
                sfu_core::Output::Transmit(transmit) => {
                    sent += 1;
                    engine.recycle(transmit.contents);
                }
                sfu_core::Output::Event(_) => {}
                sfu_core::Output::Timeout(_) => break,
            }
        }
    }
    sent
}
