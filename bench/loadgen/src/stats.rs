//! Measurement arithmetic: a log-linear histogram, percentiles, per-stream receive statistics
//! (loss from sequence numbers, RFC 3550 jitter, stalls). No I/O and no clocks.

/// Sub-buckets per power of two: 32 keeps every bucket within about 3% of its values.
const SUB_BUCKET_BITS: u32 = 5;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
const BUCKETS: usize = ((64 - SUB_BUCKET_BITS as usize) + 1) * SUB_BUCKETS as usize;

/// Counts of non-negative integer samples (we use microseconds) in log-linear buckets.
/// Recording is O(1) and allocates nothing.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(value: u64) -> usize {
        if value < SUB_BUCKETS {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros();
        let mantissa = (value >> (exponent - SUB_BUCKET_BITS)) & (SUB_BUCKETS - 1);
        ((exponent - SUB_BUCKET_BITS + 1) as u64 * SUB_BUCKETS + mantissa) as usize
    }

    /// The middle of the bucket at `index`.
    fn value_at(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB_BUCKETS {
            return index;
        }
        let exponent = index / SUB_BUCKETS + SUB_BUCKET_BITS as u64 - 1;
        let mantissa = index % SUB_BUCKETS;
        let width = 1u64 << (exponent - SUB_BUCKET_BITS as u64);
        (SUB_BUCKETS + mantissa) * width + width / 2
    }

    pub fn record(&mut self, value: u64) {
        self.counts[Self::index(value)] += 1;
        self.total += 1;
        self.sum += value as u128;
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1), within a bucket's width; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value_at(index).min(self.max);
            }
        }
        self.max
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.sum = 0;
        self.max = 0;
    }
}

/// The value at quantile `q` of `values` (nearest rank); 0 when empty. Sorts in place.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// A gap between two completed video frames longer than this is a stall.
pub const STALL_GAP_US: u64 = 200_000;

/// What one subscriber measures about one incoming RTP stream (one SSRC).
#[derive(Debug, Clone)]
pub struct StreamStats {
    pub ssrc: u32,
    pub video: bool,
    pub clock_rate: u32,
    pub received: u64,
    /// Highest extended sequence number seen; starts one cycle up so early reordering cannot
    /// underflow.
    max_extended_seq: u64,
    /// Snapshot when the measurement window opened.
    window_received: u64,
    window_max_seq: u64,
    /// RFC 3550 §6.4.1 interarrival jitter, in timestamp units (scaled by 16 as A.8 does).
    jitter_x16: u64,
    /// (arrival in timestamp units, RTP timestamp) of the previous packet.
    last_arrival: Option<(i64, u32)>,
    last_frame_end_us: Option<u64>,
    pub frames: u64,
    pub stalls: u64,
    pub stalled_us: u64,
}

impl StreamStats {
    pub fn new(ssrc: u32, video: bool, first_sequence: u16) -> Self {
        let start = (1u64 << 16) + first_sequence as u64 - 1;
        StreamStats {
            ssrc,
            video,
            clock_rate: if video { 90_000 } else { 48_000 },
            received: 0,
            max_extended_seq: start,
            window_received: 0,
            window_max_seq: start,
            jitter_x16: 0,
            last_arrival: None,
            last_frame_end_us: None,
            frames: 0,
            stalls: 0,
            stalled_us: 0,
        }
    }

