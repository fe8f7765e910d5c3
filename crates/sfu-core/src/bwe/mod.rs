//! Send-side bandwidth estimation of the GCC class (draft-ietf-rmcat-gcc-02) for one
//! connection: delay-based and loss-based control over transport-cc results, probing, and REMB as
//! a cap. Results and time in, a rate and probe requests out; reading feedback is `twcc`'s,
//! sending padding the caller's.
//!
//! The estimate is `min(delay-based, loss-based cap, REMB)` within the configured bounds:
//!
//! - delay-based ([`delay`], [`aimd`]): packets are grouped by send time, the slope of their
//!   queuing delay over the last 20 groups is compared with an adaptive threshold, and the
//!   resulting overuse / normal / underuse signal drives an AIMD rate (cut to 85% of what the
//!   receiver got; grow 8% a second, or about a packet per round trip near the last cut);
//! - loss-based ([`loss`]): under 2% loss the cap lifts, over 10% it cuts by half the loss, in
//!   between it holds;
//! - probing ([`probe`]): a short burst (20 ms, at least 4 kB) at 3x the estimate at the start
//!   and at 1.5x after 2.5 s without overuse, loss or probe; if it arrives at the rate it was
//!   sent, the estimate jumps there and the search doubles until the link saturates, and a
//!   saturated burst measures the capacity (the estimate goes to 95% of it).

mod acked;
mod aimd;
mod delay;
mod loss;
mod probe;

use std::time::{Duration, Instant};

use crate::twcc::PacketResult;

pub use delay::BandwidthUsage;
pub use probe::{Padding, ProbeCluster, Prober};

/// Until feedback gives a round trip, assume this one.
const DEFAULT_RTT: Duration = Duration::from_millis(100);
const RTT_GAIN: f64 = 0.125;
/// A REMB older than this no longer caps the estimate: the receiver stopped sending them.
const REMB_TIMEOUT: Duration = Duration::from_secs(5);
/// Results per feedback the scratch buffer holds without growing (one feedback packet of ours
/// holds at most 256; a browser's may hold more, and the buffer then grows once).
const SCRATCH_RESULTS: usize = 256;

/// The estimator's parts at one moment, for stats and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BweStats {
    pub estimate_bps: u64,
    pub delay_based_bps: u64,
    pub loss_cap_bps: Option<u64>,
    pub remb_bps: Option<u64>,
    /// What the receiver got over the last half second.
    pub acked_bps: Option<u64>,
    /// Of the last complete loss sample.
    pub loss_ratio: f64,
    pub usage: BandwidthUsage,
    /// The overuse detector's current threshold on the modified trend.
    pub threshold: f64,
    /// Smoothed time from sending a packet to receiving feedback about it.
    pub feedback_rtt: Duration,
}

/// Send-side bandwidth estimator for one connection. Feed it every transport-cc feedback's
/// results and every REMB; read [`BandwidthEstimator::estimate_bps`]; send the probes
/// [`BandwidthEstimator::poll_probe`] asks for (see [`Prober`]).
#[derive(Debug)]
pub struct BandwidthEstimator {
    min_bps: f64,
    max_bps: f64,
    delay: delay::DelayDetector,
    aimd: aimd::AimdRateControl,
    loss: loss::LossControl,
    acked: acked::AckedBitrate,
    probes: probe::ProbeControl,
    remb: Option<(f64, Instant)>,
    has_feedback: bool,
    rtt: Option<Duration>,
    /// Received results sorted by arrival, reused across feedbacks.
    by_arrival: Vec<PacketResult>,
}

impl BandwidthEstimator {
    /// Starts at `initial_bps`, never going outside `min_bps..=max_bps`.
    pub fn new(initial_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        let (min_bps, max_bps) = bounds(min_bps, max_bps);
        BandwidthEstimator {
            min_bps,
            max_bps,
            delay: delay::DelayDetector::default(),
            aimd: aimd::AimdRateControl::new(initial_bps as f64, min_bps, max_bps),
            loss: loss::LossControl::default(),
            acked: acked::AckedBitrate::default(),
            probes: probe::ProbeControl::default(),
            remb: None,
            has_feedback: false,
            rtt: None,
            by_arrival: Vec::with_capacity(SCRATCH_RESULTS),
        }
    }

