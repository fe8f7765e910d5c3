//! Heap allocations per forwarded packet on the warm packet path (target: 0), counted by a global
//! allocator. `cargo bench -p sfu-core --bench allocations`; prints, never fails.

mod common;

use common::{stopwatch, RelayedRoom, Room};
use sfu_testkit::alloc_counter::{counted, Allocations, CountingAllocator};

const SUBSCRIBERS: usize = 10;
const PACKETS_IN: usize = 10_000;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() {
    // `Room::new` connects everyone and forwards a warm-up batch before anything is counted.
    let mut room = Room::new(SUBSCRIBERS);
    assert_eq!(room.subscribers, SUBSCRIBERS);
    room.refresh_consent();
    let datagrams = room.publisher_datagrams(PACKETS_IN);
    let before = room.net.engine.stats();
    let start = stopwatch();
    let (sent, allocations) = counted(|| room.pump(&datagrams));
    let elapsed = start.elapsed();
    let after = room.net.engine.stats();
    let forwarded = after.packets_forwarded - before.packets_forwarded;
    let Allocations {
        count: allocations,
        bytes,
    } = allocations;
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
    relayed();
}

/// The same across a relay link: the origin's receive and copy onto the link, the edge's receive
/// and fan-out to its viewers.
fn relayed() {
    let mut room = RelayedRoom::new(SUBSCRIBERS);
    assert_eq!(room.subscribers, SUBSCRIBERS);
    room.refresh_consent();
    // Two engines' pools and queues to fill: a second warm-up, past a round of RTCP reports.
    let warm_up = room.origin.publisher_datagrams(PACKETS_IN / 2);
    room.pump(&warm_up);
    room.refresh_consent();
    let datagrams = room.origin.publisher_datagrams(PACKETS_IN);
    let (sent, allocations) = counted(|| room.pump(&datagrams));
    println!(
        "across a relay link, {PACKETS_IN} packets in, {SUBSCRIBERS} viewers on the other engine: \
         {sent} datagrams sent, {} allocations ({} bytes); per delivered packet: {}",
        allocations.count,
        allocations.bytes,
        allocations.count as f64 / sent.max(1) as f64
    );
}
