//! Reception statistics of one incoming RTP stream (RFC 3550 §6.4.1, A.1, A.3, A.8): what a
//! receiver report block says about it.

use std::time::Instant;

#[derive(Debug, Default, Clone)]
pub struct ReceiveStats {
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Interarrival jitter in timestamp units, scaled by 16 as RFC 3550 A.8 suggests.
    jitter_q4: u32,
    last_transit: Option<i64>,
}

/// One report block's worth of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossReport {
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
}

impl ReceiveStats {
    /// `arrival_units` is the arrival time expressed in the stream's clock rate.
    pub fn record(&mut self, seq: u16, rtp_timestamp: u32, arrival_units: i64) {
        if !self.started {
            self.started = true;
            self.base_seq = seq as u32;
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            }
        }
        self.received = self.received.wrapping_add(1);
        let transit = arrival_units - rtp_timestamp as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs().min(u32::MAX as u64) as u32;
            // J += (|D| - J) / 16, kept in q4 fixed point.
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    pub fn has_data(&self) -> bool {
        self.started
    }

    /// Builds the numbers for a report and starts a new interval for `fraction_lost`.
    pub fn report(&mut self) -> LossReport {
        let extended_highest_seq = self.cycles | self.max_seq as u32;
        let expected = extended_highest_seq
            .wrapping_sub(self.base_seq)
            .wrapping_add(1);
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        LossReport {
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq,
            jitter: self.jitter_q4 >> 4,
        }
    }
}

/// Converts an instant to units of `clock_rate` relative to `epoch` (for jitter).
pub fn to_clock_units(at: Instant, epoch: Instant, clock_rate: u32) -> i64 {
    let elapsed = at.saturating_duration_since(epoch);
    (elapsed.as_micros() as i64 * clock_rate as i64) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_of_ten_in_a_hundred_reports_ten_percent_lost() {
        let mut stats = ReceiveStats::default();
        for seq in 0u16..100 {
            if !(40..50).contains(&seq) {
                stats.record(seq, seq as u32 * 3000, seq as i64 * 3000);
            }
        }
        let report = stats.report();
        assert_eq!(report.cumulative_lost, 10);
        assert_eq!(report.extended_highest_seq, 99);
        assert_eq!(report.fraction_lost, (10 * 256 / 100) as u8);
        assert_eq!(report.jitter, 0, "perfectly paced packets have no jitter");
    }

    #[test]
    fn sequence_wraparound_extends_the_highest_sequence_number() {
        let mut stats = ReceiveStats::default();
        for i in 0u32..20 {
            let seq = (65530 + i) as u16;
            stats.record(seq, i * 960, i as i64 * 960);
        }
        let report = stats.report();
        assert_eq!(report.extended_highest_seq, (1 << 16) | 13);
        assert_eq!(report.cumulative_lost, 0);
    }
}
