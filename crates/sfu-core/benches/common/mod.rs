//! Bench fixture: one engine with a connected publisher and N subscribers to its video track, on
//! sfu-testkit's simulated network. Shared by the criterion benches and the allocation count.

use sfu_core::{Input, MediaKind, Output};
use sfu_testkit::packet_path;
use sfu_testkit::{vp8_payload, SimNetwork, SimPeer, VIDEO_SSRC, VP8_PT};
use std::time::Instant;

/// VP8 payload bytes per packet: a full-size video packet as browsers send them.
pub const PAYLOAD_LEN: usize = 1100;
/// A keyframe every this many packets; only the first one matters (subscribers wait for it).
const KEYFRAME_EVERY: u32 = 3000;
/// Packets forwarded before anything is measured: fills the buffer pool, packet cache and queues.
const WARM_UP_PACKETS: usize = 1000;

/// Wall-clock time for measuring; the engine itself only ever sees simulated time.
#[allow(clippy::disallowed_methods)] // The sans-IO rule is for the engine, not for its stopwatch.
pub fn stopwatch() -> Instant {
    Instant::now()
}

pub struct Room {
    pub net: SimNetwork,
    pub subscribers: usize,
    publisher: usize,
    /// Packets the publisher has sent so far; gives the next sequence number and timestamp.
    sent: u32,
}

impl Room {
    /// A publisher (audio + video) and `subscribers` viewers, all through ICE and DTLS, each
    /// viewer subscribed to the video track, then warmed up.
    ///
    /// # Panics
    /// If the simulated session does not come up or does not forward to every subscriber.
    pub fn new(subscribers: usize) -> Self {
        let mut net = SimNetwork::new(11);
        let (publisher, _) = net.join("alice", 5000, SimPeer::publisher_offer);
        let video = net
            .published(MediaKind::Video)
            .expect("video track published");
        for i in 0..subscribers {
            let port = 6000 + u16::try_from(i).expect("port");
            let (_, peer) = net.join(&format!("viewer{i}"), port, |p| p.subscriber_offer(1, 1));
            net.engine
                .subscribe(peer, video, net.now)
                .expect("subscribe");
        }
        net.run();
        let mut room = Room {
            net,
            subscribers,
            publisher,
            sent: 0,
        };
        let before = room.net.engine.stats().packets_forwarded;
        let datagrams = room.publisher_datagrams(WARM_UP_PACKETS);
        room.pump(&datagrams);
        let forwarded = room.net.engine.stats().packets_forwarded - before;
        assert_eq!(
            forwarded,
            (WARM_UP_PACKETS * subscribers) as u64,
            "every packet reached every subscriber"
        );
        room
    }

    /// The publisher's next `count` video packets, SRTP-protected, ready for `pump`. The sender's
    /// own work, kept out of what is measured.
    pub fn publisher_datagrams(&mut self, count: usize) -> Vec<Vec<u8>> {
        let peer = &mut self.net.peers[self.publisher];
        (0..count)
            .map(|_| {
                let n = self.sent;
                self.sent = self.sent.wrapping_add(1);
                let payload = vp8_payload(n.is_multiple_of(KEYFRAME_EVERY), 7, PAYLOAD_LEN);
                // 90 kHz clock, one packet per millisecond.
                peer.send_rtp(
                    VP8_PT,
                    VIDEO_SSRC,
                    n as u16,
                    n.wrapping_mul(90),
                    true,
                    &payload,
                );
                peer.take_pending().expect("protected packet")
            })
            .collect()
    }

    /// Every peer sends a consent check (RFC 7675), so that long runs of simulated time do not
    /// expire anyone; call between measured batches.
    pub fn refresh_consent(&mut self) {
        for peer in &mut self.net.peers {
            peer.send_connectivity_check(true);
        }
        self.net.run();
    }

    /// Where the publisher's datagrams come from.
    pub fn publisher_address(&self) -> std::net::SocketAddr {
        self.net.peers[self.publisher].address
    }

    /// Feeds `datagrams` from the publisher through `packet_path::pump` (1 ms apart, nothing
    /// delivered); returns datagrams sent.
    pub fn pump(&mut self, datagrams: &[Vec<u8>]) -> usize {
        let source = self.net.peers[self.publisher].address;
        packet_path::pump(&mut self.net.engine, datagrams, source, &mut self.net.now)
    }
}

