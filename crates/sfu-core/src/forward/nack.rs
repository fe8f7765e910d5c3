//! Loss tracking for one incoming stream (the publisher leg): which sequence numbers are missing
//! and which of them to NACK now, with retry limits and RTT-paced resends. It does not write RTCP
//! or decide when to poll; the caller feeds arrivals and time.

use std::time::{Duration, Instant};

/// Extended sequence numbers start here so that stepping back from the first one never goes
/// negative.
const EXT_BASE: i64 = 1 << 32;

/// A packet this far behind the newest is not late but from a restarted sequence (RFC 3550 A.1
/// `MAX_DROPOUT`).
const RESTART_DISTANCE: i64 = 3000;

/// Limits of a [`NackTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackConfig {
    /// Sequence numbers tracked behind the newest (a power of two); a larger forward jump is
    /// treated as a restart, not as loss. Default 512.
    pub window: u16,
    /// NACKs sent for one packet before giving up on it. Default 10.
    pub max_retries: u8,
    /// Resends wait at least this long even if the RTT is shorter. Default 10 ms.
    pub min_resend_interval: Duration,
    /// Wait this long after detecting a gap before the first NACK, for reordering. Default 0.
    pub reorder_delay: Duration,
    /// A packet missing for longer is given up: it could no longer be played. Default 1 s.
    pub max_age: Duration,
}

impl Default for NackConfig {
    fn default() -> Self {
        NackConfig {
            window: 512,
            max_retries: 10,
            min_resend_interval: Duration::from_millis(10),
            reorder_delay: Duration::ZERO,
            max_age: Duration::from_secs(1),
        }
    }
}

/// What one [`NackTracker::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackPoll {
    /// Sequence numbers appended to the caller's list.
    pub requested: usize,
    /// Packets given up on (too many retries or too old): the picture may now need a keyframe.
    pub abandoned: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Extended sequence number this slot describes; `-1` if none.
    ext: i64,
    missing: bool,
    retries: u8,
    detected_at: Option<Instant>,
    last_sent: Option<Instant>,
}

const EMPTY: Slot = Slot {
    ext: -1,
    missing: false,
    retries: 0,
    detected_at: None,
    last_sent: None,
};

/// Missing sequence numbers of one incoming stream. Preallocated; nothing allocates after `new`.
#[derive(Debug, Clone)]
pub struct NackTracker {
    config: NackConfig,
    slots: Box<[Slot]>,
    highest: Option<i64>,
    missing: usize,
}

impl NackTracker {
    pub fn new(mut config: NackConfig) -> Self {
        config.window = config.window.clamp(16, 1 << 15).next_power_of_two();
        NackTracker {
            config,
            slots: vec![EMPTY; usize::from(config.window)].into_boxed_slice(),
            highest: None,
            missing: 0,
        }
    }

    /// Number of sequence numbers currently missing and not given up.
    pub fn missing(&self) -> usize {
        self.missing
    }

    fn slot_mut(&mut self, ext: i64) -> &mut Slot {
        let mask = self.slots.len() - 1;
        &mut self.slots[(ext as usize) & mask]
    }

    /// Records the arrival of `seq` at `now`. Returns true if it was missing (a retransmission or a
    /// late packet that we may have NACKed).
    pub fn on_packet(&mut self, seq: u16, now: Instant) -> bool {
        let Some(highest) = self.highest else {
            self.highest = Some(EXT_BASE + i64::from(seq));
            return false;
        };
        let ext = highest + i64::from(seq.wrapping_sub(highest as u16) as i16);
        let window = i64::from(self.config.window);
        if ext > highest + window || highest - ext > window.max(RESTART_DISTANCE) {
            // The sender's numbering restarted (or lost more than we would ever ask for):
            // NACKing the gap would be noise.
            self.reset(ext);
            return false;
        }
        if ext > highest {
            for gap in highest + 1..ext {
                self.mark(gap, now);
            }
            self.mark_received(ext);
            self.highest = Some(ext);
            return false;
        }
        let slot = self.slot_mut(ext);
        if slot.ext != ext || !slot.missing {
            return false;
        }
        slot.missing = false;
        self.missing -= 1;
        true
    }