    /// Changes the bounds, e.g. to the sum of the subscribed layers' maximum bitrates, so that
    /// probing stops where more would not be used.
    pub fn set_bounds(&mut self, min_bps: u64, max_bps: u64) {
        let (min_bps, max_bps) = bounds(min_bps, max_bps);
        self.min_bps = min_bps;
        self.max_bps = max_bps;
        self.aimd.set_bounds(min_bps, max_bps);
    }

    /// The current estimate of what the path carries, in bits per second.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate() as u64
    }

    fn estimate(&self) -> f64 {
        let remb = self.remb.map(|(bps, _)| bps);
        let mut estimate = match remb {
            // Without transport-cc, a receiver's REMB is all there is to go by.
            Some(remb) if !self.has_feedback => remb,
            _ => self.aimd.estimate_bps(),
        };
        for cap in [self.loss.cap_bps(), remb].into_iter().flatten() {
            estimate = estimate.min(cap);
        }
        estimate.clamp(self.min_bps, self.max_bps)
    }

    fn feedback_rtt(&self) -> Duration {
        self.rtt.unwrap_or(DEFAULT_RTT)
    }

    /// Takes the results of one transport-cc feedback (from `TwccSender::on_feedback`) received
    /// at `now`.
    pub fn on_feedback(&mut self, results: &[PacketResult], now: Instant) {
        self.expire_remb(now);
        let Some(newest_send) = results.iter().map(|r| r.send_time).max() else {
            return;
        };
        self.has_feedback = true;
        let sample = now.saturating_duration_since(newest_send);
        self.rtt = Some(match self.rtt {
            None => sample,
            Some(rtt) => rtt.mul_f64(1.0 - RTT_GAIN) + sample.mul_f64(RTT_GAIN),
        });
        let rtt = self.feedback_rtt();

        let estimate = self.estimate();
        self.loss
            .on_results(results, estimate, self.aimd.estimate_bps(), rtt, now);

        self.by_arrival.clear();
        self.by_arrival
            .extend(results.iter().filter(|r| r.arrival_us.is_some()));
        self.by_arrival
            .sort_unstable_by_key(|r| (r.arrival_us, r.seq));
        for r in &self.by_arrival {
            if let Some(arrival_us) = r.arrival_us {
                self.acked.on_packet(arrival_us, r.size_bytes);
            }
            self.delay.on_packet(r);
        }

        let probe = self.probes.on_results(results, now, self.ceiling());
        let usage = self.delay.usage();
        match probe {
            Some(probe) if usage != BandwidthUsage::Overusing => {
                if self.aimd.raise_to(probe.bps, probe.saturated, now) {
                    self.acked.reset();
                }
            }
            _ => self.aimd.update(usage, self.acked.rate_bps(), rtt, now),
        }
    }

    /// Takes a receiver's REMB: the estimate stays at or below `bitrate_bps` until a newer REMB
    /// or until REMBs stop coming for 5 s.
    pub fn on_remb(&mut self, bitrate_bps: u64, now: Instant) {
        self.remb = Some((bitrate_bps as f64, now));
    }

    fn expire_remb(&mut self, now: Instant) {
        if self
            .remb
            .is_some_and(|(_, at)| now.saturating_duration_since(at) > REMB_TIMEOUT)
        {
            self.remb = None;
        }
    }

    /// The most worth probing for.
    fn ceiling(&self) -> f64 {
        let remb = self.remb.map_or(f64::INFINITY, |(bps, _)| bps);
        self.max_bps.min(remb)
    }

    /// A probe cluster to send now, if one is due: at the start, to continue a successful
    /// search, and after a calm spell. Only one is outstanding at a time. Probing needs
    /// transport-cc feedback to be read.
    pub fn poll_probe(&mut self, now: Instant) -> Option<ProbeCluster> {
        self.expire_remb(now);
        let ctx = probe::ProbeContext {
            estimate_bps: self.estimate(),
            ceiling_bps: self.ceiling(),
            calm: self.delay.usage() == BandwidthUsage::Normal && self.loss.cap_bps().is_none(),
            last_decrease: self.aimd.last_decrease(),
        };
        self.probes.poll(now, ctx)
    }

    pub fn stats(&self) -> BweStats {
        BweStats {
            estimate_bps: self.estimate_bps(),
            delay_based_bps: self.aimd.estimate_bps() as u64,
            loss_cap_bps: self.loss.cap_bps().map(|c| c as u64),
            remb_bps: self.remb.map(|(bps, _)| bps as u64),
            acked_bps: self.acked.rate_bps().map(|a| a as u64),
            loss_ratio: self.loss.loss_ratio(),
            usage: self.delay.usage(),
            threshold: self.delay.threshold(),
            feedback_rtt: self.feedback_rtt(),
        }
    }
}

