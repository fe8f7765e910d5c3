//! Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01):
//! the receiver's arrival recorder that writes feedback, the sender's history that reads it.
//! Format and bookkeeping only; estimating bandwidth from the results is `bwe`.

use std::fmt;
use std::time::{Duration, Instant};

use crate::rtcp::{TransportCc, PT_RTPFB};

const FMT_TRANSPORT_CC: u8 = 15;
/// Receive deltas count 250 us ticks; the reference time counts 64 ms, i.e. 256 ticks.
const TICK_US: i64 = 250;
const TICKS_PER_REFERENCE: i64 = 256;
const REFERENCE_MASK: i64 = 0xff_ffff;

const NOT_RECEIVED: u8 = 0;
const SMALL_DELTA: u8 = 1;
const LARGE_DELTA: u8 = 2;
/// A run-length chunk's length is 13 bits.
const MAX_RUN: usize = 0x1fff;
const ONE_BIT_SYMBOLS: usize = 14;
const TWO_BIT_SYMBOLS: usize = 7;

/// How long the recorder lets arrivals gather before it sends feedback. Default 50 ms.
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Packets per feedback packet; more pending than this is sent at once. Bounds a feedback packet
/// to about 600 bytes even with every delta large.
pub const MAX_STATUS_PER_FEEDBACK: usize = 256;
/// Arrivals the recorder keeps, and packets the sender remembers, by default.
pub const DEFAULT_HISTORY: usize = 2048;

/// Why a transport-cc feedback packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackError {
    /// The chunks or receive deltas run past the end of the packet.
    Truncated,
    /// A status symbol uses the reserved value 3.
    ReservedSymbol,
}

impl fmt::Display for FeedbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FeedbackError::Truncated => "transport-cc chunks or deltas run past the packet",
            FeedbackError::ReservedSymbol => "transport-cc status symbol is reserved",
        })
    }
}

impl std::error::Error for FeedbackError {}

/// A transport-cc feedback packet whose chunks and deltas have been checked to add up; iterate
/// the packets it reports with [`TransportFeedback::packets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportFeedback<'a> {
    pub base_sequence: u16,
    pub status_count: u16,
    /// 24 bits in units of 64 ms, on the receiver's clock.
    pub reference_time: u32,
    pub feedback_count: u8,
    chunks: &'a [u8],
    deltas: &'a [u8],
}

/// One packet's line in a feedback packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketStatus {
    pub seq: u16,
    /// Arrival in microseconds after the feedback's reference time; `None` if not received.
    pub arrival_us: Option<i64>,
}

impl<'a> TransportFeedback<'a> {
    /// Checks the chunks and deltas of a parsed [`TransportCc`] packet. Bytes after the last
    /// delta (zero padding) are ignored.
    pub fn parse(cc: &TransportCc<'a>) -> Result<Self, FeedbackError> {
        let data = cc.chunks_and_deltas;
        let mut remaining = usize::from(cc.status_count);
        let mut chunks_len = 0;
        let mut deltas_len = 0;
        while remaining > 0 {
            let word = word_at(data, chunks_len).ok_or(FeedbackError::Truncated)?;
            chunks_len += 2;
            let covered = chunk_symbols(word).min(remaining);
            if word & 0x8000 == 0 {
                let symbol = chunk_symbol(word, 0);
                deltas_len += covered * delta_size(symbol)?;
            } else {
                for i in 0..covered {
                    deltas_len += delta_size(chunk_symbol(word, i))?;
                }
            }
            remaining -= covered;
        }
        let chunks = &data[..chunks_len];
        let deltas = data
            .get(chunks_len..chunks_len + deltas_len)
            .ok_or(FeedbackError::Truncated)?;
        Ok(TransportFeedback {
            base_sequence: cc.base_sequence,
            status_count: cc.status_count,
            reference_time: (cc.reference_time as u32) & REFERENCE_MASK as u32,
            feedback_count: cc.feedback_count,
            chunks,
            deltas,
        })
    }

    /// Every packet from `base_sequence` on, `status_count` of them, in sequence order.
    pub fn packets(&self) -> FeedbackPackets<'a> {
        FeedbackPackets {
            chunks: self.chunks,
            deltas: self.deltas,
            word: 0,
            index: 0,
            len: 0,
            remaining: self.status_count,
            seq: self.base_sequence,
            ticks: 0,
        }
    }
}

