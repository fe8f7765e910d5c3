//! SRTP and SRTCP packet protection for DTLS-SRTP keys (RFC 3711, RFC 7714): key derivation,
//! in-place encryption and authentication, ROC tracking and replay windows. No RTP or RTCP
//! parsing beyond what the transforms need, and no key exchange (DTLS exports the keys).
//!
//! Crypto backends (docs/decisions/0001-srtp-crypto.md): AES-128-GCM comes from `ring` (assembly
//! AES-NI/CLMUL/AVX, about 4x RustCrypto's `aes-gcm`); AES-CTR, the key-derivation PRF and
//! HMAC-SHA1 come from RustCrypto `aes`/`ctr`/`hmac`/`sha1` (runtime-detected AES-NI and SHA-NI;
//! `ring` has no raw AES-CTR and a slower SHA-1).

use std::collections::HashMap;
use std::fmt;

use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM};
use sha1::Sha1;

/// Packets of one SSRC that may arrive out of order and still be accepted (RFC 3711 §3.3.2 asks
/// for at least 64; video bursts after a NACK storm need far more).
pub const REPLAY_WINDOW_PACKETS: u64 = 1024;

/// SSRCs a context expects per direction; more are fine, each beyond this may allocate once.
const SSRC_CAPACITY: usize = 16;

const GCM_TAG_LEN: usize = 16;
const HMAC_TAG_LEN: usize = 10;
const SRTCP_INDEX_LEN: usize = 4;
const SRTCP_E_BIT: u32 = 0x8000_0000;
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;
const RTCP_HEADER_LEN: usize = 8;

/// RFC 3711 §4.3.2 key derivation labels.
mod label {
    pub const RTP_ENCRYPTION: u8 = 0;
    pub const RTP_AUTH: u8 = 1;
    pub const RTP_SALT: u8 = 2;
    pub const RTCP_ENCRYPTION: u8 = 3;
    pub const RTCP_AUTH: u8 = 4;
    pub const RTCP_SALT: u8 = 5;
}

/// The SRTP protection profiles we negotiate in DTLS-SRTP (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpProfile {
    /// `SRTP_AEAD_AES_128_GCM`, DTLS-SRTP id 0x0007. Preferred: one pass, 16-byte tag.
    AeadAes128Gcm,
    /// `SRTP_AES128_CM_HMAC_SHA1_80`, DTLS-SRTP id 0x0001. The mandatory-to-implement fallback.
    Aes128CmHmacSha1_80,
}

impl SrtpProfile {
    /// The profile for a DTLS `use_srtp` protection profile id, if we support it.
    pub fn from_dtls_id(id: u16) -> Option<Self> {
        match id {
            0x0007 => Some(Self::AeadAes128Gcm),
            0x0001 => Some(Self::Aes128CmHmacSha1_80),
            _ => None,
        }
    }

    /// The DTLS `use_srtp` protection profile id.
    pub fn dtls_id(self) -> u16 {
        match self {
            Self::AeadAes128Gcm => 0x0007,
            Self::Aes128CmHmacSha1_80 => 0x0001,
        }
    }

    /// Master key bytes.
    pub fn master_key_len(self) -> usize {
        16
    }

    /// Master salt bytes.
    pub fn master_salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => 12,
            Self::Aes128CmHmacSha1_80 => 14,
        }
    }

    /// Bytes added to an RTP packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Self::AeadAes128Gcm => GCM_TAG_LEN,
            Self::Aes128CmHmacSha1_80 => HMAC_TAG_LEN,
        }
    }

    /// Bytes added to an RTCP packet (E flag and SRTCP index, plus the tag).
    pub fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + SRTCP_INDEX_LEN
    }
}

/// Why a packet could not be protected or unprotected. On unprotect, every error means "drop it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than its header plus trailer.
    TooShort,
    /// Not RTP/RTCP version 2.
    Malformed,
    /// The tag did not verify: forged, corrupted, or keyed for another association.
    AuthFailed,
    /// This index was already accepted.
    Replayed,
    /// Older than the replay window; it cannot be told apart from a replay.
    TooOld,
    /// The caller's fixed buffer has no room for the tag.
    BufferTooSmall,
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::TooShort => "packet too short",
            Self::Malformed => "not an RTP/RTCP version 2 packet",
            Self::AuthFailed => "authentication failed",
            Self::Replayed => "replayed packet",
            Self::TooOld => "packet older than the replay window",
            Self::BufferTooSmall => "buffer too small for the SRTP trailer",
        };
        f.write_str(text)
    }
}

impl std::error::Error for SrtpError {}

/// Bytes of keying material to export from DTLS for `profile` (RFC 5764 §4.2: 2 * (key + salt)).
pub fn keying_material_len(profile: SrtpProfile) -> usize {
    2 * (profile.master_key_len() + profile.master_salt_len())
}

/// Splits DTLS-exported keying material (RFC 5764 §4.2: client key, server key, client salt,
/// server salt) into `(local, remote)` contexts: `local` protects what we send, `remote`
/// unprotects what we receive.
///
/// # Panics
/// If `material.len() != keying_material_len(profile)`: the caller asked DTLS for the wrong
/// length, a bug in us rather than bad input.
pub fn contexts_from_keying_material(
    profile: SrtpProfile,
    material: &[u8],
    we_are_dtls_client: bool,
) -> (SrtpContext, SrtpContext) {
    assert_eq!(
        material.len(),
        keying_material_len(profile),
        "DTLS-SRTP keying material length for {profile:?}"
    );
    let key_len = profile.master_key_len();
    let salt_len = profile.master_salt_len();
    let (client_key, rest) = material.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_salt, server_salt) = rest.split_at(salt_len);
    let client = SrtpContext::new(profile, client_key, client_salt);
    let server = SrtpContext::new(profile, server_key, server_salt);
    if we_are_dtls_client {
        (client, server)
    } else {
        (server, client)
    }
}

