//! SDP for an ICE-lite answerer: browser offers in, our answers out. Text only; no ICE or DTLS state.
//!
//! The SFU answers browser offers. [`parse`] reads an offer into a [`SessionDescription`] and rejects
//! malformed text with an [`SdpError`] naming the line; [`validate_offer`] checks what the engine
//! needs (ICE credentials, a fingerprint, BUNDLE, rtcp-mux); [`select_media`] decides, per offered
//! m-line, what we accept; [`write_answer`] renders the answer. [`write_offer`] renders the one
//! offer the engine makes: a negotiated session plus m-lines it sends on. Nothing here panics on
//! any input.

mod answer;
mod offer;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

pub use answer::{
    select_media, write_answer, AnswerMedia, LocalTransport, SendStream,
    SUPPORTED_HEADER_EXTENSIONS,
};
pub use offer::write_offer;
pub use parse::parse;

/// Offers longer than this are refused before parsing. A Chromium offer with 100 video
/// transceivers is roughly 450 KiB.
pub const MAX_SDP_BYTES: usize = 1024 * 1024;

/// Fingerprint algorithms the DTLS layer can verify; [`validate_offer`] requires one of them.
pub const SUPPORTED_FINGERPRINT_ALGORITHMS: &[&str] = &["sha-256"];

/// Why an SDP was refused. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    /// No text, or only whitespace.
    Empty,
    /// Longer than [`MAX_SDP_BYTES`].
    TooLarge { bytes: usize },
    /// The last line has no line ending: the text was cut short.
    Truncated { line: usize },
    /// The line is not well-formed SDP.
    Syntax { line: usize, reason: String },
    /// The line is well formed but breaks a rule (a duplicate mid, an rtpmap for a payload type
    /// the m-line does not list, a missing a=mid, ...).
    Invalid { line: usize, reason: String },
    /// The description is valid SDP but the engine cannot answer it (no BUNDLE, no rtcp-mux, ...).
    Unsupported { mid: Option<String>, reason: String },
}

impl SdpError {
    /// The 1-based line the error is about, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            SdpError::Truncated { line }
            | SdpError::Syntax { line, .. }
            | SdpError::Invalid { line, .. } => Some(*line),
            SdpError::Empty | SdpError::TooLarge { .. } | SdpError::Unsupported { .. } => None,
        }
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::Empty => write!(f, "the SDP is empty"),
            SdpError::TooLarge { bytes } => {
                write!(
                    f,
                    "the SDP is {bytes} bytes, more than the {MAX_SDP_BYTES} allowed"
                )
            }
            SdpError::Truncated { line } => {
                write!(f, "line {line} has no line ending: the SDP was cut short")
            }
            SdpError::Syntax { line, reason } => write!(f, "line {line} is malformed: {reason}"),
            SdpError::Invalid { line, reason } => write!(f, "line {line}: {reason}"),
            SdpError::Unsupported {
                mid: Some(mid),
                reason,
            } => write!(f, "m-line with mid {mid}: {reason}"),
            SdpError::Unsupported { mid: None, reason } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for SdpError {}

/// A media direction attribute, from the point of view of whoever wrote the SDP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The same flow seen from the other side: sendonly becomes recvonly and back.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::SendRecv | Direction::Inactive => self,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// The DTLS role attribute (RFC 4145, RFC 8842).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
    HoldConn,
}

impl Setup {
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }

    /// Our role in the answer to an offer with this setup; `None` for holdconn, which cannot be
    /// answered with a connection. We take passive whenever we may: as the ICE-lite side we never
    /// send the first packet, so the full-ICE browser should start the DTLS handshake.
    pub fn answer(self) -> Option<Setup> {
        match self {
            Setup::ActPass | Setup::Active => Some(Setup::Passive),
            Setup::Passive => Some(Setup::Active),
            Setup::HoldConn => None,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Setup> {
        match name {
            "active" => Some(Setup::Active),
            "passive" => Some(Setup::Passive),
            "actpass" => Some(Setup::ActPass),
            "holdconn" => Some(Setup::HoldConn),
            _ => None,
        }
    }
}

/// The media type of an m-line; `kind_name` on [`MediaSection`] keeps the text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SdpMediaKind {
    Audio,
    Video,
    Application,
    Other,
}