/// Iterator over the packets of a [`TransportFeedback`].
#[derive(Debug, Clone)]
pub struct FeedbackPackets<'a> {
    chunks: &'a [u8],
    deltas: &'a [u8],
    /// The chunk being read, the next symbol in it and how many symbols it holds.
    word: u16,
    index: usize,
    len: usize,
    remaining: u16,
    seq: u16,
    /// Sum of the deltas so far: the last arrival after the reference time.
    ticks: i64,
}

impl Iterator for FeedbackPackets<'_> {
    type Item = PacketStatus;

    fn next(&mut self) -> Option<PacketStatus> {
        if self.remaining == 0 {
            return None;
        }
        if self.index == self.len {
            let (word, rest) = self.chunks.split_first_chunk::<2>()?;
            self.word = u16::from_be_bytes(*word);
            self.chunks = rest;
            self.index = 0;
            self.len = chunk_symbols(self.word);
        }
        let symbol = chunk_symbol(self.word, self.index);
        self.index += 1;
        self.remaining -= 1;
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        let delta = match symbol {
            SMALL_DELTA => {
                let (&d, rest) = self.deltas.split_first()?;
                self.deltas = rest;
                Some(i64::from(d))
            }
            LARGE_DELTA => {
                let (d, rest) = self.deltas.split_first_chunk::<2>()?;
                self.deltas = rest;
                Some(i64::from(i16::from_be_bytes(*d)))
            }
            _ => None,
        };
        let arrival_us = delta.map(|d| {
            self.ticks += d;
            self.ticks * TICK_US
        });
        Some(PacketStatus { seq, arrival_us })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

fn word_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*data.get(at..)?.first_chunk()?))
}

/// How many symbols a chunk holds: the run length, 14 one-bit or 7 two-bit symbols.
fn chunk_symbols(word: u16) -> usize {
    match word >> 14 {
        0 | 1 => usize::from(word & 0x1fff),
        2 => ONE_BIT_SYMBOLS,
        _ => TWO_BIT_SYMBOLS,
    }
}

/// The `i`th symbol of a chunk (any `i` for a run).
fn chunk_symbol(word: u16, i: usize) -> u8 {
    match word >> 14 {
        0 | 1 => ((word >> 13) & 0x3) as u8,
        2 => ((word >> (13 - i)) & 0x1) as u8,
        _ => ((word >> (12 - 2 * i)) & 0x3) as u8,
    }
}

fn delta_size(symbol: u8) -> Result<usize, FeedbackError> {
    match symbol {
        NOT_RECEIVED => Ok(0),
        SMALL_DELTA => Ok(1),
        LARGE_DELTA => Ok(2),
        _ => Err(FeedbackError::ReservedSymbol),
    }
}

/// Appends status chunks for `symbols`: a run-length chunk for long runs and a trailing run,
/// otherwise the densest status vector that holds the next symbols.
fn write_chunks(out: &mut Vec<u8>, symbols: &[u8]) {
    let mut rest = symbols;
    while let Some(&first) = rest.first() {
        let run = rest
            .iter()
            .take(MAX_RUN)
            .take_while(|&&s| s == first)
            .count();
        let one_bit = rest.len().min(ONE_BIT_SYMBOLS);
        let (word, used) = if run >= ONE_BIT_SYMBOLS || run == rest.len() {
            ((u16::from(first) << 13) | run as u16, run)
        } else if rest[..one_bit].iter().all(|&s| s <= SMALL_DELTA) {
            let bits = rest[..one_bit]
                .iter()
                .enumerate()
                .fold(0u16, |w, (i, &s)| w | u16::from(s) << (13 - i));
            (0x8000 | bits, one_bit)
        } else if run >= TWO_BIT_SYMBOLS {
            ((u16::from(first) << 13) | run as u16, run)
        } else {
            let n = rest.len().min(TWO_BIT_SYMBOLS);
            let bits = rest[..n]
                .iter()
                .enumerate()
                .fold(0u16, |w, (i, &s)| w | u16::from(s) << (12 - 2 * i));
            (0xc000 | bits, n)
        };
        out.extend_from_slice(&word.to_be_bytes());
        rest = &rest[used..];
    }
}

