//! RTCP compound packets (RFC 3550, 4585, 5104, draft-alvestrand-rmcat-remb, transport-cc header):
//! zero-copy parsing and writers that append to caller buffers. Formats only; no timing or policy.

use std::fmt;
use std::slice::ChunksExact;

/// Why an RTCP packet could not be parsed. Iteration over a compound packet stops at the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// Fewer than the 4 bytes of a common header left.
    TooShort,
    /// The version field is not 2.
    BadVersion,
    /// The length field runs past the end of the buffer.
    BadLength,
    /// The padding count is zero or larger than the body.
    BadPadding,
    /// The body is too short for its packet type and count, or its parts do not add up.
    Malformed,
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RtcpError::TooShort => "shorter than an RTCP header",
            RtcpError::BadVersion => "RTCP version is not 2",
            RtcpError::BadLength => "RTCP length runs past the buffer",
            RtcpError::BadPadding => "invalid RTCP padding",
            RtcpError::Malformed => "RTCP body does not match its type",
        })
    }
}

impl std::error::Error for RtcpError {}

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
/// Transport layer feedback (RFC 4585 §6.2).
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 §6.3).
pub const PT_PSFB: u8 = 206;

const FMT_NACK: u8 = 1;
const FMT_TMMBR: u8 = 3;
const FMT_TRANSPORT_CC: u8 = 15;
const FMT_PLI: u8 = 1;
const FMT_FIR: u8 = 4;
const FMT_AFB: u8 = 15;
const SDES_CNAME: u8 = 1;
const REPORT_BLOCK_LEN: usize = 24;
/// Report count, source count and FMT are five-bit fields.
const MAX_COUNT: usize = 31;

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport<'a>),
    ReceiverReport(ReceiverReport<'a>),
    /// The SDES body (chunks); read it with [`sdes_items`].
    Sdes(&'a [u8]),
    Bye(Bye<'a>),
    Pli {
        sender_ssrc: u32,
        media_ssrc: u32,
    },
    Fir(Fir<'a>),
    Nack(Nack<'a>),
    Remb(Remb<'a>),
    Tmmbr(Tmmbr<'a>),
    TransportCc(TransportCc<'a>),
    /// Any other packet type or feedback format; `body` follows the 4-byte header, padding removed.
    Other {
        packet_type: u8,
        format: u8,
        body: &'a [u8],
    },
}

/// Iterator over the packets of a compound RTCP packet. See [`packets`].
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    buf: &'a [u8],
}

/// The packets of a (decrypted) compound RTCP packet, in order. A malformed packet yields one
/// error and ends the iteration, since the lengths after it cannot be trusted.
pub fn packets(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter { buf }
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        match parse_one(self.buf) {
            Ok((packet, len)) => {
                self.buf = self.buf.get(len..).unwrap_or_default();
                Some(Ok(packet))
            }
            Err(e) => {
                self.buf = &[];
                Some(Err(e))
            }
        }
    }
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*buf.get(at..)?.first_chunk()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*buf.get(at..)?.first_chunk()?))
}

/// Parses the packet at the start of `buf`; returns it and its length in bytes.
fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    let Some(&[first, packet_type, len_hi, len_lo]) = buf.first_chunk::<4>() else {
        return Err(RtcpError::TooShort);
    };
    if first >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
    let Some(packet) = buf.get(..len) else {
        return Err(RtcpError::BadLength);
    };
    let mut body = &packet[4..];
    if first & 0x20 != 0 {
        let padding = usize::from(packet[len - 1]);
        if padding == 0 || padding > body.len() {
            return Err(RtcpError::BadPadding);
        }
        body = &body[..body.len() - padding];
    }
    let count = first & 0x1f;
    let parsed = parse_body(packet_type, count, body).ok_or(RtcpError::Malformed)?;
    Ok((parsed, len))
}

fn parse_body(packet_type: u8, count: u8, body: &[u8]) -> Option<RtcpPacket<'_>> {
    let other = RtcpPacket::Other {
        packet_type,
        format: count,
        body,
    };
    let blocks_len = usize::from(count) * REPORT_BLOCK_LEN;
    Some(match (packet_type, count) {
        (PT_SR, _) => RtcpPacket::SenderReport(SenderReport {
            ssrc: u32_at(body, 0)?,
            ntp: u64::from_be_bytes(*body.get(4..)?.first_chunk()?),
            rtp_timestamp: u32_at(body, 12)?,
            packet_count: u32_at(body, 16)?,
            octet_count: u32_at(body, 20)?,
            report_blocks: body.get(24..24 + blocks_len)?,
        }),
        (PT_RR, _) => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: u32_at(body, 0)?,
            report_blocks: body.get(4..4 + blocks_len)?,
        }),
        (PT_SDES, _) => RtcpPacket::Sdes(body),
        (PT_BYE, _) => {
            let ssrcs_len = 4 * usize::from(count);
            let ssrcs = body.get(..ssrcs_len)?;
            let reason = match body.get(ssrcs_len) {
                Some(&n) => Some(body.get(ssrcs_len + 1..ssrcs_len + 1 + usize::from(n))?),
                None => None,
            };
            RtcpPacket::Bye(Bye { ssrcs, reason })
        }
        (PT_RTPFB, FMT_NACK) => {
            let fci = body.get(8..)?;
            if fci.len() % 4 != 0 {
                return None;
            }
            RtcpPacket::Nack(Nack {
                sender_ssrc: u32_at(body, 0)?,
                media_ssrc: u32_at(body, 4)?,
                fci,
            })
        }
        (PT_RTPFB, FMT_TMMBR) => {
            let fci = body.get(8..)?;
            if fci.is_empty() || fci.len() % TMMBR_ENTRY_LEN != 0 {
                return None;
            }
            RtcpPacket::Tmmbr(Tmmbr {
                sender_ssrc: u32_at(body, 0)?,
                fci,
            })
        }
        (PT_RTPFB, FMT_TRANSPORT_CC) => {
            let reference = body.get(12..15)?;
            // 24-bit signed multiple of 64 ms: sign-extend through the top byte.
            let reference_time =
                i32::from_be_bytes([reference[0], reference[1], reference[2], 0]) >> 8;
            RtcpPacket::TransportCc(TransportCc {
                sender_ssrc: u32_at(body, 0)?,
                media_ssrc: u32_at(body, 4)?,
                base_sequence: u16_at(body, 8)?,
                status_count: u16_at(body, 10)?,
                reference_time,
                feedback_count: *body.get(15)?,
                chunks_and_deltas: body.get(16..)?,
            })
        }
        (PT_PSFB, FMT_PLI) => RtcpPacket::Pli {
            sender_ssrc: u32_at(body, 0)?,
            media_ssrc: u32_at(body, 4)?,
        },
        (PT_PSFB, FMT_FIR) => {
            let entries = body.get(8..)?;
            if entries.len() % 8 != 0 {
                return None;
            }
            RtcpPacket::Fir(Fir {
                sender_ssrc: u32_at(body, 0)?,
                media_ssrc: u32_at(body, 4)?,
                entries,
            })
        }
        (PT_PSFB, FMT_AFB) if body.get(8..12) == Some(&b"REMB"[..]) => {
            let &[ssrc_count, b0, b1, b2] = body.get(12..)?.first_chunk::<4>()?;
            RtcpPacket::Remb(Remb {
                sender_ssrc: u32_at(body, 0)?,
                exponent: b0 >> 2,
                mantissa: u32::from(b0 & 0x03) << 16 | u32::from(b1) << 8 | u32::from(b2),
                ssrcs: body.get(16..16 + 4 * usize::from(ssrc_count))?,
            })
        }
        _ => other,
    })
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire; writers clamp to -2^23..=2^23-1.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8; REPORT_BLOCK_LEN]) -> Self {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        ReportBlock {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost: i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8,
            extended_highest_seq: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = self
            .cumulative_lost
            .clamp(-0x80_0000, 0x7f_ffff)
            .to_be_bytes();
        out.extend_from_slice(&[self.fraction_lost, lost[1], lost[2], lost[3]]);
        out.extend_from_slice(&self.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// Iterator over report blocks.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a>(ChunksExact<'a, u8>);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        self.0
            .next()
            .and_then(|b| b.first_chunk())
            .map(ReportBlock::parse)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

/// Iterator over a list of 32-bit SSRCs.
#[derive(Debug, Clone)]
pub struct Ssrcs<'a>(ChunksExact<'a, u8>);

impl Iterator for Ssrcs<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        self.0
            .next()
            .and_then(|b| b.first_chunk())
            .map(|b| u32::from_be_bytes(*b))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Ssrcs<'_> {}

/// Sender report (RFC 3550 §6.4.1). Profile-specific extensions after the blocks are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    pub ssrc: u32,
    /// NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low 32.
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    report_blocks: &'a [u8],
}

impl<'a> SenderReport<'a> {
    pub fn reports(&self) -> ReportBlocks<'a> {
        ReportBlocks(self.report_blocks.chunks_exact(REPORT_BLOCK_LEN))
    }

    /// The middle 32 bits of the NTP timestamp, as echoed in `last_sr` (RFC 3550 §6.4.1).
    pub fn compact_ntp(&self) -> u32 {
        (self.ntp >> 16) as u32
    }
}

/// Receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    pub ssrc: u32,
    report_blocks: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    pub fn reports(&self) -> ReportBlocks<'a> {
        ReportBlocks(self.report_blocks.chunks_exact(REPORT_BLOCK_LEN))
    }
}

/// Goodbye (RFC 3550 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bye<'a> {
    ssrcs: &'a [u8],
    /// "Reason for leaving", if present; not validated as UTF-8.
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    pub fn ssrcs(&self) -> Ssrcs<'a> {
        Ssrcs(self.ssrcs.chunks_exact(4))
    }
}

/// One SDES item (RFC 3550 §6.5): the chunk's SSRC, the item type (1 = CNAME) and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub ssrc: u32,
    pub item_type: u8,
    pub value: &'a [u8],
}

/// Iterator over the items of an SDES body. See [`sdes_items`].
#[derive(Debug, Clone)]
pub struct SdesItems<'a> {
    body: &'a [u8],
    pos: usize,
    chunk_ssrc: Option<u32>,
}

/// The items of every chunk of an SDES body ([`RtcpPacket::Sdes`]). Stops at the first item that
/// runs past the body.
pub fn sdes_items(body: &[u8]) -> SdesItems<'_> {
    SdesItems {
        body,
        pos: 0,
        chunk_ssrc: None,
    }
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;

    fn next(&mut self) -> Option<SdesItem<'a>> {
        loop {
            let ssrc = match self.chunk_ssrc {
                Some(ssrc) => ssrc,
                None => {
                    let ssrc = u32_at(self.body, self.pos)?;
                    self.pos += 4;
                    self.chunk_ssrc = Some(ssrc);
                    ssrc
                }
            };
            let &item_type = self.body.get(self.pos)?;
            if item_type == 0 {
                // The null item ends the chunk; the next one starts at a 32-bit boundary. The
                // body starts 4 bytes into the packet, so body offsets align the same way.
                self.pos = (self.pos + 4) & !3;
                self.chunk_ssrc = None;
                continue;
            }
            let Some(&len) = self.body.get(self.pos + 1) else {
                self.pos = self.body.len();
                return None;
            };
            let start = self.pos + 2;
            let Some(value) = self.body.get(start..start + usize::from(len)) else {
                self.pos = self.body.len();
                return None;
            };
            self.pos = start + usize::from(len);
            return Some(SdesItem {
                ssrc,
                item_type,
                value,
            });
        }
    }
}

