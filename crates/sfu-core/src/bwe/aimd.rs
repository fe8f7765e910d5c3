//! The delay-based rate (draft-ietf-rmcat-gcc-02 §5.5): additive-increase, multiplicative-
//! decrease driven by the overuse signal, with an estimate of the link's capacity that makes the
//! increase cautious near it. Rate only; the signal is `delay`'s.

use std::time::{Duration, Instant};

use super::BandwidthUsage;

/// GCC §5.5: on overuse the rate drops to this fraction of what the receiver got.
const BETA: f64 = 0.85;
/// Multiplicative increase far from the known capacity: 8% per second.
const INCREASE_PER_SECOND: f64 = 1.08;
const MAX_INCREASE_STEP: Duration = Duration::from_secs(1);
/// Additive increase near the capacity: about one packet per response time.
const ASSUMED_PACKET_BITS: f64 = 1200.0 * 8.0;
const ASSUMED_FRAME_RATE: f64 = 30.0;
const MIN_ADDITIVE_BPS_PER_SECOND: f64 = 4_000.0;
/// How long the sender takes to see the effect of a change: the round trip plus about 100 ms
/// for the detector, doubled so that the rate overshoots the capacity by less before the
/// detector notices.
const RESPONSE_EXTRA: Duration = Duration::from_millis(100);
const RESPONSE_FACTOR: u32 = 2;
/// The rate never grows past this multiple of the acknowledged rate (plus a little): an
/// application-limited sender learns nothing about the link above what it sends.
const ACKED_HEADROOM: f64 = 1.5;
const ACKED_HEADROOM_BPS: f64 = 10_000.0;
/// Overuse lasting longer than a round trip (within these bounds) cuts again.
const MIN_DECREASE_INTERVAL: Duration = Duration::from_millis(10);
const MAX_DECREASE_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
    Decrease,
}

/// Running estimate of the rate at which overuse happens, in kbit/s, with a normalised variance
/// so that the "near capacity" band scales with the rate.
#[derive(Debug, Clone, Copy)]
struct LinkCapacity {
    mean_kbps: Option<f64>,
    deviation: f64,
}

const CAPACITY_ALPHA: f64 = 0.05;
const MIN_DEVIATION: f64 = 0.4;
const MAX_DEVIATION: f64 = 2.5;

impl Default for LinkCapacity {
    fn default() -> Self {
        LinkCapacity {
            mean_kbps: None,
            deviation: MIN_DEVIATION,
        }
    }
}

impl LinkCapacity {
    fn on_overuse(&mut self, acked_bps: f64) {
        let sample = acked_bps / 1e3;
        let mean = match self.mean_kbps {
            None => sample,
            Some(mean) => (1.0 - CAPACITY_ALPHA) * mean + CAPACITY_ALPHA * sample,
        };
        let error = mean - sample;
        self.deviation = ((1.0 - CAPACITY_ALPHA) * self.deviation
            + CAPACITY_ALPHA * error * error / mean.max(1.0))
        .clamp(MIN_DEVIATION, MAX_DEVIATION);
        self.mean_kbps = Some(mean);
    }

    fn spread_kbps(&self, mean: f64) -> f64 {
        3.0 * (self.deviation * mean).sqrt()
    }

    fn upper_bps(&self) -> Option<f64> {
        self.mean_kbps.map(|m| (m + self.spread_kbps(m)) * 1e3)
    }

    fn lower_bps(&self) -> Option<f64> {
        self.mean_kbps.map(|m| (m - self.spread_kbps(m)) * 1e3)
    }
}

#[derive(Debug)]
pub(super) struct AimdRateControl {
    estimate_bps: f64,
    min_bps: f64,
    max_bps: f64,
    state: RateState,
    capacity: LinkCapacity,
    last_change: Option<Instant>,
    last_decrease: Option<Instant>,
    last_raise: Option<Instant>,
}

impl AimdRateControl {
    pub(super) fn new(initial_bps: f64, min_bps: f64, max_bps: f64) -> Self {
        AimdRateControl {
            estimate_bps: initial_bps.clamp(min_bps, max_bps),
            min_bps,
            max_bps,
            state: RateState::Hold,
            capacity: LinkCapacity::default(),
            last_change: None,
            last_decrease: None,
            last_raise: None,
        }
    }

