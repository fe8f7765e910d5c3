//! RTX framing (RFC 4588 §4): a retransmission carries the original sequence number (OSN) in front
//! of the original payload, on its own payload type, SSRC and sequence space.
//!
//! To retransmit a packet that was rewritten for a subscriber, write it as it was forwarded (its
//! output sequence number is the OSN), then wrap it with [`write_rtx`].

use crate::rtp::{RtpError, RtpHeader};

/// Appends to `out` the RTX packet for `original` (whose parsed header is `header`): the original
/// header with CSRCs, extensions, marker and timestamp kept, payload type, SSRC and sequence number
/// replaced, padding dropped, and the OSN before the payload. Returns the bytes appended. Fails,
/// leaving `out` unchanged, if `header` does not describe `original`.
pub fn write_rtx(
    out: &mut Vec<u8>,
    original: &[u8],
    header: &RtpHeader,
    rtx_pt: u8,
    rtx_ssrc: u32,
    rtx_seq: u16,
) -> Result<usize, RtpError> {
    let (Some(head), Some(payload)) = (
        original.get(..header.payload_start),
        original.get(header.payload_start..header.payload_end),
    ) else {
        return Err(RtpError::TooShort);
    };
    let start = out.len();
    append_with_fields(out, head, rtx_pt, rtx_seq, rtx_ssrc)?;
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out.len() - start)
}

/// Appends to `out` the original packet carried by the RTX packet `rtx` (parsed as `header`),
/// with `original_pt` and `original_ssrc`, and returns its sequence number (the OSN). `None`, with
/// `out` unchanged, if the payload has no OSN: browsers send such padding-only RTX packets to probe
/// bandwidth.
pub fn unwrap_rtx(
    out: &mut Vec<u8>,
    rtx: &[u8],
    header: &RtpHeader,
    original_pt: u8,
    original_ssrc: u32,
) -> Option<u16> {
    let head = rtx.get(..header.payload_start)?;
    let (osn, payload) = header.payload(rtx).split_first_chunk::<2>()?;
    let osn = u16::from_be_bytes(*osn);
    append_with_fields(out, head, original_pt, osn, original_ssrc).ok()?;
    out.extend_from_slice(payload);
    Some(osn)
}

/// Appends header bytes `head` with the P bit cleared and payload type (marker kept), sequence
/// number and SSRC replaced.
fn append_with_fields(
    out: &mut Vec<u8>,
    head: &[u8],
    pt: u8,
    seq: u16,
    ssrc: u32,
) -> Result<(), RtpError> {
    let Some((fixed, rest)) = head.split_first_chunk::<12>() else {
        return Err(RtpError::TooShort);
    };
    out.push(fixed[0] & !0x20);
    out.push((fixed[1] & 0x80) | (pt & 0x7f));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&fixed[4..8]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{extensions, parse_rtp, RtpHeaderWriter};

    fn original() -> Vec<u8> {
        let mut p = Vec::new();
        RtpHeaderWriter {
            marker: true,
            payload_type: 96,
            sequence: 4242,
            timestamp: 90_000,
            ssrc: 0x1111_1111,
            extensions: &[(4, b"0"), (3, &[0, 7])],
        }
        .write(&mut p)
        .unwrap();
        p.extend_from_slice(&[0x90, 0x80, 0x01, 0x9d]);
        crate::rtp::append_padding(&mut p, 0, 3).unwrap();
        p
    }

    #[test]
    fn rtx_packet_has_rfc_4588_format() {
        let orig = original();
        let h = parse_rtp(&orig).unwrap();
        let mut out = vec![0xaa];
        let len = write_rtx(&mut out, &orig, &h, 97, 0x2222_2222, 7).unwrap();
        assert_eq!(len, out.len() - 1);
        let rtx = &out[1..];
        let r = parse_rtp(rtx).unwrap();
        assert!(r.marker);
        assert_eq!(
            (r.payload_type, r.sequence, r.timestamp, r.ssrc),
            (97, 7, 90_000, 0x2222_2222)
        );
        assert_eq!(r.padding_len, 0);
        assert_eq!(
            extensions(rtx, &r).collect::<Vec<_>>(),
            extensions(&orig, &h).collect::<Vec<_>>()
        );
        assert_eq!(r.payload(rtx), &[0x10, 0x92, 0x90, 0x80, 0x01, 0x9d]);
    }

    #[test]
    fn unwrap_restores_the_original_without_padding() {
        let orig = original();
        let h = parse_rtp(&orig).unwrap();
        let mut rtx = Vec::new();
        write_rtx(&mut rtx, &orig, &h, 97, 0x2222_2222, 7).unwrap();
        let mut restored = Vec::new();
        let r = parse_rtp(&rtx).unwrap();
        assert_eq!(
            unwrap_rtx(&mut restored, &rtx, &r, 96, 0x1111_1111),
            Some(4242)
        );
        let unpadded = &orig[..h.payload_end];
        let mut expected = unpadded.to_vec();
        expected[0] &= !0x20;
        assert_eq!(restored, expected);
    }

    #[test]
    fn padding_only_rtx_carries_no_original() {
        let mut probe = Vec::new();
        RtpHeaderWriter {
            payload_type: 97,
            sequence: 1,
            ..Default::default()
        }
        .write(&mut probe)
        .unwrap();
        crate::rtp::append_padding(&mut probe, 0, 200).unwrap();
        let h = parse_rtp(&probe).unwrap();
        let mut out = Vec::new();
        assert_eq!(unwrap_rtx(&mut out, &probe, &h, 96, 1), None);
        assert!(out.is_empty());
    }

    #[test]
    fn a_header_from_another_packet_is_rejected() {
        let orig = original();
        let h = parse_rtp(&orig).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            write_rtx(&mut out, &orig[..10], &h, 97, 1, 1),
            Err(RtpError::TooShort)
        );
        assert!(out.is_empty());
    }
}
