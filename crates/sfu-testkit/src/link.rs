//! A simulated bottleneck link for congestion-control tests: capacity with scheduled steps, a
//! drop-tail queue, base delay, jitter and random loss, all seeded. Packet timing only; it
//! carries no bytes and reads no clock.

use std::time::{Duration, Instant};

/// A link's starting shape. Defaults: 1 Mbit/s, 200 ms queue, 20 ms base delay, no jitter, no
/// loss, seed 1.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    pub capacity_bps: u64,
    /// Drop-tail limit: a packet that would wait longer than this behind the queue is dropped.
    pub queue_limit: Duration,
    /// Propagation delay added after the bottleneck.
    pub base_delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per packet. Jitter never reorders: a packet
    /// never arrives before the one sent ahead of it.
    pub jitter: Duration,
    /// Probability, 0.0 to 1.0, that a packet is lost after it crossed the bottleneck.
    pub loss: f64,
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            capacity_bps: 1_000_000,
            queue_limit: Duration::from_millis(200),
            base_delay: Duration::from_millis(20),
            jitter: Duration::ZERO,
            loss: 0.0,
            seed: 1,
        }
    }
}

/// What happened to the packets offered to a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Dropped at the tail of a full queue.
    pub dropped: u64,
    /// Lost at random after the queue.
    pub lost: u64,
}

/// One direction of a bottleneck link. Feed it packets in time order with [`SimLink::send`].
#[derive(Debug, Clone)]
pub struct SimLink {
    start: Instant,
    config: LinkConfig,
    /// `(offset from start, capacity_bps)`, sorted by offset.
    capacity_steps: Vec<(Duration, u64)>,
    /// `(offset from start, loss)`, sorted by offset.
    loss_steps: Vec<(Duration, f64)>,
    /// When the bottleneck finishes sending what is queued.
    busy_until: Instant,
    last_arrival: Instant,
    rng: u64,
    stats: LinkStats,
}

impl SimLink {
    pub fn new(start: Instant, config: LinkConfig) -> Self {
        SimLink {
            start,
            busy_until: start,
            last_arrival: start,
            rng: config.seed,
            config,
            capacity_steps: Vec::new(),
            loss_steps: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    /// From `at` after the start, the capacity is `capacity_bps`.
    pub fn capacity_step(mut self, at: Duration, capacity_bps: u64) -> Self {
        self.capacity_steps.push((at, capacity_bps));
        self.capacity_steps.sort_by_key(|&(at, _)| at);
        self
    }

    /// From `at` after the start, the random loss probability is `loss`.
    pub fn loss_step(mut self, at: Duration, loss: f64) -> Self {
        self.loss_steps.push((at, loss));
        self.loss_steps.sort_by_key(|&(at, _)| at);
        self
    }

    pub fn capacity_bps(&self, now: Instant) -> u64 {
        let offset = now.saturating_duration_since(self.start);
        self.capacity_steps
            .iter()
            .take_while(|&&(at, _)| at <= offset)
            .last()
            .map_or(self.config.capacity_bps, |&(_, bps)| bps)
    }

    pub fn loss(&self, now: Instant) -> f64 {
        let offset = now.saturating_duration_since(self.start);
        self.loss_steps
            .iter()
            .take_while(|&&(at, _)| at <= offset)
            .last()
            .map_or(self.config.loss, |&(_, loss)| loss)
    }

    /// How long a packet sent at `now` would wait before the bottleneck starts sending it.
    pub fn queue_delay(&self, now: Instant) -> Duration {
        self.busy_until.saturating_duration_since(now)
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Offers a packet of `size_bytes` at `now` (not earlier than the previous call's `now`);
    /// returns when it arrives, or `None` if it was dropped or lost.
    pub fn send(&mut self, now: Instant, size_bytes: usize) -> Option<Instant> {
        self.stats.sent += 1;
        if self.queue_delay(now) > self.config.queue_limit {
            self.stats.dropped += 1;
            return None;
        }
        let begin = self.busy_until.max(now);
        let capacity_bps = self.capacity_bps(begin).max(1);
        let serialization_ns = size_bytes as u64 * 8 * 1_000_000_000 / capacity_bps;
        self.busy_until = begin + Duration::from_nanos(serialization_ns);
        let lost = self.random() < self.loss(begin);
        let jitter = self.config.jitter.mul_f64(self.random());
        if lost {
            self.stats.lost += 1;
            return None;
        }
        let arrival = (self.busy_until + self.config.base_delay + jitter).max(self.last_arrival);
        self.last_arrival = arrival;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += size_bytes as u64;
        Some(arrival)
    }

    /// Uniform in `0.0..1.0` (xorshift64*; any non-zero seed).
    fn random(&mut self) -> f64 {
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_idle_link_delivers_after_serialization_and_base_delay() {
        let t0 = epoch();
        let mut link = SimLink::new(t0, LinkConfig::default());
        // 1250 bytes at 1 Mbit/s take 10 ms.
        assert_eq!(link.send(t0, 1250), Some(t0 + ms(30)));
        assert_eq!(link.queue_delay(t0), ms(10));
        assert_eq!(link.send(t0 + ms(100), 1250), Some(t0 + ms(130)));
    }

    #[test]
    fn a_burst_queues_and_the_tail_is_dropped() {
        let t0 = epoch();
        let config = LinkConfig {
            queue_limit: ms(50),
            ..LinkConfig::default()
        };
        let mut link = SimLink::new(t0, config);
        let arrivals: Vec<_> = (0..10).map(|_| link.send(t0, 1250)).collect();
        // Packets 0..=5 start within 50 ms of queueing; the rest find the queue full.
        for (i, arrival) in arrivals.iter().enumerate() {
            if i <= 5 {
                assert_eq!(*arrival, Some(t0 + ms(30 + 10 * i as u64)));
            } else {
                assert_eq!(*arrival, None);
            }
        }
        assert_eq!(link.stats().dropped, 4);
    }

    #[test]
    fn capacity_steps_change_the_drain_rate() {
        let t0 = epoch();
        let mut link = SimLink::new(t0, LinkConfig::default()).capacity_step(ms(1000), 500_000);
        assert_eq!(link.capacity_bps(t0 + ms(999)), 1_000_000);
        assert_eq!(link.send(t0 + ms(1000), 1250), Some(t0 + ms(1040)));
    }

    #[test]
    fn random_loss_is_seeded_and_near_its_probability() {
        let t0 = epoch();
        let run = |seed| {
            let config = LinkConfig {
                capacity_bps: 1_000_000_000,
                loss: 0.05,
                seed,
                ..LinkConfig::default()
            };
            let mut link = SimLink::new(t0, config);
            (0..20_000u64)
                .map(|i| link.send(t0 + ms(i), 100).is_none())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let lost = a.iter().filter(|&&l| l).count();
        assert!((800..1200).contains(&lost), "{lost}");
    }

    #[test]
    fn jitter_never_reorders() {
        let t0 = epoch();
        let config = LinkConfig {
            capacity_bps: 100_000_000,
            jitter: ms(10),
            ..LinkConfig::default()
        };
        let mut link = SimLink::new(t0, config);
        let mut last = t0;
        for i in 0..1000u64 {
            let arrival = link.send(t0 + Duration::from_micros(100 * i), 200).unwrap();
            assert!(arrival >= last);
            last = arrival;
        }
    }
}
