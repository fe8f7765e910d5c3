//! RTP packet format (RFC 3550, RFC 8285 extensions, RFC 7983 demultiplexing) and VP8/H.264
//! keyframe probes. Formats only: zero-copy parsing, writing into caller buffers; no state.

use std::fmt;

/// Why a datagram is not a well-formed RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer bytes than the 12-byte fixed header.
    TooShort,
    /// The version field is not 2.
    BadVersion,
    /// The CSRC list runs past the end of the packet.
    BadLength,
    /// The padding count is zero or larger than the payload (RFC 3550 §5.1).
    BadPadding,
    /// Parsing: the extension header or its declared length runs past the end of the packet.
    /// Writing: an extension element that neither RFC 8285 form can carry.
    BadExtension,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RtpError::TooShort => "shorter than an RTP header",
            RtpError::BadVersion => "RTP version is not 2",
            RtpError::BadLength => "CSRC list runs past the packet",
            RtpError::BadPadding => "invalid RTP padding",
            RtpError::BadExtension => "invalid RTP header extension",
        })
    }
}

impl std::error::Error for RtpError {}

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// `defined by profile` value of the RFC 8285 one-byte header form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// `defined by profile` value of the RFC 8285 two-byte header form; the low four bits
/// ("appbits") are the application's and ignored here.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// A parsed RTP header: field values plus offsets into the packet it came from. Parsing copies
/// nothing; pass the same packet to [`extensions`] and [`RtpHeader::payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    /// The extension block's `defined by profile` field, when the X bit is set.
    pub extension_profile: Option<u16>,
    /// Offset of the extension elements (after the 4-byte extension header).
    pub extensions_start: usize,
    pub extensions_len: usize,
    pub payload_start: usize,
    /// End of the payload, before any padding.
    pub payload_end: usize,
    /// Padding bytes at the end of the packet, count byte included; 0 without the P bit.
    pub padding_len: u8,
}

impl RtpHeader {
    /// The payload of `packet` (the packet this header was parsed from), without padding.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.payload_start..self.payload_end)
            .unwrap_or_default()
    }

    /// The raw extension elements of `packet` (the packet this header was parsed from).
    pub fn extension_bytes<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.extensions_start..self.extensions_start + self.extensions_len)
            .unwrap_or_default()
    }
}

/// Parses the header of an RTP packet (RFC 3550 §5.1), validating that every length it
/// declares fits in `packet`.
pub fn parse_rtp(packet: &[u8]) -> Result<RtpHeader, RtpError> {
    let Some(fixed) = packet.first_chunk::<FIXED_HEADER_LEN>() else {
        return Err(RtpError::TooShort);
    };
    if fixed[0] >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let has_padding = fixed[0] & 0x20 != 0;
    let has_extension = fixed[0] & 0x10 != 0;
    let csrc_count = fixed[0] & 0x0f;

    let mut offset = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
    if offset > packet.len() {
        return Err(RtpError::BadLength);
    }
    let mut extension_profile = None;
    let mut extensions_start = offset;
    let mut extensions_len = 0;
    if has_extension {
        let Some(ext) = packet.get(offset..offset + 4) else {
            return Err(RtpError::BadExtension);
        };
        extension_profile = Some(u16::from_be_bytes([ext[0], ext[1]]));
        extensions_len = 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        extensions_start = offset + 4;
        offset = extensions_start + extensions_len;
        if offset > packet.len() {
            return Err(RtpError::BadExtension);
        }
    }

    let mut payload_end = packet.len();
    let mut padding_len = 0;
    if has_padding {
        let count = packet[packet.len() - 1];
        if count == 0 || usize::from(count) > packet.len() - offset {
            return Err(RtpError::BadPadding);
        }
        padding_len = count;
        payload_end -= usize::from(count);
    }

    Ok(RtpHeader {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7f,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        csrc_count,
        extension_profile,
        extensions_start,
        extensions_len,
        payload_start: offset,
        payload_end,
        padding_len,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtensionForm {
    OneByte,
    TwoByte,
    /// Not RFC 8285: nothing to iterate.
    Unknown,
}

/// Iterator over RFC 8285 extension elements as `(id, data)`. See [`extensions`].
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    data: &'a [u8],
    form: ExtensionForm,
    pos: usize,
}

/// The header extension elements of `packet` as `(id, data)`, in packet order, for both RFC 8285
/// forms. Padding bytes are skipped; iteration stops at the first malformed element, and in the
/// one-byte form at id 15 (RFC 8285 §4.2: reserved, the rest of the block is not to be parsed).
/// Other extension profiles yield nothing.
pub fn extensions<'a>(packet: &'a [u8], header: &RtpHeader) -> ExtensionIter<'a> {
    let form = match header.extension_profile {
        Some(ONE_BYTE_PROFILE) => ExtensionForm::OneByte,
        Some(p) if p & 0xfff0 == TWO_BYTE_PROFILE => ExtensionForm::TwoByte,
        _ => ExtensionForm::Unknown,
    };
    ExtensionIter {
        data: header.extension_bytes(packet),
        form,
        pos: 0,
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let &first = self.data.get(self.pos)?;
            if first == 0 {
                // A zero byte is padding between or after elements in both forms.
                self.pos += 1;
                continue;
            }
            let (id, start, len) = match self.form {
                ExtensionForm::OneByte => {
                    let id = first >> 4;
                    // RFC 8285 §4.2: id 15 ends the block; id 0 is only valid as a padding byte.
                    if id == 15 || id == 0 {
                        self.pos = self.data.len();
                        return None;
                    }
                    (id, self.pos + 1, usize::from(first & 0x0f) + 1)
                }
                ExtensionForm::TwoByte => {
                    let Some(&len) = self.data.get(self.pos + 1) else {
                        self.pos = self.data.len();
                        return None;
                    };
                    (first, self.pos + 2, usize::from(len))
                }
                ExtensionForm::Unknown => return None,
            };
            let Some(value) = self.data.get(start..start + len) else {
                self.pos = self.data.len();
                return None;
            };
            self.pos = start + len;
            return Some((id, value));
        }
    }
}