/// Full intra request (RFC 5104 §4.3.1). The header's media SSRC is 0 by the RFC; the target is
/// in each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fir<'a> {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    entries: &'a [u8],
}

impl<'a> Fir<'a> {
    /// `(ssrc, command sequence number)` per entry.
    pub fn entries(&self) -> FirEntries<'a> {
        FirEntries(self.entries.chunks_exact(8))
    }
}

#[derive(Debug, Clone)]
pub struct FirEntries<'a>(ChunksExact<'a, u8>);

impl Iterator for FirEntries<'_> {
    type Item = (u32, u8);

    fn next(&mut self) -> Option<(u32, u8)> {
        let e = self.0.next()?;
        Some((u32_at(e, 0)?, *e.get(4)?))
    }
}

/// Generic NACK (RFC 4585 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack<'a> {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    fci: &'a [u8],
}

impl<'a> Nack<'a> {
    /// The raw `(pid, blp)` pairs.
    pub fn pairs(&self) -> NackPairs<'a> {
        NackPairs(self.fci.chunks_exact(4))
    }

    /// Every sequence number reported lost, pair by pair: `pid`, then `pid + i + 1` for each set
    /// bit `i` of `blp` (wrapping).
    pub fn lost(&self) -> NackLost<'a> {
        NackLost {
            pairs: self.pairs(),
            current: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NackPairs<'a>(ChunksExact<'a, u8>);

impl Iterator for NackPairs<'_> {
    type Item = (u16, u16);

    fn next(&mut self) -> Option<(u16, u16)> {
        let p = self.0.next()?;
        Some((u16_at(p, 0)?, u16_at(p, 2)?))
    }
}

#[derive(Debug, Clone)]
pub struct NackLost<'a> {
    pairs: NackPairs<'a>,
    /// The pair being expanded: pid and the bits of blp not yet yielded.
    current: Option<(u16, u16)>,
}

impl Iterator for NackLost<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        match self.current {
            Some((pid, blp)) if blp != 0 => {
                let bit = blp.trailing_zeros() as u16;
                self.current = Some((pid, blp & (blp - 1)));
                Some(pid.wrapping_add(bit + 1))
            }
            _ => {
                let (pid, blp) = self.pairs.next()?;
                self.current = Some((pid, blp));
                Some(pid)
            }
        }
    }
}

/// Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remb<'a> {
    pub sender_ssrc: u32,
    pub exponent: u8,
    /// 18 bits.
    pub mantissa: u32,
    ssrcs: &'a [u8],
}

impl<'a> Remb<'a> {
    /// `mantissa * 2^exponent`, saturating.
    pub fn bitrate_bps(&self) -> u64 {
        let mantissa = u64::from(self.mantissa);
        if mantissa == 0 {
            0
        } else if u32::from(self.exponent) > mantissa.leading_zeros() {
            u64::MAX
        } else {
            mantissa << self.exponent
        }
    }

    /// The SSRCs the estimate applies to.
    pub fn ssrcs(&self) -> Ssrcs<'a> {
        Ssrcs(self.ssrcs.chunks_exact(4))
    }
}

const TMMBR_ENTRY_LEN: usize = 8;

/// Temporary maximum media stream bit rate request (RFC 5104 §4.2.1): per media SSRC, the most
/// the receiver wants to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmmbr<'a> {
    pub sender_ssrc: u32,
    fci: &'a [u8],
}

/// One request of a TMMBR: `mantissa * 2^exponent` bit/s for `ssrc`, `overhead` bytes of
/// per-packet overhead the receiver counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmmbrRequest {
    pub ssrc: u32,
    pub bitrate_bps: u64,
    pub overhead: u16,
}

impl<'a> Tmmbr<'a> {
    pub fn requests(&self) -> impl Iterator<Item = TmmbrRequest> + 'a {
        self.fci.chunks_exact(TMMBR_ENTRY_LEN).map(|entry| {
            let ssrc = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let word = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let exponent = word >> 26;
            let mantissa = u64::from((word >> 9) & 0x1_ffff);
            // A 17-bit mantissa shifted by up to 63 overflows: saturate, as REMB does.
            let bitrate_bps = if mantissa == 0 {
                0
            } else if exponent > mantissa.leading_zeros() {
                u64::MAX
            } else {
                mantissa << exponent
            };
            TmmbrRequest {
                ssrc,
                bitrate_bps,
                overhead: (word & 0x1ff) as u16,
            }
        })
    }
}

/// Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions
/// §3.1): header fields; the packet status chunks and receive deltas stay raw for the
/// bandwidth estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportCc<'a> {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    pub base_sequence: u16,
    pub status_count: u16,
    /// 24-bit signed, in multiples of 64 ms.
    pub reference_time: i32,
    pub feedback_count: u8,
    pub chunks_and_deltas: &'a [u8],
}