/// One direction's crypto context for one DTLS-SRTP association; keeps per-SSRC state (ROC,
/// replay window, SRTCP index).
///
/// Per-packet calls allocate nothing, except that the first packet of an SSRC beyond the first
/// 16 may grow a map once.
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Cipher,
    rtcp: Cipher,
    /// Highest RTP index (ROC << 16 | SEQ) protected per SSRC.
    rtp_sent: HashMap<u32, u64, crate::ids::IdBuildHasher>,
    rtp_received: HashMap<u32, ReplayWindow>,
    /// Next SRTCP index to send per SSRC.
    rtcp_sent: HashMap<u32, u32>,
    rtcp_received: HashMap<u32, ReplayWindow>,
}

impl fmt::Debug for SrtpContext {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("rtp_ssrcs_sent", &self.rtp_sent.len())
            .field("rtp_ssrcs_received", &self.rtp_received.len())
            .field("rtcp_ssrcs_sent", &self.rtcp_sent.len())
            .field("rtcp_ssrcs_received", &self.rtcp_received.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// Derives the session keys (RFC 3711 §4.3, key derivation rate 0; RFC 7714 §11 for GCM)
    /// and precomputes the cipher state.
    ///
    /// # Panics
    /// If the key or salt length does not match `profile` (a bug in the caller, never input).
    pub fn new(profile: SrtpProfile, master_key: &[u8], master_salt: &[u8]) -> Self {
        assert_eq!(
            master_key.len(),
            profile.master_key_len(),
            "SRTP master key length"
        );
        assert_eq!(
            master_salt.len(),
            profile.master_salt_len(),
            "SRTP master salt length"
        );
        let prf = Aes128::new_from_slice(master_key).expect("length checked above");
        let derive = |label: u8, out: &mut [u8]| derive_session_key(&prf, master_salt, label, out);
        let (rtp, rtcp) = match profile {
            SrtpProfile::AeadAes128Gcm => {
                let gcm = |key_label, salt_label| {
                    let mut key = [0u8; 16];
                    let mut salt = [0u8; 12];
                    derive(key_label, &mut key);
                    derive(salt_label, &mut salt);
                    Cipher::gcm(&key, salt)
                };
                (
                    gcm(label::RTP_ENCRYPTION, label::RTP_SALT),
                    gcm(label::RTCP_ENCRYPTION, label::RTCP_SALT),
                )
            }
            SrtpProfile::Aes128CmHmacSha1_80 => {
                let cm = |key_label, auth_label, salt_label| {
                    let mut key = [0u8; 16];
                    let mut auth = [0u8; 20];
                    let mut salt = [0u8; 14];
                    derive(key_label, &mut key);
                    derive(auth_label, &mut auth);
                    derive(salt_label, &mut salt);
                    Cipher::cm(&key, salt, &auth)
                };
                (
                    cm(label::RTP_ENCRYPTION, label::RTP_AUTH, label::RTP_SALT),
                    cm(label::RTCP_ENCRYPTION, label::RTCP_AUTH, label::RTCP_SALT),
                )
            }
        };
        Self::with_ciphers(profile, rtp, rtcp)
    }

    fn with_ciphers(profile: SrtpProfile, rtp: Cipher, rtcp: Cipher) -> Self {
        Self {
            profile,
            rtp,
            rtcp,
            rtp_sent: HashMap::with_capacity_and_hasher(SSRC_CAPACITY, Default::default()),
            rtp_received: HashMap::with_capacity(SSRC_CAPACITY),
            rtcp_sent: HashMap::with_capacity(SSRC_CAPACITY),
            rtcp_received: HashMap::with_capacity(SSRC_CAPACITY),
        }
    }

    /// The profile this context was built for.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// `packet` holds a plain RTP packet; encrypts it in place and appends the tag
    /// ([`SrtpProfile::rtp_overhead`] bytes). Does not reallocate when
    /// `packet.capacity() >= packet.len() + rtp_overhead`. On error `packet` is unchanged.
    ///
    /// Protecting the same sequence number again (a retransmission) is allowed.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let plain_len = packet.len();
        packet.resize(plain_len + self.profile.rtp_overhead(), 0);
        match self.protect_rtp_in_place(packet, plain_len) {
            Ok(len) => {
                packet.truncate(len);
                Ok(())
            }
            Err(e) => {
                packet.truncate(plain_len);
                Err(e)
            }
        }
    }