/// The fields of one outgoing RTP header. [`RtpHeaderWriter::write`] appends it to a buffer;
/// the caller then appends the payload.
///
/// Extensions use the one-byte form (RFC 8285 §4.2) when every id is 1..=14 and every value is
/// 1..=16 bytes long, else the two-byte form (§4.3: ids 1..=255, values 0..=255 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct RtpHeaderWriter<'a> {
    pub marker: bool,
    /// Only the low seven bits are written.
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// `(id, value)` elements, written in this order.
    pub extensions: &'a [(u8, &'a [u8])],
}

impl RtpHeaderWriter<'_> {
    fn one_byte_form(&self) -> bool {
        self.extensions
            .iter()
            .all(|(id, value)| (1..=14).contains(id) && (1..=16).contains(&value.len()))
    }

    /// Bytes of extension elements before padding to a 32-bit boundary.
    fn extension_elements_len(&self, one_byte: bool) -> usize {
        let per_element = if one_byte { 1 } else { 2 };
        self.extensions
            .iter()
            .map(|(_, value)| per_element + value.len())
            .sum()
    }

    /// The number of bytes [`RtpHeaderWriter::write`] appends.
    pub fn header_len(&self) -> Result<usize, RtpError> {
        if self.extensions.is_empty() {
            return Ok(FIXED_HEADER_LEN);
        }
        let one_byte = self.one_byte_form();
        if !one_byte
            && self
                .extensions
                .iter()
                .any(|(id, value)| *id == 0 || value.len() > 255)
        {
            return Err(RtpError::BadExtension);
        }
        let padded = self.extension_elements_len(one_byte).next_multiple_of(4);
        if padded / 4 > usize::from(u16::MAX) {
            return Err(RtpError::BadExtension);
        }
        Ok(FIXED_HEADER_LEN + 4 + padded)
    }

    /// Appends the header (fixed part and extension block, no CSRCs) to `out` and returns its
    /// length. Allocates only if `out` lacks capacity. On error `out` is left unchanged.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<usize, RtpError> {
        let len = self.header_len()?;
        let has_extension = !self.extensions.is_empty();
        out.push(0x80 | if has_extension { 0x10 } else { 0 });
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        if !has_extension {
            return Ok(len);
        }
        let one_byte = self.one_byte_form();
        let padded = len - FIXED_HEADER_LEN - 4;
        let profile = if one_byte {
            ONE_BYTE_PROFILE
        } else {
            TWO_BYTE_PROFILE
        };
        out.extend_from_slice(&profile.to_be_bytes());
        // `header_len` checked that the word count fits 16 bits.
        out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
        for (id, value) in self.extensions {
            // Lengths were checked by `header_len`: 1..=16 (one-byte) or 0..=255 (two-byte).
            if one_byte {
                out.push(id << 4 | (value.len() - 1) as u8);
            } else {
                out.push(*id);
                out.push(value.len() as u8);
            }
            out.extend_from_slice(value);
        }
        let unpadded = self.extension_elements_len(one_byte);
        out.resize(out.len() + (padded - unpadded), 0);
        Ok(len)
    }
}

/// Appends `padding_len` bytes of RTP padding (RFC 3550 §5.1) to the packet that starts at
/// `packet_start` in `out` and sets its P bit. Use after the payload; a packet of only padding is
/// how probes are sent.
pub fn append_padding(
    out: &mut Vec<u8>,
    packet_start: usize,
    padding_len: u8,
) -> Result<(), RtpError> {
    if padding_len == 0 {
        return Err(RtpError::BadPadding);
    }
    if out.len() < packet_start.saturating_add(FIXED_HEADER_LEN) {
        return Err(RtpError::TooShort);
    }
    out[packet_start] |= 0x20;
    out.resize(out.len() + usize::from(padding_len) - 1, 0);
    out.push(padding_len);
    Ok(())
}

