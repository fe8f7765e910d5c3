//! One congestion-control loop in simulated time, shared by the estimator's tests and the BWE
//! benchmark: a sender paced at the estimate (plus the padding probes the estimator asks for)
//! over a `SimLink`, transport-cc feedback written by `TwccRecorder` and read back by
//! `TwccSender` after a fixed return delay. Not a model of a browser's estimator.

use crate::link::SimLink;
use sfu_core::bwe::{BandwidthEstimator, Prober};
use sfu_core::rtcp::{packets, RtcpPacket};
use sfu_core::twcc::{PacketResult, TransportFeedback, TwccRecorder, TwccSender};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The size of every media packet the sender paces out.
pub const MEDIA_PACKET_BYTES: usize = 1200;
/// RTP padding-only packets: 12-byte header, transport-cc extension, up to 255 padding bytes.
pub const PADDING_PACKET_BYTES: usize = 275;
/// How far `step` callers advance time between calls.
pub const TICK: Duration = Duration::from_millis(1);
/// The feedback path is not the bottleneck: a fixed delay back to the sender.
pub const FEEDBACK_PATH_DELAY: Duration = Duration::from_millis(20);

/// Sender, link, receiver and feedback path. Every buffer is reserved up front so that, once
/// warm, a `step` allocates nothing (the estimator's zero-allocation test relies on it).
pub struct CongestionLoop {
    link: SimLink,
    estimator: BandwidthEstimator,
    sender: TwccSender,
    recorder: TwccRecorder,
    prober: Prober,
    /// `(arrival, transport sequence)` of packets the link accepted.
    in_flight: VecDeque<(Instant, u16)>,
    /// `(due at the sender, feedback packet)`.
    feedback_in_flight: VecDeque<(Instant, Vec<u8>)>,
    results: Vec<PacketResult>,
    spare_buffers: Vec<Vec<u8>>,
    next_media: Instant,
    sent_bytes: u64,
    probes_started: usize,
}

impl CongestionLoop {
    /// Starts sending at `start` with the estimator at `initial_bps`.
    pub fn new(start: Instant, initial_bps: u64, link: SimLink) -> Self {
        CongestionLoop {
            link,
            estimator: BandwidthEstimator::new(initial_bps, 30_000, 20_000_000),
            sender: TwccSender::new(),
            recorder: TwccRecorder::new(),
            prober: Prober::new(PADDING_PACKET_BYTES),
            in_flight: VecDeque::with_capacity(4096),
            feedback_in_flight: VecDeque::with_capacity(64),
            results: Vec::with_capacity(1024),
            spare_buffers: (0..64).map(|_| Vec::with_capacity(1500)).collect(),
            next_media: start,
            sent_bytes: 0,
            probes_started: 0,
        }
    }

    /// Everything due up to `now`: sends at their exact paced instants, arrivals, feedback
    /// written and delivered, a probe started if the estimator wants one.
    pub fn step(&mut self, now: Instant) {
        self.send_due(now);
        self.receive_due(now);
        self.deliver_feedback_due(now);
        if let Some(cluster) = self.estimator.poll_probe(now) {
            self.prober.start(cluster, now);
            self.probes_started += 1;
        }
    }

    /// Media and padding due up to `now`, in time order.
    fn send_due(&mut self, now: Instant) {
        loop {
            let padding_at = self.prober.poll_timeout().filter(|&at| at <= now);
            let media_at = Some(self.next_media).filter(|&at| at <= now);
            let (at, size, cluster) = match (media_at, padding_at) {
                (None, None) => break,
                (Some(media), padding) if padding.is_none_or(|p| media <= p) => {
                    let cluster = self.prober.on_media_sent(MEDIA_PACKET_BYTES, media);
                    let rate = self.estimator.estimate_bps().max(1) as f64;
                    self.next_media =
                        media + Duration::from_secs_f64(MEDIA_PACKET_BYTES as f64 * 8.0 / rate);
                    (media, MEDIA_PACKET_BYTES, cluster)
                }
                (_, padding) => {
                    let at = padding.unwrap_or(now);
                    match self.prober.poll_padding(at) {
                        Some(padding) => (at, padding.size_bytes, Some(padding.cluster)),
                        None => continue,
                    }
                }
            };
            let sequence = self.sender.on_send(at, size, cluster);
            self.sent_bytes += size as u64;
            if let Some(arrival) = self.link.send(at, size) {
                self.in_flight.push_back((arrival, sequence));
            }
        }
    }

    /// Arrivals, and the feedback the receiver writes about them.
    fn receive_due(&mut self, now: Instant) {
        while let Some(&(arrival, sequence)) = self.in_flight.front().filter(|(a, _)| *a <= now) {
            self.in_flight.pop_front();
            self.recorder.record(sequence, arrival);
        }
        loop {
            let mut buffer = self.spare_buffers.pop().unwrap_or_default();
            buffer.clear();
            if self.recorder.poll_feedback(now, 1, 2, &mut buffer) {
                self.feedback_in_flight
                    .push_back((now + FEEDBACK_PATH_DELAY, buffer));
            } else {
                self.spare_buffers.push(buffer);
                break;
            }
        }
    }

    fn deliver_feedback_due(&mut self, now: Instant) {
        while let Some((_, buffer)) = self.feedback_in_flight.front().filter(|(at, _)| *at <= now) {
            self.results.clear();
            for packet in packets(buffer) {
                if let Ok(RtcpPacket::TransportCc(cc)) = packet {
                    if let Ok(feedback) = TransportFeedback::parse(&cc) {
                        self.sender.on_feedback(&feedback, &mut self.results);
                    }
                }
            }
            self.estimator.on_feedback(&self.results, now);
            if let Some((_, buffer)) = self.feedback_in_flight.pop_front() {
                self.spare_buffers.push(buffer);
            }
        }
    }

    pub fn estimate_bps(&self) -> u64 {
        self.estimator.estimate_bps()
    }

    pub fn link(&self) -> &SimLink {
        &self.link
    }

    /// Bytes offered to the link so far, media and padding.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes
    }

    pub fn probes_started(&self) -> usize {
        self.probes_started
    }
}
