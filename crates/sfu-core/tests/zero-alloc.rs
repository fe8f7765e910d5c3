//! The forwarding path allocates nothing per packet once warm: counted by a global allocator.

use sfu_core::MediaKind;
use sfu_testkit::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
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
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

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

    // Pre-encrypt the publisher's packets: the sender's own work is not the engine's.
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
    // Warm-up fills the buffer pool, the packet cache and the queues.
    pump(&mut net.engine, &datagrams[..1000], source, &mut now);
    COUNTING.store(true, Ordering::SeqCst);
    let measured = pump(&mut net.engine, &datagrams[1000..], source, &mut now);
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    println!("forwarded {measured} packets with {allocations} allocations");
    assert!(measured >= 10_000, "forwarded {measured}");
    assert_eq!(
        allocations, 0,
        "allocations per forwarded packet must be zero"
    );
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