/// Overwrites payload type (keeping the marker), sequence number, timestamp and SSRC of an RTP
/// packet in place. Returns false (and changes nothing) if `packet` is shorter than 12 bytes.
pub fn rewrite_header(
    packet: &mut [u8],
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) -> bool {
    let Some(fixed) = packet.first_chunk_mut::<FIXED_HEADER_LEN>() else {
        return false;
    };
    fixed[1] = (fixed[1] & 0x80) | (payload_type & 0x7f);
    fixed[2..4].copy_from_slice(&sequence.to_be_bytes());
    fixed[4..8].copy_from_slice(&timestamp.to_be_bytes());
    fixed[8..12].copy_from_slice(&ssrc.to_be_bytes());
    true
}

/// What a datagram on the shared port is, by RFC 7983 §7 (first byte) and RFC 5761 §4 (RTP vs
/// RTCP by the second byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Stun,
    Dtls,
    Rtp,
    Rtcp,
    /// Empty, ZRTP, TURN channel data, or anything else we do not speak.
    Other,
}

/// Classifies a datagram received on the one UDP port. Only looks at the first two bytes.
pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) if datagram.len() >= 2 => {
            if is_rtcp(datagram) {
                PacketClass::Rtcp
            } else {
                PacketClass::Rtp
            }
        }
        _ => PacketClass::Other,
    }
}

/// True if an RTP/RTCP datagram is RTCP: RFC 5761 §4, the second byte is an RTCP packet type in
/// 192..=223 (RTP payload types 64..=95 with the marker bit set are not used for this reason).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

/// Where the fields of a VP8 payload descriptor (RFC 7741 §4.2) are, for reading and rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// Bytes of the descriptor; the VP8 payload header follows.
    pub len: usize,
    /// S bit set and partition index 0: this packet starts a frame.
    pub starts_frame: bool,
    /// PictureID, its offset in the payload, and whether it is the 15-bit form.
    pub picture_id: Option<(u16, usize, bool)>,
    /// TL0PICIDX and its offset.
    pub tl0_pic_idx: Option<(u8, usize)>,
    /// Temporal layer index and the layer-sync bit.
    pub temporal: Option<(u8, bool)>,
}

/// Parses a VP8 payload descriptor; `None` if the payload is too short for what it announces.
pub fn parse_vp8_descriptor(payload: &[u8]) -> Option<Vp8Descriptor> {
    let descriptor = *payload.first()?;
    let mut d = Vp8Descriptor {
        len: 1,
        starts_frame: descriptor & 0x10 != 0 && descriptor & 0x07 == 0,
        picture_id: None,
        tl0_pic_idx: None,
        temporal: None,
    };
    if descriptor & 0x80 == 0 {
        return Some(d);
    }
    let extension = *payload.get(1)?;
    let mut offset = 2;
    if extension & 0x80 != 0 {
        let high = *payload.get(offset)?;
        if high & 0x80 != 0 {
            let low = *payload.get(offset + 1)?;
            d.picture_id = Some(((u16::from(high & 0x7f) << 8) | u16::from(low), offset, true));
            offset += 2;
        } else {
            d.picture_id = Some((u16::from(high), offset, false));
            offset += 1;
        }
    }
    if extension & 0x40 != 0 {
        d.tl0_pic_idx = Some((*payload.get(offset)?, offset));
        offset += 1;
    }
    if extension & 0x30 != 0 {
        let byte = *payload.get(offset)?;
        if extension & 0x20 != 0 {
            d.temporal = Some((byte >> 6, byte & 0x20 != 0));
        }
        offset += 1;
    }
    d.len = offset;
    (payload.len() >= offset).then_some(d)
}

/// True if a VP8 RTP payload starts a keyframe: RFC 7741 §4.2 payload descriptor with S=1 and
/// PID=0, then the VP8 payload header's P bit (inverse key frame flag, RFC 6386 §9.1) is 0.
pub fn vp8_is_keyframe(payload: &[u8]) -> bool {
    let Some(d) = parse_vp8_descriptor(payload) else {
        return false;
    };
    d.starts_frame && payload.get(d.len).is_some_and(|header| header & 0x01 == 0)
}

/// Width and height a VP8 keyframe announces (RFC 6386 §9.1: 3-byte frame tag, start code
/// 9d 01 2a, then 14-bit width and height, each with 2 bits of scaling above).
pub fn vp8_keyframe_dimensions(payload: &[u8]) -> Option<(u16, u16)> {
    if !vp8_is_keyframe(payload) {
        return None;
    }
    let d = parse_vp8_descriptor(payload)?;
    let frame = payload.get(d.len..d.len + 10)?;
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

fn h264_starts_keyframe(nal_type: u8) -> bool {
    nal_type == H264_IDR || nal_type == H264_SPS
}

/// True if an H.264 RTP payload (RFC 6184) carries the start of an IDR slice or an SPS: as a
/// single NAL unit, inside a STAP-A, or as the first fragment (S bit) of an FU-A.
pub fn h264_is_keyframe(payload: &[u8]) -> bool {
    let Some(&nal_header) = payload.first() else {
        return false;
    };
    match nal_header & 0x1f {
        H264_STAP_A => {
            let mut rest = &payload[1..];
            while let Some((size, tail)) = rest.split_first_chunk::<2>() {
                let size = usize::from(u16::from_be_bytes(*size));
                let Some(unit) = tail.get(..size) else {
                    return false;
                };
                if unit.first().is_some_and(|h| h264_starts_keyframe(h & 0x1f)) {
                    return true;
                }
                rest = &tail[size..];
            }
            false
        }
        H264_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && h264_starts_keyframe(fu & 0x1f)),
        nal_type => h264_starts_keyframe(nal_type),
    }
}