/// Appends a common header with a zero length; returns where the packet starts for `finish`.
fn begin(out: &mut Vec<u8>, count_or_format: u8, packet_type: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0x80 | (count_or_format & 0x1f), packet_type, 0, 0]);
    start
}

/// Pads the packet started at `start` to 32 bits with zeros and fills in its length field.
fn finish(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start).next_multiple_of(4);
    out.resize(start + len, 0);
    let words = u16::try_from(len / 4 - 1).unwrap_or(u16::MAX);
    if let Some(field) = out.get_mut(start + 2..start + 4) {
        field.copy_from_slice(&words.to_be_bytes());
    }
}

/// Appends a sender report with up to 31 of `reports` and returns how many it wrote; send the
/// rest in receiver reports.
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packet_count: u32,
    octet_count: u32,
    reports: &[ReportBlock],
) -> usize {
    let reports = &reports[..reports.len().min(MAX_COUNT)];
    let start = begin(out, reports.len() as u8, PT_SR);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packet_count.to_be_bytes());
    out.extend_from_slice(&octet_count.to_be_bytes());
    reports.iter().for_each(|r| r.write(out));
    finish(out, start);
    reports.len()
}

/// Appends a receiver report with up to 31 of `reports` (none is valid: RFC 3550 §6.1 wants a
/// report first in every compound packet) and returns how many it wrote.
pub fn write_receiver_report(out: &mut Vec<u8>, ssrc: u32, reports: &[ReportBlock]) -> usize {
    let reports = &reports[..reports.len().min(MAX_COUNT)];
    let start = begin(out, reports.len() as u8, PT_RR);
    out.extend_from_slice(&ssrc.to_be_bytes());
    reports.iter().for_each(|r| r.write(out));
    finish(out, start);
    reports.len()
}

/// Appends an SDES packet with one chunk holding a CNAME item; `cname` is cut at 255 bytes.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let start = begin(out, 1, PT_SDES);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    // The null item that ends the chunk; `finish` pads the rest with more nulls.
    out.push(0);
    finish(out, start);
}

/// Appends a BYE for up to 31 `ssrcs` and returns how many it wrote.
pub fn write_bye(out: &mut Vec<u8>, ssrcs: &[u32]) -> usize {
    let ssrcs = &ssrcs[..ssrcs.len().min(MAX_COUNT)];
    let start = begin(out, ssrcs.len() as u8, PT_BYE);
    ssrcs
        .iter()
        .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
    finish(out, start);
    ssrcs.len()
}

/// Appends a picture loss indication (RFC 4585 §6.3.1).
pub fn write_pli(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32) {
    let start = begin(out, FMT_PLI, PT_PSFB);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    finish(out, start);
}

/// Appends a full intra request (RFC 5104 §4.3.1) for `media_ssrc` with command sequence number
/// `seq_nr`; the caller increments `seq_nr` per new request, not per repetition.
pub fn write_fir(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, seq_nr: u8) {
    let start = begin(out, FMT_FIR, PT_PSFB);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    // RFC 5104 §4.3.1.2: the header's media source SSRC is unused and set to 0.
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    out.extend_from_slice(&[seq_nr, 0, 0, 0]);
    finish(out, start);
}

/// The most FCI entries one feedback packet's 16-bit length can describe.
const MAX_FCI_WORDS: usize = u16::MAX as usize - 2;

/// Appends a generic NACK (RFC 4585 §6.2.1) for the `lost` sequence numbers, packed into
/// `(pid, blp)` pairs; ascending (wrapping) input packs tightest, any order is correct. Returns the
/// number of pairs; with no lost numbers nothing is written (a NACK needs at least one pair).
pub fn write_nack(
    out: &mut Vec<u8>,
    sender_ssrc: u32,
    media_ssrc: u32,
    lost: impl Iterator<Item = u16>,
) -> usize {
    let start = begin(out, FMT_NACK, PT_RTPFB);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    let mut pairs = 0;
    let mut current: Option<(u16, u16)> = None;
    for seq in lost {
        if let Some((pid, blp)) = current.as_mut() {
            match seq.wrapping_sub(*pid) {
                0 => continue,
                d @ 1..=16 => {
                    *blp |= 1 << (d - 1);
                    continue;
                }
                _ => {}
            }
        }
        if let Some((pid, blp)) = current.take() {
            if pairs == MAX_FCI_WORDS {
                break;
            }
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&blp.to_be_bytes());
            pairs += 1;
        }
        current = Some((seq, 0));
    }
    if let Some((pid, blp)) = current.filter(|_| pairs < MAX_FCI_WORDS) {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
        pairs += 1;
    }
    if pairs == 0 {
        out.truncate(start);
        return 0;
    }
    finish(out, start);
    pairs
}

/// Appends a REMB (draft-alvestrand-rmcat-remb §2.2) of `bitrate_bps` (rounded down to an 18-bit
/// mantissa) for up to 255 `ssrcs`; returns how many SSRCs it wrote.
pub fn write_remb(out: &mut Vec<u8>, sender_ssrc: u32, bitrate_bps: u64, ssrcs: &[u32]) -> usize {
    let ssrcs = &ssrcs[..ssrcs.len().min(255)];
    let exponent = (64 - bitrate_bps.leading_zeros()).saturating_sub(18);
    let mantissa = (bitrate_bps >> exponent) as u32;
    let start = begin(out, FMT_AFB, PT_PSFB);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"REMB");
    out.push(ssrcs.len() as u8);
    out.push((exponent as u8) << 2 | (mantissa >> 16) as u8);
    out.extend_from_slice(&(mantissa as u16).to_be_bytes());
    ssrcs
        .iter()
        .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
    finish(out, start);
    ssrcs.len()
}