/// Where the second engine of [`RelayedRoom`] listens.
const EDGE_ENGINE: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    40001,
);

/// Two engines (a cluster's nodes): the publisher on the origin, `subscribers` viewers on the
/// edge, the video track crossing one relay link between them.
pub struct RelayedRoom {
    pub origin: Room,
    pub edge: SimNetwork,
    pub subscribers: usize,
}

impl RelayedRoom {
    /// # Panics
    /// If the sessions or the link do not come up, or a warm-up packet does not reach every viewer.
    pub fn new(subscribers: usize) -> Self {
        let mut origin = Room::new(0);
        let video = origin
            .net
            .published(MediaKind::Video)
            .expect("video track published");
        let mut edge = SimNetwork::at(12, EDGE_ENGINE, origin.net.now);
        let keys = [0x42; sfu_core::engine::RELAY_KEYING_MATERIAL_LEN];
        let now = origin.net.now;
        let origin_link = origin
            .net
            .engine
            .create_relay_peer(EDGE_ENGINE, &keys, true, now)
            .expect("origin link");
        let edge_link = edge
            .engine
            .create_relay_peer(sfu_testkit::SERVER, &keys, false, now)
            .expect("edge link");
        let relayed = origin
            .net
            .engine
            .relay_export(origin_link, video, now)
            .expect("export");
        let imported = edge
            .engine
            .relay_import(edge_link, &relayed, "alice", 0)
            .expect("import");
        for i in 0..subscribers {
            let port = 6000 + u16::try_from(i).expect("port");
            let (_, peer) = edge.join(&format!("viewer{i}"), port, |p| p.subscriber_offer(1, 1));
            edge.engine
                .subscribe(peer, imported, edge.now)
                .expect("subscribe");
        }
        let mut room = RelayedRoom {
            origin,
            edge,
            subscribers,
        };
        // Up to the publisher's next keyframe, where the link and the viewers start, then a
        // batch that must reach everyone.
        let to_keyframe =
            KEYFRAME_EVERY as usize - (room.origin.sent as usize % KEYFRAME_EVERY as usize);
        let datagrams = room.origin.publisher_datagrams(to_keyframe);
        room.pump(&datagrams);
        let datagrams = room.origin.publisher_datagrams(WARM_UP_PACKETS);
        let sent = room.pump(&datagrams);
        assert!(
            sent >= WARM_UP_PACKETS * subscribers,
            "every packet reached every viewer: {sent}"
        );
        room
    }

    /// Every peer of both engines refreshes its consent; call between measured batches.
    pub fn refresh_consent(&mut self) {
        self.origin.refresh_consent();
        for peer in &mut self.edge.peers {
            peer.send_connectivity_check(true);
        }
        self.edge.run();
    }

    /// Feeds the publisher's `datagrams` to the origin, 1 ms apart, and what the origin sends the
    /// edge straight to the edge, draining and recycling both as drivers would; returns the
    /// datagrams the edge sent its viewers.
    pub fn pump(&mut self, datagrams: &[Vec<u8>]) -> usize {
        let publisher = self.origin.publisher_address();
        let origin = &mut self.origin.net;
        let edge = &mut self.edge;
        let mut sent = 0;
        for datagram in datagrams {
            origin.now += std::time::Duration::from_millis(1);
            edge.now = origin.now;
            origin.engine.handle_input(Input::Datagram {
                at: origin.now,
                source: publisher,
                data: datagram,
            });
            while let Output::Transmit(transmit) = drain(&mut origin.engine) {
                if transmit.destination == EDGE_ENGINE {
                    edge.engine.handle_input(Input::Datagram {
                        at: edge.now,
                        source: sfu_testkit::SERVER,
                        data: &transmit.contents,
                    });
                    while let Output::Transmit(out) = drain(&mut edge.engine) {
                        sent += 1;
                        edge.engine.recycle(out.contents);
                    }
                }
                origin.engine.recycle(transmit.contents);
            }
        }
        sent
    }
}

/// The engine's next transmit, skipping events; `Output::Timeout` when there is none.
fn drain(engine: &mut sfu_core::Engine) -> Output {
    loop {
        match engine.poll_output() {
            Output::Event(_) => continue,
            other => return other,
        }
    }
}