impl SdpMediaKind {
    pub(crate) fn from_name(name: &str) -> SdpMediaKind {
        match name {
            "audio" => SdpMediaKind::Audio,
            "video" => SdpMediaKind::Video,
            "application" => SdpMediaKind::Application,
            _ => SdpMediaKind::Other,
        }
    }
}

/// A certificate fingerprint (RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Lowercased, e.g. `sha-256`.
    pub algorithm: String,
    /// The digest bytes.
    pub value: Vec<u8>,
}

impl fmt::Display for Fingerprint {
    /// `sha-256 AB:CD:...`, the attribute's value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.algorithm)?;
        for (i, byte) in self.value.iter().enumerate() {
            let separator = if i == 0 { " " } else { ":" };
            write!(f, "{separator}{byte:02X}")?;
        }
        Ok(())
    }
}

/// One payload type of an m-line: its rtpmap with its fmtp and rtcp-fb lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub payload_type: u8,
    /// As given; compare with [`Codec::is`], which ignores case.
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    pub fmtp: Option<String>,
    /// Each `a=rtcp-fb` value without the payload type, spaces collapsed: `nack`, `nack pli`,
    /// `ccm fir`, `transport-cc`, `goog-remb`. `a=rtcp-fb:*` lines are included.
    pub rtcp_fbs: Vec<String>,
}

impl Codec {
    /// Whether the encoding name is `name`, ignoring ASCII case (`vp8` is `VP8`).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value of one `key=value` fmtp parameter, key compared ignoring case.
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|param| {
            let (k, v) = param.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
        })
    }
}

/// An RTP header extension mapping (RFC 8285).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap {
    pub id: u8,
    pub uri: String,
    pub direction: Option<Direction>,
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcLine {
    pub ssrc: u32,
    pub attribute: String,
    pub value: Option<String>,
}

/// `a=ssrc-group:<semantics> <ssrc>...`, e.g. `FID` (media + rtx) or `SIM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    pub semantics: String,
    pub ssrcs: Vec<u32>,
}

/// `a=rid:<id> <send|recv> [<params>]` (RFC 8851).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rid {
    pub id: String,
    /// `send` or `recv`.
    pub direction: String,
    /// The `;`-separated restrictions, e.g. `pt=96,97`, `max-width=1280`.
    pub params: Vec<String>,
}

/// `a=simulcast` (RFC 8853): per direction, the layers in order, each a list of alternative rids.
/// A paused alternative keeps its `~` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Simulcast {
    pub send: Vec<Vec<String>>,
    pub recv: Vec<Vec<String>>,
}

/// One m-line of a description with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    pub kind: SdpMediaKind,
    pub kind_name: String,
    pub port: u16,
    pub protocol: String,
    /// The m-line's format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    pub mid: Option<String>,
    /// The section's own direction, else the session's, else sendrecv.
    pub direction: Direction,
    /// In m-line order (the offerer's preference). Static payload types without an rtpmap get
    /// their RFC 3551 mapping when we know it (PCMU, PCMA, G722).
    pub codecs: Vec<Codec>,
    /// Session-level extmaps are included (RFC 8285 §5: they apply to every m-line).
    pub extmaps: Vec<Extmap>,
    pub ssrcs: Vec<SsrcLine>,
    pub ssrc_groups: Vec<SsrcGroup>,
    /// `a=msid:<stream id> <track id>`; the track id is empty when the line has none.
    pub msid: Option<(String, String)>,
    pub rids: Vec<Rid>,
    pub simulcast: Option<Simulcast>,
    pub rtcp_mux: bool,
    pub rtcp_rsize: bool,
    /// `a=bundle-only` (RFC 8843): with port 0 it means "accept me inside the BUNDLE", not
    /// "rejected".
    pub bundle_only: bool,
    /// These four are effective values: the section's own, else the session-level one.
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    pub setup: Option<Setup>,
}

