//! SDP text parser (RFC 8866 and the attributes WebRTC uses). Syntax and per-line rules; no answer policy.

use super::{
    Codec, Direction, Extmap, Fingerprint, MediaSection, Rid, SdpError, SdpMediaKind,
    SessionDescription, Setup, Simulcast, SsrcGroup, SsrcLine, MAX_SDP_BYTES,
};
use std::collections::HashSet;
use std::str::FromStr;

/// More m-lines than this is an attack, not a meeting.
const MAX_MEDIA_SECTIONS: usize = 1024;
/// Browsers send five or six; `a=rtcp-fb:*` lines count for every payload type, so this bounds
/// how much one short line can make us allocate.
const MAX_RTCP_FB_PER_CODEC: usize = 32;
/// Far more than any browser sends; bounds the a=rid and a=simulcast work per m-line.
const MAX_RIDS: usize = 32;
/// Payload types from here up have no static meaning and need an rtpmap (RFC 3551 assigns 0..=34;
/// Chromium uses 35..=63 as dynamic once 96..=127 are used up).
const FIRST_DYNAMIC_PT: u8 = 35;

/// Parses an SDP offer (or answer). Lines end in `\r\n` or `\n`, the last one included; unknown
/// line types and attributes are ignored. See [`SdpError`] for what is refused.
pub fn parse(sdp: &str) -> Result<SessionDescription, SdpError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge { bytes: sdp.len() });
    }
    if sdp.trim().is_empty() {
        return Err(SdpError::Empty);
    }
    let mut parser = Parser::default();
    let mut rest = sdp;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        // RFC 8866's grammar ends every line, the last included, with a line ending; without
        // one the text was cut short (SDP has no length field to tell us otherwise).
        let Some(end) = rest.find('\n') else {
            return Err(SdpError::Truncated { line: number });
        };
        let (raw, tail) = rest.split_at(end);
        rest = tail.get(1..).unwrap_or("");
        parser.line(number, raw.strip_suffix('\r').unwrap_or(raw))?;
    }
    parser.finish(number)
}

/// Parses a run of ASCII digits; `None` for anything else, including a sign or overflow.
pub(super) fn digits<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// RFC 8866 token: visible ASCII except the separators `"(),/:;<=>?@[\]`.
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            matches!(b, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.')
                || b.is_ascii_alphanumeric()
                || (b'^'..=b'~').contains(&b)
        })
}

/// RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/".
fn is_ice_chars(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// RFC 8851 rid-id: alpha-numeric, `-` and `_`.
fn is_rid_id(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn syntax(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        reason: reason.into(),
    }
}

fn invalid(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Invalid {
        line,
        reason: reason.into(),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, line: usize, what: &str) -> Result<(), SdpError> {
    if slot.is_some() {
        return Err(invalid(line, format!("{what} appears twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// The value of an attribute that must have one, leading spaces dropped.
fn required<'a>(line: usize, name: &str, value: Option<&'a str>) -> Result<&'a str, SdpError> {
    match value.map(str::trim_start) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(syntax(line, format!("a={name} needs a value"))),
    }
}

/// The mapping RFC 3551 gives the static payload types browsers still offer.
fn static_codec(pt: u8) -> Option<Codec> {
    let name = match pt {
        0 => "PCMU",
        8 => "PCMA",
        9 => "G722",
        13 => "CN",
        _ => return None,
    };
    Some(Codec {
        payload_type: pt,
        name: name.into(),
        clock_rate: 8000,
        channels: None,
        fmtp: None,
        rtcp_fbs: Vec::new(),
    })
}

#[derive(Default)]
struct Parser {
    origin_session_id: Option<String>,
    has_name: bool,
    session_checked: bool,
    ice_ufrag: Option<String>,
    ice_pwd: Option<String>,
    ice_lite: bool,
    extmap_allow_mixed: bool,
    fingerprint: Option<Fingerprint>,
    setup: Option<Setup>,
    direction: Option<Direction>,
    bundle: Option<(usize, Vec<String>)>,
    extmaps: Vec<Extmap>,
    current: Option<Section>,
    media: Vec<MediaSection>,
    mids: HashSet<String>,
}

impl Parser {
    fn line(&mut self, number: usize, line: &str) -> Result<(), SdpError> {
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(syntax(
                number,
                format!("control character {c:?}; lines end in \\r\\n or \\n"),
            ));
        }
        let (kind, value) = match line.as_bytes() {
            [kind, b'=', ..] if kind.is_ascii_lowercase() => (*kind, line.get(2..).unwrap_or("")),
            _ => return Err(syntax(number, "expected <letter>=<value>")),
        };
        let value = value.trim_end_matches([' ', '\t']);
        if number == 1 {
            return match (kind, value) {
                (b'v', "0") => Ok(()),
                (b'v', _) => Err(invalid(number, format!("SDP version {value:?} is not 0"))),
                _ => Err(syntax(number, "the first line must be v=0")),
            };
        }
        let in_media = self.current.is_some();
        match kind {
            b'v' => Err(invalid(number, "v= appears twice")),
            b'm' => self.media_line(number, value),
            b'o' | b's' | b't' | b'r' | b'z' | b'u' | b'e' | b'p' if in_media => Err(invalid(
                number,
                format!(
                    "{}= belongs to the session part, not to a media section",
                    char::from(kind)
                ),
            )),
            b'o' => self.origin(number, value),
            b's' => {
                self.has_name = true;
                Ok(())
            }
            b'a' if in_media => self.media_attribute(number, value),
            b'a' => self.session_attribute(number, value),
            // i=, c=, b=, k=, t= and unknown types carry nothing an ICE-lite answerer uses.
            _ => Ok(()),
        }
    }

    fn origin(&mut self, number: usize, value: &str) -> Result<(), SdpError> {
        let fields: Vec<&str> = value.split_ascii_whitespace().collect();
        let [_username, session_id, _version, _net, _addr_type, _address] = fields.as_slice()
        else {
            return Err(syntax(
                number,
                "o= needs 6 fields: <username> <sess-id> <sess-version> IN <IP4|IP6> <address>",
            ));
        };
        set_once(
            &mut self.origin_session_id,
            (*session_id).to_owned(),
            number,
            "o=",
        )
    }

    /// The session part ends at the first m-line (or the end): check it is complete.
    fn check_session(&mut self, number: usize) -> Result<(), SdpError> {
        if self.session_checked {
            return Ok(());
        }
        self.session_checked = true;
        if self.origin_session_id.is_none() {
            return Err(invalid(number, "the session part has no o= line"));
        }
        if !self.has_name {
            return Err(invalid(number, "the session part has no s= line"));
        }
        Ok(())
    }

    fn session_attribute(&mut self, number: usize, value: &str) -> Result<(), SdpError> {
        let (name, arg) = split_attribute(value);
        match name {
            "group" => self.group(number, required(number, name, arg)?),
            "ice-ufrag" => set_once(
                &mut self.ice_ufrag,
                ice_value(number, name, arg)?,
                number,
                "a=ice-ufrag",
            ),
            "ice-pwd" => set_once(
                &mut self.ice_pwd,
                ice_value(number, name, arg)?,
                number,
                "a=ice-pwd",
            ),
            "ice-lite" => {
                self.ice_lite = true;
                Ok(())
            }
            "extmap-allow-mixed" => {
                self.extmap_allow_mixed = true;
                Ok(())
            }
            "fingerprint" => {
                add_fingerprint(&mut self.fingerprint, number, required(number, name, arg)?)
            }
            "setup" => set_once(&mut self.setup, setup(number, arg)?, number, "a=setup"),
            "extmap" => {
                let extmap = extmap(number, required(number, name, arg)?)?;
                if self.extmaps.iter().any(|e| e.id == extmap.id) {
                    return Err(invalid(
                        number,
                        format!("extmap id {} is used twice", extmap.id),
                    ));
                }
                self.extmaps.push(extmap);
                Ok(())
            }
            _ => match Direction::from_name(name) {
                Some(direction) => set_once(
                    &mut self.direction,
                    direction,
                    number,
                    "a direction attribute",
                ),
                None => Ok(()),
            },
        }
    }

    fn group(&mut self, number: usize, arg: &str) -> Result<(), SdpError> {
        let mut fields = arg.split_ascii_whitespace();
        // Other semantics (LS, FID) do not change what we answer.
        if fields.next() != Some("BUNDLE") {
            return Ok(());
        }
        if self.bundle.is_some() {
            return Err(invalid(number, "only one a=group:BUNDLE is supported"));
        }
        let mut mids: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for mid in fields {
            if mids.len() == MAX_MEDIA_SECTIONS {
                return Err(invalid(
                    number,
                    format!("a=group:BUNDLE lists more than {MAX_MEDIA_SECTIONS} mids"),
                ));
            }
            if !is_token(mid) {
                return Err(syntax(number, format!("{mid:?} is not a valid mid")));
            }
            if !seen.insert(mid) {
                return Err(invalid(
                    number,
                    format!("a=group:BUNDLE lists mid {mid} twice"),
                ));
            }
            mids.push(mid.to_owned());
        }
        self.bundle = Some((number, mids));
        Ok(())
    }

    fn media_line(&mut self, number: usize, value: &str) -> Result<(), SdpError> {
        self.check_session(number)?;
        self.close_section()?;
        if self.media.len() >= MAX_MEDIA_SECTIONS {
            return Err(invalid(
                number,
                format!("more than {MAX_MEDIA_SECTIONS} m-lines"),
            ));
        }
        let mut fields = value.split_ascii_whitespace();
        let (Some(kind_name), Some(port), Some(protocol)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(syntax(number, "m= needs <media> <port> <proto> <fmt>..."));
        };
        if !is_token(kind_name) {
            return Err(syntax(number, format!("{kind_name:?} is not a media type")));
        }
        // RFC 8866 §5.14: <port>/<number of ports> is allowed; the count means nothing to us.
        let port_text = port.split_once('/').map_or(port, |(p, _)| p);
        let Some(port) = digits::<u16>(port_text) else {
            return Err(syntax(number, format!("{port:?} is not a port")));
        };
        if !protocol.split('/').all(is_token) {
            return Err(syntax(
                number,
                format!("{protocol:?} is not a transport protocol"),
            ));
        }
        let mut section = Section::new(number, kind_name, port, protocol);
        for format in fields {
            if section.is_rtp {
                let Some(pt) = digits::<u32>(format) else {
                    return Err(syntax(
                        number,
                        format!("{format:?} is not a payload type number"),
                    ));
                };
                let Some(pt) = u8::try_from(pt).ok().filter(|pt| *pt <= 127) else {
                    return Err(invalid(
                        number,
                        format!("payload type {pt} is outside 0..=127"),
                    ));
                };
                if section.listed(pt) {
                    return Err(invalid(
                        number,
                        format!("payload type {pt} is listed twice"),
                    ));
                }
                section.pt_listed[usize::from(pt)] = true;
            } else if !is_token(format) {
                return Err(syntax(number, format!("{format:?} is not a media format")));
            }
            section.media.formats.push(format.to_owned());
        }
        if section.media.formats.is_empty() {
            return Err(syntax(number, "m= lists no formats"));
        }
        self.current = Some(section);
        Ok(())
    }

    fn media_attribute(&mut self, number: usize, value: &str) -> Result<(), SdpError> {
        let Some(section) = self.current.as_mut() else {
            return Ok(());
        };
        let (name, arg) = split_attribute(value);
        let media = &mut section.media;
        match name {
            "mid" => {
                let mid = required(number, name, arg)?;
                if !is_token(mid) {
                    return Err(syntax(number, format!("{mid:?} is not a valid mid")));
                }
                if self.mids.contains(mid) {
                    return Err(invalid(
                        number,
                        format!("mid {mid} is used by an earlier m-line"),
                    ));
                }
                set_once(&mut media.mid, mid.to_owned(), number, "a=mid")
            }
            "rtpmap" if section.is_rtp => section.rtpmap(number, required(number, name, arg)?),
            "fmtp" if section.is_rtp => section.fmtp(number, required(number, name, arg)?),
            "rtcp-fb" if section.is_rtp => section.rtcp_fb(number, required(number, name, arg)?),
            "extmap" => {
                let extmap = extmap(number, required(number, name, arg)?)?;
                if media.extmaps.iter().any(|e| e.id == extmap.id) {
                    return Err(invalid(
                        number,
                        format!("extmap id {} is used twice", extmap.id),
                    ));
                }
                media.extmaps.push(extmap);
                Ok(())
            }
            "ssrc" => {
                media
                    .ssrcs
                    .push(ssrc_line(number, required(number, name, arg)?)?);
                Ok(())
            }
            "ssrc-group" => {
                media
                    .ssrc_groups
                    .push(ssrc_group(number, required(number, name, arg)?)?);
                Ok(())
            }
            "msid" => {
                let msid = msid(number, required(number, name, arg)?)?;
                // A track in several streams repeats a=msid; the first stream is enough for us.
                if media.msid.is_none() {
                    media.msid = Some(msid);
                }
                Ok(())
            }
            "rid" => {
                let rid = rid(number, required(number, name, arg)?)?;
                if media.rids.len() == MAX_RIDS {
                    return Err(invalid(
                        number,
                        format!("more than {MAX_RIDS} a=rid lines in one m-line"),
                    ));
                }
                if media.rids.iter().any(|r| r.id == rid.id) {
                    return Err(invalid(number, format!("rid {} is declared twice", rid.id)));
                }
                media.rids.push(rid);
                Ok(())
            }
            "simulcast" => {
                let simulcast = simulcast(number, required(number, name, arg)?)?;
                set_once(&mut media.simulcast, simulcast, number, "a=simulcast")
            }
            "rtcp-mux" => {
                media.rtcp_mux = true;
                Ok(())
            }
            "rtcp-rsize" => {
                media.rtcp_rsize = true;
                Ok(())
            }
            "bundle-only" => {
                media.bundle_only = true;
                Ok(())
            }
            "ice-ufrag" => set_once(
                &mut media.ice_ufrag,
                ice_value(number, name, arg)?,
                number,
                "a=ice-ufrag",
            ),
            "ice-pwd" => set_once(
                &mut media.ice_pwd,
                ice_value(number, name, arg)?,
                number,
                "a=ice-pwd",
            ),
            "fingerprint" => {
                add_fingerprint(&mut media.fingerprint, number, required(number, name, arg)?)
            }
            "setup" => set_once(&mut media.setup, setup(number, arg)?, number, "a=setup"),
            _ => match Direction::from_name(name) {
                Some(direction) => set_once(
                    &mut section.direction,
                    direction,
                    number,
                    "a direction attribute",
                ),
                None => Ok(()),
            },
        }
    }

    /// Ends the current media section: joins codecs, checks it and applies session fallbacks.
    fn close_section(&mut self) -> Result<(), SdpError> {
        let Some(section) = self.current.take() else {
            return Ok(());
        };
        let line = section.line;
        let mut media = section.build()?;
        let is_av = matches!(media.kind, SdpMediaKind::Audio | SdpMediaKind::Video);
        if is_av && media.is_enabled() && media.mid.is_none() {
            return Err(invalid(
                line,
                "this m-line has no a=mid (Unified Plan requires one)",
            ));
        }
        media.direction = section
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv);
        if media.ice_ufrag.is_none() {
            media.ice_ufrag.clone_from(&self.ice_ufrag);
        }
        if media.ice_pwd.is_none() {
            media.ice_pwd.clone_from(&self.ice_pwd);
        }
        if media.fingerprint.is_none() {
            media.fingerprint.clone_from(&self.fingerprint);
        }
        media.setup = media.setup.or(self.setup);
        if media.is_rtp() {
            for extmap in &self.extmaps {
                if !media.extmaps.iter().any(|e| e.id == extmap.id) {
                    media.extmaps.push(extmap.clone());
                }
            }
        }
        if let Some(mid) = &media.mid {
            self.mids.insert(mid.clone());
        }
        self.media.push(media);
        Ok(())
    }

    fn finish(mut self, last_line: usize) -> Result<SessionDescription, SdpError> {
        self.check_session(last_line)?;
        self.close_section()?;
        let (bundle_line, bundle) = self.bundle.take().unwrap_or_default();
        if let Some(mid) = bundle.iter().find(|mid| !self.mids.contains(mid.as_str())) {
            return Err(invalid(
                bundle_line,
                format!("a=group:BUNDLE names mid {mid}, which no m-line has"),
            ));
        }
        Ok(SessionDescription {
            origin_session_id: self.origin_session_id.unwrap_or_default(),
            ice_ufrag: self.ice_ufrag,
            ice_pwd: self.ice_pwd,
            ice_lite: self.ice_lite,
            extmap_allow_mixed: self.extmap_allow_mixed,
            fingerprint: self.fingerprint,
            setup: self.setup,
            bundle,
            media: self.media,
        })
    }
}

/// One m-line being read. Codec lines may come in any order (Firefox writes fmtp before
/// rtpmap), so they are kept per payload type and joined when the section ends.
struct Section {
    line: usize,
    is_rtp: bool,
    media: MediaSection,
    direction: Option<Direction>,
    pt_listed: [bool; 128],
    rtpmaps: Vec<Option<Codec>>,
    fmtps: Vec<Option<String>>,
    feedback: Vec<(Option<u8>, String)>,
    feedback_per_pt: [usize; 128],
    feedback_all: usize,
}

impl Section {
    fn new(line: usize, kind_name: &str, port: u16, protocol: &str) -> Section {
        let is_rtp = protocol.contains("RTP/");
        let table = if is_rtp { 128 } else { 0 };
        Section {
            line,
            is_rtp,
            media: MediaSection {
                kind: SdpMediaKind::from_name(kind_name),
                kind_name: kind_name.to_owned(),
                port,
                protocol: protocol.to_owned(),
                formats: Vec::new(),
                mid: None,
                direction: Direction::SendRecv,
                codecs: Vec::new(),
                extmaps: Vec::new(),
                ssrcs: Vec::new(),
                ssrc_groups: Vec::new(),
                msid: None,
                rids: Vec::new(),
                simulcast: None,
                rtcp_mux: false,
                rtcp_rsize: false,
                bundle_only: false,
                ice_ufrag: None,
                ice_pwd: None,
                fingerprint: None,
                setup: None,
            },
            direction: None,
            pt_listed: [false; 128],
            rtpmaps: vec![None; table],
            fmtps: vec![None; table],
            feedback: Vec::new(),
            feedback_per_pt: [0; 128],
            feedback_all: 0,
        }
    }

    fn listed(&self, pt: u8) -> bool {
        self.pt_listed
            .get(usize::from(pt))
            .copied()
            .unwrap_or(false)
    }

    /// The payload type at the start of an rtpmap/fmtp/rtcp-fb value; `None` for `*`.
    fn payload_type<'a>(
        &self,
        number: usize,
        arg: &'a str,
        star: bool,
    ) -> Result<(Option<u8>, &'a str), SdpError> {
        let (pt, rest) = split_field(arg);
        if star && pt == "*" {
            return Ok((None, rest.trim()));
        }
        match digits::<u8>(pt).filter(|pt| *pt <= 127) {
            Some(pt) => Ok((Some(pt), rest.trim())),
            None => Err(syntax(
                number,
                format!("{pt:?} is not a payload type in 0..=127"),
            )),
        }
    }

    fn rtpmap(&mut self, number: usize, arg: &str) -> Result<(), SdpError> {
        let (Some(pt), encoding) = self.payload_type(number, arg, false)? else {
            return Err(syntax(number, "a=rtpmap needs a payload type"));
        };
        if !self.listed(pt) {
            return Err(invalid(
                number,
                format!("a=rtpmap for payload type {pt}, which the m-line does not list"),
            ));
        }
        let mut parts = encoding.split('/');
        let (Some(name), Some(clock), channels, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(syntax(
                number,
                "a=rtpmap needs <pt> <name>/<clock rate>[/<channels>]",
            ));
        };
        if !is_token(name) {
            return Err(syntax(number, format!("{name:?} is not an encoding name")));
        }
        let Some(clock_rate) = digits::<u32>(clock).filter(|rate| *rate > 0) else {
            return Err(syntax(number, format!("{clock:?} is not a clock rate")));
        };
        let channels = match channels {
            None => None,
            Some(text) => match digits::<u8>(text).filter(|n| *n > 0) {
                Some(n) => Some(n),
                None => return Err(syntax(number, format!("{text:?} is not a channel count"))),
            },
        };
        let codec = Codec {
            payload_type: pt,
            name: name.to_owned(),
            clock_rate,
            channels,
            fmtp: None,
            rtcp_fbs: Vec::new(),
        };
        match self.rtpmaps.get_mut(usize::from(pt)) {
            Some(slot @ None) => {
                *slot = Some(codec);
                Ok(())
            }
            _ => Err(invalid(
                number,
                format!("payload type {pt} has two a=rtpmap lines"),
            )),
        }
    }

    fn fmtp(&mut self, number: usize, arg: &str) -> Result<(), SdpError> {
        let (Some(pt), params) = self.payload_type(number, arg, false)? else {
            return Err(syntax(number, "a=fmtp needs a payload type"));
        };
        if !self.listed(pt) || params.is_empty() {
            return Ok(());
        }
        match self.fmtps.get_mut(usize::from(pt)) {
            Some(slot @ None) => {
                *slot = Some(params.to_owned());
                Ok(())
            }
            _ => Err(invalid(
                number,
                format!("payload type {pt} has two a=fmtp lines"),
            )),
        }
    }

    fn rtcp_fb(&mut self, number: usize, arg: &str) -> Result<(), SdpError> {
        let (pt, feedback) = self.payload_type(number, arg, true)?;
        let feedback = feedback
            .split_ascii_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if feedback.is_empty() {
            return Err(syntax(number, "a=rtcp-fb needs a feedback type"));
        }
        let count = match pt {
            Some(pt) if !self.listed(pt) => return Ok(()),
            Some(pt) => {
                let count = &mut self.feedback_per_pt[usize::from(pt)];
                *count += 1;
                *count + self.feedback_all
            }
            None => {
                self.feedback_all += 1;
                self.feedback_all + self.feedback_per_pt.iter().max().copied().unwrap_or(0)
            }
        };
        if count > MAX_RTCP_FB_PER_CODEC {
            return Err(invalid(
                number,
                format!("more than {MAX_RTCP_FB_PER_CODEC} a=rtcp-fb lines for one payload type"),
            ));
        }
        self.feedback.push((pt, feedback));
        Ok(())
    }

    /// Joins the codec lines in m-line order.
    fn build(&self) -> Result<MediaSection, SdpError> {
        let mut media = self.media.clone();
        if !self.is_rtp {
            return Ok(media);
        }
        for format in &media.formats {
            let Some(pt) = digits::<u8>(format) else {
                continue;
            };
            let index = usize::from(pt);
            let mapped = self.rtpmaps.get(index).cloned().flatten();
            let Some(mut codec) = mapped.or_else(|| static_codec(pt)) else {
                // A rejected m-line may list formats it never describes.
                if pt >= FIRST_DYNAMIC_PT && media.is_enabled() {
                    return Err(invalid(
                        self.line,
                        format!("payload type {pt} has no a=rtpmap"),
                    ));
                }
                continue;
            };
            codec.fmtp = self.fmtps.get(index).cloned().flatten();
            codec.rtcp_fbs = self
                .feedback
                .iter()
                .filter(|(target, _)| target.is_none_or(|target| target == pt))
                .map(|(_, feedback)| feedback.clone())
                .collect();
            media.codecs.push(codec);
        }
        Ok(media)
    }
}

/// The first whitespace-separated field and the rest, both trimmed.
fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once([' ', '\t']) {
        Some((field, rest)) => (field, rest.trim_start()),
        None => (text, ""),
    }
}

