//! RED audio forwarding allocates nothing per packet once warm, whether a subscriber gets RED or
//! its primary as plain Opus: counted by a global allocator.

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
    let source = net.peers[alice].address;
    let mut now = net.now;
    pump(&mut net.engine, &datagrams[..1000], source, &mut now);
    COUNTING.store(true, Ordering::SeqCst);
    let measured = pump(&mut net.engine, &datagrams[1000..], source, &mut now);
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    println!("forwarded {measured} RED packets with {allocations} allocations");
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
