//! RFC 2198 redundant audio ("red" around Opus): finding the primary block and renumbering block
//! payload types. Format, plus which bytes a send slot gets; no negotiation (that is `sdp/`).
//!
//! A RED payload is a chain of block headers, then the blocks' data in the same order. Every
//! header but the last is 4 bytes (F=1, block PT, 14-bit timestamp offset, 10-bit length); the
//! last is 1 byte (F=0, block PT) and names the primary encoding, whose data runs to the end of
//! the payload and whose timestamp is the RTP header's. So a primary block is a tail of the
//! payload, and stripping RED is writing that tail under the primary codec's payload type.

use crate::peer::{CodecKind, PayloadTypes, SendSlot};

/// RFC 2198 §3: the F bit, set on every block header but the primary's.
const FOLLOWS: u8 = 0x80;
/// Length of a redundant block's header.
const REDUNDANT_HEADER_LEN: usize = 4;

/// A RED payload that cannot be split into its blocks; the packet is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedRed {
    /// The header chain ends before a header with F=0.
    UnterminatedHeaders,
    /// The redundant blocks' lengths run past the end of the payload.
    BlocksOverrun,
    /// No primary data: nothing to decode.
    EmptyPrimary,
    /// The primary is not the track's Opus, so it cannot be sent as plain Opus.
    PrimaryNotOpus,
}

/// Where the primary encoding sits in a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedPrimary {
    /// The primary block's payload type, in the publisher's numbering.
    pub payload_type: u8,
    /// Offset of the primary data; it runs to the end of the payload.
    pub start: usize,
}

/// Finds the primary block of a RED payload (the RTP payload, padding excluded).
pub fn primary(payload: &[u8]) -> Result<RedPrimary, MalformedRed> {
    let mut at = 0;
    let mut redundant_len = 0usize;
    loop {
        let Some(&first) = payload.get(at) else {
            return Err(MalformedRed::UnterminatedHeaders);
        };
        if first & FOLLOWS == 0 {
            let start = at + 1 + redundant_len;
            return match start.cmp(&payload.len()) {
                std::cmp::Ordering::Less => Ok(RedPrimary {
                    payload_type: first & 0x7f,
                    start,
                }),
                std::cmp::Ordering::Equal => Err(MalformedRed::EmptyPrimary),
                std::cmp::Ordering::Greater => Err(MalformedRed::BlocksOverrun),
            };
        }
        let Some(header) = payload.get(at..at + REDUNDANT_HEADER_LEN) else {
            return Err(MalformedRed::UnterminatedHeaders);
        };
        // The block length is the low 10 bits of the last two header bytes.
        redundant_len += usize::from(u16::from_be_bytes([header[2], header[3]]) & 0x03ff);
        at += REDUNDANT_HEADER_LEN;
    }
}

/// Renumbers every block whose payload type is `from` to `to`, in place, F bits kept. Blocks of
/// other payload types are left alone. The header chain must be one [`primary`] accepted.
pub fn renumber_blocks(payload: &mut [u8], from: u8, to: u8) {
    let mut at = 0;
    while let Some(byte) = payload.get_mut(at) {
        let follows = *byte & FOLLOWS;
        if *byte & 0x7f == from {
            *byte = follows | (to & 0x7f);
        }
        if follows == 0 {
            return;
        }
        at += REDUNDANT_HEADER_LEN;
    }
}

/// The primary of a publisher's packet when its codec is RED, checked to be the track's Opus.
/// `Ok(None)` for any other codec; `Err` when a RED packet is malformed or wraps anything but
/// Opus, which a subscriber without RED could not be told about.
pub fn primary_of_packet(
    codec: CodecKind,
    track_payload_types: &[PayloadTypes],
    payload: &[u8],
) -> Result<Option<RedPrimary>, MalformedRed> {
    if codec != CodecKind::Red {
        return Ok(None);
    }
    let primary = primary(payload)?;
    let wraps_opus = track_payload_types
        .iter()
        .any(|p| p.codec == CodecKind::Opus && p.pt == primary.payload_type);
    if wraps_opus {
        Ok(Some(primary))
    } else {
        Err(MalformedRed::PrimaryNotOpus)
    }
}

