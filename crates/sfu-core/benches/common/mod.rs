//! Bench fixture: one engine with a connected publisher and N subscribers to its video track, on
//! sfu-testkit's simulated network. Shared by the criterion benches and the allocation count.

use sfu_core::{Event, MediaKind};
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
        let publisher = net.add_peer(SimPeer::new("alice", 5000));
        let publisher_id = net.engine.create_peer(net.now);
        let offer = net.peers[publisher].publisher_offer();
        let answer = net
            .engine
            .apply_offer(publisher_id, &offer, net.now)
            .expect("publisher answer");
        net.peers[publisher].apply_answer(&answer);
        net.connect(publisher);
        let video = net
            .events
            .iter()
            .find_map(|e| match e {
                Event::TrackPublished {
                    track,
                    kind: MediaKind::Video,
                    ..
                } => Some(*track),
                _ => None,
            })
            .expect("video track published");
        for i in 0..subscribers {
            let port = 6000 + u16::try_from(i).expect("port");
            let index = net.add_peer(SimPeer::new(&format!("viewer{i}"), port));
            let peer = net.engine.create_peer(net.now);
            let offer = net.peers[index].subscriber_offer(1, 1);
            let answer = net
                .engine
                .apply_offer(peer, &offer, net.now)
                .expect("subscriber answer");
            net.peers[index].apply_answer(&answer);
            net.connect(index);
            assert!(net.peers[index].connected, "viewer{i} connected");
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

    /// Feeds `datagrams` from the publisher through `packet_path::pump` (1 ms apart, nothing
    /// delivered); returns datagrams sent.
    pub fn pump(&mut self, datagrams: &[Vec<u8>]) -> usize {
        let source = self.net.peers[self.publisher].address;
        packet_path::pump(&mut self.net.engine, datagrams, source, &mut self.net.now)
    }
}