    /// Like [`Self::protect_rtp`] for a fixed buffer: `buf[..plain_len]` holds the RTP packet;
    /// returns the protected length. [`SrtpError::BufferTooSmall`] when the tag does not fit.
    pub fn protect_rtp_in_place(
        &mut self,
        buf: &mut [u8],
        plain_len: usize,
    ) -> Result<usize, SrtpError> {
        let packet = buf.get(..plain_len).ok_or(SrtpError::BufferTooSmall)?;
        let header = RtpHeader::parse(packet)?;
        let tag_len = self.profile.rtp_overhead();
        let protected_len = plain_len + tag_len;
        if buf.len() < protected_len {
            return Err(SrtpError::BufferTooSmall);
        }
        let index = match self.rtp_sent.get(&header.ssrc) {
            // A resend from before our first packet would need ROC -1; ROC 0 is the best guess.
            Some(&highest) => estimate_index(highest, header.seq).unwrap_or(header.seq.into()),
            None => header.seq.into(),
        };
        let roc = (index >> 16) as u32;
        let (packet, trailer) = buf[..protected_len].split_at_mut(plain_len);
        let (head, payload) = packet.split_at_mut(header.len);
        match &self.rtp {
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtp_nonce(salt, header.ssrc, roc, header.seq);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(&*head), payload)
                    .map_err(|_| SrtpError::Malformed)?;
                trailer.copy_from_slice(tag.as_ref());
            }
            Cipher::Cm { aes, salt, mac } => {
                aes_ctr(aes, &cm_iv(salt, header.ssrc, index), payload);
                let mut mac = mac.clone();
                mac.update(head);
                mac.update(payload);
                mac.update(&roc.to_be_bytes());
                trailer.copy_from_slice(&mac.finalize().into_bytes()[..HMAC_TAG_LEN]);
            }
        }
        let highest = self.rtp_sent.entry(header.ssrc).or_insert(index);
        *highest = (*highest).max(index);
        Ok(protected_len)
    }

    /// Authenticates, checks replay (window of [`REPLAY_WINDOW_PACKETS`] per SSRC, RFC 3711
    /// §3.3.2, with ROC estimation §3.3.1) and decrypts in place; returns the plain length
    /// (`packet[..len]` is the RTP packet). Any error leaves the context unchanged; the bytes of
    /// `packet` are then unspecified.
    pub fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let header = RtpHeader::parse(packet)?;
        let tag_len = self.profile.rtp_overhead();
        let plain_len = packet
            .len()
            .checked_sub(tag_len)
            .filter(|&len| len >= header.len)
            .ok_or(SrtpError::TooShort)?;
        let index = match self.rtp_received.get(&header.ssrc) {
            Some(window) => {
                let index = estimate_index(window.highest, header.seq).ok_or(SrtpError::TooOld)?;
                window.check(index)?;
                index
            }
            None => header.seq.into(),
        };
        let roc = (index >> 16) as u32;
        let (head, rest) = packet.split_at_mut(header.len);
        match &self.rtp {
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtp_nonce(salt, header.ssrc, roc, header.seq);
                key.open_in_place(nonce, Aad::from(&*head), rest)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
            Cipher::Cm { aes, salt, mac } => {
                let (payload, tag) = rest.split_at_mut(plain_len - header.len);
                let mut mac = mac.clone();
                mac.update(head);
                mac.update(payload);
                mac.update(&roc.to_be_bytes());
                mac.verify_truncated_left(tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
                aes_ctr(aes, &cm_iv(salt, header.ssrc, index), payload);
            }
        }
        self.rtp_received
            .entry(header.ssrc)
            .or_insert_with(|| ReplayWindow::new(index))
            .accept(index);
        Ok(plain_len)
    }

    /// `packet` holds a plain (compound) RTCP packet; encrypts it in place and appends the
    /// E-flagged SRTCP index and the tag ([`SrtpProfile::rtcp_overhead`] bytes). The index
    /// counts per sender SSRC from 0. Same allocation contract as [`Self::protect_rtp`].
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let plain_len = packet.len();
        packet.resize(plain_len + self.profile.rtcp_overhead(), 0);
        match self.protect_rtcp_in_place(packet, plain_len) {
            Ok(len) => {
                packet.truncate(len);
                Ok(())
            }
            Err(e) => {
                packet.truncate(plain_len);
                Err(e)
            }
        }
    }

    /// Like [`Self::protect_rtcp`] for a fixed buffer: `buf[..plain_len]` holds the RTCP
    /// packet; returns the protected length.
    pub fn protect_rtcp_in_place(
        &mut self,
        buf: &mut [u8],
        plain_len: usize,
    ) -> Result<usize, SrtpError> {
        let packet = buf.get(..plain_len).ok_or(SrtpError::BufferTooSmall)?;
        let ssrc = rtcp_sender_ssrc(packet)?;
        let protected_len = plain_len + self.profile.rtcp_overhead();
        if buf.len() < protected_len {
            return Err(SrtpError::BufferTooSmall);
        }
        let index = self.rtcp_sent.get(&ssrc).copied().unwrap_or(0);
        let e_index = (SRTCP_E_BIT | index).to_be_bytes();
        let (packet, trailer) = buf[..protected_len].split_at_mut(plain_len);
        let (head, payload) = packet.split_at_mut(RTCP_HEADER_LEN);
        match &self.rtcp {
            Cipher::Gcm { key, salt } => {
                // RFC 7714 §9: the index trails the tag and is authenticated as AAD.
                let aad = gcm_rtcp_aad(head, e_index);
                let nonce = gcm_rtcp_nonce(salt, ssrc, index);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), payload)
                    .map_err(|_| SrtpError::Malformed)?;
                trailer[..GCM_TAG_LEN].copy_from_slice(tag.as_ref());
                trailer[GCM_TAG_LEN..].copy_from_slice(&e_index);
            }
            Cipher::Cm { aes, salt, mac } => {
                aes_ctr(aes, &cm_iv(salt, ssrc, index.into()), payload);
                trailer[..SRTCP_INDEX_LEN].copy_from_slice(&e_index);
                let mut mac = mac.clone();
                mac.update(head);
                mac.update(payload);
                mac.update(&e_index);
                trailer[SRTCP_INDEX_LEN..]
                    .copy_from_slice(&mac.finalize().into_bytes()[..HMAC_TAG_LEN]);
            }
        }
        // RFC 3711 §3.3.1: 2^31 SRTCP packets need a rekey; wrapping is the lesser evil.
        self.rtcp_sent
            .insert(ssrc, index.wrapping_add(1) & SRTCP_INDEX_MASK);
        Ok(protected_len)
    }

    /// Authenticates, checks the SRTCP replay window per sender SSRC and decrypts in place
    /// (unless the E flag says the sender left it in the clear); returns the plain length. Any
    /// error leaves the context unchanged.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        let plain_len = packet
            .len()
            .checked_sub(overhead)
            .filter(|&len| len >= RTCP_HEADER_LEN)
            .ok_or(SrtpError::TooShort)?;
        let ssrc = rtcp_sender_ssrc(packet)?;
        let e_index = match self.profile {
            SrtpProfile::AeadAes128Gcm => read_u32(packet, packet.len() - SRTCP_INDEX_LEN),
            SrtpProfile::Aes128CmHmacSha1_80 => read_u32(packet, plain_len),
        };
        let encrypted = e_index & SRTCP_E_BIT != 0;
        let index = e_index & SRTCP_INDEX_MASK;
        if let Some(window) = self.rtcp_received.get(&ssrc) {
            window.check(index.into())?;
        }
        let e_index = e_index.to_be_bytes();
        match &self.rtcp {
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtcp_nonce(salt, ssrc, index);
                if encrypted {
                    let (head, rest) = packet.split_at_mut(RTCP_HEADER_LEN);
                    let aad = gcm_rtcp_aad(head, e_index);
                    let ciphertext_and_tag = &mut rest[..plain_len - RTCP_HEADER_LEN + GCM_TAG_LEN];
                    key.open_in_place(nonce, Aad::from(aad), ciphertext_and_tag)
                        .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // Unencrypted SRTCP authenticates packet || E||index, which on the wire has
                    // the tag in between: move the index next to the packet to make one AAD.
                    let mut tag = [0u8; GCM_TAG_LEN];
                    tag.copy_from_slice(&packet[plain_len..plain_len + GCM_TAG_LEN]);
                    packet[plain_len..plain_len + SRTCP_INDEX_LEN].copy_from_slice(&e_index);
                    let aad = &packet[..plain_len + SRTCP_INDEX_LEN];
                    key.open_in_place_separate_tag(
                        nonce,
                        Aad::from(aad),
                        Tag::from(tag),
                        &mut [],
                        0..,
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                }
            }
            Cipher::Cm { aes, salt, mac } => {
                let (authenticated, tag) = packet.split_at_mut(plain_len + SRTCP_INDEX_LEN);
                let mut mac = mac.clone();
                mac.update(authenticated);
                mac.verify_truncated_left(tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
                if encrypted {
                    let payload = &mut authenticated[RTCP_HEADER_LEN..plain_len];
                    aes_ctr(aes, &cm_iv(salt, ssrc, index.into()), payload);
                }
            }
        }
        self.rtcp_received
            .entry(ssrc)
            .or_insert_with(|| ReplayWindow::new(index.into()))
            .accept(index.into());
        Ok(plain_len)
    }
}