/// Width and height an H.264 RTP payload's SPS announces (ITU-T H.264 §7.3.2.1.1, cropping per
/// §7.4.2.1.1), when the payload is an SPS or a STAP-A holding one; simulcast picks layers by
/// them as it does by VP8 keyframe headers.
pub fn h264_keyframe_dimensions(payload: &[u8]) -> Option<(u16, u16)> {
    let &nal_header = payload.first()?;
    match nal_header & 0x1f {
        H264_SPS => h264_sps_dimensions(&payload[1..]),
        H264_STAP_A => {
            let mut rest = &payload[1..];
            while let Some((size, tail)) = rest.split_first_chunk::<2>() {
                let size = usize::from(u16::from_be_bytes(*size));
                let unit = tail.get(..size)?;
                if let Some((&header, body)) = unit.split_first() {
                    if header & 0x1f == H264_SPS {
                        return h264_sps_dimensions(body);
                    }
                }
                rest = &tail[size..];
            }
            None
        }
        _ => None,
    }
}

/// Reads an SPS body (after the NAL header) far enough for the picture size.
fn h264_sps_dimensions(sps: &[u8]) -> Option<(u16, u16)> {
    let mut bits = NalBits::new(sps);
    let profile_idc = bits.bits(8)?;
    bits.bits(16)?; // constraint flags, level_idc
    bits.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_planes = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = bits.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_planes = bits.bits(1)? == 1;
        }
        bits.ue()?; // bit_depth_luma_minus8
        bits.ue()?; // bit_depth_chroma_minus8
        bits.bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if bits.bits(1)? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for list in 0..lists {
                if bits.bits(1)? == 1 {
                    skip_scaling_list(&mut bits, if list < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    bits.ue()?; // log2_max_frame_num_minus4
    match bits.ue()? {
        0 => {
            bits.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            bits.bits(1)?; // delta_pic_order_always_zero_flag
            bits.se()?; // offset_for_non_ref_pic
            bits.se()?; // offset_for_top_to_bottom_field
            for _ in 0..bits.ue()?.min(255) {
                bits.se()?; // offset_for_ref_frame
            }
        }
        _ => {}
    }
    bits.ue()?; // max_num_ref_frames
    bits.bits(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_in_mbs = bits.ue()?.checked_add(1)?;
    let height_in_map_units = bits.ue()?.checked_add(1)?;
    let frame_mbs_only = bits.bits(1)?;
    if frame_mbs_only == 0 {
        bits.bits(1)?; // mb_adaptive_frame_field_flag
    }
    bits.bits(1)?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0, 0);
    if bits.bits(1)? == 1 {
        let (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
        // §7.4.2.1.1: crop offsets count chroma samples (luma for monochrome), doubled for fields.
        let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_planes) {
            (1, false) => (2, 2),
            (2, false) => (2, 1),
            _ => (1, 1),
        };
        crop_x = sub_width * left.checked_add(right)?;
        crop_y = sub_height * (2 - frame_mbs_only) * top.checked_add(bottom)?;
    }
    let width = (width_in_mbs.checked_mul(16)?).checked_sub(crop_x)?;
    let height =
        (height_in_map_units.checked_mul(16 * (2 - frame_mbs_only))?).checked_sub(crop_y)?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

/// §7.3.2.1.1.1: only read past, the sizes do not depend on it.
fn skip_scaling_list(bits: &mut NalBits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + bits.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Big-endian bit reader over a NAL unit body that drops emulation prevention bytes (§7.4.1:
/// `00 00 03` stands for `00 00`) as it goes, so nothing is copied.
struct NalBits<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u8,
    zeros: u8,
}

impl<'a> NalBits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            byte: 0,
            bit: 0,
            zeros: 0,
        }
    }

    fn bit(&mut self) -> Option<u32> {
        if self.bit == 0 {
            if self.zeros >= 2 && self.data.get(self.byte) == Some(&3) {
                self.byte += 1;
                self.zeros = 0;
            }
            let &byte = self.data.get(self.byte)?;
            self.zeros = if byte == 0 { self.zeros + 1 } else { 0 };
        }
        let value = (self.data[self.byte] >> (7 - self.bit)) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(u32::from(value))
    }

    fn bits(&mut self, count: u8) -> Option<u32> {
        (0..count).try_fold(0, |value, _| Some(value << 1 | self.bit()?))
    }

    /// Exp-Golomb, unsigned (§9.1); values past 32 bits are refused.
    fn ue(&mut self) -> Option<u32> {
        let mut leading_zeros = 0;
        while self.bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(leading_zeros)?;
        ((1u64 << leading_zeros) - 1 + u64::from(rest))
            .try_into()
            .ok()
    }

    /// Exp-Golomb, signed (§9.1.1).
    fn se(&mut self) -> Option<i64> {
        let code = i64::from(self.ue()?);
        Some(if code % 2 == 1 {
            (code + 1) / 2
        } else {
            -(code / 2)
        })
    }
}

/// Fuzz entry point: parses `data` as RTP and walks everything a caller could read from it.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) -> usize {
    let mut touched = 0;
    let _ = classify(data);
    if let Ok(header) = parse_rtp(data) {
        for (id, value) in extensions(data, &header) {
            touched += usize::from(id) + value.len();
        }
        let payload = header.payload(data);
        touched += usize::from(vp8_is_keyframe(payload)) + usize::from(h264_is_keyframe(payload));
        touched +=
            h264_keyframe_dimensions(payload).map_or(0, |(w, h)| usize::from(w) + usize::from(h));
    }
    touched
}