    pub(super) fn estimate_bps(&self) -> f64 {
        self.estimate_bps
    }

    pub(super) fn set_bounds(&mut self, min_bps: f64, max_bps: f64) {
        self.min_bps = min_bps;
        self.max_bps = max_bps;
        self.estimate_bps = self.estimate_bps.clamp(min_bps, max_bps);
    }

    /// Jumps to a probe's result if it is higher and returns whether it did. The capacity
    /// learnt so far no longer holds; a `saturated` probe measured the new one.
    pub(super) fn raise_to(&mut self, bps: f64, saturated: bool, now: Instant) -> bool {
        let raise = bps > self.estimate_bps;
        if raise {
            self.estimate_bps = bps.clamp(self.min_bps, self.max_bps);
            self.capacity = LinkCapacity::default();
            if saturated {
                self.capacity.mean_kbps = Some(bps / 1e3);
            }
            self.last_change = Some(now);
            self.last_raise = Some(now);
        }
        raise
    }

    pub(super) fn last_decrease(&self) -> Option<Instant> {
        self.last_decrease
    }

    /// Applies the delay signal of one feedback. `acked_bps` is what the receiver got lately.
    pub(super) fn update(
        &mut self,
        usage: BandwidthUsage,
        acked_bps: Option<f64>,
        rtt: Duration,
        now: Instant,
    ) {
        if usage == BandwidthUsage::Overusing && !self.may_decrease(acked_bps, rtt, now) {
            return;
        }
        match usage {
            BandwidthUsage::Normal if self.state == RateState::Hold => {
                self.state = RateState::Increase;
                self.last_change = Some(now);
            }
            BandwidthUsage::Normal => {}
            BandwidthUsage::Overusing => self.state = RateState::Decrease,
            BandwidthUsage::Underusing => self.state = RateState::Hold,
        }
        match self.state {
            RateState::Hold => {}
            RateState::Increase => self.increase(acked_bps, rtt, now),
            RateState::Decrease => self.decrease(acked_bps, now),
        }
        self.estimate_bps = self.estimate_bps.clamp(self.min_bps, self.max_bps);
    }

    fn increase(&mut self, acked_bps: Option<f64>, rtt: Duration, now: Instant) {
        if self
            .capacity
            .upper_bps()
            .is_some_and(|upper| self.estimate_bps > upper)
        {
            // Past the band where overuse used to start: the link got better.
            self.capacity = LinkCapacity::default();
        }
        let elapsed = self
            .last_change
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(MAX_INCREASE_STEP)
            .as_secs_f64();
        self.last_change = Some(now);
        let step = if self.capacity.mean_kbps.is_some() {
            self.additive_bps_per_second(rtt) * elapsed
        } else {
            (self.estimate_bps * (INCREASE_PER_SECOND.powf(elapsed) - 1.0)).max(1_000.0 * elapsed)
        };
        let limit = acked_bps.map_or(f64::INFINITY, |a| ACKED_HEADROOM * a + ACKED_HEADROOM_BPS);
        if self.estimate_bps < limit {
            self.estimate_bps = (self.estimate_bps + step).min(limit);
        }
    }

    fn additive_bps_per_second(&self, rtt: Duration) -> f64 {
        let frame_bits = self.estimate_bps / ASSUMED_FRAME_RATE;
        let packets = (frame_bits / ASSUMED_PACKET_BITS).ceil().max(1.0);
        let response = ((rtt + RESPONSE_EXTRA) * RESPONSE_FACTOR).as_secs_f64();
        (frame_bits / packets / response).max(MIN_ADDITIVE_BPS_PER_SECOND)
    }