/// One session's transform: its keys, expanded once.
#[allow(
    clippy::large_enum_variant,
    reason = "two per context, built once; boxing would cost a pointer chase per packet to save 300 bytes"
)]
enum Cipher {
    Gcm {
        key: LessSafeKey,
        salt: [u8; 12],
    },
    Cm {
        aes: Aes128,
        salt: [u8; 14],
        /// Keyed once; cloned per packet so the key schedule is not redone.
        mac: Hmac<Sha1>,
    },
}

impl Cipher {
    fn gcm(key: &[u8; 16], salt: [u8; 12]) -> Self {
        let key = UnboundKey::new(&AES_128_GCM, key).expect("AES-128 key is 16 bytes");
        Self::Gcm {
            key: LessSafeKey::new(key),
            salt,
        }
    }

    fn cm(key: &[u8; 16], salt: [u8; 14], auth_key: &[u8; 20]) -> Self {
        Self::Cm {
            aes: Aes128::new(key.into()),
            salt,
            mac: <Hmac<Sha1> as Mac>::new_from_slice(auth_key).expect("HMAC takes any key length"),
        }
    }
}

/// RFC 3711 §4.3.1/§4.3.3 AES-CM PRF with key derivation rate 0: the keystream of the master
/// key under IV = (label at byte 7 XOR master salt) * 2^16. A 12-byte GCM salt is first
/// multiplied by 2^16 (RFC 7714 §11 with erratum 4938), i.e. zero-padded to 14 bytes.
fn derive_session_key(prf: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    for (counter, chunk) in (0u16..).zip(out.chunks_mut(16)) {
        let mut block = iv;
        block[14..].copy_from_slice(&counter.to_be_bytes());
        let mut block = block.into();
        prf.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// AES-128 in counter mode over `data` from a 128-bit big-endian counter block `iv`.
fn aes_ctr(aes: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    type Core = ctr::CtrCore<Aes128, ctr::flavors::Ctr128BE>;
    let core = Core::inner_iv_init(aes.clone(), iv.into());
    ctr::Ctr128BE::<Aes128>::from_core(core).apply_keystream(data);
}

/// RFC 3711 §4.1.1: IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..14].copy_from_slice(&index.to_be_bytes()[2..]);
    for (byte, salt) in iv.iter_mut().zip(salt) {
        *byte ^= salt;
    }
    iv
}

/// RFC 7714 §8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt.
fn gcm_rtp_nonce(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..].copy_from_slice(&seq.to_be_bytes());
    xor_salt(&mut iv, salt);
    Nonce::assume_unique_for_key(iv)
}

/// RFC 7714 §9.1: IV = (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..].copy_from_slice(&index.to_be_bytes());
    xor_salt(&mut iv, salt);
    Nonce::assume_unique_for_key(iv)
}

/// RFC 7714 §9.1: AAD = the first 8 header bytes || E || SRTCP index.
fn gcm_rtcp_aad(head: &[u8], e_index: [u8; 4]) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..RTCP_HEADER_LEN].copy_from_slice(head);
    aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index);
    aad
}

fn xor_salt(iv: &mut [u8; 12], salt: &[u8; 12]) {
    for (byte, salt) in iv.iter_mut().zip(salt) {
        *byte ^= salt;
    }
}

