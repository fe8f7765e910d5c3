//! STUN for an ICE-lite server (RFC 8489/5389 formats, RFC 8445 §7.3 checks): parses Binding
//! requests, verifies short-term credentials, writes Binding responses. No ICE state machine,
//! no client transactions, no long-term credentials or TURN.

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// RFC 8489 §5: fixed in every STUN message, and what tells STUN from classic RFC 3489.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// RFC 8489 §14.7: FINGERPRINT is the CRC-32 XOR this ("STUN"), so it differs from any CRC an
/// embedded protocol might carry.
const FINGERPRINT_XOR: u32 = 0x5354_554e;
const HEADER_LEN: usize = 20;
const INTEGRITY_LEN: usize = 20;
/// RFC 8489 §14.3: USERNAME is less than 513 bytes.
const MAX_USERNAME_LEN: usize = 512;
/// RFC 8489 §14.8: the reason phrase is less than 128 characters.
const MAX_REASON_CHARS: usize = 127;

mod method {
    pub const BINDING_REQUEST: u16 = 0x0001;
    pub const BINDING_SUCCESS: u16 = 0x0101;
    pub const BINDING_ERROR: u16 = 0x0111;
}

mod attr {
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802a;
}

/// Why a datagram is not an acceptable Binding request. All of them mean "drop it" except
/// [`StunError::BadIntegrity`] and [`StunError::MissingIntegrity`], which RFC 8489 §9.1.3 answers
/// with 401 and 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunError {
    /// Shorter than the 20-byte header.
    TooShort,
    /// Not STUN: the top bits of the type are set or the magic cookie is wrong.
    NotStun,
    /// The header length disagrees with the datagram, or is not a multiple of 4.
    BadLength,
    /// An attribute overruns the message, has the wrong size for its type, or follows FINGERPRINT.
    BadAttribute,
    /// A STUN message, but not a Binding request.
    NotBindingRequest,
    /// No FINGERPRINT, which ICE requires on every check (RFC 8445 §7).
    MissingFingerprint,
    /// FINGERPRINT does not match the message.
    BadFingerprint,
    /// No MESSAGE-INTEGRITY.
    MissingIntegrity,
    /// MESSAGE-INTEGRITY does not match under the given password.
    BadIntegrity,
    /// No USERNAME, which ICE requires to find the password.
    MissingUsername,
}

impl std::fmt::Display for StunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::TooShort => "shorter than a STUN header",
            Self::NotStun => "not a STUN message",
            Self::BadLength => "STUN length does not match the datagram",
            Self::BadAttribute => "malformed STUN attribute",
            Self::NotBindingRequest => "not a STUN Binding request",
            Self::MissingFingerprint => "no FINGERPRINT",
            Self::BadFingerprint => "FINGERPRINT mismatch",
            Self::MissingIntegrity => "no MESSAGE-INTEGRITY",
            Self::BadIntegrity => "MESSAGE-INTEGRITY mismatch",
            Self::MissingUsername => "no USERNAME",
        };
        f.write_str(text)
    }
}

impl std::error::Error for StunError {}

/// The ICE-relevant content of a Binding request, borrowed from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRequest<'a> {
    pub transaction_id: [u8; 12],
    /// `<our ufrag>:<their ufrag>` in ICE (RFC 8445 §7.2.2).
    pub username: &'a str,
    /// USE-CANDIDATE: the controlling agent nominates this pair.
    pub use_candidate: bool,
    /// PRIORITY of the peer-reflexive candidate this check would create.
    pub priority: Option<u32>,
    /// ICE-CONTROLLING tie-breaker.
    pub ice_controlling: Option<u64>,
    /// ICE-CONTROLLED tie-breaker.
    pub ice_controlled: Option<u64>,
}

/// RFC 7983 first-byte test (0..=3 is STUN, as opposed to DTLS, RTP/RTCP or TURN channels) plus
/// the magic cookie.
pub fn looks_like_stun(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN && data[0] <= 3 && read_u32(data, 4) == MAGIC_COOKIE
}