    /// One packet arrived at `arrival_us` (any monotonic microsecond clock). `measuring` says
    /// whether the window is open: stalls count only then.
    pub fn on_packet(
        &mut self,
        sequence: u16,
        rtp_timestamp: u32,
        marker: bool,
        arrival_us: u64,
        measuring: bool,
    ) {
        self.received += 1;
        let delta = sequence.wrapping_sub(self.max_extended_seq as u16) as i16;
        if delta > 0 {
            self.max_extended_seq += delta as u64;
        }
        let arrival_ts = (arrival_us as u128 * self.clock_rate as u128 / 1_000_000) as i64;
        if let Some((last_arrival, last_timestamp)) = self.last_arrival {
            // Servers rewrite timestamps from a random base, so the RTP difference may wrap.
            let sent = rtp_timestamp.wrapping_sub(last_timestamp) as i32 as i64;
            let d = (arrival_ts - last_arrival - sent)
                .unsigned_abs()
                .min(u32::MAX as u64);
            // RFC 3550 A.8: J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_arrival = Some((arrival_ts, rtp_timestamp));
        if self.video && marker {
            if let Some(last) = self.last_frame_end_us {
                let gap = arrival_us.saturating_sub(last);
                if measuring && gap > STALL_GAP_US {
                    self.stalls += 1;
                    self.stalled_us += gap;
                }
            }
            self.last_frame_end_us = Some(arrival_us);
            self.frames += 1;
        }
    }

    /// Opens the measurement window: loss counts from here.
    pub fn open_window(&mut self) {
        self.window_received = self.received;
        self.window_max_seq = self.max_extended_seq;
        self.stalls = 0;
        self.stalled_us = 0;
    }

    /// Closes the window at `now_us`: a video stream whose last frame is older than a stall
    /// gap is stalled until now.
    pub fn close_window(&mut self, now_us: u64) {
        if let Some(last) = self.last_frame_end_us {
            let gap = now_us.saturating_sub(last);
            if self.video && gap > STALL_GAP_US {
                self.stalls += 1;
                self.stalled_us += gap;
            }
        }
    }

    /// (expected, received) inside the window.
    pub fn window_counts(&self) -> (u64, u64) {
        (
            self.max_extended_seq - self.window_max_seq,
            self.received - self.window_received,
        )
    }

    pub fn jitter_ms(&self) -> f64 {
        (self.jitter_x16 as f64 / 16.0) * 1000.0 / self.clock_rate as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5_000.0).abs() / 5_000.0 < 0.04, "p50 {p50}");
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.04, "p99 {p99}");
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000);
    }

    #[test]
    fn histogram_keeps_small_values_exact() {
        let mut h = Histogram::default();
        h.record(0);
        h.record(7);
        h.record(31);
        assert_eq!(h.quantile(0.0), 0);
        assert_eq!(h.quantile(0.5), 7);
        assert_eq!(h.quantile(1.0), 31);
    }

    #[test]
    fn loss_counts_sequence_gaps_across_a_wrap_inside_the_window() {
        let mut s = StreamStats::new(1, false, 65_530);
        s.on_packet(65_530, 0, false, 0, false);
        s.open_window();
        for seq in [65_531u16, 65_532, 65_535, 0, 1, 4] {
            s.on_packet(seq, 0, false, 0, true);
        }
        assert_eq!(s.window_counts(), (10, 6));
    }

    #[test]
    fn jitter_is_zero_for_a_perfectly_paced_stream_and_grows_with_spread() {
        let mut steady = StreamStats::new(1, false, 0);
        for i in 0..100u32 {
            steady.on_packet(i as u16, i * 960, false, i as u64 * 20_000, false);
        }
        assert!(steady.jitter_ms() < 0.05, "{}", steady.jitter_ms());
        let mut shaky = StreamStats::new(1, false, 0);
        for i in 0..100u32 {
            let wobble = if i % 2 == 0 { 0 } else { 5_000 };
            shaky.on_packet(i as u16, i * 960, false, i as u64 * 20_000 + wobble, false);
        }
        assert!(shaky.jitter_ms() > 2.0, "{}", shaky.jitter_ms());
    }

    #[test]
    fn a_frame_gap_over_200_ms_is_one_stall_inside_the_window() {
        let mut s = StreamStats::new(1, true, 0);
        s.open_window();
        s.on_packet(0, 0, true, 0, true);
        s.on_packet(1, 3000, true, 33_000, true);
        s.on_packet(2, 6000, true, 333_000, true);
        s.close_window(340_000);
        assert_eq!(s.stalls, 1);
        assert_eq!(s.stalled_us, 300_000);
        assert_eq!(s.frames, 3);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), 3.0);
        assert_eq!(percentile(&mut v, 0.99), 5.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