/// RFC 3711 §3.3.1: the index (ROC << 16 | SEQ) closest to `highest` for a received `seq`.
/// `None` when that would need a ROC below 0.
fn estimate_index(highest: u64, seq: u16) -> Option<u64> {
    const HALF: u64 = 1 << 15;
    let roc = highest >> 16;
    let s_l = highest & 0xffff;
    let seq = u64::from(seq);
    let v = if s_l < HALF {
        if seq > s_l + HALF {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if s_l - HALF > seq {
        roc + 1
    } else {
        roc
    };
    Some(v << 16 | seq)
}

/// Received indices of one SSRC: the highest, and a bitmap of the last
/// [`REPLAY_WINDOW_PACKETS`], bit `index % 1024` (RFC 3711 §3.3.2).
#[derive(Debug, Clone)]
struct ReplayWindow {
    highest: u64,
    seen: [u64; (REPLAY_WINDOW_PACKETS / 64) as usize],
}

impl ReplayWindow {
    fn new(first: u64) -> Self {
        Self {
            highest: first,
            seen: [0; (REPLAY_WINDOW_PACKETS / 64) as usize],
        }
    }

    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        if self.highest - index >= REPLAY_WINDOW_PACKETS {
            return Err(SrtpError::TooOld);
        }
        if self.is_seen(index) {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records `index`, which passed [`Self::check`] and authenticated.
    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let advance = index - self.highest;
            if advance >= REPLAY_WINDOW_PACKETS {
                self.seen = [0; (REPLAY_WINDOW_PACKETS / 64) as usize];
            } else {
                // The slots being entered still hold indices a window ago.
                for skipped in self.highest + 1..=index {
                    self.set_seen(skipped, false);
                }
            }
            self.highest = index;
        }
        self.set_seen(index, true);
    }

    fn slot(index: u64) -> (usize, u64) {
        let bit = index % REPLAY_WINDOW_PACKETS;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn is_seen(&self, index: u64) -> bool {
        let (word, mask) = Self::slot(index);
        self.seen[word] & mask != 0
    }

    fn set_seen(&mut self, index: u64, seen: bool) {
        let (word, mask) = Self::slot(index);
        if seen {
            self.seen[word] |= mask;
        } else {
            self.seen[word] &= !mask;
        }
    }
}

/// The parts of an RTP header the transforms need (RFC 3550 §5.1, RFC 8285 extensions).
struct RtpHeader {
    /// Fixed header, CSRCs and extension: authenticated, never encrypted.
    len: usize,
    seq: u16,
    ssrc: u32,
}

impl RtpHeader {
    fn parse(packet: &[u8]) -> Result<Self, SrtpError> {
        if packet.len() < 12 {
            return Err(SrtpError::TooShort);
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let csrc_count = usize::from(packet[0] & 0x0f);
        let mut len = 12 + 4 * csrc_count;
        if packet[0] & 0x10 != 0 {
            let words = packet.get(len + 2..len + 4).ok_or(SrtpError::TooShort)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        if len > packet.len() {
            return Err(SrtpError::TooShort);
        }
        Ok(Self {
            len,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            ssrc: read_u32(packet, 8),
        })
    }
}

/// The sender SSRC of a (compound) RTCP packet: bytes 4..8 of its first packet.
fn rtcp_sender_ssrc(packet: &[u8]) -> Result<u32, SrtpError> {
    if packet.len() < RTCP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(read_u32(packet, 4))
}

/// Callers have checked `at + 4 <= data.len()`.
fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn array<const N: usize>(text: &str) -> [u8; N] {
        hex(text).try_into().unwrap()
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

        fn bytes(&mut self, out: &mut [u8]) {
            for byte in out {
                *byte = self.next() as u8;
            }
        }
    }

    const PROFILES: [SrtpProfile; 2] =
        [SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmHmacSha1_80];

    fn rtp(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
        let mut packet = Vec::with_capacity(1500);
        packet.extend_from_slice(&[0x80, 96]);
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
        packet
    }

    /// A receiver report with one report block.
    fn rtcp(ssrc: u32) -> Vec<u8> {
        let mut packet = vec![0x81, 201, 0, 7];
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend((0..24).map(|i| i as u8));
        packet
    }

    /// (sender's local, receiver's remote) built from one export, as the two DTLS roles would.
    fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
        let mut material = vec![0u8; keying_material_len(profile)];
        Rng(0x5eed_0001).bytes(&mut material);
        let (client_local, _) = contexts_from_keying_material(profile, &material, true);
        let (_, server_remote) = contexts_from_keying_material(profile, &material, false);
        (client_local, server_remote)
    }

    fn protected(sender: &mut SrtpContext, ssrc: u32, seq: u16) -> Vec<u8> {
        let mut packet = rtp(ssrc, seq, 160);
        sender.protect_rtp(&mut packet).unwrap();
        packet
    }

    fn unprotect(receiver: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = packet.to_vec();
        let len = receiver.unprotect_rtp(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    #[test]
    fn profiles_map_to_their_dtls_ids_and_sizes() {
        assert_eq!(
            SrtpProfile::from_dtls_id(0x0007),
            Some(SrtpProfile::AeadAes128Gcm)
        );
        assert_eq!(
            SrtpProfile::from_dtls_id(0x0001),
            Some(SrtpProfile::Aes128CmHmacSha1_80)
        );
        assert_eq!(SrtpProfile::from_dtls_id(0x0002), None);
        for profile in PROFILES {
            assert_eq!(SrtpProfile::from_dtls_id(profile.dtls_id()), Some(profile));
        }
        assert_eq!(keying_material_len(SrtpProfile::AeadAes128Gcm), 56);
        assert_eq!(keying_material_len(SrtpProfile::Aes128CmHmacSha1_80), 60);
        assert_eq!(SrtpProfile::AeadAes128Gcm.rtcp_overhead(), 20);
        assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.rtcp_overhead(), 14);
    }

    #[test]
    fn key_derivation_matches_rfc3711_appendix_b3() {
        let prf = Aes128::new_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139")).unwrap();
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0u8; 16];
        let mut auth = [0u8; 20];
        let mut session_salt = [0u8; 14];
        derive_session_key(&prf, &salt, label::RTP_ENCRYPTION, &mut key);
        derive_session_key(&prf, &salt, label::RTP_AUTH, &mut auth);
        derive_session_key(&prf, &salt, label::RTP_SALT, &mut session_salt);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    }

    #[test]
    fn aes_cm_keystream_matches_rfc3711_appendix_b2() {
        let cipher = || {
            Cipher::cm(
                &array("2B7E151628AED2A6ABF7158809CF4F3C"),
                array("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
                &[0; 20],
            )
        };
        let mut context =
            SrtpContext::with_ciphers(SrtpProfile::Aes128CmHmacSha1_80, cipher(), cipher());
        // SSRC 0, SEQ 0, ROC 0: a zero payload encrypts to the bare keystream.
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&[0; 48]);
        context.protect_rtp(&mut packet).unwrap();
        let keystream = hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0",
        );
        assert_eq!(packet[12..60], keystream[..]);
    }

    /// libsrtp's `srtp_driver` AES_CM_128_HMAC_SHA1_80 packet: master key in, so this covers the
    /// PRF, AES-CM and HMAC-SHA1 end to end.
    #[test]
    fn aes_cm_hmac_sha1_80_packet_matches_libsrtp_vector() {
        let key = hex("e1f97a0d3e018be0d64fa32c06de4139");
        let salt = hex("0ec675ad498afeebb6960b3aabe6");
        let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
        let expected =
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
        let mut sender = SrtpContext::new(SrtpProfile::Aes128CmHmacSha1_80, &key, &salt);
        let mut packet = plain.clone();
        sender.protect_rtp(&mut packet).unwrap();
        assert_eq!(packet, expected);

        let mut receiver = SrtpContext::new(SrtpProfile::Aes128CmHmacSha1_80, &key, &salt);
        assert_eq!(unprotect(&mut receiver, &expected), Ok(plain));
    }

    /// RFC 7714 gives session keys, not master keys: key 000102..0f, salt "Quid pro quo".
    fn rfc7714_context() -> SrtpContext {
        let cipher = || {
            Cipher::gcm(
                &array("000102030405060708090a0b0c0d0e0f"),
                array("517569642070726f2071756f"),
            )
        };
        SrtpContext::with_ciphers(SrtpProfile::AeadAes128Gcm, cipher(), cipher())
    }

    #[test]
    fn gcm_rtp_matches_rfc7714_section_16() {
        let plain = hex(
            "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120
             696e2070 61727465 73207472 6573",
        );
        let expected = hex(
            "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f
             42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
        );
        let mut packet = plain.clone();
        rfc7714_context().protect_rtp(&mut packet).unwrap();
        assert_eq!(packet, expected);
        assert_eq!(unprotect(&mut rfc7714_context(), &expected), Ok(plain));
    }

    #[test]
    fn gcm_rtcp_matches_rfc7714_section_17() {
        let plain = hex(
            "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
             deadbeef deadbeef deadbeef deadbeef deadbeef",
        );
        let expected = hex(
            "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1
             730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4",
        );
        let mut sender = rfc7714_context();
        sender.rtcp_sent.insert(0x4d61_7273, 0x5d4);
        let mut packet = plain.clone();
        sender.protect_rtcp(&mut packet).unwrap();
        assert_eq!(packet, expected);

        let mut receiver = rfc7714_context();
        let mut buf = expected.clone();
        let len = receiver.unprotect_rtcp(&mut buf).unwrap();
        assert_eq!(buf[..len], plain[..]);
    }

    #[test]
    fn unencrypted_gcm_srtcp_is_authenticated_over_packet_and_index() {
        // Build an E=0 packet by hand: tag over (packet || E||index) with no ciphertext.
        let context = rfc7714_context();
        let Cipher::Gcm { key, salt } = &context.rtcp else {
            unreachable!()
        };
        let plain = rtcp(0x0102_0304);
        let e_index = 7u32.to_be_bytes();
        let mut aad = plain.clone();
        aad.extend_from_slice(&e_index);
        let tag = key
            .seal_in_place_separate_tag(
                gcm_rtcp_nonce(salt, 0x0102_0304, 7),
                Aad::from(&aad),
                &mut [],
            )
            .unwrap();
        let mut packet = plain.clone();
        packet.extend_from_slice(tag.as_ref());
        packet.extend_from_slice(&e_index);

        let mut receiver = rfc7714_context();
        let mut buf = packet.clone();
        assert_eq!(receiver.unprotect_rtcp(&mut buf), Ok(plain.len()));
        assert_eq!(buf[..plain.len()], plain[..]);
        let mut tampered = packet.clone();
        tampered[10] ^= 1;
        assert_eq!(
            rfc7714_context().unprotect_rtcp(&mut tampered),
            Err(SrtpError::AuthFailed)
        );
    }

    #[test]
    fn contexts_from_one_export_with_opposite_roles_interoperate() {
        for profile in PROFILES {
            let mut material = vec![0u8; keying_material_len(profile)];
            Rng(42).bytes(&mut material);
            let (mut client_local, mut client_remote) =
                contexts_from_keying_material(profile, &material, true);
            let (mut server_local, mut server_remote) =
                contexts_from_keying_material(profile, &material, false);
            for (sender, receiver) in [
                (&mut client_local, &mut server_remote),
                (&mut server_local, &mut client_remote),
            ] {
                for seq in [1u16, 2, 3] {
                    let plain = rtp(0xabcd, seq, 100 + usize::from(seq));
                    let mut packet = plain.clone();
                    sender.protect_rtp(&mut packet).unwrap();
                    assert_eq!(packet.len(), plain.len() + profile.rtp_overhead());
                    assert_ne!(packet[12..plain.len()], plain[12..]);
                    assert_eq!(unprotect(receiver, &packet), Ok(plain));

                    let plain = rtcp(0xabcd);
                    let mut packet = plain.clone();
                    sender.protect_rtcp(&mut packet).unwrap();
                    assert_eq!(packet.len(), plain.len() + profile.rtcp_overhead());
                    let len = receiver.unprotect_rtcp(&mut packet).unwrap();
                    assert_eq!(packet[..len], plain[..]);
                }
            }
            // Same-role contexts hold the other side's keys: nothing verifies.
            let mut packet = rtp(1, 1, 50);
            client_local.protect_rtp(&mut packet).unwrap();
            assert_eq!(
                client_remote.unprotect_rtp(&mut packet),
                Err(SrtpError::AuthFailed)
            );
        }
    }

    #[test]
    fn rtp_header_extensions_and_csrcs_stay_in_the_clear_but_authenticated() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            // Two CSRCs and a one-byte-header extension of one word.
            let mut plain = vec![
                0x92, 96, 0, 9, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2,
            ];
            plain.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
            plain.extend_from_slice(b"payload bytes");
            let mut packet = plain.clone();
            sender.protect_rtp(&mut packet).unwrap();
            assert_eq!(packet[..28], plain[..28]);
            assert_ne!(packet[28..plain.len()], plain[28..]);
            let mut tampered = packet.clone();
            tampered[25] ^= 1;
            assert_eq!(
                unprotect(&mut receiver, &tampered),
                Err(SrtpError::AuthFailed)
            );
            assert_eq!(unprotect(&mut receiver, &packet), Ok(plain));
        }
    }

    #[test]
    fn the_same_packet_twice_is_a_replay() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            let packet = protected(&mut sender, 7, 100);
            assert!(unprotect(&mut receiver, &packet).is_ok());
            assert_eq!(unprotect(&mut receiver, &packet), Err(SrtpError::Replayed));

            let mut report = rtcp(7);
            sender.protect_rtcp(&mut report).unwrap();
            assert!(receiver.unprotect_rtcp(&mut report.clone()).is_ok());
            assert_eq!(
                receiver.unprotect_rtcp(&mut report),
                Err(SrtpError::Replayed)
            );
        }
    }

    #[test]
    fn out_of_order_within_the_window_is_accepted_and_older_is_too_old() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            let packets: Vec<Vec<u8>> = (0..=2000u16)
                .map(|seq| protected(&mut sender, 9, seq))
                .collect();
            assert!(unprotect(&mut receiver, &packets[2000]).is_ok());
            assert!(unprotect(&mut receiver, &packets[1990]).is_ok());
            assert!(unprotect(&mut receiver, &packets[2000 - 1023]).is_ok());
            assert_eq!(
                unprotect(&mut receiver, &packets[2000 - 1024]),
                Err(SrtpError::TooOld)
            );
            assert_eq!(
                unprotect(&mut receiver, &packets[5]),
                Err(SrtpError::TooOld)
            );
            assert_eq!(
                unprotect(&mut receiver, &packets[1990]),
                Err(SrtpError::Replayed)
            );
            assert!(unprotect(&mut receiver, &packets[1999]).is_ok());
        }
    }

    #[test]
    fn srtcp_out_of_order_within_the_window_is_accepted_and_older_is_too_old() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            let reports: Vec<Vec<u8>> = (0..1100)
                .map(|_| {
                    let mut report = rtcp(3);
                    sender.protect_rtcp(&mut report).unwrap();
                    report
                })
                .collect();
            assert!(receiver.unprotect_rtcp(&mut reports[1099].clone()).is_ok());
            assert!(receiver.unprotect_rtcp(&mut reports[1000].clone()).is_ok());
            assert_eq!(
                receiver.unprotect_rtcp(&mut reports[10].clone()),
                Err(SrtpError::TooOld)
            );
            assert_eq!(
                receiver.unprotect_rtcp(&mut reports[1000].clone()),
                Err(SrtpError::Replayed)
            );
        }
    }

    #[test]
    fn roc_rolls_over_from_seq_65535_to_0_on_both_sides() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            let seqs = [65530u16, 65533, 65535, 0, 2, 1, 65534, 3, 4000];
            for seq in seqs {
                let packet = protected(&mut sender, 11, seq);
                assert_eq!(
                    unprotect(&mut receiver, &packet),
                    Ok(rtp(11, seq, 160)),
                    "seq {seq}"
                );
            }
            assert_eq!(sender.rtp_sent[&11], 1 << 16 | 4000);
            assert_eq!(receiver.rtp_received[&11].highest, 1 << 16 | 4000);
            // The ROC is part of the crypto: a receiver that never saw the wrap guesses ROC 0.
            let (_, mut fresh) = pair(profile);
            let after_wrap = protected(&mut sender, 11, 4001);
            assert_eq!(
                unprotect(&mut fresh, &after_wrap),
                Err(SrtpError::AuthFailed)
            );
        }
    }

    #[test]
    fn a_tampered_byte_fails_auth_and_leaves_state_unchanged() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            let first = protected(&mut sender, 5, 10);
            let far_ahead = protected(&mut sender, 5, 3000);
            let older = protected(&mut sender, 5, 5);

            // Fails before the SSRC is known: no state is created.
            for at in [1, 12, first.len() - 1] {
                let mut tampered = first.clone();
                tampered[at] ^= 0x40;
                assert_eq!(
                    unprotect(&mut receiver, &tampered),
                    Err(SrtpError::AuthFailed),
                    "byte {at}"
                );
            }
            assert!(receiver.rtp_received.is_empty());
            assert!(unprotect(&mut receiver, &first).is_ok());

            // A forged packet far ahead must not slide the window past seq 5.
            let mut tampered = far_ahead.clone();
            tampered[20] ^= 1;
            assert_eq!(
                unprotect(&mut receiver, &tampered),
                Err(SrtpError::AuthFailed)
            );
            assert!(unprotect(&mut receiver, &older).is_ok());
            assert!(unprotect(&mut receiver, &far_ahead).is_ok());

            let mut report = rtcp(5);
            sender.protect_rtcp(&mut report).unwrap();
            let mut tampered = report.clone();
            tampered[9] ^= 1;
            assert_eq!(
                receiver.unprotect_rtcp(&mut tampered),
                Err(SrtpError::AuthFailed)
            );
            assert!(receiver.rtcp_received.is_empty());
            assert!(receiver.unprotect_rtcp(&mut report).is_ok());
        }
    }

    #[test]
    fn every_truncation_is_an_error_and_never_panics() {
        for profile in PROFILES {
            let (mut sender, mut receiver) = pair(profile);
            let packet = protected(&mut sender, 1, 1);
            let mut report = rtcp(1);
            sender.protect_rtcp(&mut report).unwrap();
            for len in 0..packet.len() {
                assert!(
                    receiver.unprotect_rtp(&mut packet[..len].to_vec()).is_err(),
                    "rtp {len}"
                );
            }
            for len in 0..report.len() {
                assert!(
                    receiver
                        .unprotect_rtcp(&mut report[..len].to_vec())
                        .is_err(),
                    "rtcp {len}"
                );
            }
            assert!(receiver.unprotect_rtp(&mut packet.clone()).is_ok());
            assert!(receiver.unprotect_rtcp(&mut report.clone()).is_ok());
        }
    }

    #[test]
    fn random_bytes_are_rejected_without_panicking() {
        let mut rng = Rng(0xdead_beef);
        for profile in PROFILES {
            let (_, mut receiver) = pair(profile);
            let mut buf = [0u8; 256];
            for _ in 0..20_000 {
                let len = (rng.next() % 257) as usize;
                rng.bytes(&mut buf[..len]);
                // Mostly valid-looking version and extension bits, to get past the first checks.
                if len > 0 && !rng.next().is_multiple_of(4) {
                    buf[0] = 0x80 | (buf[0] & 0x3f);
                }
                assert!(receiver.unprotect_rtp(&mut buf[..len]).is_err());
                rng.bytes(&mut buf[..len]);
                if len > 0 && !rng.next().is_multiple_of(4) {
                    buf[0] = 0x80 | (buf[0] & 0x3f);
                }
                assert!(receiver.unprotect_rtcp(&mut buf[..len]).is_err());
            }
        }
    }

    #[test]
    fn protect_rejects_what_is_not_rtp_and_fixed_buffers_without_room() {
        for profile in PROFILES {
            let (mut sender, _) = pair(profile);
            let mut short = vec![0x80; 11];
            assert_eq!(sender.protect_rtp(&mut short), Err(SrtpError::TooShort));
            assert_eq!(short, vec![0x80; 11]);
            let mut version_one = rtp(1, 1, 10);
            version_one[0] = 0x40;
            assert_eq!(
                sender.protect_rtp(&mut version_one),
                Err(SrtpError::Malformed)
            );
            // Extension header claims more words than the packet has.
            let mut lying = rtp(1, 1, 4);
            lying[0] |= 0x10;
            lying[14..16].copy_from_slice(&[0, 9]);
            assert_eq!(sender.protect_rtp(&mut lying), Err(SrtpError::TooShort));
            assert_eq!(
                sender.protect_rtcp(&mut vec![0x80; 7]),
                Err(SrtpError::TooShort)
            );

            let plain = rtp(1, 1, 20);
            let mut buf = [0u8; 64];
            buf[..plain.len()].copy_from_slice(&plain);
            let exact = plain.len() + profile.rtp_overhead();
            assert_eq!(
                sender.protect_rtp_in_place(&mut buf[..exact - 1], plain.len()),
                Err(SrtpError::BufferTooSmall)
            );
            assert_eq!(
                sender.protect_rtp_in_place(&mut buf[..exact], plain.len()),
                Ok(exact)
            );
            assert_eq!(
                sender.protect_rtp_in_place(&mut buf[..10], 11),
                Err(SrtpError::BufferTooSmall)
            );
        }
    }

    #[test]
    fn a_resend_of_an_old_sequence_number_reuses_its_index() {
        let (mut sender, mut receiver) = pair(SrtpProfile::AeadAes128Gcm);
        let original = protected(&mut sender, 4, 65535);
        assert!(unprotect(&mut receiver, &original).is_ok());
        assert!(unprotect(&mut receiver, &protected(&mut sender, 4, 1)).is_ok());
        // After the wrap the sender still maps 65535 to ROC 0, so a resend is byte-identical
        // (and the receiver, having had it, calls it a replay).
        let resend = protected(&mut sender, 4, 65535);
        assert_eq!(resend, original);
        assert_eq!(unprotect(&mut receiver, &resend), Err(SrtpError::Replayed));
    }

    #[test]
    fn index_estimation_follows_rfc3711_section_3_3_1() {
        assert_eq!(estimate_index(100, 101), Some(101));
        assert_eq!(estimate_index(100, 50), Some(50));
        assert_eq!(estimate_index(100, 60000), None);
        assert_eq!(estimate_index(1 << 16 | 100, 60000), Some(60000));
        assert_eq!(estimate_index(65500, 3), Some(1 << 16 | 3));
        assert_eq!(
            estimate_index(1 << 16 | 65500, 65400),
            Some(1 << 16 | 65400)
        );
        // s_l = 40000: 7232 (= s_l - 2^15) is still this ROC, 7231 is the next.
        assert_eq!(estimate_index(40000, 7232), Some(7232));
        assert_eq!(estimate_index(40000, 7231), Some(1 << 16 | 7231));
    }
}
