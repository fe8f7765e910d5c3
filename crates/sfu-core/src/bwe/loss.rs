//! Loss-based control (draft-ietf-rmcat-gcc-02 §6): a cap on the rate from the fraction of
//! packets feedback reports lost. Under 2% the cap lifts, over 10% it cuts, between it holds.
//!
//! A cut applies to the rate the lossy packets were sent at, not to the current estimate: by
//! the time a sample is complete the delay-based side may already have cut for the same queue
//! overflow, and cutting its result again would undershoot.

use std::time::{Duration, Instant};

use crate::twcc::PacketResult;

const LOW_LOSS: f64 = 0.02;
const HIGH_LOSS: f64 = 0.10;
const INCREASE_PER_SECOND: f64 = 1.08;
const MAX_INCREASE_STEP: Duration = Duration::from_secs(1);
/// A loss ratio is judged over at least this many packets, or fewer once this long has passed:
/// small samples of random loss swing across the thresholds.
const FULL_SAMPLE: u32 = 100;
const MIN_SAMPLE: u32 = 20;
const SAMPLE_TIME: Duration = Duration::from_secs(1);
/// Shorter samples give no trustworthy send rate; the estimate stands in for it.
const MIN_SEND_SPAN: Duration = Duration::from_millis(50);
/// Cuts come no closer than this plus a round trip, so one loss episode counts once.
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug, Default)]
pub(super) struct LossControl {
    lost: u32,
    total: u32,
    sample_start: Option<Instant>,
    /// Bytes and send-time span of the sample's packets.
    sample_bytes: u64,
    first_send: Option<Instant>,
    last_send: Option<Instant>,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// `None` while loss is low enough not to limit the rate.
    cap_bps: Option<f64>,
    last_ratio: f64,
}

impl LossControl {
    pub(super) fn cap_bps(&self) -> Option<f64> {
        self.cap_bps
    }

    /// The loss ratio of the last complete sample.
    pub(super) fn loss_ratio(&self) -> f64 {
        self.last_ratio
    }

