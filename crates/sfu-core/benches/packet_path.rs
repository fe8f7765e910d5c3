//! Criterion micro-benchmarks of the packet path: the whole engine per incoming packet at fan-out
//! 1/10/100, the same across a relay link between two engines (cascading), SRTP alone, and the
//! wire parsers (the Dependency Descriptor among them).
//! `cargo bench -p sfu-core --bench packet_path`.

mod common;

use common::{stopwatch, RelayedRoom, Room};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sfu_core::dependency_descriptor as dd;
use sfu_core::srtp::{SrtpContext, SrtpProfile};
use sfu_core::{rtcp, rtp, sdp, stun};
use std::hint::black_box;
use std::time::Duration;

/// Plain RTP packet size for the SRTP benches: 12-byte header and 1188 bytes of payload.
const SRTP_PACKET_LEN: usize = 1200;
/// Inputs prepared (untimed) per measured batch when each input can be used only once, as
/// SRTP's replay window demands; small enough to stay in L2 with the engine's state.
const BATCH: u64 = 512;
const CHROMIUM_OFFER: &str = include_str!("../tests/data/sdp/chromium156_publisher.sdp");

/// Receive -> unprotect -> route -> rewrite -> protect for every subscriber, drained and recycled
/// as the driver does. One iteration is one incoming packet; divide by N for the cost per
/// delivered packet.
fn engine_fan_out(c: &mut Criterion) {
    fan_out_group(c, "engine_fan_out", Room::new);
}

/// A bench fixture that forwards a publisher's packets to `subscribers()` viewers.
trait FanOut {
    fn subscribers(&self) -> usize;
    fn refresh_consent(&mut self);
    fn publisher_datagrams(&mut self, count: usize) -> Vec<Vec<u8>>;
    fn pump(&mut self, datagrams: &[Vec<u8>]) -> usize;
}

impl FanOut for Room {
    fn subscribers(&self) -> usize {
        self.subscribers
    }
    fn refresh_consent(&mut self) {
        Room::refresh_consent(self)
    }
    fn publisher_datagrams(&mut self, count: usize) -> Vec<Vec<u8>> {
        Room::publisher_datagrams(self, count)
    }
    fn pump(&mut self, datagrams: &[Vec<u8>]) -> usize {
        Room::pump(self, datagrams)
    }
}

impl FanOut for RelayedRoom {
    fn subscribers(&self) -> usize {
        self.subscribers
    }
    fn refresh_consent(&mut self) {
        RelayedRoom::refresh_consent(self)
    }
    fn publisher_datagrams(&mut self, count: usize) -> Vec<Vec<u8>> {
        self.origin.publisher_datagrams(count)
    }
    fn pump(&mut self, datagrams: &[Vec<u8>]) -> usize {
        RelayedRoom::pump(self, datagrams)
    }
}

/// Times packets in at fan-out 1/10/100, the publisher's encryption and consent upkeep untimed.
fn fan_out_group<R: FanOut>(c: &mut Criterion, name: &str, make: fn(usize) -> R) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for subscribers in [1usize, 10, 100] {
        let mut room = make(subscribers);
        group.bench_function(BenchmarkId::from_parameter(subscribers), |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let count = left.min(BATCH);
                    room.refresh_consent();
                    let datagrams = room.publisher_datagrams(count as usize);
                    let start = stopwatch();
                    let sent = room.pump(black_box(&datagrams));
                    elapsed += start.elapsed();
                    // A subscriber that dropped out would make this measure less work.
                    assert!(sent >= datagrams.len() * room.subscribers(), "sent {sent}");
                    left -= count;
                }
                elapsed
            });
        });
    }
    group.finish();
}

/// One packet from a publisher on one engine to N viewers on another, across a relay link: the
/// origin's receive and one protected copy on the link, then the edge's receive and fan-out. Set
/// against `engine_fan_out` at the same N, the difference is what cascading costs per packet.
fn relay_hop(c: &mut Criterion) {
    fan_out_group(c, "relay_hop", RelayedRoom::new);
}

fn srtp_context(profile: SrtpProfile) -> SrtpContext {
    let key = vec![0x4b; profile.master_key_len()];
    let salt = vec![0x5a; profile.master_salt_len()];
    SrtpContext::new(profile, &key, &salt)
}

