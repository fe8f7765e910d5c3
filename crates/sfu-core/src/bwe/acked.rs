//! The rate the receiver actually got: bytes of received packets over a sliding window of
//! arrival time. The window is short so that a cut after a rate change uses the new rate, not
//! a blend with the old.

use std::collections::VecDeque;

const WINDOW_US: i64 = 250_000;
/// Arrivals kept; past this (about 40 Mbit/s of 1200-byte packets) the oldest go early and the
/// rate reads low.
const MAX_SAMPLES: usize = 1024;

#[derive(Debug)]
pub(super) struct AckedBitrate {
    /// `(arrival_us, size_bytes)` in arrival order.
    samples: VecDeque<(i64, u32)>,
    bytes: u64,
    first_arrival_us: Option<i64>,
}

impl Default for AckedBitrate {
    fn default() -> Self {
        AckedBitrate {
            samples: VecDeque::with_capacity(MAX_SAMPLES),
            bytes: 0,
            first_arrival_us: None,
        }
    }
}

impl AckedBitrate {
    pub(super) fn on_packet(&mut self, arrival_us: i64, size_bytes: usize) {
        self.first_arrival_us.get_or_insert(arrival_us);
        if self.samples.len() == MAX_SAMPLES {
            self.pop();
        }
        let size = u32::try_from(size_bytes).unwrap_or(u32::MAX);
        self.samples.push_back((arrival_us, size));
        self.bytes += u64::from(size);
        while self
            .samples
            .front()
            .is_some_and(|&(at, _)| at <= arrival_us - WINDOW_US)
        {
            self.pop();
        }
    }

    /// Forgets the arrivals so far: after a jump in the sending rate, a blend with the old rate
    /// would understate the new one.
    pub(super) fn reset(&mut self) {
        self.samples.clear();
        self.bytes = 0;
        self.first_arrival_us = None;
    }

    fn pop(&mut self) {
        if let Some((_, size)) = self.samples.pop_front() {
            self.bytes -= u64::from(size);
        }
    }

    /// Bits per second over the last window, once a full window has passed since the first
    /// arrival.
    pub(super) fn rate_bps(&self) -> Option<f64> {
        let first = self.first_arrival_us?;
        let &(last, _) = self.samples.back()?;
        (last - first >= WINDOW_US).then(|| self.bytes as f64 * 8.0 * 1e6 / WINDOW_US as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_rate_over_the_last_window() {
        let mut acked = AckedBitrate::default();
        // 1000 bytes every 10 ms is 800 kbit/s, then 1000 bytes every 5 ms.
        for i in 0..25 {
            acked.on_packet(i * 10_000, 1000);
        }
        assert_eq!(acked.rate_bps(), None);
        for i in 25..100 {
            acked.on_packet(i * 10_000, 1000);
        }
        assert_eq!(acked.rate_bps(), Some(800_000.0));
        for i in 0..100 {
            acked.on_packet(1_000_000 + i * 5_000, 1000);
        }
        assert_eq!(acked.rate_bps(), Some(1_600_000.0));
        acked.reset();
        acked.on_packet(2_000_000, 1000);
        assert_eq!(acked.rate_bps(), None);
    }
}