/// Extends a 16-bit sequence number to the one nearest `reference` (same low 16 bits).
fn extend_seq(reference: u64, seq: u16) -> Option<u64> {
    let delta = i64::from(seq.wrapping_sub(reference as u16) as i16);
    reference.checked_add_signed(delta)
}

/// Keeps extended sequence numbers away from zero so that reordering before the first packet
/// does not underflow; a multiple of 2^16 keeps the low bits equal to the wire value.
const SEQ_ORIGIN: u64 = 1 << 32;

#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// Extended sequence number; `u64::MAX` for an empty slot.
    seq: u64,
    /// Since the recorder's epoch.
    at_us: i64,
}

/// Receiver side, for a publisher: records when each transport-wide sequence number arrived and
/// writes transport-cc feedback about them every [`FEEDBACK_INTERVAL`], or at once when a full
/// packet's worth is pending.
///
/// A packet that arrives after the feedback covering its number was written is not reported
/// again; the sender has already counted it lost.
#[derive(Debug)]
pub struct TwccRecorder {
    epoch: Option<Instant>,
    arrivals: Box<[Arrival]>,
    highest: Option<u64>,
    /// The first extended number the next feedback packet reports.
    next_report: u64,
    /// While set, feedback is being written up to this number, one packet per poll.
    flush_until: Option<u64>,
    /// When the pending arrivals are due in feedback.
    due: Option<Instant>,
    feedback_count: u8,
    /// Arrivals dropped because they came after their feedback or fell out of the history.
    late: u64,
    /// Scratch for the packet being written, kept to avoid allocating per feedback.
    symbols: Vec<u8>,
    deltas: Vec<i16>,
}

impl Default for TwccRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl TwccRecorder {
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// A recorder keeping `history` arrivals (rounded up to a power of two, at least 256).
    pub fn with_history(history: usize) -> Self {
        let len = history.max(MAX_STATUS_PER_FEEDBACK).next_power_of_two();
        TwccRecorder {
            epoch: None,
            arrivals: vec![
                Arrival {
                    seq: u64::MAX,
                    at_us: 0
                };
                len
            ]
            .into_boxed_slice(),
            highest: None,
            next_report: 0,
            flush_until: None,
            due: None,
            feedback_count: 0,
            late: 0,
            symbols: Vec::with_capacity(MAX_STATUS_PER_FEEDBACK),
            deltas: Vec::with_capacity(MAX_STATUS_PER_FEEDBACK),
        }
    }

    /// Arrivals dropped because their feedback had already been written.
    pub fn late_arrivals(&self) -> u64 {
        self.late
    }

    fn mask(&self) -> u64 {
        self.arrivals.len() as u64 - 1
    }

    /// Records that the packet carrying transport-wide sequence number `seq` arrived at `at`.
    pub fn record(&mut self, seq: u16, at: Instant) {
        let epoch = *self.epoch.get_or_insert(at);
        let at_us = i64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(0);
        let history = self.arrivals.len() as u64;
        let ext = match self.highest {
            None => {
                let ext = SEQ_ORIGIN + u64::from(seq);
                self.next_report = ext;
                ext
            }
            Some(highest) => match extend_seq(highest, seq) {
                // A jump past the whole history is a restart of the numbering, not a loss burst
                // worth reporting.
                Some(ext) if ext > highest + history => {
                    self.next_report = ext;
                    self.flush_until = None;
                    ext
                }
                Some(ext) if ext >= self.next_report => ext,
                _ => {
                    self.late += 1;
                    return;
                }
            },
        };
        let slot = (ext & self.mask()) as usize;
        self.arrivals[slot] = Arrival { seq: ext, at_us };
        let highest = self.highest.map_or(ext, |h| h.max(ext));
        self.highest = Some(highest);
        if highest - self.next_report >= history {
            self.late += highest + 1 - history - self.next_report;
            self.next_report = highest + 1 - history;
        }
        let due = *self.due.get_or_insert(at + FEEDBACK_INTERVAL);
        if self.pending() >= MAX_STATUS_PER_FEEDBACK as u64 {
            self.due = Some(due.min(at));
        }
    }

    fn pending(&self) -> u64 {
        match self.highest {
            Some(highest) if highest >= self.next_report => highest - self.next_report + 1,
            _ => 0,
        }
    }