/// A plain RTP packet of `len` bytes (no extensions) with sequence number `sequence`.
fn rtp_packet(len: usize, sequence: u16) -> Vec<u8> {
    let mut packet = Vec::with_capacity(len + 32);
    packet.extend_from_slice(&[0x80, 96]);
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    packet.extend_from_slice(&0x2222_0001u32.to_be_bytes());
    packet.resize(len, 0xab);
    packet
}

fn srtp(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_1200B");
    group.throughput(Throughput::Bytes(SRTP_PACKET_LEN as u64));
    let profiles = [
        ("aes128gcm", SrtpProfile::AeadAes128Gcm),
        ("aes_cm_hmac_sha1_80", SrtpProfile::Aes128CmHmacSha1_80),
    ];
    for (name, profile) in profiles {
        group.bench_function(format!("protect/{name}"), |b| {
            let mut context = srtp_context(profile);
            let mut buffer = rtp_packet(SRTP_PACKET_LEN, 0);
            buffer.resize(SRTP_PACKET_LEN + profile.rtp_overhead(), 0);
            let mut sequence = 0u16;
            b.iter(|| {
                // Encryption leaves the header in the clear, so the buffer can be protected again.
                sequence = sequence.wrapping_add(1);
                buffer[2..4].copy_from_slice(&sequence.to_be_bytes());
                context
                    .protect_rtp_in_place(black_box(&mut buffer), SRTP_PACKET_LEN)
                    .expect("protect")
            });
        });
        group.bench_function(format!("unprotect/{name}"), |b| {
            let mut sender = srtp_context(profile);
            let mut receiver = srtp_context(profile);
            let mut sequence = 0u16;
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let count = left.min(BATCH);
                    let mut packets: Vec<Vec<u8>> = (0..count)
                        .map(|_| {
                            sequence = sequence.wrapping_add(1);
                            let mut packet = rtp_packet(SRTP_PACKET_LEN, sequence);
                            sender.protect_rtp(&mut packet).expect("protect");
                            packet
                        })
                        .collect();
                    let start = stopwatch();
                    for packet in &mut packets {
                        black_box(
                            receiver
                                .unprotect_rtp(black_box(packet))
                                .expect("unprotect"),
                        );
                    }
                    elapsed += start.elapsed();
                    left -= count;
                }
                elapsed
            });
        });
    }
    group.finish();
}

/// A 1100-byte-payload video packet with the one-byte extensions Chromium sends on video
/// (abs-send-time, transport-wide sequence number, mid).
fn chromium_rtp_packet() -> Vec<u8> {
    let mut packet = vec![0x90, 0x80 | 96, 0x12, 0x34, 0, 1, 0, 0, 0x22, 0x22, 0, 1];
    let extensions: [u8; 12] = [0x22, 1, 2, 3, 0x31, 0, 7, 0x40, b'1', 0, 0, 0];
    packet.extend_from_slice(&0xBEDEu16.to_be_bytes());
    packet.extend_from_slice(&((extensions.len() / 4) as u16).to_be_bytes());
    packet.extend_from_slice(&extensions);
    packet.extend_from_slice(&sfu_testkit::vp8_payload(false, 7, common::PAYLOAD_LEN));
    packet
}

/// What a Chromium subscriber sends back about a video stream: RR, SDES, REMB, NACK, PLI.
fn subscriber_feedback_compound() -> Vec<u8> {
    let mut compound = Vec::new();
    let report = rtcp::ReportBlock {
        ssrc: 0x2222_0001,
        fraction_lost: 3,
        cumulative_lost: 12,
        extended_highest_seq: 0x0001_1234,
        jitter: 40,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 0x0000_8000,
    };
    rtcp::write_receiver_report(&mut compound, 0x7777_0001, &[report]);
    rtcp::write_sdes_cname(&mut compound, 0x7777_0001, "xUiX2AbC9r8XjF1q");
    rtcp::write_remb(&mut compound, 0x7777_0001, 2_500_000, &[0x2222_0001]);
    rtcp::write_nack(
        &mut compound,
        0x7777_0001,
        0x2222_0001,
        [100u16, 101, 105, 140].into_iter(),
    );
    rtcp::write_pli(&mut compound, 0x7777_0001, 0x2222_0001);
    compound
}