/// Parses a Binding request, checks FINGERPRINT (CRC-32 xor 0x5354554e; required, as ICE always
/// sends it) and requires USERNAME. Does not check MESSAGE-INTEGRITY: that needs the password
/// the engine looks up by username, then [`verify_integrity`]. Unknown attributes are ignored;
/// of repeated ones the first counts.
pub fn parse_binding_request(data: &[u8]) -> Result<BindingRequest<'_>, StunError> {
    if message_type(data)? != method::BINDING_REQUEST {
        return Err(StunError::NotBindingRequest);
    }
    let mut request = BindingRequest {
        transaction_id: transaction_id(data),
        username: "",
        use_candidate: false,
        priority: None,
        ice_controlling: None,
        ice_controlled: None,
    };
    let mut username = None;
    let mut after_integrity = false;
    let mut fingerprint_checked = false;
    for attribute in Attributes::new(data) {
        let Attribute {
            kind,
            value,
            offset,
        } = attribute?;
        if fingerprint_checked {
            return Err(StunError::BadAttribute);
        }
        if kind == attr::FINGERPRINT {
            check_fingerprint(data, offset, value)?;
            fingerprint_checked = true;
            continue;
        }
        // RFC 8489 §14.5: everything between MESSAGE-INTEGRITY and FINGERPRINT is ignored.
        if after_integrity {
            continue;
        }
        match kind {
            attr::USERNAME if username.is_none() => {
                if value.len() > MAX_USERNAME_LEN {
                    return Err(StunError::BadAttribute);
                }
                username = Some(std::str::from_utf8(value).map_err(|_| StunError::BadAttribute)?);
            }
            attr::PRIORITY if request.priority.is_none() => {
                request.priority = Some(read_u32(fixed::<4>(value)?, 0));
            }
            attr::USE_CANDIDATE => {
                fixed::<0>(value)?;
                request.use_candidate = true;
            }
            attr::ICE_CONTROLLING if request.ice_controlling.is_none() => {
                request.ice_controlling = Some(u64::from_be_bytes(*fixed::<8>(value)?));
            }
            attr::ICE_CONTROLLED if request.ice_controlled.is_none() => {
                request.ice_controlled = Some(u64::from_be_bytes(*fixed::<8>(value)?));
            }
            attr::MESSAGE_INTEGRITY => {
                fixed::<INTEGRITY_LEN>(value)?;
                after_integrity = true;
            }
            _ => {}
        }
    }
    if !fingerprint_checked {
        return Err(StunError::MissingFingerprint);
    }
    request.username = username.ok_or(StunError::MissingUsername)?;
    Ok(request)
}

/// Verifies MESSAGE-INTEGRITY (HMAC-SHA1 keyed with the short-term `password`, over the message
/// up to the attribute with the header length covering it, RFC 8489 §14.5) of any STUN message.
/// The comparison is constant-time.
pub fn verify_integrity(data: &[u8], password: &[u8]) -> Result<(), StunError> {
    message_type(data)?;
    for attribute in Attributes::new(data) {
        let Attribute {
            kind,
            value,
            offset,
        } = attribute?;
        if kind == attr::MESSAGE_INTEGRITY {
            let expected = fixed::<INTEGRITY_LEN>(value)?;
            return integrity_mac(data, offset, password)
                .verify_slice(expected)
                .map_err(|_| StunError::BadIntegrity);
        }
    }
    Err(StunError::MissingIntegrity)
}

/// Verifies the FINGERPRINT of any STUN message; it must be the last attribute.
pub fn verify_fingerprint(data: &[u8]) -> Result<(), StunError> {
    message_type(data)?;
    for attribute in Attributes::new(data) {
        let Attribute {
            kind,
            value,
            offset,
        } = attribute?;
        if kind == attr::FINGERPRINT {
            if offset + 8 != data.len() {
                return Err(StunError::BadAttribute);
            }
            return check_fingerprint(data, offset, value);
        }
    }
    Err(StunError::MissingFingerprint)
}