    /// Counts the results of one feedback; once a sample is complete, moves the cap.
    /// `estimate_bps` is the current combined estimate, `delay_bps` the delay-based one.
    pub(super) fn on_results(
        &mut self,
        results: &[PacketResult],
        estimate_bps: f64,
        delay_bps: f64,
        rtt: Duration,
        now: Instant,
    ) {
        let start = *self.sample_start.get_or_insert(now);
        self.total += results.len() as u32;
        for r in results {
            self.lost += u32::from(r.arrival_us.is_none());
            self.sample_bytes += r.size_bytes as u64;
            self.first_send = Some(self.first_send.map_or(r.send_time, |t| t.min(r.send_time)));
            self.last_send = Some(self.last_send.map_or(r.send_time, |t| t.max(r.send_time)));
        }
        let complete = self.total >= FULL_SAMPLE
            || (self.total >= MIN_SAMPLE && now.saturating_duration_since(start) >= SAMPLE_TIME);
        if !complete {
            return;
        }
        let ratio = f64::from(self.lost) / f64::from(self.total);
        let send_span = match (self.first_send, self.last_send) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let sent_bps = if send_span >= MIN_SEND_SPAN.as_secs_f64() {
            self.sample_bytes as f64 * 8.0 / send_span
        } else {
            estimate_bps
        };
        self.last_ratio = ratio;
        self.lost = 0;
        self.total = 0;
        self.sample_bytes = 0;
        self.first_send = None;
        self.last_send = None;
        self.sample_start = Some(now);
        let elapsed = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(MAX_INCREASE_STEP);
        self.last_update = Some(now);
        if ratio < LOW_LOSS {
            if let Some(cap) = self.cap_bps {
                let cap = cap * INCREASE_PER_SECOND.powf(elapsed.as_secs_f64()) + 1_000.0;
                self.cap_bps = (cap < delay_bps).then_some(cap);
            }
        } else if ratio > HIGH_LOSS {
            let settled = self
                .last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_INTERVAL + rtt);
            if settled {
                let base = self.cap_bps.map_or(sent_bps, |c| c.min(sent_bps));
                self.cap_bps = Some(base * (1.0 - 0.5 * ratio));
                self.last_decrease = Some(now);
            }
        } else {
            // Hold where it is; entering the band fixes it at the current rate.
            self.cap_bps.get_or_insert(estimate_bps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(t0: Instant, n: usize, lost_every: usize) -> Vec<PacketResult> {
        (0..n)
            .map(|i| PacketResult {
                seq: i as u64,
                send_time: t0,
                size_bytes: 1000,
                arrival_us: (lost_every == 0 || i % lost_every != 0).then_some(0),
                probe_cluster: None,
            })
            .collect()
    }

    const RTT: Duration = Duration::from_millis(50);

    #[test]
    fn low_loss_sets_no_cap() {
        let t0 = crate::test_epoch();
        let mut loss = LossControl::default();
        loss.on_results(&results(t0, 100, 100), 1e6, 1e6, RTT, t0);
        assert_eq!(loss.cap_bps(), None);
        assert_eq!(loss.loss_ratio(), 0.01);
    }

    #[test]
    fn high_loss_cuts_by_half_the_ratio_once_per_interval() {
        let t0 = crate::test_epoch();
        let mut loss = LossControl::default();
        loss.on_results(&results(t0, 100, 5), 1e6, 1e6, RTT, t0);
        assert_eq!(loss.cap_bps(), Some(1e6 * 0.9));
        loss.on_results(
            &results(t0, 100, 5),
            1e6,
            1e6,
            RTT,
            t0 + Duration::from_millis(100),
        );
        assert_eq!(loss.cap_bps(), Some(1e6 * 0.9));
        loss.on_results(
            &results(t0, 100, 5),
            1e6,
            1e6,
            RTT,
            t0 + Duration::from_millis(400),
        );
        assert_eq!(loss.cap_bps(), Some(1e6 * 0.9 * 0.9));
    }

    #[test]
    fn moderate_loss_holds_and_low_loss_lifts_the_cap() {
        let t0 = crate::test_epoch();
        let mut loss = LossControl::default();
        loss.on_results(&results(t0, 100, 20), 8e5, 1e6, RTT, t0);
        assert_eq!(loss.cap_bps(), Some(8e5));
        // The delay-based rate dipping does not drag the held cap down.
        loss.on_results(
            &results(t0, 100, 20),
            6e5,
            6e5,
            RTT,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(loss.cap_bps(), Some(8e5));
        loss.on_results(
            &results(t0, 100, 0),
            8e5,
            1e6,
            RTT,
            t0 + Duration::from_secs(2),
        );
        assert_eq!(loss.cap_bps(), Some(8e5 * 1.08 + 1e3));
        for s in 3..6 {
            loss.on_results(
                &results(t0, 100, 0),
                8e5,
                1e6,
                RTT,
                t0 + Duration::from_secs(s),
            );
        }
        assert_eq!(loss.cap_bps(), None);
    }

    #[test]
    fn a_cut_applies_to_the_rate_the_lossy_packets_were_sent_at() {
        let t0 = crate::test_epoch();
        let mut loss = LossControl::default();
        // 100 x 1000 bytes over 99 ms: about 8 Mbit/s, of which half was lost; the estimate has
        // meanwhile come down to 1 Mbit/s.
        let mut sample = results(t0, 100, 2);
        for (i, r) in sample.iter_mut().enumerate() {
            r.send_time = t0 + Duration::from_millis(i as u64);
        }
        loss.on_results(&sample, 1e6, 1e6, RTT, t0 + Duration::from_millis(300));
        let cap = loss.cap_bps().unwrap();
        assert!((cap - 0.75 * 800_000.0 / 0.099).abs() < 1.0, "{cap}");
    }

    #[test]
    fn small_samples_wait_for_time() {
        let t0 = crate::test_epoch();
        let mut loss = LossControl::default();
        loss.on_results(&results(t0, 30, 2), 1e6, 1e6, RTT, t0);
        assert_eq!(loss.cap_bps(), None);
        loss.on_results(
            &results(t0, 0, 0),
            1e6,
            1e6,
            RTT,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(loss.cap_bps(), Some(1e6 * 0.75));
    }
}