/// What one send slot gets of a packet.
pub struct SlotPayload<'a> {
    /// The slot's payload types of the codec sent.
    pub payload_types: PayloadTypes,
    pub payload: &'a [u8],
    /// For RED sent as RED: the publisher's Opus payload type inside the blocks and the
    /// subscriber's, when they differ (see [`renumber_blocks`]).
    pub renumber: Option<(u8, u8)>,
}

/// The payload type and bytes `slot` gets of a packet of `codec`: the packet as is when the slot
/// negotiated the codec, else for RED the primary block as plain Opus; `None` when the slot
/// can take neither.
pub fn for_slot<'a>(
    slot: &SendSlot,
    codec: CodecKind,
    payload: &'a [u8],
    red: Option<RedPrimary>,
) -> Option<SlotPayload<'a>> {
    if let Some(payload_types) = slot.payload_types_for(codec) {
        let renumber = red.and_then(|primary| {
            let opus = slot.payload_types_for(CodecKind::Opus)?.pt;
            (opus != primary.payload_type).then_some((primary.payload_type, opus))
        });
        return Some(SlotPayload {
            payload_types,
            payload,
            renumber,
        });
    }
    let primary = red?;
    Some(SlotPayload {
        payload_types: slot.payload_types_for(CodecKind::Opus)?,
        payload: payload.get(primary.start..)?,
        renumber: None,
    })
}

/// The codec and bytes a packet has without RED: what recordings and other plain-RTP forwards
/// get.
pub fn without_red(
    codec: CodecKind,
    payload: &[u8],
    red: Option<RedPrimary>,
) -> (CodecKind, &[u8]) {
    match red.and_then(|primary| payload.get(primary.start..)) {
        Some(primary) => (CodecKind::Opus, primary),
        None => (codec, payload),
    }
}