    /// Overuse that outlasts a round trip since the last cut, or a collapse of the acknowledged
    /// rate, cuts again; anything else is the same congestion still draining.
    fn may_decrease(&self, acked_bps: Option<f64>, rtt: Duration, now: Instant) -> bool {
        let interval = rtt.clamp(MIN_DECREASE_INTERVAL, MAX_DECREASE_INTERVAL);
        let Some(acked) = acked_bps else {
            // Without a measured rate (just after a jump) a cut is a guess from the estimate:
            // make it once, not once per round trip.
            return self.last_decrease <= self.last_raise;
        };
        let settled = self
            .last_decrease
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        settled || acked < self.estimate_bps / 2.0
    }

    fn decrease(&mut self, acked_bps: Option<f64>, now: Instant) {
        let acked = acked_bps.unwrap_or(self.estimate_bps);
        let mut target = BETA * acked;
        if target > self.estimate_bps {
            if let Some(mean) = self.capacity.mean_kbps {
                target = BETA * mean * 1e3;
            }
        }
        if self.capacity.lower_bps().is_some_and(|lower| acked < lower) {
            // Overuse well below the known capacity: the link got worse.
            self.capacity = LinkCapacity::default();
        }
        self.capacity.on_overuse(acked);
        self.estimate_bps = self.estimate_bps.min(target);
        self.state = RateState::Hold;
        self.last_change = Some(now);
        self.last_decrease = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn increases_8_percent_a_second_far_from_capacity() {
        let t0 = crate::test_epoch();
        let mut aimd = AimdRateControl::new(1e6, 1e4, 1e8);
        for i in 0..=10 {
            aimd.update(BandwidthUsage::Normal, None, RTT, t0 + ms(100 * i));
        }
        assert!(
            (aimd.estimate_bps() - 1.08e6).abs() < 1e3,
            "{}",
            aimd.estimate_bps()
        );
    }

    #[test]
    fn overuse_cuts_to_85_percent_of_acked_then_increases_additively() {
        let t0 = crate::test_epoch();
        let mut aimd = AimdRateControl::new(2e6, 1e4, 1e8);
        aimd.update(BandwidthUsage::Overusing, Some(1.6e6), RTT, t0);
        assert_eq!(aimd.estimate_bps(), 0.85 * 1.6e6);
        // A second overuse signal within the round trip does not cut again.
        aimd.update(BandwidthUsage::Overusing, Some(1.2e6), RTT, t0 + ms(20));
        assert_eq!(aimd.estimate_bps(), 0.85 * 1.6e6);
        aimd.update(BandwidthUsage::Normal, Some(1.36e6), RTT, t0 + ms(100));
        aimd.update(BandwidthUsage::Normal, Some(1.36e6), RTT, t0 + ms(1100));
        let gained = aimd.estimate_bps() - 0.85 * 1.6e6;
        // Near capacity: about one 1200-byte packet per two response times, not 8%.
        assert!((15e3..35e3).contains(&gained), "{gained}");
    }

    #[test]
    fn without_an_acked_rate_a_jump_is_cut_once() {
        let t0 = crate::test_epoch();
        let mut aimd = AimdRateControl::new(1e6, 1e4, 1e8);
        assert!(aimd.raise_to(2e6, true, t0));
        for i in 1..=5 {
            aimd.update(BandwidthUsage::Overusing, None, RTT, t0 + ms(100 * i));
        }
        assert_eq!(aimd.estimate_bps(), 0.85 * 2e6);
    }

    #[test]
    fn underuse_holds_the_rate() {
        let t0 = crate::test_epoch();
        let mut aimd = AimdRateControl::new(1e6, 1e4, 1e8);
        aimd.update(BandwidthUsage::Underusing, None, RTT, t0);
        aimd.update(BandwidthUsage::Underusing, None, RTT, t0 + ms(1000));
        assert_eq!(aimd.estimate_bps(), 1e6);
    }

    #[test]
    fn an_application_limited_sender_does_not_inflate_the_estimate() {
        let t0 = crate::test_epoch();
        let mut aimd = AimdRateControl::new(1e6, 1e4, 1e8);
        for i in 0..=100 {
            aimd.update(BandwidthUsage::Normal, Some(3e5), RTT, t0 + ms(100 * i));
        }
        assert_eq!(aimd.estimate_bps(), 1e6);
    }
}