/// True if a VP9 payload (RFC 9628 §4.2 descriptor) starts a keyframe: the first packet (B) of
/// a picture without inter-picture prediction (P clear) in spatial layer 0.
pub fn vp9_is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (has_picture_id, inter_picture, has_layers, begins_frame) = (
        first & 0x80 != 0,
        first & 0x40 != 0,
        first & 0x20 != 0,
        first & 0x08 != 0,
    );
    if inter_picture || !begins_frame {
        return false;
    }
    if !has_layers {
        return true;
    }
    let mut offset = 1;
    if has_picture_id {
        let Some(&picture_id) = payload.get(1) else {
            return false;
        };
        // M bit: 15-bit PictureID.
        offset += if picture_id & 0x80 != 0 { 2 } else { 1 };
    }
    payload
        .get(offset)
        .is_some_and(|&layer| (layer >> 1) & 0x07 == 0)
}

/// True if an AV1 payload starts a new coded video sequence (its aggregation header has N set
/// and Z clear), which is how a keyframe's first packet is marked (AV1 RTP spec §4.4).
pub fn av1_is_keyframe(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|&header| header & 0x08 != 0 && header & 0x80 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Chrome-like VP8 packet: one-byte extensions (mid "0" at id 4, transport-wide seq at id 3,
    /// abs-send-time at id 2), marker set, 3 bytes of payload and 4 bytes of padding.
    const CHROME_VP8: &[u8] = &[
        0xb0, 0xe0, 0x12, 0x34, // V=2 P X, M, PT 96, seq 0x1234
        0x00, 0x01, 0x5f, 0x90, // timestamp 90000
        0xde, 0xad, 0xbe, 0xef, // SSRC
        0xbe, 0xde, 0x00, 0x03, // one-byte form, 3 words
        0x22, 0x01, 0x02, 0x03, // id 2, 3 bytes (abs-send-time)
        0x31, 0x00, 0x07, // id 3, 2 bytes (transport-wide seq 7)
        0x40, b'0', // id 4, 1 byte (mid)
        0x00, 0x00, 0x00, // padding
        0x90, 0xe0, 0x10, // payload
        0x00, 0x00, 0x00, 0x04, // RTP padding
    ];

    #[test]
    fn parses_a_chrome_vp8_packet_with_extensions_and_padding() {
        let h = parse_rtp(CHROME_VP8).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 96);
        assert_eq!(h.sequence, 0x1234);
        assert_eq!(h.timestamp, 90_000);
        assert_eq!(h.ssrc, 0xdead_beef);
        assert_eq!(h.extension_profile, Some(ONE_BYTE_PROFILE));
        assert_eq!((h.extensions_start, h.extensions_len), (16, 12));
        assert_eq!(h.payload(CHROME_VP8), &[0x90, 0xe0, 0x10]);
        assert_eq!(h.padding_len, 4);
        let exts: Vec<_> = extensions(CHROME_VP8, &h).collect();
        assert_eq!(
            exts,
            vec![(2, &[1u8, 2, 3][..]), (3, &[0, 7][..]), (4, &b"0"[..])]
        );
    }

    #[test]
    fn rejects_short_wrong_version_and_overlong_fields() {
        assert_eq!(
            parse_rtp(&CHROME_VP8[..11]).unwrap_err(),
            RtpError::TooShort
        );
        let mut v1 = CHROME_VP8.to_vec();
        v1[0] = 0x70;
        assert_eq!(parse_rtp(&v1).unwrap_err(), RtpError::BadVersion);
        let mut csrcs = CHROME_VP8[..12].to_vec();
        csrcs[0] = 0x81;
        assert_eq!(parse_rtp(&csrcs).unwrap_err(), RtpError::BadLength);
        let mut ext = CHROME_VP8.to_vec();
        ext[15] = 0x40;
        assert_eq!(parse_rtp(&ext).unwrap_err(), RtpError::BadExtension);
        assert_eq!(
            parse_rtp(&CHROME_VP8[..14]).unwrap_err(),
            RtpError::BadExtension
        );
        let mut pad = CHROME_VP8.to_vec();
        *pad.last_mut().unwrap() = 0;
        assert_eq!(parse_rtp(&pad).unwrap_err(), RtpError::BadPadding);
        *pad.last_mut().unwrap() = 8;
        assert_eq!(parse_rtp(&pad).unwrap_err(), RtpError::BadPadding);
    }

    #[test]
    fn padding_only_packet_has_an_empty_payload() {
        let mut p = vec![0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        p.extend_from_slice(&[0, 0, 0, 4]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!((h.payload_start, h.payload_end, h.padding_len), (12, 12, 4));
        assert!(h.payload(&p).is_empty());
    }

    #[test]
    fn csrcs_are_skipped_before_the_payload() {
        let p = [
            0x82, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0xaa,
        ];
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.csrc_count, 2);
        assert_eq!(h.payload(&p), &[0xaa]);
    }

    fn ext_packet(profile: u16, elements: &[u8]) -> Vec<u8> {
        let mut p = vec![0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        p.extend_from_slice(&profile.to_be_bytes());
        let padded = elements.len().next_multiple_of(4);
        p.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
        p.extend_from_slice(elements);
        p.resize(p.len() + padded - elements.len(), 0);
        p
    }

    #[test]
    fn one_byte_id_15_ends_extension_parsing() {
        let p = ext_packet(ONE_BYTE_PROFILE, &[0x10, 0xaa, 0xf0, 0x20, 0xbb]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            extensions(&p, &h).collect::<Vec<_>>(),
            vec![(1, &[0xaa][..])]
        );
    }

    #[test]
    fn one_byte_id_0_with_a_length_is_malformed_and_stops_iteration() {
        let p = ext_packet(
            ONE_BYTE_PROFILE,
            &[0x10, 0xaa, 0x00, 0x01, 0xbb, 0x20, 0xcc],
        );
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            extensions(&p, &h).collect::<Vec<_>>(),
            vec![(1, &[0xaa][..])]
        );
    }

    #[test]
    fn extension_element_running_past_the_block_stops_iteration() {
        let p = ext_packet(ONE_BYTE_PROFILE, &[0x10, 0xaa, 0x2f, 0x01]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            extensions(&p, &h).collect::<Vec<_>>(),
            vec![(1, &[0xaa][..])]
        );
    }

    #[test]
    fn two_byte_form_allows_empty_values_and_large_ids() {
        let p = ext_packet(0x1003, &[0x01, 0x00, 0x00, 0x20, 0x02, 0xaa, 0xbb]);
        let h = parse_rtp(&p).unwrap();
        let exts: Vec<_> = extensions(&p, &h).collect();
        assert_eq!(exts, vec![(1, &[][..]), (0x20, &[0xaa, 0xbb][..])]);
    }

    #[test]
    fn unknown_extension_profiles_yield_nothing() {
        let p = ext_packet(0x1234, &[0x10, 0xaa]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(extensions(&p, &h).count(), 0);
    }

    #[test]
    fn writer_uses_one_byte_form_and_round_trips() {
        let mut out = Vec::with_capacity(64);
        out.push(0xff); // the writer appends
        let w = RtpHeaderWriter {
            marker: true,
            payload_type: 111,
            sequence: 65535,
            timestamp: 0xffff_fff0,
            ssrc: 42,
            extensions: &[
                (1, &[0x80]),
                (14, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            ],
        };
        let len = w.write(&mut out).unwrap();
        assert_eq!(len, w.header_len().unwrap());
        assert_eq!(len, 12 + 4 + 20);
        out.extend_from_slice(b"opus");
        let p = &out[1..];
        let h = parse_rtp(p).unwrap();
        assert!(h.marker);
        assert_eq!(
            (h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (111, 65535, 0xffff_fff0, 42)
        );
        assert_eq!(h.extension_profile, Some(ONE_BYTE_PROFILE));
        let exts: Vec<_> = extensions(p, &h).collect();
        assert_eq!(exts.len(), 2);
        assert_eq!(exts[0], (1, &[0x80][..]));
        assert_eq!(exts[1].0, 14);
        assert_eq!(exts[1].1.len(), 16);
        assert_eq!(h.payload(p), b"opus");
    }

    #[test]
    fn writer_switches_to_two_byte_form_for_id_15_or_long_or_empty_values() {
        let long = [7u8; 17];
        for exts in [
            &[(15u8, &[1u8][..])][..],
            &[(1, &long[..])],
            &[(1, &[][..]), (2, &[9][..])],
        ] {
            let w = RtpHeaderWriter {
                payload_type: 96,
                extensions: exts,
                ..Default::default()
            };
            let mut out = Vec::new();
            w.write(&mut out).unwrap();
            let h = parse_rtp(&out).unwrap();
            assert_eq!(h.extension_profile, Some(TWO_BYTE_PROFILE));
            assert_eq!(extensions(&out, &h).collect::<Vec<_>>(), exts.to_vec());
            assert_eq!(h.payload_start, out.len());
        }
    }

    #[test]
    fn writer_without_extensions_writes_twelve_bytes() {
        let mut out = Vec::new();
        let w = RtpHeaderWriter {
            payload_type: 0xff,
            sequence: 1,
            ..Default::default()
        };
        assert_eq!(w.write(&mut out), Ok(12));
        assert_eq!(out[0], 0x80);
        assert_eq!(out[1], 0x7f);
    }

    #[test]
    fn writer_rejects_unencodable_extensions_without_writing() {
        let long = [0u8; 256];
        let mut out = vec![1, 2, 3];
        for exts in [&[(0u8, &[1u8][..]), (15, &[1][..])][..], &[(1, &long[..])]] {
            let w = RtpHeaderWriter {
                extensions: exts,
                ..Default::default()
            };
            assert_eq!(w.write(&mut out), Err(RtpError::BadExtension));
            assert_eq!(out, vec![1, 2, 3]);
        }
    }

    #[test]
    fn append_padding_sets_the_p_bit_and_parses_back() {
        let mut out = vec![0xee];
        RtpHeaderWriter {
            sequence: 9,
            ..Default::default()
        }
        .write(&mut out)
        .unwrap();
        out.push(0x55);
        append_padding(&mut out, 1, 7).unwrap();
        let h = parse_rtp(&out[1..]).unwrap();
        assert_eq!(h.padding_len, 7);
        assert_eq!(h.payload(&out[1..]), &[0x55]);
        assert_eq!(append_padding(&mut out, 1, 0), Err(RtpError::BadPadding));
        let end = out.len();
        assert_eq!(append_padding(&mut out, end, 4), Err(RtpError::TooShort));
    }

    #[test]
    fn rewrite_header_keeps_marker_and_the_rest() {
        let mut p = CHROME_VP8.to_vec();
        assert!(rewrite_header(&mut p, 100, 7, 8, 9));
        let h = parse_rtp(&p).unwrap();
        assert!(h.marker);
        assert_eq!(
            (h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (100, 7, 8, 9)
        );
        assert_eq!(&p[12..], &CHROME_VP8[12..]);
        assert!(!rewrite_header(&mut p[..11], 1, 1, 1, 1));
    }

    #[test]
    fn classifies_by_rfc_7983_first_byte_and_rfc_5761_second_byte() {
        assert_eq!(classify(&[0x00, 0x01]), PacketClass::Stun);
        assert_eq!(classify(&[0x01, 0x01]), PacketClass::Stun);
        assert_eq!(classify(&[22, 0xfe]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80, 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x81, 206]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 224]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
        assert_eq!(classify(&[16, 0]), PacketClass::Other);
        assert_eq!(classify(&[64, 0]), PacketClass::Other);
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 191]));
    }

    #[test]
    fn vp8_keyframe_needs_start_partition_zero_and_p_bit_clear() {
        // No extension: descriptor S=1 PID=0, VP8 header P=0.
        assert!(vp8_is_keyframe(&[0x10, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a]));
        // Interframe: P=1.
        assert!(!vp8_is_keyframe(&[0x10, 0x51, 0x2a]));
        // Not the start of the partition.
        assert!(!vp8_is_keyframe(&[0x00, 0x50]));
        // Start of partition 1.
        assert!(!vp8_is_keyframe(&[0x11, 0x50]));
        // Chrome: X=1, I=1 with 15-bit PictureID, L=1, T=1: 6 bytes of descriptor.
        assert!(vp8_is_keyframe(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x50, 0x2a
        ]));
        assert!(!vp8_is_keyframe(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x51
        ]));
        // 7-bit PictureID only.
        assert!(vp8_is_keyframe(&[0x90, 0x80, 0x05, 0x00]));
        // Truncated descriptors.
        assert!(!vp8_is_keyframe(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x20]));
        assert!(!vp8_is_keyframe(&[0x90]));
        assert!(!vp8_is_keyframe(&[]));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn h264_sps_gives_the_cropped_picture_size_in_high_and_baseline_profiles() {
        // x264 SPSs (with emulation prevention bytes); 180 rows are 12 macroblocks cropped by 12.
        let high_720p = hex("6764001facd9405005bb011000000300100000030020f1831960");
        let high_180p = hex("6764000cacd941419f9f011000000300100000030020f1429960");
        let baseline_720p = hex("6742c01fd9005005bb011000000300100000030020f1832480");
        let baseline_180p = hex("6742c00bd901419f9f011000000300100000030020f142a480");
        assert_eq!(h264_keyframe_dimensions(&high_720p), Some((1280, 720)));
        assert_eq!(h264_keyframe_dimensions(&high_180p), Some((320, 180)));
        assert_eq!(h264_keyframe_dimensions(&baseline_720p), Some((1280, 720)));
        assert_eq!(h264_keyframe_dimensions(&baseline_180p), Some((320, 180)));
        // In a STAP-A before the PPS and IDR, as browsers packetize a keyframe's start.
        let mut stap_a = vec![0x78];
        for unit in [
            &baseline_180p[..],
            &[0x68, 0xce, 0x3c, 0x80],
            &[0x65, 0x88, 0x84],
        ] {
            stap_a.extend_from_slice(&(unit.len() as u16).to_be_bytes());
            stap_a.extend_from_slice(unit);
        }
        assert_eq!(h264_keyframe_dimensions(&stap_a), Some((320, 180)));
        // An IDR slice alone, a truncated SPS, garbage: no size, no panic.
        assert_eq!(h264_keyframe_dimensions(&[0x65, 0x88, 0x84]), None);
        for len in 0..6 {
            assert_eq!(h264_keyframe_dimensions(&high_720p[..len]), None);
        }
        for len in 6..high_720p.len() {
            let _ = h264_keyframe_dimensions(&high_720p[..len]);
        }
        assert_eq!(h264_keyframe_dimensions(&[0x67, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(h264_keyframe_dimensions(&[0x78, 0xff, 0xff, 0x67]), None);
    }

    #[test]
    fn h264_keyframe_in_single_nal_stap_a_and_fu_a() {
        assert!(h264_is_keyframe(&[0x65, 0x88]));
        assert!(h264_is_keyframe(&[0x67, 0x42]));
        assert!(!h264_is_keyframe(&[0x41, 0x9a]));
        assert!(!h264_is_keyframe(&[0x68, 0xce]));
        // STAP-A with SPS, PPS.
        assert!(h264_is_keyframe(&[
            0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce
        ]));
        // STAP-A with a PPS and a non-IDR slice only.
        assert!(!h264_is_keyframe(&[
            0x78, 0x00, 0x01, 0x68, 0x00, 0x01, 0x41
        ]));
        // STAP-A whose second unit runs past the end.
        assert!(!h264_is_keyframe(&[
            0x78, 0x00, 0x01, 0x68, 0x00, 0x09, 0x65
        ]));
        // FU-A start of an IDR, then a middle fragment.
        assert!(h264_is_keyframe(&[0x7c, 0x85, 0xb8]));
        assert!(!h264_is_keyframe(&[0x7c, 0x05, 0xb8]));
        assert!(!h264_is_keyframe(&[0x7c, 0x81]));
        assert!(!h264_is_keyframe(&[0x7c]));
        assert!(!h264_is_keyframe(&[]));
    }

    #[test]
    fn vp9_and_av1_keyframes_are_the_first_packet_of_an_intra_picture() {
        // I=1 (15-bit PictureID), L=1, B=1; layer byte SID 0, then SID 1.
        assert!(vp9_is_keyframe(&[0xa8, 0x81, 0x02, 0x00, 0x00]));
        assert!(!vp9_is_keyframe(&[0xa8, 0x81, 0x02, 0x02, 0x00]));
        // P=1, or not the beginning of the frame.
        assert!(!vp9_is_keyframe(&[0xe8, 0x81, 0x02, 0x00]));
        assert!(!vp9_is_keyframe(&[0xa0, 0x81, 0x02, 0x00]));
        // No layer indices: B and P decide; truncated descriptors are not keyframes.
        assert!(vp9_is_keyframe(&[0x08]));
        assert!(!vp9_is_keyframe(&[0xa8, 0x81]));
        assert!(!vp9_is_keyframe(&[]));
        assert!(av1_is_keyframe(&[0x18]));
        assert!(!av1_is_keyframe(&[0x98]));
        assert!(!av1_is_keyframe(&[0x10]));
        assert!(!av1_is_keyframe(&[]));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut buf = [0u8; 96];
        for i in 0..50_000 {
            let len = (next() % 96) as usize;
            if i % 2 == 0 {
                // Mutations of a valid packet reach deeper than pure noise.
                let n = len.min(CHROME_VP8.len());
                buf[..n].copy_from_slice(&CHROME_VP8[..n]);
                for _ in 0..(next() % 4) {
                    let at = (next() % 96) as usize;
                    buf[at] = next() as u8;
                }
            } else {
                for b in &mut buf[..len] {
                    *b = next() as u8;
                }
            }
            fuzz_parse(&buf[..len]);
        }
    }

    #[test]
    fn a_vp8_descriptor_with_every_field_is_located_and_a_keyframe_announces_its_size() {
        // X=1 S=1; I L T set; 15-bit PictureID 0x1234; TL0PICIDX 9; TID 2 with Y.
        let mut payload = vec![0x90, 0xe0, 0x80 | 0x12, 0x34, 9, (2 << 6) | 0x20];
        payload.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        let d = parse_vp8_descriptor(&payload).unwrap();
        assert_eq!(d.len, 6);
        assert_eq!(d.picture_id, Some((0x1234, 2, true)));
        assert_eq!(d.tl0_pic_idx, Some((9, 4)));
        assert_eq!(d.temporal, Some((2, true)));
        assert!(vp8_is_keyframe(&payload));
        assert_eq!(vp8_keyframe_dimensions(&payload), Some((640, 480)));
        for len in 0..payload.len() {
            let _ = vp8_keyframe_dimensions(&payload[..len]);
        }
    }
}