/// Fuzz entry point: walks every packet and every accessor of a compound packet.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) -> usize {
    let mut touched = 0;
    for packet in packets(data) {
        let Ok(packet) = packet else {
            touched += 1;
            continue;
        };
        touched += match packet {
            RtcpPacket::SenderReport(sr) => sr.reports().count(),
            RtcpPacket::ReceiverReport(rr) => rr.reports().count(),
            RtcpPacket::Sdes(body) => sdes_items(body).map(|i| i.value.len()).sum(),
            RtcpPacket::Bye(bye) => bye.ssrcs().count() + bye.reason.map_or(0, <[u8]>::len),
            RtcpPacket::Fir(fir) => fir.entries().count(),
            RtcpPacket::Nack(nack) => nack.pairs().count() + nack.lost().count(),
            RtcpPacket::Remb(remb) => remb.ssrcs().count() + (remb.bitrate_bps() & 1) as usize,
            RtcpPacket::Tmmbr(tmmbr) => {
                tmmbr.requests().map(|r| (r.bitrate_bps & 1) as usize).sum()
            }
            RtcpPacket::TransportCc(cc) => cc.chunks_and_deltas.len(),
            RtcpPacket::Pli { .. } => 1,
            RtcpPacket::Other { body, .. } => body.len(),
        };
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> RtcpPacket<'_> {
        let mut it = packets(buf);
        let p = it.next().unwrap().unwrap();
        assert!(it.next().is_none(), "expected exactly one packet");
        p
    }

    fn block(seed: u32) -> ReportBlock {
        ReportBlock {
            ssrc: seed,
            fraction_lost: seed as u8,
            cumulative_lost: -(seed as i32),
            extended_highest_seq: seed * 3,
            jitter: seed * 5,
            last_sr: seed * 7,
            delay_since_last_sr: seed * 11,
        }
    }

    /// Chrome sending video: SR without report blocks, then SDES with a 16-character CNAME.
    const CHROME_SR_SDES: &[u8] = &[
        0x80, 0xc8, 0x00, 0x06, // SR, RC 0, length 6
        0x5c, 0x2d, 0x81, 0x7a, // SSRC
        0xe9, 0x4f, 0x3a, 0x12, 0x80, 0x00, 0x00, 0x00, // NTP
        0x3b, 0x9a, 0xca, 0x00, // RTP timestamp
        0x00, 0x00, 0x02, 0x58, // packets 600
        0x00, 0x07, 0xa1, 0x20, // octets 500000
        0x81, 0xca, 0x00, 0x06, // SDES, SC 1, length 6
        0x5c, 0x2d, 0x81, 0x7a, // SSRC
        0x01, 0x10, b'k', b'7', b'Q', b'x', b'P', b'w', b'f', b'3', b'y', b'H', b'Z', b'r', b'a',
        b'N', b'2', b'L', // CNAME
        0x00, 0x00, // null item and padding
    ];

    /// Chrome receiving: RR with one block, then REMB for two SSRCs.
    const CHROME_RR_REMB: &[u8] = &[
        0x81, 0xc9, 0x00, 0x07, // RR, RC 1, length 7
        0x00, 0x00, 0x00, 0x01, // sender SSRC
        0x11, 0x22, 0x33, 0x44, // source
        0x0a, 0xff, 0xff, 0xfe, // fraction 10, cumulative -2
        0x00, 0x01, 0x00, 0x05, // extended highest 65541
        0x00, 0x00, 0x00, 0x30, // jitter 48
        0x3a, 0x12, 0x80, 0x00, // LSR
        0x00, 0x01, 0x80, 0x00, // DLSR 1.5 s
        0x8f, 0xce, 0x00, 0x06, // PSFB AFB, length 6
        0x00, 0x00, 0x00, 0x01, // sender SSRC
        0x00, 0x00, 0x00, 0x00, // media SSRC 0
        b'R', b'E', b'M', b'B', //
        0x02, 0x1b, 0xa3, 0x8c, // 2 SSRCs, exp 6, mantissa 0x3a38c
        0x11, 0x22, 0x33, 0x44, //
        0x55, 0x66, 0x77, 0x88, //
    ];

    /// RR, then NACK (1000 and 1002, 1005; then 2000), PLI and transport-cc feedback.
    const CHROME_RR_NACK_PLI_TWCC: &[u8] = &[
        0x80, 0xc9, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, // RR without blocks
        0x81, 0xcd, 0x00, 0x04, // RTPFB NACK, length 4
        0x00, 0x00, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44, //
        0x03, 0xe8, 0x00, 0x12, // pid 1000, blp bits 1 and 4
        0x07, 0xd0, 0x00, 0x00, // pid 2000
        0x81, 0xce, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44, // PLI
        0x8f, 0xcd, 0x00, 0x05, // RTPFB transport-cc, length 5
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, //
        0x01, 0x00, 0x00, 0x03, // base seq 256, 3 packets
        0xff, 0xff, 0xfe, 0x07, // reference time -2, feedback count 7
        0x20, 0x03, 0x04, 0x08, // one run-length chunk, three 1-byte deltas
    ];

    #[test]
    fn parses_chrome_sender_report_and_sdes() {
        let mut it = packets(CHROME_SR_SDES);
        let Some(Ok(RtcpPacket::SenderReport(sr))) = it.next() else {
            panic!("expected SR")
        };
        assert_eq!(sr.ssrc, 0x5c2d_817a);
        assert_eq!(sr.ntp, 0xe94f_3a12_8000_0000);
        assert_eq!(sr.compact_ntp(), 0x3a12_8000);
        assert_eq!(sr.rtp_timestamp, 1_000_000_000);
        assert_eq!((sr.packet_count, sr.octet_count), (600, 500_000));
        assert_eq!(sr.reports().count(), 0);
        let Some(Ok(RtcpPacket::Sdes(body))) = it.next() else {
            panic!("expected SDES")
        };
        let items: Vec<_> = sdes_items(body).collect();
        assert_eq!(
            items,
            vec![SdesItem {
                ssrc: 0x5c2d_817a,
                item_type: 1,
                value: b"k7QxPwf3yHZraN2L"
            }]
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn parses_chrome_receiver_report_and_remb() {
        let mut it = packets(CHROME_RR_REMB);
        let Some(Ok(RtcpPacket::ReceiverReport(rr))) = it.next() else {
            panic!("expected RR")
        };
        assert_eq!(rr.ssrc, 1);
        let blocks: Vec<_> = rr.reports().collect();
        assert_eq!(
            blocks,
            vec![ReportBlock {
                ssrc: 0x1122_3344,
                fraction_lost: 10,
                cumulative_lost: -2,
                extended_highest_seq: 65541,
                jitter: 48,
                last_sr: 0x3a12_8000,
                delay_since_last_sr: 0x0001_8000,
            }]
        );
        let Some(Ok(RtcpPacket::Remb(remb))) = it.next() else {
            panic!("expected REMB")
        };
        assert_eq!(
            (remb.sender_ssrc, remb.exponent, remb.mantissa),
            (1, 6, 0x3a38c)
        );
        assert_eq!(remb.bitrate_bps(), 0x3a38c << 6);
        assert_eq!(
            remb.ssrcs().collect::<Vec<_>>(),
            vec![0x1122_3344, 0x5566_7788]
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn parses_chrome_nack_pli_and_transport_cc() {
        let all: Vec<_> = packets(CHROME_RR_NACK_PLI_TWCC)
            .map(Result::unwrap)
            .collect();
        assert_eq!(all.len(), 4);
        let RtcpPacket::Nack(nack) = all[1] else {
            panic!("expected NACK")
        };
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (1, 0x1122_3344));
        assert_eq!(
            nack.pairs().collect::<Vec<_>>(),
            vec![(1000, 0x12), (2000, 0)]
        );
        assert_eq!(
            nack.lost().collect::<Vec<_>>(),
            vec![1000, 1002, 1005, 2000]
        );
        assert_eq!(
            all[2],
            RtcpPacket::Pli {
                sender_ssrc: 1,
                media_ssrc: 0x1122_3344
            }
        );
        let RtcpPacket::TransportCc(cc) = all[3] else {
            panic!("expected transport-cc")
        };
        assert_eq!(
            (
                cc.base_sequence,
                cc.status_count,
                cc.reference_time,
                cc.feedback_count
            ),
            (256, 3, -2, 7)
        );
        assert_eq!(cc.chunks_and_deltas, &[0x20, 0x03, 0x04, 0x08]);
    }

    #[test]
    fn malformed_packet_ends_iteration_with_one_error() {
        let mut buf = CHROME_RR_NACK_PLI_TWCC.to_vec();
        buf[11] = 0x40; // NACK length past the end
        let items: Vec<_> = packets(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(RtcpError::BadLength));

        assert_eq!(
            packets(&[0x80, 0xc9]).collect::<Vec<_>>(),
            vec![Err(RtcpError::TooShort)]
        );
        assert_eq!(
            packets(&[0x40, 0xc9, 0, 0]).next(),
            Some(Err(RtcpError::BadVersion))
        );
        // SR claiming one report block but carrying none.
        let mut sr = CHROME_SR_SDES[..28].to_vec();
        sr[0] = 0x81;
        assert_eq!(packets(&sr).next(), Some(Err(RtcpError::Malformed)));
        // PLI without a media SSRC.
        assert_eq!(
            packets(&[0x81, 0xce, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::Malformed))
        );
        // Padding count larger than the body.
        assert_eq!(
            packets(&[0xa0, 0xc9, 0, 1, 0, 0, 0, 9]).next(),
            Some(Err(RtcpError::BadPadding))
        );
    }

    #[test]
    fn padding_is_removed_from_the_body() {
        let buf = [0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 7, 0, 0, 0, 4];
        let RtcpPacket::ReceiverReport(rr) = one(&buf) else {
            panic!("expected RR")
        };
        assert_eq!(rr.ssrc, 7);
    }

    #[test]
    fn unknown_types_and_formats_are_other() {
        let app = [0x80, 204, 0x00, 0x02, 0, 0, 0, 1, b'n', b'a', b'm', b'e'];
        assert_eq!(
            one(&app),
            RtcpPacket::Other {
                packet_type: 204,
                format: 0,
                body: &app[4..]
            }
        );
        // PSFB AFB that is not REMB.
        let afb = [
            0x8f, 206, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 0, b'X', b'Y', b'Z', b'W',
        ];
        assert!(matches!(
            one(&afb),
            RtcpPacket::Other {
                packet_type: 206,
                format: 15,
                ..
            }
        ));
    }

    #[test]
    fn sender_report_round_trips() {
        let mut out = Vec::with_capacity(256);
        let blocks = [block(1), block(2)];
        assert_eq!(
            write_sender_report(&mut out, 9, 0x0102_0304_0506_0708, 77, 3, 4, &blocks),
            2
        );
        let RtcpPacket::SenderReport(sr) = one(&out) else {
            panic!("expected SR")
        };
        assert_eq!(
            (
                sr.ssrc,
                sr.ntp,
                sr.rtp_timestamp,
                sr.packet_count,
                sr.octet_count
            ),
            (9, 0x0102_0304_0506_0708, 77, 3, 4)
        );
        assert_eq!(sr.reports().collect::<Vec<_>>(), blocks);
    }

    #[test]
    fn receiver_report_round_trips_and_writes_at_most_31_blocks() {
        let mut out = Vec::new();
        assert_eq!(write_receiver_report(&mut out, 5, &[]), 0);
        let RtcpPacket::ReceiverReport(rr) = one(&out) else {
            panic!("expected RR")
        };
        assert_eq!((rr.ssrc, rr.reports().len()), (5, 0));

        let many: Vec<_> = (1..=40).map(block).collect();
        out.clear();
        assert_eq!(write_receiver_report(&mut out, 5, &many), 31);
        let RtcpPacket::ReceiverReport(rr) = one(&out) else {
            panic!("expected RR")
        };
        assert_eq!(rr.reports().collect::<Vec<_>>(), many[..31]);
    }

    #[test]
    fn cumulative_lost_is_clamped_to_24_bits() {
        let mut out = Vec::new();
        let blocks = [
            ReportBlock {
                cumulative_lost: i32::MAX,
                ..block(1)
            },
            ReportBlock {
                cumulative_lost: i32::MIN,
                ..block(2)
            },
        ];
        write_receiver_report(&mut out, 5, &blocks);
        let RtcpPacket::ReceiverReport(rr) = one(&out) else {
            panic!("expected RR")
        };
        let lost: Vec<_> = rr.reports().map(|b| b.cumulative_lost).collect();
        assert_eq!(lost, vec![0x7f_ffff, -0x80_0000]);
    }

    #[test]
    fn sdes_cname_round_trips_for_every_padding_length() {
        for len in 0..8 {
            let cname: String = "abcdefgh"[..len].to_owned();
            let mut out = Vec::new();
            write_sdes_cname(&mut out, 42, &cname);
            assert_eq!(out.len() % 4, 0);
            let RtcpPacket::Sdes(body) = one(&out) else {
                panic!("expected SDES")
            };
            let items: Vec<_> = sdes_items(body).collect();
            assert_eq!(
                items,
                vec![SdesItem {
                    ssrc: 42,
                    item_type: 1,
                    value: cname.as_bytes()
                }]
            );
        }
    }

    #[test]
    fn sdes_items_span_several_chunks() {
        let mut out = Vec::new();
        write_sdes_cname(&mut out, 1, "abc");
        // Re-frame the two chunks as one SDES packet with SC=2.
        let chunk = out[4..].to_vec();
        let mut two = vec![0x82, 0xca, 0, (2 * chunk.len() / 4) as u8];
        two.extend_from_slice(&chunk);
        two.extend_from_slice(&chunk);
        two[4 + chunk.len() + 3] = 2;
        let RtcpPacket::Sdes(body) = one(&two) else {
            panic!("expected SDES")
        };
        let ssrcs: Vec<_> = sdes_items(body).map(|i| i.ssrc).collect();
        assert_eq!(ssrcs, vec![1, 2]);
    }

    #[test]
    fn bye_round_trips_and_reads_a_reason() {
        let mut out = Vec::new();
        assert_eq!(write_bye(&mut out, &[3, 4]), 2);
        let RtcpPacket::Bye(bye) = one(&out) else {
            panic!("expected BYE")
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(bye.reason, None);
        let with_reason = [0x81, 0xcb, 0, 2, 0, 0, 0, 3, 2, b'o', b'k', 0];
        let RtcpPacket::Bye(bye) = one(&with_reason) else {
            panic!("expected BYE")
        };
        assert_eq!(bye.reason, Some(&b"ok"[..]));
    }

    #[test]
    fn tmmbr_reads_each_request_and_rejects_a_partial_entry() {
        let word: u32 = 4 << 26 | 62_500 << 9 | 40;
        let mut packet = vec![0x83, PT_RTPFB, 0, 6];
        packet.extend_from_slice(&1u32.to_be_bytes());
        packet.extend_from_slice(&0u32.to_be_bytes());
        for (ssrc, word) in [(0x1122_3344u32, word), (7, 0x3f << 26 | 0x1_ffff << 9)] {
            packet.extend_from_slice(&ssrc.to_be_bytes());
            packet.extend_from_slice(&word.to_be_bytes());
        }
        let packet = &packet[..];
        let RtcpPacket::Tmmbr(tmmbr) = one(packet) else {
            panic!("expected TMMBR")
        };
        assert_eq!(tmmbr.sender_ssrc, 1);
        let requests: Vec<_> = tmmbr.requests().collect();
        assert_eq!(
            requests[0],
            TmmbrRequest {
                ssrc: 0x1122_3344,
                bitrate_bps: 1_000_000,
                overhead: 40
            }
        );
        assert_eq!(requests[1].bitrate_bps, u64::MAX, "saturates");

        let partial = [0x83, PT_RTPFB, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(packets(&partial).next(), Some(Err(RtcpError::Malformed)));
    }

    #[test]
    fn pli_round_trips() {
        let mut out = Vec::new();
        write_pli(&mut out, 1, 2);
        assert_eq!(out.len(), 12);
        assert_eq!(
            one(&out),
            RtcpPacket::Pli {
                sender_ssrc: 1,
                media_ssrc: 2
            }
        );
    }

    #[test]
    fn fir_round_trips_with_the_target_in_the_entry() {
        let mut out = Vec::new();
        write_fir(&mut out, 1, 0xabcd, 9);
        let RtcpPacket::Fir(fir) = one(&out) else {
            panic!("expected FIR")
        };
        assert_eq!((fir.sender_ssrc, fir.media_ssrc), (1, 0));
        assert_eq!(fir.entries().collect::<Vec<_>>(), vec![(0xabcd, 9)]);
    }

    #[test]
    fn nack_round_trips_and_packs_pid_blp() {
        let lost = [65530u16, 65531, 65535, 0, 9, 10, 100];
        let mut out = Vec::new();
        assert_eq!(write_nack(&mut out, 1, 2, lost.iter().copied()), 2);
        let RtcpPacket::Nack(nack) = one(&out) else {
            panic!("expected NACK")
        };
        assert_eq!(
            nack.pairs().collect::<Vec<_>>(),
            vec![(65530, 0b1100_0000_0011_0001), (100, 0)]
        );
        assert_eq!(nack.lost().collect::<Vec<_>>(), lost);
    }

    #[test]
    fn nack_handles_duplicates_and_unordered_input() {
        let mut out = Vec::new();
        assert_eq!(write_nack(&mut out, 1, 2, [5u16, 5, 3, 4].into_iter()), 2);
        let RtcpPacket::Nack(nack) = one(&out) else {
            panic!("expected NACK")
        };
        assert_eq!(nack.lost().collect::<Vec<_>>(), vec![5, 3, 4]);
    }

    #[test]
    fn nack_with_nothing_lost_writes_nothing() {
        let mut out = vec![1];
        assert_eq!(write_nack(&mut out, 1, 2, std::iter::empty()), 0);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn nack_pid_zero_with_empty_blp_is_yielded_once() {
        let buf = [0x81, 0xcd, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0];
        let RtcpPacket::Nack(nack) = one(&buf) else {
            panic!("expected NACK")
        };
        assert_eq!(nack.lost().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn remb_round_trips_rounding_down_to_an_18_bit_mantissa() {
        for bitrate in [0u64, 1, 0x3ffff, 0x40000, 2_500_000, 123_456_789_012] {
            let mut out = Vec::new();
            assert_eq!(write_remb(&mut out, 7, bitrate, &[1, 2, 3]), 3);
            let RtcpPacket::Remb(remb) = one(&out) else {
                panic!("expected REMB")
            };
            assert_eq!(remb.sender_ssrc, 7);
            assert_eq!(remb.ssrcs().collect::<Vec<_>>(), vec![1, 2, 3]);
            let decoded = remb.bitrate_bps();
            assert!(
                decoded <= bitrate && bitrate - decoded <= bitrate >> 17,
                "{bitrate} -> {decoded}"
            );
        }
    }

    #[test]
    fn remb_bitrate_saturates() {
        let remb = Remb {
            sender_ssrc: 0,
            exponent: 63,
            mantissa: 0x3ffff,
            ssrcs: &[],
        };
        assert_eq!(remb.bitrate_bps(), u64::MAX);
        let remb = Remb {
            sender_ssrc: 0,
            exponent: 46,
            mantissa: 0x3ffff,
            ssrcs: &[],
        };
        assert_eq!(remb.bitrate_bps(), 0x3ffff << 46);
    }

    #[test]
    fn writers_append_a_compound_packet() {
        let mut out = Vec::with_capacity(1500);
        write_receiver_report(&mut out, 1, &[block(3)]);
        write_sdes_cname(&mut out, 1, "conclave");
        write_remb(&mut out, 1, 1_000_000, &[3]);
        write_nack(&mut out, 1, 3, [10u16, 12].into_iter());
        write_pli(&mut out, 1, 3);
        let capacity = out.capacity();
        let kinds: Vec<_> = packets(&out)
            .map(|p| match p.unwrap() {
                RtcpPacket::ReceiverReport(_) => "rr",
                RtcpPacket::Sdes(_) => "sdes",
                RtcpPacket::Remb(_) => "remb",
                RtcpPacket::Nack(_) => "nack",
                RtcpPacket::Pli { .. } => "pli",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["rr", "sdes", "remb", "nack", "pli"]);
        assert_eq!(out.capacity(), capacity);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = 0x0bad_5eed_0000_0001u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let seeds = [CHROME_SR_SDES, CHROME_RR_REMB, CHROME_RR_NACK_PLI_TWCC];
        let mut buf = [0u8; 128];
        for i in 0..60_000 {
            let len = (next() % 128) as usize;
            if i % 4 == 3 {
                for b in &mut buf[..len] {
                    *b = next() as u8;
                }
            } else {
                let seed = seeds[i % 3];
                let n = len.min(seed.len());
                buf[..n].copy_from_slice(&seed[..n]);
                for _ in 0..(next() % 4) {
                    let at = (next() % 128) as usize;
                    buf[at] = next() as u8;
                }
            }
            fuzz_parse(&buf[..len]);
        }
    }
}