/// Writes a Binding success response (XOR-MAPPED-ADDRESS of `mapped`, MESSAGE-INTEGRITY with
/// `password`, FINGERPRINT) into `out`, cleared first. Allocates only if `out` has less than
/// 80 bytes of capacity.
pub fn write_binding_success(
    transaction_id: &[u8; 12],
    mapped: SocketAddr,
    password: &[u8],
    out: &mut Vec<u8>,
) {
    begin(out, method::BINDING_SUCCESS, transaction_id);
    // RFC 8489 §14.2: port XOR the cookie's top half; address XOR cookie (|| transaction id).
    let port = mapped.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction_id);
    let mut value = [0u8; 20];
    value[2..4].copy_from_slice(&port.to_be_bytes());
    let len = match mapped.ip() {
        IpAddr::V4(ip) => {
            value[1] = 0x01;
            xor_into(&mut value[4..8], &ip.octets(), &mask);
            8
        }
        IpAddr::V6(ip) => {
            value[1] = 0x02;
            xor_into(&mut value[4..20], &ip.octets(), &mask);
            20
        }
    };
    put_attribute(out, attr::XOR_MAPPED_ADDRESS, &value[..len]);
    put_integrity(out, password);
    put_fingerprint(out);
}

/// Writes a Binding error response with ERROR-CODE (`code` in 300..=699, e.g. 400 Bad Request,
/// 401 Unauthorized, 487 Role Conflict; `reason` cut to 127 characters) and FINGERPRINT into
/// `out`, cleared first. Without MESSAGE-INTEGRITY, as 400 and 401 must be (RFC 8489 §9.1.3).
pub fn write_binding_error(transaction_id: &[u8; 12], code: u16, reason: &str, out: &mut Vec<u8>) {
    begin(out, method::BINDING_ERROR, transaction_id);
    put_error_code(out, code, reason);
    put_fingerprint(out);
}

/// Like [`write_binding_error`], plus MESSAGE-INTEGRITY: for errors to an authenticated request
/// (e.g. 487 Role Conflict), which clients otherwise discard (RFC 8489 §9.1).
pub fn write_binding_error_with_integrity(
    transaction_id: &[u8; 12],
    code: u16,
    reason: &str,
    password: &[u8],
    out: &mut Vec<u8>,
) {
    begin(out, method::BINDING_ERROR, transaction_id);
    put_error_code(out, code, reason);
    put_integrity(out, password);
    put_fingerprint(out);
}

/// Checks the header against the datagram and returns the message type.
fn message_type(data: &[u8]) -> Result<u16, StunError> {
    if data.len() < HEADER_LEN {
        return Err(StunError::TooShort);
    }
    if data[0] & 0xc0 != 0 || read_u32(data, 4) != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    let body_len = usize::from(read_u16(data, 2));
    if !body_len.is_multiple_of(4) || HEADER_LEN + body_len != data.len() {
        return Err(StunError::BadLength);
    }
    Ok(read_u16(data, 0))
}

fn transaction_id(data: &[u8]) -> [u8; 12] {
    let mut id = [0u8; 12];
    id.copy_from_slice(&data[8..HEADER_LEN]);
    id
}

struct Attribute<'a> {
    kind: u16,
    value: &'a [u8],
    /// Where the attribute's 4-byte header starts in the message.
    offset: usize,
}

/// Walks the attributes of a message whose header [`message_type`] accepted.
struct Attributes<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Attributes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            offset: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<Attribute<'a>, StunError>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offset;
        if offset >= self.data.len() {
            return None;
        }
        let Some(header) = self.data.get(offset..offset + 4) else {
            self.offset = self.data.len();
            return Some(Err(StunError::BadAttribute));
        };
        let kind = read_u16(header, 0);
        let len = usize::from(read_u16(header, 2));
        let start = offset + 4;
        // RFC 8489 §14: values are padded to a multiple of 4; the padding must be there too.
        let padded_end = start + len.next_multiple_of(4);
        if padded_end > self.data.len() {
            self.offset = self.data.len();
            return Some(Err(StunError::BadAttribute));
        }
        self.offset = padded_end;
        Some(Ok(Attribute {
            kind,
            value: &self.data[start..start + len],
            offset,
        }))
    }
}

/// `value` as an array, or [`StunError::BadAttribute`] when its length is not `N`.
fn fixed<const N: usize>(value: &[u8]) -> Result<&[u8; N], StunError> {
    value.try_into().map_err(|_| StunError::BadAttribute)
}

fn check_fingerprint(data: &[u8], offset: usize, value: &[u8]) -> Result<(), StunError> {
    let expected = read_u32(fixed::<4>(value)?, 0);
    if crc32(&data[..offset]) ^ FINGERPRINT_XOR == expected {
        Ok(())
    } else {
        Err(StunError::BadFingerprint)
    }
}

