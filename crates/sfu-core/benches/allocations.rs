//! Heap allocations per forwarded packet on the warm packet path (target: 0), counted by a global
//! allocator. `cargo bench -p sfu-core --bench allocations`; prints, never fails.

mod common;

use common::{stopwatch, Room};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const SUBSCRIBERS: usize = 10;
const PACKETS_IN: usize = 10_000;

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

impl CountingAllocator {
    fn count(size: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(size as u64, Ordering::Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() {
    // `Room::new` connects everyone and forwards a warm-up batch before anything is counted.
    let mut room = Room::new(SUBSCRIBERS);
    assert_eq!(room.subscribers, SUBSCRIBERS);
    room.refresh_consent();
    let datagrams = room.publisher_datagrams(PACKETS_IN);
    let before = room.net.engine.stats();
    COUNTING.store(true, Ordering::SeqCst);
    let start = stopwatch();
    let sent = room.pump(&datagrams);
    let elapsed = start.elapsed();
    COUNTING.store(false, Ordering::SeqCst);
    let after = room.net.engine.stats();
    let forwarded = after.packets_forwarded - before.packets_forwarded;
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    let bytes = BYTES.load(Ordering::SeqCst);
    println!(
        "{} packets in, {SUBSCRIBERS} subscribers: {forwarded} RTP packets forwarded ({sent} datagrams sent), \
         {allocations} allocations ({bytes} bytes)",
        after.packets_received - before.packets_received
    );
    println!(
        "one pass, wall clock: {:.0} ns per packet in, {:.0} ns per forwarded packet",
        elapsed.as_nanos() as f64 / PACKETS_IN as f64,
        elapsed.as_nanos() as f64 / forwarded.max(1) as f64
    );
    println!(
        "allocations per forwarded packet: {}",
        allocations as f64 / forwarded.max(1) as f64
    );
}