/// `name[:value]`.
fn split_attribute(value: &str) -> (&str, Option<&str>) {
    match value.split_once(':') {
        Some((name, arg)) => (name, Some(arg)),
        None => (value, None),
    }
}

fn ice_value(number: usize, name: &str, arg: Option<&str>) -> Result<String, SdpError> {
    let value = required(number, name, arg)?;
    if !is_ice_chars(value) {
        return Err(syntax(
            number,
            format!("a={name} may only hold letters, digits, + and /"),
        ));
    }
    Ok(value.to_owned())
}

fn setup(number: usize, arg: Option<&str>) -> Result<Setup, SdpError> {
    let value = required(number, "setup", arg)?;
    Setup::from_name(value).ok_or_else(|| {
        syntax(
            number,
            format!("{value:?} is not active, passive, actpass or holdconn"),
        )
    })
}

/// Adds a fingerprint to a level. Several are allowed (RFC 8122 §5); we keep the first, or the
/// first sha-256 since that is the one every browser sends and we verify.
fn add_fingerprint(
    slot: &mut Option<Fingerprint>,
    number: usize,
    arg: &str,
) -> Result<(), SdpError> {
    let mut fields = arg.split_ascii_whitespace();
    let (Some(algorithm), Some(hex), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(syntax(
            number,
            "a=fingerprint needs <algorithm> <hex bytes separated by :>",
        ));
    };
    if !is_token(algorithm) {
        return Err(syntax(
            number,
            format!("{algorithm:?} is not a hash algorithm"),
        ));
    }
    let algorithm = algorithm.to_ascii_lowercase();
    let mut value = Vec::with_capacity(64);
    for pair in hex.split(':') {
        let byte = match pair.as_bytes() {
            [high, low] => hex_digit(*high)
                .zip(hex_digit(*low))
                .map(|(h, l)| h << 4 | l),
            _ => None,
        };
        let Some(byte) = byte else {
            return Err(syntax(
                number,
                format!("fingerprint byte {pair:?} is not two hex digits"),
            ));
        };
        if value.len() == 64 {
            return Err(invalid(number, "a fingerprint longer than 64 bytes"));
        }
        value.push(byte);
    }
    let expected = match algorithm.as_str() {
        "md2" | "md5" => Some(16),
        "sha-1" => Some(20),
        "sha-224" => Some(28),
        "sha-256" => Some(32),
        "sha-384" => Some(48),
        "sha-512" => Some(64),
        _ => None,
    };
    if let Some(expected) = expected.filter(|n| *n != value.len()) {
        return Err(invalid(
            number,
            format!(
                "a {algorithm} fingerprint has {expected} bytes, not {}",
                value.len()
            ),
        ));
    }
    let replace = match slot {
        None => true,
        Some(kept) => kept.algorithm != "sha-256" && algorithm == "sha-256",
    };
    if replace {
        *slot = Some(Fingerprint { algorithm, value });
    }
    Ok(())
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `<id>[/<direction>] <uri> [<extension attributes>]`.
fn extmap(number: usize, arg: &str) -> Result<Extmap, SdpError> {
    let mut fields = arg.split_ascii_whitespace();
    let (Some(id_and_direction), Some(uri)) = (fields.next(), fields.next()) else {
        return Err(syntax(number, "a=extmap needs <id>[/<direction>] <uri>"));
    };
    let (id_text, direction) = match id_and_direction.split_once('/') {
        Some((id, direction)) => match Direction::from_name(direction) {
            Some(direction) => (id, Some(direction)),
            None => {
                return Err(syntax(
                    number,
                    format!("{direction:?} is not an extmap direction"),
                ))
            }
        },
        None => (id_and_direction, None),
    };
    let Some(id) = digits::<u32>(id_text) else {
        return Err(syntax(number, format!("{id_text:?} is not an extmap id")));
    };
    // RFC 8285: 1..=14 for one-byte headers, up to 255 with two-byte headers.
    let Some(id) = u8::try_from(id).ok().filter(|id| *id != 0) else {
        return Err(invalid(
            number,
            format!("extmap id {id} is outside 1..=255"),
        ));
    };
    Ok(Extmap {
        id,
        uri: uri.to_owned(),
        direction,
    })
}

/// `<ssrc> <attribute>[:<value>]` (RFC 5576 §4.1).
fn ssrc_line(number: usize, arg: &str) -> Result<SsrcLine, SdpError> {
    let (ssrc_text, rest) = split_field(arg);
    let Some(ssrc) = digits::<u32>(ssrc_text) else {
        return Err(syntax(number, format!("{ssrc_text:?} is not an SSRC")));
    };
    let rest = rest.trim();
    let (attribute, value) = match rest.split_once(':') {
        Some((attribute, value)) => (attribute, Some(value.to_owned())),
        None => (rest, None),
    };
    if !is_token(attribute) {
        return Err(syntax(number, "a=ssrc needs <ssrc> <attribute>[:<value>]"));
    }
    Ok(SsrcLine {
        ssrc,
        attribute: attribute.to_owned(),
        value,
    })
}

/// `<semantics> <ssrc>...` (RFC 5576 §4.2).
fn ssrc_group(number: usize, arg: &str) -> Result<SsrcGroup, SdpError> {
    let mut fields = arg.split_ascii_whitespace();
    let Some(semantics) = fields.next().filter(|s| is_token(s)) else {
        return Err(syntax(number, "a=ssrc-group needs <semantics> <ssrc>..."));
    };
    let ssrcs = fields
        .map(|field| {
            digits::<u32>(field).ok_or_else(|| syntax(number, format!("{field:?} is not an SSRC")))
        })
        .collect::<Result<Vec<u32>, SdpError>>()?;
    if ssrcs.is_empty() {
        return Err(syntax(number, "a=ssrc-group lists no SSRC"));
    }
    Ok(SsrcGroup {
        semantics: semantics.to_owned(),
        ssrcs,
    })
}

/// `<stream id> [<track id>]` (RFC 8830).
fn msid(number: usize, arg: &str) -> Result<(String, String), SdpError> {
    let mut fields = arg.split_ascii_whitespace();
    let (Some(stream), track, None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(syntax(number, "a=msid needs <stream id> [<track id>]"));
    };
    if !is_token(stream) || !track.is_none_or(is_token) {
        return Err(syntax(number, "a=msid ids must be tokens"));
    }
    Ok((stream.to_owned(), track.unwrap_or("").to_owned()))
}

/// `<id> <send|recv> [<restriction>;...]` (RFC 8851).
fn rid(number: usize, arg: &str) -> Result<Rid, SdpError> {
    let (id, rest) = split_field(arg);
    let (direction, restrictions) = split_field(rest);
    if !is_rid_id(id) {
        return Err(syntax(
            number,
            format!("{id:?} is not a rid (letters, digits, - and _)"),
        ));
    }
    if direction != "send" && direction != "recv" {
        return Err(syntax(
            number,
            format!("rid direction {direction:?} is not send or recv"),
        ));
    }
    let params = restrictions
        .split(';')
        .map(str::trim)
        .filter(|param| !param.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Rid {
        id: id.to_owned(),
        direction: direction.to_owned(),
        params,
    })
}

/// `send <list> [recv <list>]` or the other way round (RFC 8853); a list is `;`-separated
/// layers of `,`-separated alternatives, each a rid with an optional `~` (paused).
fn simulcast(number: usize, arg: &str) -> Result<Simulcast, SdpError> {
    let mut simulcast = Simulcast::default();
    let mut seen_send = false;
    let mut seen_recv = false;
    let mut rids: Vec<&str> = Vec::new();
    let mut fields = arg.split_ascii_whitespace();
    while let Some(direction) = fields.next() {
        let Some(list) = fields.next() else {
            return Err(syntax(
                number,
                format!("a=simulcast {direction} has no rid list"),
            ));
        };
        // Firefox before 71 wrote the draft-03 form `send rid=a;b;c`.
        let list = list.strip_prefix("rid=").unwrap_or(list);
        let mut layers = Vec::new();
        for layer in list.split(';') {
            let mut alternatives = Vec::new();
            for alternative in layer.split(',') {
                let id = alternative.strip_prefix('~').unwrap_or(alternative);
                if !is_rid_id(id) {
                    return Err(syntax(
                        number,
                        format!("{alternative:?} is not a rid in a=simulcast"),
                    ));
                }
                if rids.len() == MAX_RIDS {
                    return Err(invalid(
                        number,
                        format!("a=simulcast lists more than {MAX_RIDS} rids"),
                    ));
                }
                if rids.contains(&id) {
                    return Err(invalid(
                        number,
                        format!("rid {id} appears twice in a=simulcast"),
                    ));
                }
                rids.push(id);
                alternatives.push(alternative.to_owned());
            }
            layers.push(alternatives);
        }
        let (seen, slot) = match direction {
            "send" => (&mut seen_send, &mut simulcast.send),
            "recv" => (&mut seen_recv, &mut simulcast.recv),
            _ => {
                return Err(syntax(
                    number,
                    format!("a=simulcast direction {direction:?} is not send or recv"),
                ))
            }
        };
        if *seen {
            return Err(invalid(
                number,
                format!("a=simulcast has two {direction} lists"),
            ));
        }
        *seen = true;
        *slot = layers;
    }
    if !seen_send && !seen_recv {
        return Err(syntax(
            number,
            "a=simulcast needs send or recv with a rid list",
        ));
    }
    Ok(simulcast)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(media: &str) -> String {
        format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{media}")
    }

    fn line_error(sdp: &str) -> (usize, String) {
        match parse(sdp) {
            Err(e) => (e.line().unwrap_or(0), e.to_string()),
            Ok(_) => panic!("expected an error for:\n{sdp}"),
        }
    }

    #[test]
    fn accepts_lf_only_line_endings() {
        let sdp =
            offer("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n")
                .replace("\r\n", "\n");
        let parsed = parse(&sdp).expect("parses");
        assert_eq!(parsed.media[0].codecs[0].name, "opus");
    }

    #[test]
    fn a_missing_final_line_ending_is_truncation() {
        let sdp = offer("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2");
        assert_eq!(parse(&sdp), Err(SdpError::Truncated { line: 7 }));
    }

    #[test]
    fn a_stray_carriage_return_is_a_syntax_error_on_its_line() {
        let sdp =
            offer("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\ra=rtpmap:111 opus/48000/2\r\n");
        assert_eq!(line_error(&sdp).0, 6);
    }

    #[test]
    fn codec_lines_join_in_m_line_order_whatever_their_order() {
        let sdp = offer(concat!(
            "m=video 9 UDP/TLS/RTP/SAVPF 97 96 0\r\n",
            "a=mid:v\r\n",
            "a=fmtp:97 apt=96\r\n",
            "a=rtcp-fb:* nack\r\n",
            "a=rtcp-fb:96   nack   pli\r\n",
            "a=rtpmap:96 VP8/90000\r\n",
            "a=rtpmap:97 rtx/90000\r\n",
        ));
        let parsed = parse(&sdp).expect("parses");
        let media = &parsed.media[0];
        let pts: Vec<u8> = media.codecs.iter().map(|c| c.payload_type).collect();
        assert_eq!(pts, [97, 96, 0]);
        assert_eq!(media.codecs[0].fmtp.as_deref(), Some("apt=96"));
        assert_eq!(media.codecs[1].rtcp_fbs, ["nack", "nack pli"]);
        assert_eq!(media.codecs[2].name, "PCMU");
        assert_eq!(media.rtx_for(96), Some(97));
        assert_eq!(media.rtx_for(0), None);
    }

    #[test]
    fn a_dynamic_payload_type_without_rtpmap_is_invalid_unless_the_m_line_is_rejected() {
        let enabled = offer("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n");
        assert_eq!(line_error(&enabled).0, 5);
        let rejected = offer("m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n");
        assert!(parse(&rejected).expect("parses").media[0].codecs.is_empty());
    }

    #[test]
    fn session_level_values_apply_to_every_media_section() {
        let sdp = offer(concat!(
            "a=ice-ufrag:abcd\r\n",
            "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n",
            "a=setup:actpass\r\n",
            "a=sendonly\r\n",
            "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=ice-ufrag:efgh\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n",
        ));
        let parsed = parse(&sdp).expect("parses");
        assert_eq!(parsed.media[0].ice_ufrag.as_deref(), Some("abcd"));
        assert_eq!(parsed.media[1].ice_ufrag.as_deref(), Some("efgh"));
        assert_eq!(
            parsed.media[1].ice_pwd.as_deref(),
            Some("abcdefghijklmnopqrstuvwx")
        );
        assert_eq!(parsed.media[0].setup, Some(Setup::ActPass));
        assert_eq!(parsed.media[0].direction, Direction::SendOnly);
        assert_eq!(parsed.media[1].direction, Direction::RecvOnly);
        assert_eq!(parsed.media[1].extmaps[0].id, 3);
    }

    #[test]
    fn a_sha_256_fingerprint_wins_over_an_earlier_other_one() {
        let sha1 = ["AA"; 20].join(":");
        let sha256 = ["0f"; 32].join(":");
        let sdp = offer(&format!(
            "a=fingerprint:SHA-1 {sha1}\r\na=fingerprint:sha-256 {sha256}\r\n"
        ));
        let fingerprint = parse(&sdp)
            .expect("parses")
            .fingerprint
            .expect("a fingerprint");
        assert_eq!(fingerprint.algorithm, "sha-256");
        assert_eq!(fingerprint.value, [0x0f; 32]);
        assert_eq!(
            fingerprint.to_string(),
            format!("sha-256 {}", ["0F"; 32].join(":"))
        );
    }

    #[test]
    fn fingerprint_length_must_match_the_algorithm() {
        let sdp = offer(&format!(
            "a=fingerprint:sha-256 {}\r\n",
            ["AB"; 31].join(":")
        ));
        assert!(line_error(&sdp).1.contains("32 bytes"));
    }

    #[test]
    fn simulcast_lists_keep_alternatives_and_pauses() {
        let sdp = offer(concat!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n",
            "a=rid:a send pt=96;max-width=320\r\na=rid:b send\r\na=rid:c send\r\n",
            "a=simulcast:send a,~b;c recv d\r\n",
        ));
        let parsed = parse(&sdp).expect("parses");
        let media = &parsed.media[0];
        let simulcast = media.simulcast.as_ref().expect("simulcast");
        assert_eq!(simulcast.send, [vec!["a", "~b"], vec!["c"]]);
        assert_eq!(simulcast.recv, [vec!["d"]]);
        assert_eq!(media.rids[0].params, ["pt=96", "max-width=320"]);
    }

    #[test]
    fn draft_simulcast_syntax_from_old_firefox_is_understood() {
        let sdp = offer("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=simulcast: send rid=h;m;l\r\n");
        let simulcast = parse(&sdp).expect("parses").media[0]
            .simulcast
            .clone()
            .expect("simulcast");
        assert_eq!(simulcast.send, [vec!["h"], vec!["m"], vec!["l"]]);
    }

    #[test]
    fn bundle_names_must_exist_and_appear_once() {
        let unknown = offer("a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n");
        assert_eq!(line_error(&unknown).0, 5);
        let twice = offer("a=group:BUNDLE 0\r\na=group:BUNDLE 1\r\n");
        assert_eq!(line_error(&twice).0, 6);
    }

    #[test]
    fn duplicate_mids_are_invalid() {
        let sdp = offer(concat!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n",
        ));
        assert_eq!(line_error(&sdp).0, 9);
    }

    #[test]
    fn star_feedback_cannot_amplify_past_the_cap() {
        let mut sdp =
            offer("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n");
        for _ in 0..=MAX_RTCP_FB_PER_CODEC {
            sdp.push_str("a=rtcp-fb:* nack\r\n");
        }
        assert!(line_error(&sdp).1.contains("rtcp-fb"));
    }

    #[test]
    fn long_lists_in_one_line_are_bounded_not_quadratic() {
        let rids: Vec<String> = (0..100_000).map(|i| format!("r{i}")).collect();
        let sdp = offer(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=simulcast:send {}\r\n",
            rids.join(";")
        ));
        assert!(line_error(&sdp).1.contains("more than 32 rids"));
        let mids: Vec<String> = (0..100_000).map(|i| format!("m{i}")).collect();
        let sdp = offer(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
        assert!(line_error(&sdp).1.contains("more than 1024 mids"));
        let sdp = offer(&format!(
            "a=fingerprint:sha-512 {}\r\n",
            ["AB"; 100_000].join(":")
        ));
        assert!(line_error(&sdp).1.contains("longer than 64 bytes"));
    }

    #[test]
    fn numbers_with_signs_or_overflow_are_not_numbers() {
        assert_eq!(digits::<u8>("+5"), None);
        assert_eq!(digits::<u8>("256"), None);
        assert_eq!(digits::<u8>(""), None);
        assert_eq!(digits::<u32>("007"), Some(7));
    }
}