    fn reset(&mut self, ext: i64) {
        self.slots.iter_mut().for_each(|s| *s = EMPTY);
        self.missing = 0;
        self.highest = Some(ext);
    }

    /// Marks `ext` missing, replacing whatever its slot described.
    fn mark(&mut self, ext: i64, now: Instant) {
        let slot = self.slot_mut(ext);
        let replaced_missing = slot.missing;
        *slot = Slot {
            ext,
            missing: true,
            retries: 0,
            detected_at: Some(now),
            last_sent: None,
        };
        if !replaced_missing {
            self.missing += 1;
        }
    }

    fn mark_received(&mut self, ext: i64) {
        let slot = self.slot_mut(ext);
        let was_missing = slot.missing;
        *slot = Slot { ext, ..EMPTY };
        if was_missing {
            self.missing -= 1;
        }
    }

    fn resend_interval(&self, rtt: Duration) -> Duration {
        rtt.max(self.config.min_resend_interval)
    }

    /// When the next NACK would be due, for the caller's timeout; `None` if nothing is missing.
    pub fn next_due(&self, rtt: Duration) -> Option<Instant> {
        if self.missing == 0 {
            return None;
        }
        let resend = self.resend_interval(rtt);
        self.slots
            .iter()
            .filter(|s| s.missing)
            .filter_map(|s| match s.last_sent {
                Some(sent) => sent.checked_add(resend),
                None => s.detected_at?.checked_add(self.config.reorder_delay),
            })
            .min()
    }