/// HMAC-SHA1 over `data[..offset]` as if the message ended with a MESSAGE-INTEGRITY attribute
/// at `offset` (RFC 8489 §14.5: the header length is adjusted to include it, nothing after).
fn integrity_mac(data: &[u8], offset: usize, password: &[u8]) -> Hmac<Sha1> {
    let adjusted_len = (offset - HEADER_LEN + 4 + INTEGRITY_LEN) as u16;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(password).expect("HMAC takes any key length");
    mac.update(&data[..2]);
    mac.update(&adjusted_len.to_be_bytes());
    mac.update(&data[4..offset]);
    mac
}

fn begin(out: &mut Vec<u8>, message_type: u16, transaction_id: &[u8; 12]) {
    out.clear();
    out.extend_from_slice(&message_type.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(transaction_id);
}

/// Appends an attribute with zero padding and updates the header length.
fn put_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    let body_len = out.len() - HEADER_LEN;
    set_body_len(out, body_len);
}

fn set_body_len(out: &mut [u8], body_len: usize) {
    out[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
}

fn put_error_code(out: &mut Vec<u8>, code: u16, reason: &str) {
    let reason = match reason.char_indices().nth(MAX_REASON_CHARS) {
        Some((end, _)) => &reason[..end],
        None => reason,
    };
    let mut value = [0u8; 4 + 4 * MAX_REASON_CHARS];
    // RFC 8489 §14.8: class (hundreds) in 3 bits, then number (0..=99).
    value[2] = (code / 100) as u8 & 0x07;
    value[3] = (code % 100) as u8;
    value[4..4 + reason.len()].copy_from_slice(reason.as_bytes());
    put_attribute(out, attr::ERROR_CODE, &value[..4 + reason.len()]);
}

fn put_integrity(out: &mut Vec<u8>, password: &[u8]) {
    let offset = out.len();
    let tag = integrity_mac(out, offset, password).finalize().into_bytes();
    put_attribute(out, attr::MESSAGE_INTEGRITY, &tag);
}

fn put_fingerprint(out: &mut Vec<u8>) {
    // The CRC covers a header whose length already counts the FINGERPRINT attribute.
    let body_len = out.len() + 8 - HEADER_LEN;
    set_body_len(out, body_len);
    let crc = crc32(out) ^ FINGERPRINT_XOR;
    put_attribute(out, attr::FINGERPRINT, &crc.to_be_bytes());
}

fn xor_into(out: &mut [u8], bytes: &[u8], mask: &[u8]) {
    for ((out, byte), mask) in out.iter_mut().zip(bytes).zip(mask) {
        *out = byte ^ mask;
    }
}

/// CRC-32 (ISO-HDLC, as in Ethernet and zlib) — what FINGERPRINT uses.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |crc, &byte| {
        TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8)
    })
}

