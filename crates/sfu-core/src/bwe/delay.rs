//! Delay-based congestion signal (draft-ietf-rmcat-gcc-02 §5.2-5.4, with a trendline filter in
//! place of the Kalman filter): packet groups, the slope of their queuing delay, and an overuse
//! detector with an adaptive threshold. Signals only; the rate is `aimd`'s.

use std::time::{Duration, Instant};

use crate::twcc::PacketResult;

/// What the delay trend says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BandwidthUsage {
    #[default]
    Normal,
    /// Queues are growing: sending faster than the bottleneck drains.
    Overusing,
    /// Queues are draining.
    Underusing,
}

/// Packets sent within this span form one group (a frame's burst).
const BURST_SEND: Duration = Duration::from_millis(5);
/// A packet that arrives this soon after its group, with a shorter gap than it was sent with,
/// was held in a queue with the group and belongs to it.
const BURST_ARRIVAL_US: i64 = 5_000;
const BURST_MAX_SPAN_US: i64 = 100_000;

/// Signed `b - a` in milliseconds.
fn ms_between(a: Instant, b: Instant) -> f64 {
    match b.checked_duration_since(a) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(a.duration_since(b).as_secs_f64() * 1e3),
    }
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: Instant,
    last_send: Instant,
    first_arrival_us: i64,
    last_arrival_us: i64,
}

impl Group {
    fn new(send: Instant, arrival_us: i64) -> Self {
        Group {
            first_send: send,
            last_send: send,
            first_arrival_us: arrival_us,
            last_arrival_us: arrival_us,
        }
    }

    fn includes(&self, send: Instant, arrival_us: i64) -> bool {
        if send.saturating_duration_since(self.first_send) <= BURST_SEND {
            return true;
        }
        let arrival_delta = arrival_us - self.last_arrival_us;
        let propagation_delta = arrival_delta as f64 / 1e3 - ms_between(self.last_send, send);
        propagation_delta < 0.0
            && arrival_delta <= BURST_ARRIVAL_US
            && arrival_us - self.first_arrival_us < BURST_MAX_SPAN_US
    }
}

/// Splits packets into groups and yields `(send_delta_ms, arrival_delta_ms)` between
/// consecutive complete groups.
#[derive(Debug, Default)]
struct InterArrival {
    current: Option<Group>,
    previous: Option<Group>,
}

impl InterArrival {
    fn on_packet(&mut self, send: Instant, arrival_us: i64) -> Option<(f64, f64)> {
        let Some(current) = self.current.as_mut() else {
            self.current = Some(Group::new(send, arrival_us));
            return None;
        };
        if send < current.first_send {
            // Sent before the group being built: reordered, says nothing new.
            return None;
        }
        if current.includes(send, arrival_us) {
            current.last_send = current.last_send.max(send);
            current.last_arrival_us = current.last_arrival_us.max(arrival_us);
            return None;
        }
        let done = *current;
        let deltas = self.previous.map(|previous| {
            (
                ms_between(previous.last_send, done.last_send),
                (done.last_arrival_us - previous.last_arrival_us) as f64 / 1e3,
            )
        });
        self.previous = Some(done);
        self.current = Some(Group::new(send, arrival_us));
        deltas.filter(|&(_, arrival)| arrival >= 0.0)
    }
}

const TRENDLINE_WINDOW: usize = 20;
const TRENDLINE_SMOOTHING: f64 = 0.9;
const TRENDLINE_GAIN: f64 = 4.0;
/// The trend is scaled by the number of deltas seen, up to this many.
const MAX_DELTAS_SCALE: u32 = 60;

/// Least-squares slope of the smoothed accumulated delay over arrival time, over the last
/// [`TRENDLINE_WINDOW`] groups: milliseconds of queue added per millisecond.
#[derive(Debug)]
struct Trendline {
    /// `(arrival_ms since the first group, smoothed delay ms)`.
    points: [(f64, f64); TRENDLINE_WINDOW],
    len: usize,
    next: usize,
    first_arrival_ms: Option<f64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    deltas: u32,
    trend: f64,
}