fn parsers(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));

    let packet = chromium_rtp_packet();
    group.bench_function("rtp_header", |b| {
        b.iter(|| rtp::parse_rtp(black_box(&packet)).expect("parses"))
    });

    let compound = subscriber_feedback_compound();
    assert_eq!(rtcp::packets(&compound).filter(Result::is_ok).count(), 5);
    group.bench_function("rtcp_compound_5", |b| {
        b.iter(|| {
            for packet in rtcp::packets(black_box(&compound)) {
                black_box(packet.expect("parses"));
            }
        });
    });

    let password = b"ourPassword0123456789abc";
    let request = sfu_testkit::binding_request(&[7; 12], "ourUfrag:theirUf", password, true);
    group.bench_function("stun_binding_request_and_integrity", |b| {
        b.iter(|| {
            let data = black_box(&request[..]);
            let parsed = stun::parse_binding_request(data).expect("parses");
            stun::verify_integrity(data, password).expect("integrity");
            black_box(parsed.use_candidate)
        });
    });

    group.bench_function("sdp_chromium_offer", |b| {
        b.iter(|| sdp::parse(black_box(CHROMIUM_OFFER)).expect("parses"))
    });

    // Dependency Descriptors of an L3T3 stream: a delta frame's three bytes (most packets), and
    // a keyframe's first packet with the whole structure.
    let structure = l3t3_structure();
    let mut keyframe = Vec::new();
    let mut delta = Vec::new();
    for (out, attach_structure, template_index) in
        [(&mut keyframe, true, 0), (&mut delta, false, 7)]
    {
        dd::write(
            &structure,
            &dd::DescriptorFields {
                start_of_frame: true,
                end_of_frame: false,
                template_index,
                frame_number: 1234,
                attach_structure,
                active_decode_targets: None,
            },
            out,
        );
    }
    let mut reader = dd::DependencyDescriptorReader::new();
    reader.read(&keyframe).expect("parses");
    group.bench_function("dependency_descriptor_delta", |b| {
        b.iter(|| reader.read(black_box(&delta)).expect("parses"))
    });
    group.bench_function("dependency_descriptor_l3t3_structure", |b| {
        b.iter(|| reader.read(black_box(&keyframe)).expect("parses"))
    });
    group.finish();
}

/// L3T3 key-SVC: 9 decode targets, 12 templates (key, T0, T1, T2 per spatial layer), one chain
/// per spatial layer, three resolutions; about the structure Chromium sends for `L3T3_KEY`.
fn l3t3_structure() -> dd::FrameDependencyStructure {
    use dd::Dti::{Discardable, NotPresent, Required, Switch};
    let mut s = dd::FrameDependencyStructure::new(0, 9);
    for spatial in 0..3u8 {
        for (template, temporal) in [(0, 0u8), (1, 0), (2, 1), (3, 2)] {
            let dtis: [dd::Dti; 9] = std::array::from_fn(|dt| {
                let (ds, dtt) = (dt as u8 / 3, dt as u8 % 3);
                match () {
                    _ if template == 0 && spatial <= ds => Switch,
                    _ if ds != spatial || temporal > dtt => NotPresent,
                    _ if temporal == 0 => Required,
                    _ if temporal == dtt => Discardable,
                    _ => Switch,
                }
            });
            let fdiffs: &[u8] = match template {
                0 if spatial == 0 => &[],
                0 => &[1],
                1 => &[12],
                2 => &[6],
                _ => &[3, 6],
            };
            s.push_template(spatial, temporal, &dtis, fdiffs, &[template, 3, 6])
                .expect("in layer order");
        }
    }
    s.set_chains(3, &[0, 0, 0, 1, 1, 1, 2, 2, 2]);
    s.set_resolutions(&[(320, 180), (640, 360), (1280, 720)]);
    s
}

fn short_runs() -> Criterion {
    // Short groups so that the whole `cargo bench -p sfu-core` stays within a few minutes on 2 cores.
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = short_runs();
    targets = engine_fan_out, relay_hop, srtp, parsers
}
criterion_main!(benches);
