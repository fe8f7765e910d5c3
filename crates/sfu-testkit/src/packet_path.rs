//! Drives an engine's packet path with a publisher's pre-encrypted datagrams, as a driver would
//! but delivering nothing, for the allocation tests and CPU measurements.

use crate::alloc_counter::{counted, Allocations};
use crate::{vp8_payload, SimNetwork, SimPeer, VIDEO_SSRC, VP8_PT};
use sfu_core::{Engine, Input, Output};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `count` VP8 packets from `publisher`, one 1100-byte frame each with a keyframe every 500,
/// encrypted up front so that the sender's own work is not measured as the engine's.
pub fn vp8_datagrams(publisher: &mut SimPeer, count: u16) -> Vec<Vec<u8>> {
    (0..count)
        .map(|seq| {
            publisher.send_rtp(
                VP8_PT,
                VIDEO_SSRC,
                seq,
                seq as u32 * 3000,
                true,
                &vp8_payload(seq % 500 == 0, 7, 1100),
            );
            publisher.take_pending().unwrap()
        })
        .collect()
}

/// Feeds `datagrams` from `source`, 1 ms apart from `now` on, draining every output and recycling
/// every transmit as a driver would (nothing is delivered); returns datagrams sent. 1 ms is a
/// 1000 packet/s, ~9 Mbit/s camera, so the engine's timers (housekeeping every 50 ms, RTCP reports
/// every second) run at a realistic rate per packet.
pub fn pump(
    engine: &mut Engine,
    datagrams: &[Vec<u8>],
    source: SocketAddr,
    now: &mut Instant,
) -> usize {
    let mut sent = 0;
    for datagram in datagrams {
        *now += Duration::from_millis(1);
        engine.handle_input(Input::Datagram {
            at: *now,
            source,
            data: datagram,
        });
        loop {
            match engine.poll_output() {
                Output::Transmit(transmit) => {
                    sent += 1;
                    engine.recycle(transmit.contents);
                }
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
    }
    sent
}

/// Pumps the first half of `datagrams` to warm the buffer pool, the packet cache and the queues,
/// then the second half counting allocations; returns datagrams the second half sent and those
/// allocations.
fn allocations_once_warm(
    engine: &mut Engine,
    datagrams: &[Vec<u8>],
    source: SocketAddr,
    now: &mut Instant,
) -> (usize, Allocations) {
    let (warm_up, measured) = datagrams.split_at(datagrams.len() / 2);
    pump(engine, warm_up, source, now);
    counted(|| pump(engine, measured, source, now))
}

/// Asserts that `net`'s engine, warmed by the first half of `datagrams` from peer `publisher`,
/// sends at least `min_sent` datagrams for the second half without allocating once; prints both.
pub fn assert_forwards_without_allocating(
    net: &mut SimNetwork,
    publisher: usize,
    datagrams: &[Vec<u8>],
    min_sent: usize,
) {
    let source = net.peers[publisher].address;
    let (sent, allocations) =
        allocations_once_warm(&mut net.engine, datagrams, source, &mut net.now);
    println!(
        "sent {sent} datagrams with {} allocations",
        allocations.count
    );
    assert!(sent >= min_sent, "sent {sent}");
    assert_eq!(
        allocations.count, 0,
        "allocations per forwarded packet must be zero"
    );
}