impl Default for Trendline {
    fn default() -> Self {
        Trendline {
            points: [(0.0, 0.0); TRENDLINE_WINDOW],
            len: 0,
            next: 0,
            first_arrival_ms: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            deltas: 0,
            trend: 0.0,
        }
    }
}

impl Trendline {
    fn update(&mut self, delay_delta_ms: f64, arrival_ms: f64) -> f64 {
        self.deltas = (self.deltas + 1).min(1000);
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        self.accumulated_ms += delay_delta_ms;
        self.smoothed_ms = TRENDLINE_SMOOTHING * self.smoothed_ms
            + (1.0 - TRENDLINE_SMOOTHING) * self.accumulated_ms;
        self.points[self.next] = (arrival_ms - first, self.smoothed_ms);
        self.next = (self.next + 1) % TRENDLINE_WINDOW;
        self.len = (self.len + 1).min(TRENDLINE_WINDOW);
        if self.len == TRENDLINE_WINDOW {
            if let Some(slope) = slope(&self.points) {
                self.trend = slope;
            }
        }
        self.trend
    }
}

fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), &(x, y)| {
        (
            num + (x - mean_x) * (y - mean_y),
            den + (x - mean_x) * (x - mean_x),
        )
    });
    (den > 0.0).then(|| num / den)
}

const INITIAL_THRESHOLD: f64 = 12.5;
const MIN_THRESHOLD: f64 = 6.0;
const MAX_THRESHOLD: f64 = 600.0;
/// GCC §5.4: the threshold follows |m| slowly upwards and faster downwards.
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
/// Outliers this far past the threshold do not move it.
const MAX_ADAPT_OFFSET: f64 = 15.0;
const MAX_ADAPT_STEP_MS: f64 = 100.0;
/// Overuse must last this long (in send time) before it is signalled.
const OVERUSE_TIME_MS: f64 = 10.0;

#[derive(Debug)]
struct OveruseDetector {
    threshold: f64,
    last_update_ms: Option<f64>,
    /// Send time spent over the threshold; negative when not over it.
    time_over_ms: f64,
    over_count: u32,
    previous_trend: f64,
    usage: BandwidthUsage,
}

impl Default for OveruseDetector {
    fn default() -> Self {
        OveruseDetector {
            threshold: INITIAL_THRESHOLD,
            last_update_ms: None,
            time_over_ms: -1.0,
            over_count: 0,
            previous_trend: 0.0,
            usage: BandwidthUsage::Normal,
        }
    }
}

impl OveruseDetector {
    fn detect(&mut self, trend: f64, send_delta_ms: f64, deltas: u32, arrival_ms: f64) {
        if deltas < 2 {
            return;
        }
        let modified = f64::from(deltas.min(MAX_DELTAS_SCALE)) * trend * TRENDLINE_GAIN;
        if modified > self.threshold {
            self.time_over_ms = if self.time_over_ms < 0.0 {
                send_delta_ms / 2.0
            } else {
                self.time_over_ms + send_delta_ms
            };
            self.over_count += 1;
            if self.time_over_ms > OVERUSE_TIME_MS
                && self.over_count > 1
                && trend >= self.previous_trend
            {
                self.time_over_ms = 0.0;
                self.over_count = 0;
                self.usage = BandwidthUsage::Overusing;
            }
        } else {
            self.time_over_ms = -1.0;
            self.over_count = 0;
            self.usage = if modified < -self.threshold {
                BandwidthUsage::Underusing
            } else {
                BandwidthUsage::Normal
            };
        }
        self.previous_trend = trend;
        self.adapt_threshold(modified, arrival_ms);
    }