    /// When [`TwccRecorder::poll_feedback`] next has something to write, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending() == 0 {
            None
        } else {
            self.due
        }
    }

    /// Appends one transport-cc feedback packet to `out` if feedback is due and returns whether
    /// it did; call again until it returns `false`, since a burst may need several packets.
    pub fn poll_feedback(
        &mut self,
        now: Instant,
        sender_ssrc: u32,
        media_ssrc: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        let pending = self.pending();
        let Some(highest) = self.highest.filter(|_| pending > 0) else {
            self.flush_until = None;
            return false;
        };
        let flush_until = match self.flush_until {
            Some(until) => until,
            None => {
                let due = self.due.is_some_and(|due| now >= due)
                    || pending >= MAX_STATUS_PER_FEEDBACK as u64;
                if !due {
                    return false;
                }
                self.due = Some(now);
                self.flush_until = Some(highest);
                highest
            }
        };
        self.write_one(flush_until, sender_ssrc, media_ssrc, out);
        if self.next_report > flush_until {
            self.flush_until = None;
            self.due = (self.pending() > 0).then_some(now + FEEDBACK_INTERVAL);
        }
        true
    }

    /// Writes feedback from `next_report` up to `until` or as far as one packet goes.
    fn write_one(&mut self, until: u64, sender_ssrc: u32, media_ssrc: u32, out: &mut Vec<u8>) {
        let base = self.next_report;
        let last = until.min(base + MAX_STATUS_PER_FEEDBACK as u64 - 1);
        let mask = self.mask();
        let arrival = |seq: u64| {
            let a = self.arrivals[(seq & mask) as usize];
            (a.seq == seq).then_some(a.at_us / TICK_US)
        };
        let first_ticks = (base..=last).find_map(arrival).unwrap_or(0);
        let reference = first_ticks.div_euclid(TICKS_PER_REFERENCE);
        let mut previous = reference * TICKS_PER_REFERENCE;
        self.symbols.clear();
        self.deltas.clear();
        let mut seq = base;
        while seq <= last {
            match arrival(seq) {
                None => self.symbols.push(NOT_RECEIVED),
                Some(ticks) => {
                    let delta = ticks - previous;
                    let Ok(delta) = i16::try_from(delta) else {
                        // Cannot be the first packet, whose delta is under 256 ticks; the next
                        // feedback packet starts here with a fresh reference time.
                        break;
                    };
                    self.symbols.push(if (0..=255).contains(&delta) {
                        SMALL_DELTA
                    } else {
                        LARGE_DELTA
                    });
                    self.deltas.push(delta);
                    previous = ticks;
                }
            }
            seq += 1;
        }
        self.next_report = seq;

        let start = out.len();
        out.extend_from_slice(&[0x80 | FMT_TRANSPORT_CC, PT_RTPFB, 0, 0]);
        out.extend_from_slice(&sender_ssrc.to_be_bytes());
        out.extend_from_slice(&media_ssrc.to_be_bytes());
        out.extend_from_slice(&(base as u16).to_be_bytes());
        out.extend_from_slice(&(self.symbols.len() as u16).to_be_bytes());
        let reference = ((reference & REFERENCE_MASK) as u32).to_be_bytes();
        out.extend_from_slice(&[
            reference[1],
            reference[2],
            reference[3],
            self.feedback_count,
        ]);
        self.feedback_count = self.feedback_count.wrapping_add(1);
        write_chunks(out, &self.symbols);
        for &delta in &self.deltas {
            match u8::try_from(delta) {
                Ok(small) => out.push(small),
                Err(_) => out.extend_from_slice(&delta.to_be_bytes()),
            }
        }
        // RFC 3550 §6.4.1-style padding with the count in the last byte, as browsers send it.
        let padding = (4 - (out.len() - start) % 4) % 4;
        if padding > 0 {
            out.resize(out.len() + padding - 1, 0);
            out.push(padding as u8);
            out[start] |= 0x20;
        }
        let words = ((out.len() - start) / 4 - 1) as u16;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    }
}

/// What feedback said about one packet the sender sent: the estimator's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    /// Extended transport-wide sequence number.
    pub seq: u64,
    pub send_time: Instant,
    /// Bytes on the wire (RTP header, payload and padding).
    pub size_bytes: usize,
    /// Arrival on the receiver's clock, in microseconds from an arbitrary origin that stays fixed
    /// for the session; `None` if the packet was reported lost.
    pub arrival_us: Option<i64>,
    /// The probe cluster the packet was sent in, if any.
    pub probe_cluster: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    /// Extended sequence number; `u64::MAX` for an empty slot.
    seq: u64,
    send_us: u64,
    size_bytes: u32,
    /// 0 for none.
    probe_cluster: u32,
    reported: bool,
}