/// Fuzz entry point: any RED payload either splits into blocks that lie inside it, or is refused.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(found) = primary(data) {
        assert!(
            found.start < data.len(),
            "the primary lies inside the payload"
        );
        let mut copy = data.to_vec();
        renumber_blocks(&mut copy, found.payload_type, 0x7f - found.payload_type);
        let renumbered = primary(&copy).expect("renumbering keeps the chain valid");
        assert_eq!(renumbered.start, found.start);
        assert_eq!(renumbered.payload_type, 0x7f - found.payload_type);
        assert_eq!(copy[found.start..], data[found.start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPUS: u8 = 111;

    /// A RED payload: redundant blocks `(pt, timestamp offset, data)`, then the primary.
    fn red(redundant: &[(u8, u16, &[u8])], primary_pt: u8, primary: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(pt, offset, data) in redundant {
            out.push(FOLLOWS | pt);
            let word = (u32::from(offset) << 10) | data.len() as u32;
            out.extend_from_slice(&word.to_be_bytes()[1..]);
        }
        out.push(primary_pt);
        for &(_, _, data) in redundant {
            out.extend_from_slice(data);
        }
        out.extend_from_slice(primary);
        out
    }

    fn slot(payload_types: &[(CodecKind, u8)]) -> SendSlot {
        SendSlot {
            mid: "0".into(),
            kind: crate::ids::MediaKind::Audio,
            ssrc: 1,
            rtx_ssrc: None,
            payload_types: payload_types
                .iter()
                .map(|&(codec, pt)| PayloadTypes {
                    codec,
                    pt,
                    rtx_pt: None,
                })
                .collect(),
            subscription: None,
            rtx_sequence: 0,
            packets_sent: 0,
            octets_sent: 0,
            continuation: None,
        }
    }

    #[test]
    fn the_primary_follows_every_redundant_block() {
        let payload = red(
            &[(OPUS, 1920, &[1, 2, 3]), (OPUS, 960, &[4, 5])],
            OPUS,
            &[9, 9, 9, 9],
        );
        let found = primary(&payload).unwrap();
        assert_eq!(found.payload_type, OPUS);
        assert_eq!(&payload[found.start..], [9, 9, 9, 9]);
    }

    #[test]
    fn a_payload_with_only_the_primary_header_is_its_primary() {
        let payload = red(&[], OPUS, &[7; 20]);
        assert_eq!(primary(&payload).unwrap().start, 1);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let mut overrun = red(&[(OPUS, 960, &[1; 10])], OPUS, &[2]);
        overrun.truncate(overrun.len() - 3);
        let cases: [(&[u8], MalformedRed); 6] = [
            (&[], MalformedRed::UnterminatedHeaders),
            (&[FOLLOWS | OPUS, 0, 0], MalformedRed::UnterminatedHeaders),
            (
                &[FOLLOWS | OPUS, 0, 0, 0, FOLLOWS | OPUS],
                MalformedRed::UnterminatedHeaders,
            ),
            (&[OPUS], MalformedRed::EmptyPrimary),
            (
                &red(&[(OPUS, 960, &[1; 3])], OPUS, &[]),
                MalformedRed::EmptyPrimary,
            ),
            (&overrun, MalformedRed::BlocksOverrun),
        ];
        for (payload, error) in cases {
            assert_eq!(primary(payload), Err(error), "{payload:?}");
        }
    }

    #[test]
    fn renumbering_changes_only_matching_block_types() {
        let mut payload = red(&[(OPUS, 960, &[OPUS; 2]), (13, 960, &[1])], OPUS, &[OPUS]);
        renumber_blocks(&mut payload, OPUS, 109);
        assert_eq!(payload[0], FOLLOWS | 109);
        assert_eq!(payload[4], FOLLOWS | 13);
        assert_eq!(payload[8], 109);
        assert_eq!(payload[9..], [OPUS, OPUS, 1, OPUS], "block data untouched");
    }

    #[test]
    fn red_only_counts_when_it_wraps_the_tracks_opus() {
        let track = [
            PayloadTypes {
                codec: CodecKind::Opus,
                pt: OPUS,
                rtx_pt: None,
            },
            PayloadTypes {
                codec: CodecKind::Red,
                pt: 63,
                rtx_pt: None,
            },
        ];
        let payload = red(&[], OPUS, &[1]);
        assert_eq!(
            primary_of_packet(CodecKind::Opus, &track, &payload),
            Ok(None)
        );
        assert!(primary_of_packet(CodecKind::Red, &track, &payload)
            .unwrap()
            .is_some());
        assert!(primary_of_packet(CodecKind::Red, &track, &red(&[], 96, &[1])).is_err());
    }

    #[test]
    fn slots_get_red_as_is_or_its_primary_as_opus() {
        let payload = red(&[(OPUS, 960, &[1, 2])], OPUS, &[3, 4, 5]);
        let found = primary(&payload).ok();
        let with_red = slot(&[(CodecKind::Red, 63), (CodecKind::Opus, OPUS)]);
        let sent = for_slot(&with_red, CodecKind::Red, &payload, found).unwrap();
        assert_eq!((sent.payload_types.pt, sent.payload), (63, &payload[..]));
        assert_eq!(sent.renumber, None);

        let other_numbers = slot(&[(CodecKind::Red, 120), (CodecKind::Opus, 109)]);
        let sent = for_slot(&other_numbers, CodecKind::Red, &payload, found).unwrap();
        assert_eq!(sent.payload_types.pt, 120);
        assert_eq!(sent.renumber, Some((OPUS, 109)));

        let opus_only = slot(&[(CodecKind::Opus, 109)]);
        let sent = for_slot(&opus_only, CodecKind::Red, &payload, found).unwrap();
        assert_eq!((sent.payload_types.pt, sent.payload), (109, &[3, 4, 5][..]));

        let plain = [7u8; 4];
        let sent = for_slot(&with_red, CodecKind::Opus, &plain, None).unwrap();
        assert_eq!((sent.payload_types.pt, sent.payload), (OPUS, &plain[..]));
        assert!(for_slot(
            &slot(&[(CodecKind::Vp8, 96)]),
            CodecKind::Red,
            &payload,
            found
        )
        .is_none());
        assert_eq!(
            without_red(CodecKind::Red, &payload, found),
            (CodecKind::Opus, &[3, 4, 5][..])
        );
    }
}