    fn adapt_threshold(&mut self, modified: f64, arrival_ms: f64) {
        let last = *self.last_update_ms.get_or_insert(arrival_ms);
        self.last_update_ms = Some(arrival_ms);
        let magnitude = modified.abs();
        if magnitude > self.threshold + MAX_ADAPT_OFFSET {
            return;
        }
        let k = if magnitude < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let step_ms = (arrival_ms - last).clamp(0.0, MAX_ADAPT_STEP_MS);
        self.threshold = (self.threshold + k * (magnitude - self.threshold) * step_ms)
            .clamp(MIN_THRESHOLD, MAX_THRESHOLD);
    }
}

/// The delay-based signal from received packets fed in arrival order.
#[derive(Debug, Default)]
pub(super) struct DelayDetector {
    inter_arrival: InterArrival,
    trendline: Trendline,
    detector: OveruseDetector,
}

impl DelayDetector {
    /// Feeds one received packet; packets must come in arrival order.
    pub(super) fn on_packet(&mut self, result: &PacketResult) {
        let Some(arrival_us) = result.arrival_us else {
            return;
        };
        let Some((send_delta_ms, arrival_delta_ms)) =
            self.inter_arrival.on_packet(result.send_time, arrival_us)
        else {
            return;
        };
        let arrival_ms = arrival_us as f64 / 1e3;
        let trend = self
            .trendline
            .update(arrival_delta_ms - send_delta_ms, arrival_ms);
        self.detector
            .detect(trend, send_delta_ms, self.trendline.deltas, arrival_ms);
    }

    pub(super) fn usage(&self) -> BandwidthUsage {
        self.detector.usage
    }

    /// The current threshold on the modified trend, for diagnostics.
    pub(super) fn threshold(&self) -> f64 {
        self.detector.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(detector: &mut DelayDetector, t0: Instant, send_gap_us: u64, queue_growth: f64) {
        // 400 packets, one per group, each arriving `queue_growth` times its send gap later.
        for i in 0..400u64 {
            let send = t0 + Duration::from_micros(i * send_gap_us);
            let arrival_us = 50_000 + (i as f64 * send_gap_us as f64 * (1.0 + queue_growth)) as i64;
            detector.on_packet(&PacketResult {
                seq: i,
                send_time: send,
                size_bytes: 1200,
                arrival_us: Some(arrival_us),
                probe_cluster: None,
            });
        }
    }

    #[test]
    fn a_steady_path_is_normal() {
        let mut d = DelayDetector::default();
        feed(&mut d, crate::test_epoch(), 6_000, 0.0);
        assert_eq!(d.usage(), BandwidthUsage::Normal);
    }

    #[test]
    fn a_growing_queue_is_overuse() {
        let mut d = DelayDetector::default();
        feed(&mut d, crate::test_epoch(), 6_000, 0.1);
        assert_eq!(d.usage(), BandwidthUsage::Overusing);
    }

    #[test]
    fn a_draining_queue_is_underuse() {
        let mut d = DelayDetector::default();
        feed(&mut d, crate::test_epoch(), 6_000, -0.1);
        assert_eq!(d.usage(), BandwidthUsage::Underusing);
    }

    #[test]
    fn packets_sent_within_5_ms_form_one_group() {
        let t0 = crate::test_epoch();
        let mut ia = InterArrival::default();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(ia.on_packet(ms(0), 0), None);
        assert_eq!(ia.on_packet(ms(3), 3_000), None);
        assert_eq!(ia.on_packet(ms(10), 10_000), None);
        // The third group completes the second; deltas are between group ends.
        let (send, arrival) = ia.on_packet(ms(20), 22_000).unwrap();
        assert!((send - 7.0).abs() < 1e-9 && (arrival - 7.0).abs() < 1e-9);
    }

    #[test]
    fn slope_fits_a_line() {
        let points: Vec<_> = (0..20).map(|i| (i as f64, 3.0 + 0.5 * i as f64)).collect();
        assert!((slope(&points).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
