//! Plain `fn(&[u8])` entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay
//! in `cargo test`. Each must return for any input without panicking.

use crate::api::{EngineConfig, Input, Output};
use crate::engine::Engine;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub fn stun(data: &[u8]) {
    if crate::stun::parse_binding_request(data).is_ok() {
        let _ = crate::stun::verify_integrity(data, b"fuzzing-password-0123456");
    }
}

pub fn rtp(data: &[u8]) {
    if let Ok(header) = crate::rtp::parse_rtp(data) {
        for _ in crate::rtp::extensions(data, &header) {}
        if let Some(payload) = data.get(header.payload_start..header.payload_end) {
            crate::rtp::vp8_is_keyframe(payload);
            crate::rtp::h264_is_keyframe(payload);
            crate::rtp::vp9_is_keyframe(payload);
            crate::rtp::av1_is_keyframe(payload);
        }
    }
}

pub fn rtcp(data: &[u8]) {
    crate::rtcp::fuzz_parse(data);
    crate::twcc::fuzz_parse(data);
}

pub fn dependency_descriptor(data: &[u8]) {
    crate::dependency_descriptor::fuzz_parse(data);
}

pub fn red(data: &[u8]) {
    crate::red::fuzz_parse(data);
}

pub fn sdp(data: &[u8]) {
    crate::sdp::fuzz_parse(data);
}

thread_local! {
    static ENGINE: RefCell<Option<(Engine, Instant)>> = const { RefCell::new(None) };
}

/// Feeds the datagram to a long-lived engine that has one peer with an applied offer, from one
/// of two source addresses chosen by the first byte.
pub fn engine_datagram(data: &[u8]) {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (engine, now) = slot.get_or_insert_with(|| {
            // A fuzz harness, not the engine: any starting instant will do.
            #[allow(clippy::disallowed_methods)]
            let start = Instant::now();
            let mut engine = Engine::new(
                EngineConfig::new(SocketAddr::from(([127, 0, 0, 1], 40000))),
                start,
            )
            .expect("engine");
            let peer = engine.create_peer(start);
            // A failed offer is fine: the peer still exists with its ICE credentials.
            let _ = engine.apply_offer(peer, FUZZ_OFFER, start);
            (engine, start)
        });
        *now += Duration::from_millis(1);
        let source = SocketAddr::from(([127, 0, 0, 1], 5000 + (selector & 1) as u16));
        engine.handle_input(Input::Datagram {
            at: *now,
            source,
            data: datagram,
        });
        loop {
            match engine.poll_output() {
                Output::Transmit(transmit) => engine.recycle(transmit.contents),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
    });
}

const FUZZ_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
a=ice-ufrag:fuzz\r\na=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=ssrc:1 cname:fuzz\r\n";
