//! Sequence number and timestamp rewriting for one outgoing stream: maps the current incoming
//! source into the subscriber's numbering so it stays continuous across source switches, pauses
//! and deliberately dropped packets. Which source to forward, and which packets to drop, is the
//! caller's decision.

use std::time::Duration;

/// How far (in packets) behind the newest packet of the current source a packet may arrive and
/// still be forwarded; late retransmissions from the publisher need this room.
pub const REORDER_WINDOW: u16 = 1024;

/// A forward jump larger than this is not loss but a restart of the incoming sequence
/// (RFC 3550 Appendix A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: i64 = 3000;

/// Runs of dropped packets remembered, so late packets around them map consistently.
const DROP_RUNS: usize = 32;

/// Extended sequence numbers start here so that stepping back from the first one never goes
/// negative.
const EXT_BASE: i64 = 1 << 32;

/// `elapsed` in ticks of a `clock_rate` Hz RTP clock, saturating: the unit of the `now_ticks`
/// argument of [`SequenceRewriter::rewrite`] when the caller's clock is an `Instant`.
pub fn rtp_ticks(elapsed: Duration, clock_rate: u32) -> u64 {
    let ticks = elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Consecutive incoming packets (extended numbers `first..=last`) that were dropped; packets after
/// them map with `offset_after`.
#[derive(Debug, Clone, Copy, Default)]
struct DropRun {
    first: i64,
    last: i64,
    offset_after: i64,
}

/// The mapping of the source being forwarded. Offsets are output minus input, in extended numbers.
#[derive(Debug, Clone)]
struct Source {
    /// Extended number of the first packet after the switch (or after the oldest remembered drop
    /// run); anything older is not mapped.
    floor: i64,
    /// Offset from `floor` up to the oldest remembered run.
    floor_offset: i64,
    /// Newest extended number seen, forwarded or dropped.
    highest: i64,
    /// Ring of drop runs, oldest at `oldest_run`.
    runs: [DropRun; DROP_RUNS],
    oldest_run: usize,
    run_count: usize,
    /// Output minus input timestamp, mod 2^32.
    timestamp_offset: u32,
    /// After a jump beyond the window, the sequence number that would confirm a restart.
    restart_candidate: Option<u16>,
}

impl Source {
    fn new(seq: u16, out_ext: i64, timestamp_offset: u32) -> Self {
        let ext = EXT_BASE + i64::from(seq);
        Source {
            floor: ext,
            floor_offset: out_ext - ext,
            highest: ext,
            runs: [DropRun::default(); DROP_RUNS],
            oldest_run: 0,
            run_count: 0,
            timestamp_offset,
            restart_candidate: None,
        }
    }

    /// The extended number of `seq` closest to the newest one.
    fn extend(&self, seq: u16) -> i64 {
        self.highest + i64::from(seq.wrapping_sub(self.highest as u16) as i16)
    }

    /// `i`-th remembered run, oldest first.
    fn run(&self, i: usize) -> DropRun {
        self.runs[(self.oldest_run + i) % DROP_RUNS]
    }

    fn newest_run_mut(&mut self) -> Option<&mut DropRun> {
        let i = self.run_count.checked_sub(1)?;
        Some(&mut self.runs[(self.oldest_run + i) % DROP_RUNS])
    }

    fn current_offset(&self) -> i64 {
        match self.run_count {
            0 => self.floor_offset,
            n => self.run(n - 1).offset_after,
        }
    }

    /// The offset of a packet not newer than `highest`; `None` if it was dropped or is older than
    /// what the mapping remembers.
    fn offset_of(&self, ext: i64) -> Option<i64> {
        if ext < self.floor {
            return None;
        }
        for i in (0..self.run_count).rev() {
            let run = self.run(i);
            if run.first <= ext {
                return (ext > run.last).then_some(run.offset_after);
            }
        }
        Some(self.floor_offset)
    }

    /// Records that `ext`, newer than `highest`, is dropped.
    fn drop_newest(&mut self, ext: i64) {
        let highest = self.highest;
        self.highest = ext;
        if let Some(run) = self
            .newest_run_mut()
            .filter(|r| r.last == highest && ext == highest + 1)
        {
            run.last = ext;
            run.offset_after -= 1;
            return;
        }
        let offset_after = self.current_offset() - 1;
        if self.run_count == DROP_RUNS {
            // Forget the oldest run: packets up to it can no longer be placed, so they go too.
            let evicted = self.run(0);
            self.floor = evicted.last + 1;
            self.floor_offset = evicted.offset_after;
            self.oldest_run = (self.oldest_run + 1) % DROP_RUNS;
            self.run_count -= 1;
        }
        self.runs[(self.oldest_run + self.run_count) % DROP_RUNS] = DropRun {
            first: ext,
            last: ext,
            offset_after,
        };
        self.run_count += 1;
    }
}

/// Where a packet falls relative to the newest packet of the source.
enum Position {
    /// Newer, within `MAX_DROPOUT`.
    Newer,
    /// The newest or older, within [`REORDER_WINDOW`].
    Recent,
    /// Too far either way: stale, or the incoming sequence restarted.
    Outside,
}

fn position(delta: i64) -> Position {
    if delta > 0 && delta <= MAX_DROPOUT {
        Position::Newer
    } else if delta <= 0 && delta >= -i64::from(REORDER_WINDOW) {
        Position::Recent
    } else {
        Position::Outside
    }
}

/// Rewrites sequence numbers and timestamps of one outgoing stream (one SSRC towards one
/// subscriber). Feed it only packets of the source currently forwarded; call
/// [`SequenceRewriter::switch_source`] before the first packet of another source, or of the same
/// source after a pause.
///
/// Guarantees: the first packet ever maps to `(initial_seq, initial_ts)`; the first packet after a
/// switch gets the next sequence number and a later timestamp; late packets map with the offset
/// their neighbours had; packets passed to [`SequenceRewriter::drop_packet`] leave no gap.
#[derive(Debug, Clone)]
pub struct SequenceRewriter {
    /// Extended output number of the newest packet written (`initial_seq - 1` before any).
    out_highest: i64,
    /// Newest output timestamp (`initial_ts` before any).
    out_ts_highest: u32,
    /// The caller's clock when `out_ts_highest` was first written.
    out_ts_ticks: u64,
    started: bool,
    /// `None` before the first packet and after a switch.
    source: Option<Source>,
}

impl SequenceRewriter {
    pub fn new(initial_seq: u16, initial_ts: u32) -> Self {
        SequenceRewriter {
            out_highest: EXT_BASE + i64::from(initial_seq) - 1,
            out_ts_highest: initial_ts,
            out_ts_ticks: 0,
            started: false,
            source: None,
        }
    }

    /// Maps an incoming `(seq, ts)` of the current source to the outgoing stream (a duplicate maps
    /// where the original did), or `None` if
    /// the packet must not be sent: it was dropped before, predates the last switch, is older than
    /// [`REORDER_WINDOW`], or is the first after a jump too large to be loss (RFC 3550 A.1: the
    /// next sequential packet confirms a restart and continues the output like a switch).
    ///
    /// `now_ticks` is the caller's monotonic clock in ticks of the stream's RTP clock rate (any
    /// epoch, see [`rtp_ticks`]); it sets how far the timestamp advances across a switch.
    pub fn rewrite(&mut self, seq: u16, ts: u32, now_ticks: u64) -> Option<(u16, u32)> {
        let Some(source) = self.source.as_mut() else {
            return Some(self.start_source(seq, ts, now_ticks));
        };
        let ext = source.extend(seq);
        let offset = match position(ext - source.highest) {
            Position::Newer => {
                source.highest = ext;
                source.restart_candidate = None;
                source.current_offset()
            }
            Position::Recent => source.offset_of(ext)?,
            Position::Outside if source.restart_candidate == Some(seq) => {
                return Some(self.start_source(seq, ts, now_ticks));
            }
            Position::Outside => {
                source.restart_candidate = Some(seq.wrapping_add(1));
                return None;
            }
        };
        let out_ts = ts.wrapping_add(source.timestamp_offset);
        Some(self.emit(ext + offset, out_ts, now_ticks))
    }

    /// The next packet (of a new source, or of the same one after a pause) continues the output
    /// with the next sequence number; late packets from before the switch are dropped.
    pub fn switch_source(&mut self) {
        self.source = None;
    }

    /// Drops incoming `seq` so the subscriber sees no gap: later packets shift down by one.
    /// Returns false if that cannot be done because a later packet was already forwarded (the
    /// dropped packet arrived late); its output number then stays unused, like a loss.
    /// Before the first packet of a source there is nothing to hide and this returns true.
    pub fn drop_packet(&mut self, seq: u16) -> bool {
        let Some(source) = self.source.as_mut() else {
            return true;
        };
        let ext = source.extend(seq);
        match position(ext - source.highest) {
            Position::Newer => {
                source.drop_newest(ext);
                source.restart_candidate = None;
                true
            }
            Position::Recent => source.offset_of(ext).is_none(),
            Position::Outside => true,
        }
    }

    /// The incoming sequence number of the current source that output `out_seq` carried, for
    /// answering a subscriber's NACK from a cache keyed by incoming numbers. `None` for numbers
    /// not yet written, from before the last switch, or older than the mapping remembers.
    pub fn original_sequence(&self, out_seq: u16) -> Option<u16> {
        let source = self.source.as_ref()?;
        let out =
            self.out_highest + i64::from(out_seq.wrapping_sub(self.out_highest as u16) as i16);
        if out > self.out_highest {
            return None;
        }
        // Output numbers are contiguous across runs, so the newest segment whose input would
        // lie after its run is the one that produced `out`.
        for i in (0..source.run_count).rev() {
            let run = source.run(i);
            let ext = out - run.offset_after;
            if ext > run.last {
                return (ext <= source.highest).then_some(ext as u16);
            }
        }
        let ext = out - source.floor_offset;
        (ext >= source.floor && ext <= source.highest).then_some(ext as u16)
    }

    /// Sequence number of the newest packet written, if any.
    pub fn last_sequence(&self) -> Option<u16> {
        self.started.then_some(self.out_highest as u16)
    }

    /// Newest timestamp written, if any.
    pub fn last_timestamp(&self) -> Option<u32> {
        self.started.then_some(self.out_ts_highest)
    }

    /// Output minus input timestamp (mod 2^32) of the current source: maps the publisher's
    /// sender reports into this stream's timeline. `None` until a packet of the source is mapped.
    pub fn timestamp_offset(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.timestamp_offset)
    }

    fn start_source(&mut self, seq: u16, ts: u32, now_ticks: u64) -> (u16, u32) {
        let out_ts = if self.started {
            // Advance by the time since the newest frame went out, so the receiver's jitter
            // buffer sees a plausible gap; at least one tick so the new frame is a new frame.
            let elapsed = now_ticks
                .saturating_sub(self.out_ts_ticks)
                .clamp(1, i32::MAX as u64);
            self.out_ts_highest.wrapping_add(elapsed as u32)
        } else {
            self.out_ts_highest
        };
        let out_ext = self.out_highest + 1;
        self.source = Some(Source::new(seq, out_ext, out_ts.wrapping_sub(ts)));
        self.started = true;
        self.out_highest = out_ext;
        self.out_ts_highest = out_ts;
        self.out_ts_ticks = now_ticks;
        (out_ext as u16, out_ts)
    }

    fn emit(&mut self, out_ext: i64, out_ts: u32, now_ticks: u64) -> (u16, u32) {
        self.out_highest = self.out_highest.max(out_ext);
        if out_ts.wrapping_sub(self.out_ts_highest) as i32 > 0 {
            self.out_ts_highest = out_ts;
            self.out_ts_ticks = now_ticks;
        }
        (out_ext as u16, out_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 fps video: 3000 ticks of 90 kHz per frame.
    const FRAME: u32 = 3000;

    #[test]
    fn first_packet_maps_to_the_initial_values_and_offsets_hold() {
        let mut r = SequenceRewriter::new(100, 5000);
        assert_eq!(r.last_sequence(), None);
        assert_eq!(r.rewrite(40_000, 1_000_000, 0), Some((100, 5000)));
        assert_eq!(r.rewrite(40_001, 1_000_000, 0), Some((101, 5000)));
        assert_eq!(
            r.rewrite(40_002, 1_000_000 + FRAME, 33),
            Some((102, 5000 + FRAME))
        );
        assert_eq!(r.last_sequence(), Some(102));
        assert_eq!(r.last_timestamp(), Some(5000 + FRAME));
        assert_eq!(r.timestamp_offset(), Some(5000u32.wrapping_sub(1_000_000)));
    }

    #[test]
    fn sequence_and_timestamp_continue_across_65535_to_0() {
        let mut r = SequenceRewriter::new(65534, u32::MAX - FRAME);
        let mut outputs = Vec::new();
        for (i, seq) in [65533u16, 65534, 65535, 0, 1, 2].into_iter().enumerate() {
            let ts = (u32::MAX - 2 * FRAME).wrapping_add(i as u32 * FRAME);
            outputs.push(r.rewrite(seq, ts, 0).unwrap());
        }
        let seqs: Vec<_> = outputs.iter().map(|o| o.0).collect();
        assert_eq!(seqs, vec![65534, 65535, 0, 1, 2, 3]);
        for pair in outputs.windows(2) {
            assert_eq!(pair[1].1.wrapping_sub(pair[0].1), FRAME);
        }
    }

    #[test]
    fn switch_continues_with_the_next_number_and_elapsed_time() {
        let mut r = SequenceRewriter::new(10, 1000);
        r.rewrite(500, 77_000, 1_000);
        r.rewrite(501, 77_000 + FRAME, 1_000 + u64::from(FRAME));
        r.switch_source();
        // A new source with unrelated numbering, 2 frame durations after the last frame.
        let out = r.rewrite(9, 123, 1_000 + 3 * u64::from(FRAME)).unwrap();
        assert_eq!(out, (12, 1000 + 3 * FRAME));
        assert_eq!(r.rewrite(10, 123 + FRAME, 0), Some((13, 1000 + 4 * FRAME)));
    }

    #[test]
    fn switch_without_elapsed_time_still_advances_the_timestamp() {
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(1, 50, 7);
        r.switch_source();
        assert_eq!(r.rewrite(1, 50, 7), Some((1, 1)));
    }

    #[test]
    fn switch_before_anything_was_sent_changes_nothing() {
        let mut r = SequenceRewriter::new(3, 4);
        r.switch_source();
        assert!(r.drop_packet(77));
        assert_eq!(r.rewrite(80, 9, 1_000_000), Some((3, 4)));
    }

    #[test]
    fn late_packets_map_with_the_same_offset() {
        let mut r = SequenceRewriter::new(1000, 0);
        r.rewrite(1, 0, 0);
        r.rewrite(3, 0, 0);
        r.rewrite(4, FRAME, 0);
        assert_eq!(r.rewrite(2, 0, 0), Some((1001, 0)));
        assert_eq!(r.original_sequence(1001), Some(2));
        // Within the window, even across a wrap of the incoming numbers.
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(65000, 0, 0);
        r.rewrite(10, 0, 0);
        assert_eq!(r.rewrite(65535, 0, 0), Some((535, 0)));
    }

    #[test]
    fn packets_from_before_a_switch_or_outside_the_window_are_dropped() {
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(100, 0, 0);
        r.rewrite(101, 0, 0);
        r.switch_source();
        r.rewrite(103, FRAME, 0);
        assert_eq!(r.rewrite(102, 0, 0), None);
        assert_eq!(r.original_sequence(1), None);
        for seq in 104..=2000 {
            r.rewrite(seq, FRAME, 0);
        }
        assert_eq!(r.rewrite(2000 - REORDER_WINDOW - 1, FRAME, 0), None);
    }

    #[test]
    fn dropped_packets_leave_no_gap() {
        let mut r = SequenceRewriter::new(0, 0);
        assert_eq!(r.rewrite(10, 0, 0), Some((0, 0)));
        assert!(r.drop_packet(11));
        assert!(r.drop_packet(12));
        assert_eq!(r.rewrite(13, 0, 0), Some((1, 0)));
        assert!(r.drop_packet(14));
        assert_eq!(r.rewrite(15, 0, 0), Some((2, 0)));
        // A dropped packet arriving again stays dropped, and so does a duplicate drop.
        assert_eq!(r.rewrite(12, 0, 0), None);
        assert!(r.drop_packet(14));
        assert_eq!(r.original_sequence(1), Some(13));
        assert_eq!(r.original_sequence(2), Some(15));
        assert_eq!(r.original_sequence(3), None);
    }

    #[test]
    fn dropping_ahead_of_missing_packets_keeps_their_slots() {
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(10, 0, 0);
        assert!(r.drop_packet(13));
        assert_eq!(r.rewrite(14, 0, 0), Some((3, 0)));
        assert_eq!(r.rewrite(12, 0, 0), Some((2, 0)));
        assert_eq!(r.rewrite(11, 0, 0), Some((1, 0)));
        assert_eq!(r.original_sequence(3), Some(14));
    }

    #[test]
    fn dropping_a_late_packet_reports_the_gap() {
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(10, 0, 0);
        r.rewrite(12, 0, 0);
        assert!(!r.drop_packet(11));
        assert_eq!(r.rewrite(13, 0, 0), Some((3, 0)));
    }

    #[test]
    fn drops_and_wrap_together() {
        let mut r = SequenceRewriter::new(65535, 0);
        r.rewrite(65534, 0, 0);
        assert!(r.drop_packet(65535));
        assert!(r.drop_packet(0));
        assert_eq!(r.rewrite(1, 0, 0), Some((0, 0)));
        assert_eq!(r.original_sequence(0), Some(1));
        assert_eq!(r.original_sequence(65535), Some(65534));
    }

    #[test]
    fn a_confirmed_jump_is_a_restart_that_continues_the_output() {
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(100, 0, 0);
        r.rewrite(101, 0, 0);
        assert_eq!(r.rewrite(30_000, 555, 100), None);
        assert_eq!(r.rewrite(30_001, 555, 100), Some((2, 100)));
        assert_eq!(r.rewrite(30_002, 555, 100), Some((3, 100)));
        assert_eq!(r.rewrite(102, 0, 0), None);
    }

    #[test]
    fn an_unconfirmed_jump_is_ignored() {
        let mut r = SequenceRewriter::new(0, 0);
        r.rewrite(100, 0, 0);
        assert_eq!(r.rewrite(30_000, 0, 0), None);
        assert_eq!(r.rewrite(101, 0, 0), Some((1, 0)));
        assert_eq!(r.rewrite(30_001, 0, 0), None);
    }

    #[test]
    fn many_drop_runs_keep_recent_packets_consistent() {
        let mut r = SequenceRewriter::new(0, 0);
        let mut expected_out = 0u16;
        for seq in 0..400u16 {
            if seq % 3 == 1 {
                assert!(r.drop_packet(seq));
            } else {
                assert_eq!(r.rewrite(seq, 0, 0), Some((expected_out, 0)));
                expected_out += 1;
            }
        }
        // Recent late duplicates map where they went; ones older than the remembered runs drop.
        assert_eq!(r.rewrite(399, 0, 0), Some((expected_out - 1, 0)));
        assert_eq!(r.rewrite(397, 0, 0), None);
        assert_eq!(r.rewrite(10, 0, 0), None);
        assert_eq!(r.original_sequence(expected_out - 2), Some(398));
    }

    /// Seeded shuffle of a stream with drops: whatever was forwarded has distinct, contiguous,
    /// order-preserving output numbers that invert back to the input.
    #[test]
    fn reordered_stream_with_drops_has_no_holes() {
        let mut rng = 0x5eed_0000_0000_0007u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..20 {
            let start = (next() % 65536) as u16;
            let mut arrival: Vec<u16> = (0..3000u16).map(|i| start.wrapping_add(i)).collect();
            for i in 0..arrival.len() - 3 {
                if next() % 5 == 0 {
                    let j = i + 1 + (next() % 3) as usize;
                    arrival.swap(i, j);
                }
            }
            let mut r = SequenceRewriter::new((next() % 65536) as u16, 0);
            let mut newest: Option<u16> = None;
            let mut forwarded = Vec::new();
            for seq in arrival {
                let is_newest = newest.is_none_or(|n| seq.wrapping_sub(n) as i16 > 0);
                if is_newest {
                    newest = Some(seq);
                }
                // Only newest packets are dropped: a late drop leaves a gap by contract.
                if is_newest && forwarded.len() > 1 && next() % 4 == 0 {
                    assert!(r.drop_packet(seq));
                } else if let Some((out, _)) = r.rewrite(seq, 0, 0) {
                    forwarded.push((seq.wrapping_sub(start), out));
                }
            }
            forwarded.sort();
            let base = forwarded[0].1;
            for (i, (_, out)) in forwarded.iter().enumerate() {
                assert_eq!(
                    out.wrapping_sub(base),
                    i as u16,
                    "round {round}: hole or duplicate"
                );
            }
            // Only recent outputs are within the remembered drop runs.
            for (input, out) in &forwarded[forwarded.len() - 20..] {
                assert_eq!(
                    r.original_sequence(*out),
                    Some(start.wrapping_add(*input)),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn rtp_ticks_converts_durations() {
        assert_eq!(rtp_ticks(Duration::from_millis(20), 48_000), 960);
        assert_eq!(rtp_ticks(Duration::from_secs(1), 90_000), 90_000);
        assert_eq!(rtp_ticks(Duration::MAX, u32::MAX), u64::MAX);
    }
}