fn bounds(min_bps: u64, max_bps: u64) -> (f64, f64) {
    let min = min_bps.max(1) as f64;
    (min, (max_bps as f64).max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(t0: Instant, seq: u64, sent_ms: u64, arrival_ms: i64) -> PacketResult {
        PacketResult {
            seq,
            send_time: t0 + Duration::from_millis(sent_ms),
            size_bytes: 1200,
            arrival_us: Some(arrival_ms * 1000),
            probe_cluster: None,
        }
    }

    #[test]
    fn starts_at_the_initial_estimate_within_bounds() {
        assert_eq!(
            BandwidthEstimator::new(300_000, 50_000, 5_000_000).estimate_bps(),
            300_000
        );
        assert_eq!(
            BandwidthEstimator::new(10, 50_000, 5_000_000).estimate_bps(),
            50_000
        );
        let mut bwe = BandwidthEstimator::new(3_000_000, 50_000, 5_000_000);
        bwe.set_bounds(50_000, 1_000_000);
        assert_eq!(bwe.estimate_bps(), 1_000_000);
    }

    #[test]
    fn remb_caps_the_estimate_and_expires() {
        let t0 = crate::test_epoch();
        let mut bwe = BandwidthEstimator::new(1_000_000, 50_000, 5_000_000);
        bwe.on_feedback(&[received(t0, 1, 0, 10)], t0 + Duration::from_millis(50));
        bwe.on_remb(400_000, t0);
        assert_eq!(bwe.estimate_bps(), 400_000);
        bwe.on_feedback(&[received(t0, 2, 0, 10)], t0 + Duration::from_secs(6));
        assert!(bwe.estimate_bps() >= 1_000_000);
    }

    #[test]
    fn without_transport_feedback_remb_is_the_estimate() {
        let t0 = crate::test_epoch();
        let mut bwe = BandwidthEstimator::new(300_000, 50_000, 5_000_000);
        bwe.on_remb(2_000_000, t0);
        assert_eq!(bwe.estimate_bps(), 2_000_000);
    }

    #[test]
    fn the_first_probe_is_three_times_the_initial_estimate() {
        let t0 = crate::test_epoch();
        let mut bwe = BandwidthEstimator::new(300_000, 50_000, 5_000_000);
        let cluster = bwe.poll_probe(t0).unwrap();
        assert_eq!(cluster.target_bps, 900_000);
        assert_eq!(bwe.poll_probe(t0), None);
        let mut capped = BandwidthEstimator::new(300_000, 50_000, 5_000_000);
        capped.on_remb(320_000, t0);
        assert_eq!(capped.poll_probe(t0), None);
    }

    #[test]
    fn a_feedback_allocates_nothing_after_the_first() {
        let t0 = crate::test_epoch();
        let mut bwe = BandwidthEstimator::new(300_000, 50_000, 5_000_000);
        let results: Vec<_> = (0..200)
            .map(|i| received(t0, i, i, 20 + i as i64))
            .collect();
        let capacity = bwe.by_arrival.capacity();
        for k in 0..20 {
            bwe.on_feedback(&results, t0 + Duration::from_millis(300 + k));
        }
        assert_eq!(bwe.by_arrival.capacity(), capacity);
    }
}