    /// Appends to `lost` (ascending, wrapping) every missing sequence number whose NACK is due at
    /// `now`: first after `reorder_delay`, then every `max(rtt, min_resend_interval)`, at most
    /// `max_retries` times, and not after `max_age`. Pass the list to `rtcp::write_nack`.
    pub fn poll(&mut self, now: Instant, rtt: Duration, lost: &mut Vec<u16>) -> NackPoll {
        let mut result = NackPoll::default();
        let Some(highest) = self.highest.filter(|_| self.missing > 0) else {
            return result;
        };
        let resend = self.resend_interval(rtt);
        let config = self.config;
        for ext in highest - i64::from(config.window) + 1..=highest {
            let slot = self.slot_mut(ext);
            if slot.ext != ext || !slot.missing {
                continue;
            }
            let detected_at = slot.detected_at.unwrap_or(now);
            // Checked: an absurd RTT (it comes from the network) must not overflow an Instant.
            let due_at = match slot.last_sent {
                Some(sent) => sent.checked_add(resend),
                None => detected_at.checked_add(config.reorder_delay),
            };
            let due = due_at.is_some_and(|at| now >= at);
            let too_old = now.saturating_duration_since(detected_at) > config.max_age;
            if too_old || (due && slot.retries >= config.max_retries) {
                slot.missing = false;
                self.missing -= 1;
                result.abandoned += 1;
            } else if due {
                slot.retries += 1;
                slot.last_sent = Some(now);
                lost.push(ext as u16);
                result.requested += 1;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[allow(clippy::disallowed_methods)] // a fixed origin; only offsets from it matter
    fn origin() -> Instant {
        Instant::now()
    }

    fn poll(t: &mut NackTracker, now: Instant) -> (Vec<u16>, NackPoll) {
        let mut lost = Vec::new();
        let result = t.poll(now, RTT, &mut lost);
        (lost, result)
    }

    #[test]
    fn gaps_are_nacked_at_once_and_recovered_packets_are_not() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig::default());
        assert!(!t.on_packet(10, t0));
        assert!(!t.on_packet(14, t0));
        assert_eq!(t.missing(), 3);
        assert!(t.on_packet(12, t0));
        assert_eq!(
            poll(&mut t, t0),
            (
                vec![11, 13],
                NackPoll {
                    requested: 2,
                    abandoned: 0
                }
            )
        );
        assert!(!t.on_packet(12, t0), "a duplicate is not a recovery");
    }

    #[test]
    fn resends_wait_for_the_rtt() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig::default());
        t.on_packet(1, t0);
        t.on_packet(3, t0);
        assert_eq!(poll(&mut t, t0).0, vec![2]);
        assert_eq!(t.next_due(RTT), Some(t0 + RTT));
        assert_eq!(poll(&mut t, t0 + ms(49)).0, Vec::<u16>::new());
        assert_eq!(poll(&mut t, t0 + ms(50)).0, vec![2]);
        assert!(t.on_packet(2, t0 + ms(60)));
        assert_eq!(t.next_due(RTT), None);
        assert_eq!(poll(&mut t, t0 + ms(200)).0, Vec::<u16>::new());
    }

    #[test]
    fn reorder_delay_holds_back_the_first_nack() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig {
            reorder_delay: ms(5),
            ..Default::default()
        });
        t.on_packet(1, t0);
        t.on_packet(3, t0);
        assert_eq!(t.next_due(RTT), Some(t0 + ms(5)));
        assert!(poll(&mut t, t0 + ms(4)).0.is_empty());
        assert_eq!(poll(&mut t, t0 + ms(5)).0, vec![2]);
    }

    #[test]
    fn gives_up_after_max_retries() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig {
            max_retries: 2,
            ..Default::default()
        });
        t.on_packet(1, t0);
        t.on_packet(3, t0);
        assert_eq!(poll(&mut t, t0).1.requested, 1);
        assert_eq!(poll(&mut t, t0 + ms(50)).1.requested, 1);
        assert_eq!(
            poll(&mut t, t0 + ms(100)),
            (
                vec![],
                NackPoll {
                    requested: 0,
                    abandoned: 1
                }
            )
        );
        assert_eq!(t.missing(), 0);
        assert!(!t.on_packet(2, t0 + ms(120)), "no longer tracked");
    }

    #[test]
    fn gives_up_on_packets_older_than_max_age() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig {
            max_age: ms(300),
            ..Default::default()
        });
        t.on_packet(1, t0);
        t.on_packet(3, t0);
        poll(&mut t, t0);
        assert_eq!(
            poll(&mut t, t0 + ms(301)).1,
            NackPoll {
                requested: 0,
                abandoned: 1
            }
        );
    }

    #[test]
    fn lists_are_ascending_across_the_wrap() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig::default());
        t.on_packet(65533, t0);
        t.on_packet(65535, t0);
        t.on_packet(2, t0);
        assert_eq!(poll(&mut t, t0).0, vec![65534, 0, 1]);
    }

    #[test]
    fn a_jump_beyond_the_window_restarts_tracking() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig {
            window: 64,
            ..Default::default()
        });
        t.on_packet(1, t0);
        t.on_packet(3, t0);
        t.on_packet(1000, t0);
        assert_eq!(t.missing(), 0);
        assert!(poll(&mut t, t0).0.is_empty());
        t.on_packet(1002, t0);
        assert_eq!(poll(&mut t, t0).0, vec![1001]);
    }

    #[test]
    fn an_absurd_rtt_delays_resends_without_overflowing() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig::default());
        t.on_packet(1, t0);
        t.on_packet(3, t0);
        let mut lost = Vec::new();
        assert_eq!(t.poll(t0, Duration::MAX, &mut lost).requested, 1);
        assert_eq!(t.poll(t0 + ms(500), Duration::MAX, &mut lost).requested, 0);
        assert_eq!(t.next_due(Duration::MAX), None);
    }

    #[test]
    fn a_sequence_restarting_far_behind_restarts_tracking() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig::default());
        t.on_packet(20_000, t0);
        t.on_packet(20_002, t0);
        t.on_packet(100, t0);
        assert_eq!(t.missing(), 0);
        t.on_packet(102, t0);
        assert_eq!(poll(&mut t, t0).0, vec![101]);
    }

    #[test]
    fn gaps_older_than_the_window_are_overwritten() {
        let t0 = origin();
        let mut t = NackTracker::new(NackConfig {
            window: 16,
            ..Default::default()
        });
        t.on_packet(0, t0);
        t.on_packet(2, t0); // 1 missing
        t.on_packet(17, t0); // 3..=16 missing; 1's slot now describes 17
        assert_eq!(t.missing(), 14);
        let (lost, _) = poll(&mut t, t0);
        assert_eq!(lost, (3..=16).collect::<Vec<u16>>());
    }
}