impl MediaSection {
    /// The rtx payload type for a codec payload type (`a=fmtp:<rtx> apt=<pt>`).
    pub fn rtx_for(&self, pt: u8) -> Option<u8> {
        self.codecs
            .iter()
            .find(|c| c.is("rtx") && c.fmtp_param("apt").and_then(parse::digits::<u8>) == Some(pt))
            .map(|c| c.payload_type)
    }

    pub fn codec(&self, pt: u8) -> Option<&Codec> {
        self.codecs.iter().find(|c| c.payload_type == pt)
    }

    /// Whether the offerer wants this m-line negotiated: a non-zero port, or port 0 with
    /// `a=bundle-only`. Port 0 alone means the offerer rejected or stopped it.
    pub fn is_enabled(&self) -> bool {
        self.port != 0 || self.bundle_only
    }

    /// Whether the transport carries RTP (as opposed to SCTP data channels).
    pub fn is_rtp(&self) -> bool {
        self.protocol.contains("RTP/")
    }

    /// Whether we can answer it at all: an enabled, not inactive audio or video m-line with a mid.
    pub fn is_answerable(&self) -> bool {
        matches!(self.kind, SdpMediaKind::Audio | SdpMediaKind::Video)
            && self.is_enabled()
            && self.direction != Direction::Inactive
            && self.mid.is_some()
            && answer::is_supported_protocol(&self.protocol)
    }

    /// The value of the first `a=ssrc:<ssrc> <attribute>:<value>` line for `ssrc`.
    pub fn ssrc_attribute(&self, ssrc: u32, attribute: &str) -> Option<&str> {
        self.ssrcs
            .iter()
            .find(|line| line.ssrc == ssrc && line.attribute == attribute)
            .and_then(|line| line.value.as_deref())
    }
}

/// A parsed offer (or answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The o= line's sess-id, as text (it may exceed 64 bits in the wild).
    pub origin_session_id: String,
    /// Session-level values only; each [`MediaSection`] has the effective ones.
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub ice_lite: bool,
    /// `a=extmap-allow-mixed` (RFC 8285 §6): one- and two-byte header extensions may mix, so
    /// an extension element may be longer than 16 bytes (a Dependency Descriptor with its
    /// structure is).
    pub extmap_allow_mixed: bool,
    pub fingerprint: Option<Fingerprint>,
    pub setup: Option<Setup>,
    /// The mids of the `a=group:BUNDLE` line, in order; the first is the tagged m-line.
    pub bundle: Vec<String>,
    pub media: Vec<MediaSection>,
}

impl SessionDescription {
    pub fn media_by_mid(&self, mid: &str) -> Option<&MediaSection> {
        self.media.iter().find(|m| m.mid.as_deref() == Some(mid))
    }

    /// The section whose transport the BUNDLE group uses (RFC 8843 "tagged" m-line).
    fn bundle_tag(&self) -> Option<&MediaSection> {
        self.media_by_mid(self.bundle.first()?)
    }

    /// The first of: the BUNDLE-tagged section's value, the session-level value, the first
    /// section's value (so an offer without BUNDLE still reports what it has).
    fn effective<'a, T>(
        &'a self,
        pick: impl Fn(&'a MediaSection) -> Option<T>,
        session: Option<T>,
    ) -> Option<T> {
        self.bundle_tag()
            .and_then(&pick)
            .or(session)
            .or_else(|| self.media.iter().find_map(&pick))
    }

    /// ICE credentials: those of the first bundled section, else the session-level pair, else
    /// the first section's.
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        self.effective(
            |section| Some((section.ice_ufrag.as_deref()?, section.ice_pwd.as_deref()?)),
            self.ice_ufrag.as_deref().zip(self.ice_pwd.as_deref()),
        )
    }

    /// The fingerprint of the first bundled section, else the session-level one, else the first
    /// section's.
    pub fn effective_fingerprint(&self) -> Option<&Fingerprint> {
        self.effective(
            |section| section.fingerprint.as_ref(),
            self.fingerprint.as_ref(),
        )
    }

    /// The setup of the first bundled section, else the session-level one, else the first
    /// section's.
    pub fn effective_setup(&self) -> Option<Setup> {
        self.effective(|section| section.setup, self.setup)
    }
}