/// Callers have checked `at + 2 <= data.len()`.
fn read_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Callers have checked `at + 4 <= data.len()`.
fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
    const TRANSACTION_ID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// RFC 5769 §2.1: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME "evtj:h6vY" (padded with
    /// spaces), MESSAGE-INTEGRITY, FINGERPRINT.
    fn sample_request() -> Vec<u8> {
        hex("000100582112a442b7e7a701bc34d686fa87dfae
             802200105354554e207465737420636c69656e74
             002400046e0001ff
             80290008932ff9b151263b36
             000600096576746a3a68367659202020
             000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
             80280004e57a3bcf")
    }

    /// RFC 5769 §2.2: mapped address 192.0.2.1 port 32853.
    fn sample_ipv4_response() -> Vec<u8> {
        hex("0101003c2112a442b7e7a701bc34d686fa87dfae
             8022000b7465737420766563746f7220
             002000080001a147e112a643
             000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
             80280004c07d4c96")
    }

    /// RFC 5769 §2.3: mapped address 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    fn sample_ipv6_response() -> Vec<u8> {
        hex("010100482112a442b7e7a701bc34d686fa87dfae
             8022000b7465737420766563746f7220
             002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
             00080014a382954e4be67bf11784c97c8292c275bfe3ed41
             80280004c8fb0b4c")
    }

    fn find_attribute(message: &[u8], kind: u16) -> Option<Vec<u8>> {
        Attributes::new(message)
            .map(Result::unwrap)
            .find(|attribute| attribute.kind == kind)
            .map(|attribute| attribute.value.to_vec())
    }

    /// An ICE connectivity check as a browser sends it, built with the writer's helpers.
    fn request(attributes: &[(u16, &[u8])], password: Option<&[u8]>, fingerprint: bool) -> Vec<u8> {
        let mut out = Vec::new();
        begin(&mut out, method::BINDING_REQUEST, &TRANSACTION_ID);
        for (kind, value) in attributes {
            put_attribute(&mut out, *kind, value);
        }
        if let Some(password) = password {
            put_integrity(&mut out, password);
        }
        if fingerprint {
            put_fingerprint(&mut out);
        }
        out
    }

    /// Deterministic xorshift64* so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn rfc5769_sample_request_parses_and_verifies_with_the_short_term_password() {
        let data = sample_request();
        assert!(looks_like_stun(&data));
        let request = parse_binding_request(&data).unwrap();
        assert_eq!(
            request,
            BindingRequest {
                transaction_id: TRANSACTION_ID,
                username: "evtj:h6vY",
                use_candidate: false,
                priority: Some(0x6e00_01ff),
                ice_controlling: None,
                ice_controlled: Some(0x932f_f9b1_5126_3b36),
            }
        );
        assert_eq!(verify_integrity(&data, PASSWORD), Ok(()));
        assert_eq!(verify_fingerprint(&data), Ok(()));
    }

    #[test]
    fn rfc5769_sample_responses_verify_integrity_and_fingerprint() {
        for data in [sample_ipv4_response(), sample_ipv6_response()] {
            assert!(looks_like_stun(&data));
            assert_eq!(verify_integrity(&data, PASSWORD), Ok(()));
            assert_eq!(verify_fingerprint(&data), Ok(()));
            assert_eq!(
                parse_binding_request(&data),
                Err(StunError::NotBindingRequest)
            );
        }
    }

    #[test]
    fn xor_mapped_address_is_encoded_as_in_rfc5769() {
        let cases = [
            (
                sample_ipv4_response(),
                SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 32853),
            ),
            (
                sample_ipv6_response(),
                SocketAddr::new(
                    Ipv6Addr::new(0x2001, 0xdb8, 0x1234, 0x5678, 0x11, 0x2233, 0x4455, 0x6677)
                        .into(),
                    32853,
                ),
            ),
        ];
        for (vector, mapped) in cases {
            let mut ours = Vec::new();
            write_binding_success(&TRANSACTION_ID, mapped, PASSWORD, &mut ours);
            assert_eq!(
                find_attribute(&ours, attr::XOR_MAPPED_ADDRESS),
                find_attribute(&vector, attr::XOR_MAPPED_ADDRESS),
                "{mapped}"
            );
        }
    }

    #[test]
    fn a_wrong_password_fails_integrity() {
        assert_eq!(
            verify_integrity(&sample_request(), b"VOkJxbRl1RmTxUk/WvJxBT"),
            Err(StunError::BadIntegrity)
        );
        assert_eq!(
            verify_integrity(&sample_ipv4_response(), b""),
            Err(StunError::BadIntegrity)
        );
    }

    #[test]
    fn success_responses_round_trip_through_the_verifiers() {
        let addresses = [
            SocketAddr::new(Ipv4Addr::new(203, 0, 113, 7).into(), 5000),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 65535),
        ];
        let mut out = Vec::with_capacity(128);
        for mapped in addresses {
            write_binding_success(&TRANSACTION_ID, mapped, b"pass", &mut out);
            assert!(looks_like_stun(&out));
            assert_eq!(message_type(&out), Ok(method::BINDING_SUCCESS));
            assert_eq!(transaction_id(&out), TRANSACTION_ID);
            assert_eq!(verify_integrity(&out, b"pass"), Ok(()));
            assert_eq!(
                verify_integrity(&out, b"Pass"),
                Err(StunError::BadIntegrity)
            );
            assert_eq!(verify_fingerprint(&out), Ok(()));
            let mut tampered = out.clone();
            tampered[26] ^= 1;
            assert_eq!(
                verify_integrity(&tampered, b"pass"),
                Err(StunError::BadIntegrity)
            );
            assert_eq!(
                verify_fingerprint(&tampered),
                Err(StunError::BadFingerprint)
            );
        }
    }

    #[test]
    fn error_responses_carry_the_code_and_a_fingerprint() {
        let mut out = Vec::new();
        write_binding_error(&TRANSACTION_ID, 487, "Role Conflict", &mut out);
        assert_eq!(message_type(&out), Ok(method::BINDING_ERROR));
        assert_eq!(verify_fingerprint(&out), Ok(()));
        assert_eq!(
            verify_integrity(&out, b"x"),
            Err(StunError::MissingIntegrity)
        );
        let mut expected = vec![0, 0, 4, 87];
        expected.extend_from_slice(b"Role Conflict");
        assert_eq!(find_attribute(&out, attr::ERROR_CODE), Some(expected));

        write_binding_error_with_integrity(&TRANSACTION_ID, 487, "Role Conflict", b"pw", &mut out);
        assert_eq!(verify_integrity(&out, b"pw"), Ok(()));
        assert_eq!(verify_fingerprint(&out), Ok(()));

        let long = "é".repeat(200);
        write_binding_error(&TRANSACTION_ID, 400, &long, &mut out);
        assert_eq!(verify_fingerprint(&out), Ok(()));
        let value = find_attribute(&out, attr::ERROR_CODE).unwrap();
        assert_eq!(value[..4], [0, 0, 4, 0]);
        assert_eq!(
            std::str::from_utf8(&value[4..]).unwrap().chars().count(),
            127
        );
    }

    #[test]
    fn an_ice_check_with_nomination_and_controlling_role_parses() {
        let data = request(
            &[
                (attr::USERNAME, b"local:remote"),
                (attr::ICE_CONTROLLING, &7u64.to_be_bytes()),
                (attr::USE_CANDIDATE, b""),
                (attr::PRIORITY, &1_853_824_767u32.to_be_bytes()),
                (0xc057, &[0, 1, 0, 10]),
            ],
            Some(b"secret"),
            true,
        );
        let request = parse_binding_request(&data).unwrap();
        assert_eq!(request.username, "local:remote");
        assert!(request.use_candidate);
        assert_eq!(request.priority, Some(1_853_824_767));
        assert_eq!(request.ice_controlling, Some(7));
        assert_eq!(request.ice_controlled, None);
        assert_eq!(verify_integrity(&data, b"secret"), Ok(()));
    }

    #[test]
    fn requests_missing_what_ice_requires_are_rejected() {
        let username: (u16, &[u8]) = (attr::USERNAME, b"a:b");
        assert_eq!(
            parse_binding_request(&request(&[username], Some(b"pw"), false)),
            Err(StunError::MissingFingerprint)
        );
        assert_eq!(
            parse_binding_request(&request(
                &[(attr::PRIORITY, &[0, 0, 0, 1])],
                Some(b"pw"),
                true
            )),
            Err(StunError::MissingUsername)
        );
        let unauthenticated = request(&[username], None, true);
        assert!(parse_binding_request(&unauthenticated).is_ok());
        assert_eq!(
            verify_integrity(&unauthenticated, b"pw"),
            Err(StunError::MissingIntegrity)
        );
        // USERNAME after MESSAGE-INTEGRITY is not covered by it, so it does not count.
        let mut late = request(&[], Some(b"pw"), false);
        put_attribute(&mut late, attr::USERNAME, b"a:b");
        put_fingerprint(&mut late);
        assert_eq!(
            parse_binding_request(&late),
            Err(StunError::MissingUsername)
        );
    }

    #[test]
    fn malformed_requests_are_rejected_with_the_reason() {
        let good = sample_request();
        let mut bad_fingerprint = good.clone();
        *bad_fingerprint.last_mut().unwrap() ^= 1;
        assert_eq!(
            parse_binding_request(&bad_fingerprint),
            Err(StunError::BadFingerprint)
        );

        let mut after_fingerprint = good.clone();
        put_attribute(&mut after_fingerprint, attr::PRIORITY, &[0, 0, 0, 1]);
        // Re-sign the FINGERPRINT for the longer header, so only its position is wrong.
        let at = good.len() - 8;
        let crc = crc32(&after_fingerprint[..at]) ^ FINGERPRINT_XOR;
        after_fingerprint[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            verify_fingerprint(&after_fingerprint),
            Err(StunError::BadAttribute)
        );
        assert_eq!(
            parse_binding_request(&after_fingerprint),
            Err(StunError::BadAttribute)
        );

        let wrong_size = request(
            &[(attr::USERNAME, b"a:b"), (attr::PRIORITY, &[1, 2])],
            None,
            true,
        );
        assert_eq!(
            parse_binding_request(&wrong_size),
            Err(StunError::BadAttribute)
        );

        let not_utf8 = request(&[(attr::USERNAME, &[0xff, 0xfe])], None, true);
        assert_eq!(
            parse_binding_request(&not_utf8),
            Err(StunError::BadAttribute)
        );

        let too_long = request(&[(attr::USERNAME, &[b'a'; 513])], None, true);
        assert_eq!(
            parse_binding_request(&too_long),
            Err(StunError::BadAttribute)
        );

        let mut indication = good.clone();
        indication[1] = 0x11;
        assert_eq!(
            parse_binding_request(&indication),
            Err(StunError::NotBindingRequest)
        );

        let mut no_cookie = good.clone();
        no_cookie[4] = 0;
        assert!(!looks_like_stun(&no_cookie));
        assert_eq!(parse_binding_request(&no_cookie), Err(StunError::NotStun));

        let mut extra_byte = good.clone();
        extra_byte.push(0);
        assert_eq!(
            parse_binding_request(&extra_byte),
            Err(StunError::BadLength)
        );
        assert_eq!(parse_binding_request(&good[..19]), Err(StunError::TooShort));
    }

    #[test]
    fn other_protocols_on_the_port_do_not_look_like_stun() {
        let dtls = [
            22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut rtp = [0u8; 40];
        rtp[0] = 0x80;
        rtp[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(!looks_like_stun(&dtls));
        assert!(!looks_like_stun(&rtp));
        assert!(!looks_like_stun(&sample_request()[..19]));
    }

    #[test]
    fn every_truncation_is_an_error_and_never_panics() {
        for data in [
            sample_request(),
            sample_ipv4_response(),
            sample_ipv6_response(),
        ] {
            for len in 0..data.len() {
                let cut = &data[..len];
                assert!(parse_binding_request(cut).is_err(), "len {len}");
                assert!(verify_integrity(cut, PASSWORD).is_err(), "len {len}");
                assert!(verify_fingerprint(cut).is_err(), "len {len}");
            }
            // Truncated with the header length patched to match, so the attribute walk runs
            // into every cut: still errors, at every attribute boundary and in between.
            for body_len in (0..data.len() - HEADER_LEN).step_by(4) {
                let mut cut = data[..HEADER_LEN + body_len].to_vec();
                set_body_len(&mut cut, body_len);
                assert!(parse_binding_request(&cut).is_err(), "body {body_len}");
                assert!(verify_fingerprint(&cut).is_err(), "body {body_len}");
                let _ = verify_integrity(&cut, PASSWORD);
            }
        }
    }

    #[test]
    fn random_bytes_are_rejected_without_panicking() {
        let mut rng = Rng(0x57a5_eed5);
        let mut data = [0u8; 600];
        for round in 0..50_000 {
            let len = (rng.next() % 600) as usize;
            for byte in &mut data[..len] {
                *byte = rng.next() as u8;
            }
            // Most rounds get a valid header, so the attribute walk sees the soup.
            if round % 8 != 0 && len >= HEADER_LEN {
                let body_len = (len - HEADER_LEN) & !3;
                data[..2].copy_from_slice(&method::BINDING_REQUEST.to_be_bytes());
                set_body_len(&mut data, body_len);
                data[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                let message = &data[..HEADER_LEN + body_len];
                assert!(looks_like_stun(message));
                // A random FINGERPRINT matching is a 2^-32 event; the seed is fixed.
                assert!(parse_binding_request(message).is_err());
                let _ = verify_integrity(message, PASSWORD);
                let _ = verify_fingerprint(message);
            } else {
                let _ = looks_like_stun(&data[..len]);
                let _ = parse_binding_request(&data[..len]);
                let _ = verify_integrity(&data[..len], PASSWORD);
            }
        }
    }

    #[test]
    fn crc32_is_the_iso_hdlc_crc() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