/// Sender side, for a subscriber: numbers outgoing packets, remembers what was sent and when, and
/// turns transport-cc feedback into [`PacketResult`]s. Each packet is reported once; feedback
/// about packets older than the history is ignored.
#[derive(Debug)]
pub struct TwccSender {
    epoch: Option<Instant>,
    sent: Box<[Sent]>,
    /// Extended number of the next packet.
    next_seq: u64,
    /// The last feedback's reference time, unwrapped past 24 bits.
    reference: Option<i64>,
}

impl Default for TwccSender {
    fn default() -> Self {
        Self::new()
    }
}

impl TwccSender {
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// A sender remembering `history` packets (rounded up to a power of two, at least 256).
    pub fn with_history(history: usize) -> Self {
        let len = history.max(MAX_STATUS_PER_FEEDBACK).next_power_of_two();
        TwccSender {
            epoch: None,
            sent: vec![
                Sent {
                    seq: u64::MAX,
                    send_us: 0,
                    size_bytes: 0,
                    probe_cluster: 0,
                    reported: false,
                };
                len
            ]
            .into_boxed_slice(),
            next_seq: SEQ_ORIGIN,
            reference: None,
        }
    }

    /// Registers a packet sent at `now` and returns the transport-wide sequence number to write
    /// in its header extension. `probe_cluster` is the running probe's id (see `bwe::Prober`).
    pub fn on_send(&mut self, now: Instant, size_bytes: usize, probe_cluster: Option<u32>) -> u16 {
        let epoch = *self.epoch.get_or_insert(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = (seq & (self.sent.len() as u64 - 1)) as usize;
        self.sent[slot] = Sent {
            seq,
            send_us: u64::try_from(now.saturating_duration_since(epoch).as_micros())
                .unwrap_or(u64::MAX),
            size_bytes: u32::try_from(size_bytes).unwrap_or(u32::MAX),
            probe_cluster: probe_cluster.unwrap_or(0),
            reported: false,
        };
        seq as u16
    }

    /// Appends a result to `out` for every packet `feedback` reports that is still in the
    /// history and was not reported before, in sequence order.
    pub fn on_feedback(&mut self, feedback: &TransportFeedback<'_>, out: &mut Vec<PacketResult>) {
        let Some(epoch) = self.epoch else {
            return;
        };
        let wire = i64::from(feedback.reference_time);
        let reference = match self.reference {
            None => wire,
            Some(last) => {
                // The nearest value with the same low 24 bits.
                let diff = (wire - last).rem_euclid(1 << 24);
                last + if diff >= 1 << 23 {
                    diff - (1 << 24)
                } else {
                    diff
                }
            }
        };
        self.reference = Some(reference);
        let origin_us = reference * TICKS_PER_REFERENCE * TICK_US;
        let last_sent = self.next_seq - 1;
        let mask = self.sent.len() as u64 - 1;
        for status in feedback.packets() {
            let Some(seq) = extend_seq(last_sent, status.seq).filter(|&s| s <= last_sent) else {
                continue;
            };
            let sent = &mut self.sent[(seq & mask) as usize];
            if sent.seq != seq || sent.reported {
                continue;
            }
            sent.reported = true;
            out.push(PacketResult {
                seq,
                send_time: epoch + Duration::from_micros(sent.send_us),
                size_bytes: sent.size_bytes as usize,
                arrival_us: status.arrival_us.map(|a| origin_us + a),
                probe_cluster: (sent.probe_cluster != 0).then_some(sent.probe_cluster),
            });
        }
    }
}

/// Fuzz entry point: checks and walks every transport-cc packet of a compound RTCP packet.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) -> usize {
    crate::rtcp::packets(data)
        .filter_map(|p| match p {
            Ok(crate::rtcp::RtcpPacket::TransportCc(cc)) => TransportFeedback::parse(&cc).ok(),
            _ => None,
        })
        .map(|feedback| {
            feedback
                .packets()
                .filter(|p| p.arrival_us.is_some())
                .count()
                + 1
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{packets, RtcpPacket};

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn feedback(buf: &[u8]) -> TransportFeedback<'_> {
        let mut all = packets(buf);
        let Some(Ok(RtcpPacket::TransportCc(cc))) = all.next() else {
            panic!("expected transport-cc")
        };
        TransportFeedback::parse(&cc).expect("valid feedback")
    }

    fn drain(rec: &mut TwccRecorder, now: Instant) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let mut out = Vec::new();
            if !rec.poll_feedback(now, 1, 2, &mut out) {
                return all;
            }
            all.push(out);
        }
    }

    #[test]
    fn writes_the_hand_computed_mixed_vector() {
        let t0 = crate::test_epoch();
        let mut rec = TwccRecorder::new();
        rec.record(65534, t0);
        rec.record(0, t0 + us(1_000));
        rec.record(1, t0 + us(70_000));
        rec.record(2, t0 + us(69_750));
        let mut out = Vec::new();
        assert!(!rec.poll_feedback(t0 + us(49_999), 1, 2, &mut out));
        assert!(rec.poll_feedback(t0 + us(70_000), 1, 2, &mut out));
        #[rustfmt::skip]
        let expected = [
            0x8f, 205, 0x00, 0x06,
            0, 0, 0, 1,
            0, 0, 0, 2,
            0xff, 0xfe, 0x00, 0x05, // base 65534, 5 packets
            0x00, 0x00, 0x00, 0x00, // reference 0, feedback 0
            0xd1, 0xa0, // two-bit vector: small, lost, small, large, large
            0x00, 0x04, 0x01, 0x14, 0xff, 0xff, // 0, +1 ms, +69 ms, -250 us
        ];
        assert_eq!(out, expected);
        assert!(!rec.poll_feedback(t0 + us(70_000), 1, 2, &mut out));
    }

    #[test]
    fn writes_the_hand_computed_run_length_vector_with_padding() {
        let t0 = crate::test_epoch();
        let mut rec = TwccRecorder::new();
        // Anchor the epoch, then report it; the interesting packet follows.
        rec.record(9, t0);
        drain(&mut rec, t0 + FEEDBACK_INTERVAL);
        for i in 0..20u16 {
            rec.record(10 + i, t0 + us(64_250 + 1_000 * u64::from(i)));
        }
        let packets = drain(&mut rec, t0 + us(200_000));
        let mut expected = vec![
            0xaf, 205, 0x00, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 10, 0x00, 20, // base 10, 20
            0x00, 0x00, 0x01, 0x01, // reference 64 ms, feedback 1
            0x20, 0x14, // run of 20 small deltas
            0x01,
        ];
        expected.extend_from_slice(&[0x04; 19]);
        expected.extend_from_slice(&[0x00, 0x02]);
        assert_eq!(packets, vec![expected]);
    }

    #[test]
    fn parses_the_hand_computed_vector() {
        let buf = [
            0x8f, 205, 0x00, 0x06, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x00, 0x05, 0x00, 0x00,
            0x02, 0x07, 0xd1, 0xa0, 0x00, 0x04, 0x01, 0x14, 0xff, 0xff,
        ];
        let fb = feedback(&buf);
        assert_eq!(
            (fb.base_sequence, fb.reference_time, fb.feedback_count),
            (65534, 2, 7)
        );
        let got: Vec<_> = fb.packets().map(|p| (p.seq, p.arrival_us)).collect();
        assert_eq!(
            got,
            vec![
                (65534, Some(0)),
                (65535, None),
                (0, Some(1_000)),
                (1, Some(70_000)),
                (2, Some(69_750)),
            ]
        );
    }

    #[test]
    fn every_chunk_kind_round_trips() {
        // Patterns that exercise runs of each symbol, one-bit and two-bit vectors and a long run.
        let patterns: [&[u8]; 6] = [
            &[1; 40],
            &[1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0],
            &[2, 1, 0, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0],
            &[1, 2],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[1; 9000],
        ];
        for symbols in patterns {
            let mut chunks = Vec::new();
            write_chunks(&mut chunks, symbols);
            let mut body = chunks.clone();
            let deltas: usize = symbols.iter().map(|&s| delta_size(s).unwrap()).sum();
            body.resize(body.len() + deltas, 0x7f);
            let cc = TransportCc {
                sender_ssrc: 1,
                media_ssrc: 2,
                base_sequence: 65530,
                status_count: symbols.len() as u16,
                reference_time: 0,
                feedback_count: 0,
                chunks_and_deltas: &body,
            };
            let fb = TransportFeedback::parse(&cc).unwrap();
            let got: Vec<u8> = fb
                .packets()
                .map(|p| match p.arrival_us {
                    None => 0,
                    Some(_) => 1,
                })
                .collect();
            let want: Vec<u8> = symbols.iter().map(|&s| s.min(1)).collect();
            assert_eq!(got, want);
            assert_eq!(fb.chunks.len(), chunks.len());
        }
    }

    #[test]
    fn feedback_round_trips_arrivals_to_the_tick() {
        let t0 = crate::test_epoch();
        let mut rec = TwccRecorder::new();
        let mut rng = 0x5eed_u64;
        let mut arrivals = Vec::new();
        let mut t = 3_000_000u64;
        for seq in 0..1000u16 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t += rng % 3_000;
            if rng.is_multiple_of(10) {
                continue;
            }
            // Every 100th packet arrives after a long gap that needs a large delta.
            if seq % 100 == 50 {
                t += 80_000;
            }
            rec.record(seq.wrapping_add(65000), t0 + us(t));
            arrivals.push((seq.wrapping_add(65000), t));
        }
        let all = drain(&mut rec, t0 + us(t) + FEEDBACK_INTERVAL);
        assert!(all.len() >= 4, "1000 packets need several feedback packets");
        let mut got = Vec::new();
        for buf in &all {
            assert_eq!(buf.len() % 4, 0);
            let fb = feedback(buf);
            let origin = i64::from(fb.reference_time) * 64_000;
            got.extend(
                fb.packets()
                    .filter_map(|p| Some((p.seq, origin + p.arrival_us?))),
            );
        }
        let first = arrivals[0].1 as i64;
        let want: Vec<_> = arrivals
            .iter()
            .map(|&(seq, t)| (seq, (t as i64 - first) / 250 * 250))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn waits_for_the_interval_unless_a_full_packet_is_pending() {
        let t0 = crate::test_epoch();
        let mut rec = TwccRecorder::new();
        let mut out = Vec::new();
        assert_eq!(rec.poll_timeout(), None);
        rec.record(1, t0);
        rec.record(2, t0 + us(10_000));
        assert_eq!(rec.poll_timeout(), Some(t0 + FEEDBACK_INTERVAL));
        assert!(!rec.poll_feedback(t0 + us(20_000), 1, 2, &mut out));
        for seq in 3..=MAX_STATUS_PER_FEEDBACK as u16 {
            rec.record(seq, t0 + us(20_000));
        }
        assert!(rec.poll_feedback(t0 + us(20_000), 1, 2, &mut out));
        assert!(!rec.poll_feedback(t0 + us(20_000), 1, 2, &mut out));
        assert_eq!(
            feedback(&out).status_count as usize,
            MAX_STATUS_PER_FEEDBACK
        );
    }

    #[test]
    fn late_arrivals_are_not_reported_twice() {
        let t0 = crate::test_epoch();
        let mut rec = TwccRecorder::new();
        rec.record(10, t0);
        rec.record(12, t0 + us(1_000));
        let first = drain(&mut rec, t0 + FEEDBACK_INTERVAL);
        assert_eq!(first.len(), 1);
        rec.record(11, t0 + us(60_000));
        rec.record(13, t0 + us(61_000));
        let second = drain(&mut rec, t0 + us(200_000));
        let fb = feedback(&second[0]);
        assert_eq!((fb.base_sequence, fb.status_count), (13, 1));
        assert_eq!(rec.late_arrivals(), 1);
    }

    #[test]
    fn sender_maps_feedback_to_send_times_and_sizes_once() {
        let t0 = crate::test_epoch();
        let mut sender = TwccSender::new();
        let mut rec = TwccRecorder::new();
        for i in 0..70_000u64 {
            let sent_at = t0 + us(i * 250);
            let probe = i.is_multiple_of(3).then_some(7);
            let seq = sender.on_send(sent_at, 100 + (i % 1000) as usize, probe);
            if i >= 69_990 && i % 4 != 1 {
                rec.record(seq, sent_at + us(20_000));
            }
        }
        let now = t0 + us(17_600_000);
        let mut results = Vec::new();
        for buf in drain(&mut rec, now) {
            sender.on_feedback(&feedback(&buf), &mut results);
        }
        assert_eq!(results.len(), 10);
        let first_arrival = results[0].arrival_us.unwrap();
        for (k, r) in results.iter().enumerate() {
            let i = 69_990 + k as u64;
            assert_eq!(r.seq, SEQ_ORIGIN + i);
            assert_eq!(r.send_time, t0 + us(i * 250));
            assert_eq!(r.size_bytes, 100 + (i % 1000) as usize);
            assert_eq!(r.probe_cluster, i.is_multiple_of(3).then_some(7));
            match r.arrival_us {
                None => assert_eq!(i % 4, 1),
                Some(a) => assert_eq!(a - first_arrival, (k as i64) * 250),
            }
        }
        // The same feedback again yields nothing new.
        let mut again = Vec::new();
        let mut rec2 = TwccRecorder::new();
        rec2.record((SEQ_ORIGIN + 69_995) as u16, now);
        for buf in drain(&mut rec2, now + FEEDBACK_INTERVAL) {
            sender.on_feedback(&feedback(&buf), &mut again);
        }
        assert!(again.is_empty());
    }

    #[test]
    fn sender_unwraps_the_reference_time() {
        let t0 = crate::test_epoch();
        let mut sender = TwccSender::new();
        sender.on_send(t0, 100, None);
        sender.on_send(t0, 100, None);
        let mut results = Vec::new();
        for (seq, reference) in [(0u16, 0xff_ffffu32), (1, 0)] {
            let body = [0x20, 0x01, 0x00];
            let cc = TransportCc {
                sender_ssrc: 1,
                media_ssrc: 2,
                base_sequence: seq,
                status_count: 1,
                reference_time: reference as i32,
                feedback_count: 0,
                chunks_and_deltas: &body,
            };
            sender.on_feedback(&TransportFeedback::parse(&cc).unwrap(), &mut results);
        }
        let arrivals: Vec<_> = results.iter().map(|r| r.arrival_us.unwrap()).collect();
        assert_eq!(arrivals[1] - arrivals[0], 64_000);
    }

    #[test]
    fn truncated_or_reserved_feedback_is_an_error() {
        let cc = |status_count, body: &'static [u8]| TransportCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence: 0,
            status_count,
            reference_time: 0,
            feedback_count: 0,
            chunks_and_deltas: body,
        };
        let parse = |status_count, body| TransportFeedback::parse(&cc(status_count, body));
        assert_eq!(parse(1, &[]), Err(FeedbackError::Truncated));
        assert_eq!(parse(3, &[0x20, 0x03, 1, 2]), Err(FeedbackError::Truncated));
        assert_eq!(parse(2, &[0x60, 0x02]), Err(FeedbackError::ReservedSymbol));
        assert_eq!(parse(1, &[0xf0, 0x00]), Err(FeedbackError::ReservedSymbol));
        // Symbols past the status count, even reserved ones, and trailing bytes are ignored.
        assert!(parse(1, &[0xd3, 0xff, 0x05, 0x00, 0x00, 0x00]).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let t0 = crate::test_epoch();
        let mut sender = TwccSender::new();
        for _ in 0..100 {
            sender.on_send(t0, 1000, None);
        }
        let mut rng = 0x0bad_cafe_u64;
        let mut body = [0u8; 64];
        let mut results = Vec::with_capacity(4096);
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = (rng % 64) as usize;
            for b in &mut body[..len] {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            let cc = TransportCc {
                sender_ssrc: 1,
                media_ssrc: 2,
                base_sequence: (rng >> 8) as u16,
                status_count: (rng >> 24) as u16 % 200,
                reference_time: (rng >> 40) as i32,
                feedback_count: 0,
                chunks_and_deltas: &body[..len],
            };
            if let Ok(fb) = TransportFeedback::parse(&cc) {
                results.clear();
                sender.on_feedback(&fb, &mut results);
            }
            let mut packet = vec![
                0x8f, 205, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
            ];
            packet[14..16].copy_from_slice(&(rng as u16 % 64).to_be_bytes());
            packet.extend_from_slice(&body[..len]);
            packet.resize(packet.len().next_multiple_of(4), 0);
            let words = (packet.len() / 4 - 1) as u16;
            packet[2..4].copy_from_slice(&words.to_be_bytes());
            fuzz_parse(&packet);
        }
    }
}