/// Checks that a parsed offer is one the engine can answer: ICE credentials (RFC 8839 lengths),
/// a fingerprint with a supported algorithm, a setup we can complement, one BUNDLE group holding
/// every answerable m-line, and rtcp-mux on each of them.
pub fn validate_offer(offer: &SessionDescription) -> Result<(), SdpError> {
    let unsupported = |mid: Option<&str>, reason: String| SdpError::Unsupported {
        mid: mid.map(str::to_owned),
        reason,
    };
    let Some((ufrag, pwd)) = offer.ice_credentials() else {
        return Err(unsupported(
            None,
            "the offer has no a=ice-ufrag and a=ice-pwd".into(),
        ));
    };
    // RFC 8839 §5.4: ufrag 4..=256 and pwd 22..=256 ice-chars; browsers check the same.
    if !(4..=256).contains(&ufrag.len()) {
        return Err(unsupported(
            None,
            format!("a=ice-ufrag has {} characters, not 4 to 256", ufrag.len()),
        ));
    }
    if !(22..=256).contains(&pwd.len()) {
        return Err(unsupported(
            None,
            format!("a=ice-pwd has {} characters, not 22 to 256", pwd.len()),
        ));
    }
    let Some(fingerprint) = offer.effective_fingerprint() else {
        return Err(unsupported(None, "the offer has no a=fingerprint".into()));
    };
    if !SUPPORTED_FINGERPRINT_ALGORITHMS.contains(&fingerprint.algorithm.as_str()) {
        return Err(unsupported(
            None,
            format!(
                "fingerprint algorithm {} is not supported (use sha-256)",
                fingerprint.algorithm
            ),
        ));
    }
    if offer.effective_setup() == Some(Setup::HoldConn) {
        return Err(unsupported(
            None,
            "a=setup:holdconn cannot be answered with a connection".into(),
        ));
    }
    for section in offer.media.iter().filter(|m| m.is_answerable()) {
        let mid = section.mid.as_deref();
        if !offer.bundle.iter().any(|b| Some(b.as_str()) == mid) {
            return Err(unsupported(
                mid,
                "not in the a=group:BUNDLE group; we only bundle".into(),
            ));
        }
        if !section.rtcp_mux {
            return Err(unsupported(
                mid,
                "no a=rtcp-mux; RTCP must share the RTP port".into(),
            ));
        }
        if section.setup == Some(Setup::HoldConn) {
            return Err(unsupported(
                mid,
                "a=setup:holdconn cannot be answered with a connection".into(),
            ));
        }
    }
    Ok(())
}

/// Fuzz entry point: parses `data` as lossy UTF-8 and, when it parses, selects media and writes
/// an answer. Panics only if our own answer does not parse, which would be a bug in the writer.
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(offer) = parse(&text) else {
        return;
    };
    let _ = validate_offer(&offer);
    let media: Vec<AnswerMedia> = offer
        .media
        .iter()
        .zip(1u32..)
        .map(|(section, n)| {
            let mut answer = select_media(section);
            if answer.accepted && answer.direction == Direction::SendOnly {
                answer.send = Some(SendStream {
                    ssrc: n,
                    rtx_ssrc: Some(n + 0x1000),
                    cname: "fuzz".into(),
                    stream_id: "stream".into(),
                    track_id: format!("track-{n}"),
                });
            }
            answer
        })
        .collect();
    let local = LocalTransport {
        ice_ufrag: "fuzz".into(),
        ice_pwd: "fuzzfuzzfuzzfuzzfuzzfuzz".into(),
        fingerprint_sha256: "AB:".repeat(31) + "AB",
        candidate: std::net::SocketAddr::from(([127, 0, 0, 1], 5000)),
        setup: offer
            .effective_setup()
            .and_then(Setup::answer)
            .unwrap_or(Setup::Passive),
    };
    let answer = write_answer(&offer, &local, &media, 1);
    if let Err(e) = parse(&answer) {
        panic!("our answer does not parse ({e}):\n{answer}");
    }
}
