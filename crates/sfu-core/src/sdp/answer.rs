//! What we accept from an offered m-line, and the answer's text. Codec policy; no transport state.

use super::parse::{digits, is_token};
use super::{Codec, Direction, Extmap, MediaSection, SdpMediaKind, SessionDescription, Setup};
use std::fmt::{self, Write};
use std::net::SocketAddr;

/// Header extensions we keep (by URI); every other offered extmap is left out of the answer.
pub const SUPPORTED_HEADER_EXTENSIONS: &[&str] = &[
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    crate::dependency_descriptor::URI,
];

/// RTCP feedback we answer; the engine implements exactly these.
const SUPPORTED_FEEDBACK: &[&str] = &["nack", "nack pli", "ccm fir", "transport-cc", "goog-remb"];

/// H.264 Constrained Baseline level 3.1: what every browser decodes in hardware and software.
const PREFERRED_H264_PROFILE: &str = "42e01f";

/// Only one-byte header ids (RFC 8285 §4.2): the engine writes one-byte headers to subscribers,
/// whether or not the offer allowed mixing.
const MAX_ONE_BYTE_EXTMAP_ID: u8 = 14;

/// RFC 8445 §5.1.2.1 priority of a host candidate: type preference 126, local preference
/// 65535, component 1.
const HOST_CANDIDATE_PRIORITY: u32 = 2_130_706_431;

/// Our side of the transport, the same for every m-line (everything is bundled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTransport {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// Upper-case hex bytes separated by `:`, e.g. `AB:CD:...` (32 bytes).
    pub fingerprint_sha256: String,
    /// The one host candidate we announce.
    pub candidate: SocketAddr,
    /// The answer's DTLS role: [`Setup::answer`] of the offer's setup (passive for actpass).
    pub setup: Setup,
}

/// A stream we send on a `sendonly` answer m-line (towards a subscriber).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendStream {
    pub ssrc: u32,
    /// Announced (with an FID group) only if the answer keeps an rtx codec.
    pub rtx_ssrc: Option<u32>,
    pub cname: String,
    pub stream_id: String,
    pub track_id: String,
}

/// What the engine decided for one offered m-line, in the offer's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerMedia {
    /// The offer's mid; empty only for a rejected m-line that had none.
    pub mid: String,
    pub kind: SdpMediaKind,
    pub kind_name: String,
    pub accepted: bool,
    /// Ours: recvonly towards a publisher, sendonly towards a subscriber, inactive when rejected.
    pub direction: Direction,
    /// With the offer's payload types, in our preference order, each codec followed by its rtx.
    pub codecs: Vec<Codec>,
    /// With the offer's ids.
    pub extmaps: Vec<Extmap>,
    /// Filled in by the engine for sendonly m-lines once a track is attached.
    pub send: Option<SendStream>,
    pub protocol: String,
    /// Echoes the offer's `a=rtcp-rsize`.
    pub rtcp_rsize: bool,
    /// Simulcast layers we receive: the offer's `a=simulcast:send` list, restricted to rids it
    /// declared with `a=rid:<id> send`, `~` (paused) kept. Empty without simulcast.
    pub recv_simulcast: Vec<Vec<String>>,
    /// The offer's first format, put on the m-line when rejected (an m-line needs one).
    pub rejected_format: String,
}

impl AnswerMedia {
    /// The answer that rejects `offered`: port 0, same mid, inactive.
    pub fn rejected(offered: &MediaSection) -> AnswerMedia {
        AnswerMedia {
            mid: offered.mid.clone().unwrap_or_default(),
            kind: offered.kind,
            kind_name: offered.kind_name.clone(),
            accepted: false,
            direction: Direction::Inactive,
            codecs: Vec::new(),
            extmaps: Vec::new(),
            send: None,
            protocol: offered.protocol.clone(),
            rtcp_rsize: false,
            recv_simulcast: Vec::new(),
            rejected_format: offered.formats.first().cloned().unwrap_or_default(),
        }
    }

    /// Turns this into a rejection (the engine may refuse an m-line we could have accepted).
    pub fn reject(&mut self) {
        self.accepted = false;
        self.direction = Direction::Inactive;
        self.codecs.clear();
        self.extmaps.clear();
        self.send = None;
        self.recv_simulcast.clear();
    }

    /// The rids we receive, pause marks removed, lowest layer first as offered.
    pub fn recv_rids(&self) -> impl Iterator<Item = &str> {
        self.recv_simulcast
            .iter()
            .flatten()
            .map(|rid| rid.strip_prefix('~').unwrap_or(rid))
    }

    /// Whether the answer will carry this m-line: accepted, with a usable mid and a codec.
    /// Anything else is written rejected, so a bad decision still yields a valid answer.
    pub(super) fn is_written_accepted(&self) -> bool {
        self.accepted && is_token(&self.mid) && !self.codecs.is_empty()
    }
}

pub(super) fn is_supported_protocol(protocol: &str) -> bool {
    // DTLS-SRTP over UDP with RTCP feedback; older Chromium wrote RTP/SAVPF for the same thing.
    protocol == "UDP/TLS/RTP/SAVPF" || protocol == "RTP/SAVPF"
}

/// Picks what we support from an offered m-line: audio opus/48000/2, led by red/48000/2 (RFC
/// 2198) when offered around that Opus; video VP8 first, then H264
/// with packetization-mode=1 (profile-level-id 42e01f first), each with its rtx; rtcp-fb only
/// nack, nack pli, ccm fir, transport-cc and goog-remb; header extensions only those in
/// [`SUPPORTED_HEADER_EXTENSIONS`] with one-byte ids. Direction: an offered sendonly or sendrecv
/// is answered recvonly, recvonly is answered sendonly (the engine fills `send` later).
/// Rejects other kinds, disabled or inactive m-lines, other transports and m-lines with no
/// common codec.
pub fn select_media(offered: &MediaSection) -> AnswerMedia {
    let mut answer = AnswerMedia::rejected(offered);
    if !offered.is_answerable() {
        return answer;
    }
    let codecs = match offered.kind {
        SdpMediaKind::Audio => select_audio(offered),
        SdpMediaKind::Video => select_video(offered),
        SdpMediaKind::Application | SdpMediaKind::Other => Vec::new(),
    };
    if codecs.is_empty() {
        return answer;
    }
    answer.accepted = true;
    answer.codecs = codecs;
    answer.direction = match offered.direction {
        Direction::SendOnly | Direction::SendRecv => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    };
    answer.extmaps = select_extmaps(offered);
    answer.rtcp_rsize = offered.rtcp_rsize;
    if answer.direction == Direction::RecvOnly {
        answer.recv_simulcast = select_simulcast(offered);
    }
    answer
}

fn select_audio(offered: &MediaSection) -> Vec<Codec> {
    let Some(opus) = offered
        .codecs
        .iter()
        .find(|c| c.is("opus") && c.clock_rate == 48_000 && c.channels == Some(2))
    else {
        return Vec::new();
    };
    let red = offered
        .codecs
        .iter()
        .find(|c| is_red_around(c, opus.payload_type));
    // Chromium sends RED only when it comes before the codec it wraps in the negotiated list,
    // so it leads the answer; receivers decode either way.
    with_rtx(offered, red.into_iter().chain(Some(opus)))
}

/// RFC 2198 at 48 kHz stereo whose fmtp (`111/111`: the blocks' payload types, primary last)
/// names only `opus_pt`; without an fmtp the blocks are unconstrained, so it is refused.
fn is_red_around(codec: &Codec, opus_pt: u8) -> bool {
    let Some(blocks) = codec.fmtp.as_deref().map(str::trim) else {
        return false;
    };
    codec.is("red")
        && codec.clock_rate == 48_000
        && codec.channels == Some(2)
        && !blocks.is_empty()
        && blocks
            .split('/')
            .all(|pt| digits::<u8>(pt.trim()) == Some(opus_pt))
}

fn select_video(offered: &MediaSection) -> Vec<Codec> {
    let vp8 = offered
        .codecs
        .iter()
        .filter(|c| c.is("VP8") && c.clock_rate == 90_000);
    let mut h264: Vec<&Codec> = offered
        .codecs
        .iter()
        .filter(|c| {
            c.is("H264")
                && c.clock_rate == 90_000
                && c.fmtp_param("packetization-mode") == Some("1")
        })
        .collect();
    // Stable: the preferred profile moves first, the rest keep the offerer's order.
    h264.sort_by_key(|c| {
        !c.fmtp_param("profile-level-id")
            .is_some_and(|profile| profile.eq_ignore_ascii_case(PREFERRED_H264_PROFILE))
    });
    // VP9 and AV1 profile 0 (what every browser encodes in software) come after VP8 and H264,
    // unless the offerer put one of them first (a publisher choosing SVC).
    let svc_codecs = offered.codecs.iter().filter(|c| {
        c.clock_rate == 90_000
            && ((c.is("VP9") && c.fmtp_param("profile-id").is_none_or(|p| p == "0"))
                || (c.is("AV1") && c.fmtp_param("profile").is_none_or(|p| p == "0")))
    });
    let svc_first = offered
        .codecs
        .iter()
        .find(|c| !c.is("rtx") && !c.is("red") && !c.is("ulpfec") && !c.is("flexfec-03"))
        .is_some_and(|c| c.is("VP9") || c.is("AV1"));
    if svc_first {
        with_rtx(offered, svc_codecs.chain(vp8).chain(h264))
    } else {
        with_rtx(offered, vp8.chain(h264).chain(svc_codecs))
    }
}

/// The chosen codecs, each followed by its rtx, with feedback we do not implement removed.
fn with_rtx<'a>(offered: &'a MediaSection, chosen: impl Iterator<Item = &'a Codec>) -> Vec<Codec> {
    let mut codecs = Vec::new();
    for codec in chosen {
        codecs.push(without_unsupported_feedback(codec));
        if let Some(rtx) = offered
            .rtx_for(codec.payload_type)
            .and_then(|pt| offered.codec(pt))
        {
            codecs.push(without_unsupported_feedback(rtx));
        }
    }
    codecs
}

fn without_unsupported_feedback(codec: &Codec) -> Codec {
    let mut codec = codec.clone();
    codec.rtcp_fbs.retain(|fb| {
        SUPPORTED_FEEDBACK
            .iter()
            .any(|supported| fb.eq_ignore_ascii_case(supported))
    });
    codec
}

fn select_extmaps(offered: &MediaSection) -> Vec<Extmap> {
    let mut kept: Vec<Extmap> = Vec::new();
    for extmap in &offered.extmaps {
        let supported = SUPPORTED_HEADER_EXTENSIONS.contains(&extmap.uri.as_str());
        if !supported
            || extmap.id > MAX_ONE_BYTE_EXTMAP_ID
            || kept.iter().any(|k| k.uri == extmap.uri)
        {
            continue;
        }
        // RFC 8285: an extension the offerer only sends, we only receive, and back.
        let direction = match extmap.direction {
            None | Some(Direction::SendRecv) => None,
            Some(Direction::Inactive) => continue,
            Some(direction) => Some(direction.reverse()),
        };
        kept.push(Extmap {
            id: extmap.id,
            uri: extmap.uri.clone(),
            direction,
        });
    }
    kept
}

fn select_simulcast(offered: &MediaSection) -> Vec<Vec<String>> {
    let Some(simulcast) = &offered.simulcast else {
        return Vec::new();
    };
    let declared = |alternative: &String| {
        let id = alternative.strip_prefix('~').unwrap_or(alternative);
        offered
            .rids
            .iter()
            .any(|rid| rid.id == id && rid.direction == "send")
    };
    simulcast
        .send
        .iter()
        .map(|layer| {
            layer
                .iter()
                .filter(|alternative| declared(alternative))
                .cloned()
                .collect::<Vec<String>>()
        })
        .filter(|layer| !layer.is_empty())
        .collect()
}

/// Writes the answer (CRLF line endings): one m-line per offered m-line, in the offer's order.
/// `media[i]` answers `offer.media[i]`; offered m-lines without an entry, and entries that
/// cannot be written as accepted (no codec, no mid), are rejected. Values that came from the
/// engine are written as tokens (visible ASCII), so nothing here can break a line.
pub fn write_answer(
    offer: &SessionDescription,
    local: &LocalTransport,
    media: &[AnswerMedia],
    session_id: u64,
) -> String {
    let mut out = Writer(String::with_capacity(512 + 2048 * offer.media.len()));
    out.line(format_args!("v=0"));
    out.line(format_args!("o=- {session_id} 2 IN IP4 127.0.0.1"));
    out.line(format_args!("s=-"));
    out.line(format_args!("t=0 0"));
    let mut bundle = media
        .iter()
        .take(offer.media.len())
        .filter(|m| m.is_written_accepted())
        .peekable();
    // A rejected m-line must leave the group (RFC 8843); with none accepted there is no group.
    if bundle.peek().is_some() {
        let _ = out.0.write_str("a=group:BUNDLE");
        for answer in bundle {
            let _ = write!(out.0, " {}", Token(&answer.mid));
        }
        out.0.push_str("\r\n");
    }
    out.line(format_args!("a=ice-lite"));
    if offer.extmap_allow_mixed {
        // Chromium sends a Dependency Descriptor's structure (over 16 bytes) only when allowed.
        out.line(format_args!("a=extmap-allow-mixed"));
    }
    out.line(format_args!("a=msid-semantic: WMS *"));
    for (index, offered) in offer.media.iter().enumerate() {
        let rejected;
        let answer = match media.get(index) {
            Some(answer) => answer,
            None => {
                rejected = AnswerMedia::rejected(offered);
                &rejected
            }
        };
        if answer.is_written_accepted() {
            write_accepted(&mut out, local, answer);
        } else {
            write_rejected(&mut out, local, answer);
        }
    }
    out.0
}

pub(super) fn write_accepted(out: &mut Writer, local: &LocalTransport, answer: &AnswerMedia) {
    let _ = write!(
        out.0,
        "m={} 9 {}",
        Token(&answer.kind_name),
        Token(&answer.protocol)
    );
    for codec in &answer.codecs {
        let _ = write!(out.0, " {}", codec.payload_type);
    }
    out.0.push_str("\r\n");
    out.line(format_args!("c={}", connection(local)));
    out.line(format_args!("a=mid:{}", Token(&answer.mid)));
    out.line(format_args!("a=ice-ufrag:{}", Token(&local.ice_ufrag)));
    out.line(format_args!("a=ice-pwd:{}", Token(&local.ice_pwd)));
    out.line(format_args!(
        "a=fingerprint:sha-256 {}",
        Token(&local.fingerprint_sha256)
    ));
    out.line(format_args!("a=setup:{}", local.setup.as_str()));
    out.line(format_args!("a=rtcp-mux"));
    if answer.rtcp_rsize {
        out.line(format_args!("a=rtcp-rsize"));
    }
    out.line(format_args!("a={}", answer.direction.as_str()));
    for extmap in &answer.extmaps {
        match extmap.direction {
            Some(direction) => out.line(format_args!(
                "a=extmap:{}/{} {}",
                extmap.id,
                direction.as_str(),
                Token(&extmap.uri)
            )),
            None => out.line(format_args!(
                "a=extmap:{} {}",
                extmap.id,
                Token(&extmap.uri)
            )),
        }
    }
    for codec in &answer.codecs {
        let pt = codec.payload_type;
        match codec.channels {
            Some(channels) => out.line(format_args!(
                "a=rtpmap:{pt} {}/{}/{channels}",
                Token(&codec.name),
                codec.clock_rate
            )),
            None => out.line(format_args!(
                "a=rtpmap:{pt} {}/{}",
                Token(&codec.name),
                codec.clock_rate
            )),
        }
        if let Some(fmtp) = codec
            .fmtp
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            out.line(format_args!("a=fmtp:{pt} {}", Text(fmtp)));
        }
        for feedback in codec
            .rtcp_fbs
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
        {
            out.line(format_args!("a=rtcp-fb:{pt} {}", Text(feedback)));
        }
    }
    if !answer.recv_simulcast.is_empty() {
        for rid in answer.recv_rids() {
            out.line(format_args!("a=rid:{} recv", Token(rid)));
        }
        let _ = out.0.write_str("a=simulcast:recv ");
        for (i, layer) in answer.recv_simulcast.iter().enumerate() {
            if i > 0 {
                out.0.push(';');
            }
            for (j, alternative) in layer.iter().enumerate() {
                if j > 0 {
                    out.0.push(',');
                }
                let _ = write!(out.0, "{}", Token(alternative));
            }
        }
        out.0.push_str("\r\n");
    }
    let sends = matches!(answer.direction, Direction::SendOnly | Direction::SendRecv);
    if let Some(send) = answer.send.as_ref().filter(|_| sends) {
        write_send_stream(out, answer, send);
    }
    let ip = local.candidate.ip();
    let port = local.candidate.port();
    out.line(format_args!(
        "a=candidate:1 1 udp {HOST_CANDIDATE_PRIORITY} {ip} {port} typ host"
    ));
    out.line(format_args!("a=end-of-candidates"));
}

fn write_send_stream(out: &mut Writer, answer: &AnswerMedia, send: &SendStream) {
    let (stream, track, cname) = (
        Token(&send.stream_id),
        Token(&send.track_id),
        Token(&send.cname),
    );
    out.line(format_args!("a=msid:{stream} {track}"));
    let has_rtx = answer.codecs.iter().any(|c| c.is("rtx"));
    let rtx = send.rtx_ssrc.filter(|_| has_rtx);
    if let Some(rtx) = rtx {
        out.line(format_args!("a=ssrc-group:FID {} {rtx}", send.ssrc));
    }
    for ssrc in std::iter::once(send.ssrc).chain(rtx) {
        out.line(format_args!("a=ssrc:{ssrc} cname:{cname}"));
        out.line(format_args!("a=ssrc:{ssrc} msid:{stream} {track}"));
    }
}

/// Port 0, same mid, `a=inactive`; no transport lines since nothing flows.
pub(super) fn write_rejected(out: &mut Writer, local: &LocalTransport, answer: &AnswerMedia) {
    let is_rtp = answer.protocol.contains("RTP/");
    let format = answer.rejected_format.as_str();
    let usable = if is_rtp {
        digits::<u8>(format).is_some_and(|pt| pt <= 127)
    } else {
        is_token(format)
    };
    let format = if usable { format } else { "0" };
    out.line(format_args!(
        "m={} 0 {} {format}",
        Token(&answer.kind_name),
        Token(&answer.protocol)
    ));
    out.line(format_args!("c={}", connection(local)));
    if is_token(&answer.mid) {
        out.line(format_args!("a=mid:{}", answer.mid));
    }
    if is_rtp {
        out.line(format_args!("a=inactive"));
    }
}

fn connection(local: &LocalTransport) -> &'static str {
    match local.candidate {
        SocketAddr::V4(_) => "IN IP4 0.0.0.0",
        SocketAddr::V6(_) => "IN IP6 ::",
    }
}

pub(super) struct Writer(pub(super) String);

impl Writer {
    pub(super) fn line(&mut self, args: fmt::Arguments<'_>) {
        // Writing into a String cannot fail.
        let _ = self.0.write_fmt(args);
        self.0.push_str("\r\n");
    }
}

/// Writes only visible ASCII (no spaces), `-` if nothing is left: one SDP field.
pub(super) struct Token<'a>(pub(super) &'a str);

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        for c in self.0.chars().filter(|c| c.is_ascii_graphic()) {
            f.write_char(c)?;
            wrote = true;
        }
        if !wrote {
            f.write_char('-')?;
        }
        Ok(())
    }
}

/// Writes everything but control characters: free text that must stay on its line.
struct Text<'a>(&'a str);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().filter(|c| !c.is_control()) {
            f.write_char(c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn offer(media: &str) -> SessionDescription {
        let sdp = format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{media}");
        parse(&sdp).expect("parses")
    }

    fn section(media: &str) -> MediaSection {
        offer(media).media.remove(0)
    }

    const OPUS_RECVONLY: &str =
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n";

    fn pts(answer: &AnswerMedia) -> Vec<u8> {
        answer.codecs.iter().map(|c| c.payload_type).collect()
    }

    #[test]
    fn video_prefers_vp8_then_h264_constrained_baseline_then_vp9_with_their_rtx() {
        let offered = section(concat!(
            "m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97 104 105 106 98\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n",
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 profile-level-id=64001f;packetization-mode=1\r\n",
            "a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n",
            "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 goog-lntf\r\n",
            "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n",
            "a=rtpmap:104 H264/90000\r\na=fmtp:104 profile-level-id=42E01F;packetization-mode=1\r\n",
            "a=rtpmap:105 rtx/90000\r\na=fmtp:105 apt=104\r\n",
            "a=rtpmap:106 H264/90000\r\na=fmtp:106 profile-level-id=42e01f\r\n",
            "a=rtpmap:98 VP9/90000\r\n",
        ));
        let answer = select_media(&offered);
        assert!(answer.accepted);
        assert_eq!(answer.direction, Direction::RecvOnly);
        assert_eq!(pts(&answer), [96, 97, 104, 105, 102, 103, 98]);
        assert_eq!(answer.codecs[0].rtcp_fbs, ["nack"]);
    }

    #[test]
    fn audio_takes_only_stereo_opus_at_48k() {
        let offered = section(concat!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\na=mid:a\r\na=recvonly\r\na=rtcp-mux\r\n",
            "a=rtpmap:111 OPUS/48000/2\r\na=rtcp-fb:111 transport-cc\r\n",
        ));
        let answer = select_media(&offered);
        assert_eq!(pts(&answer), [111]);
        assert_eq!(answer.codecs[0].rtcp_fbs, ["transport-cc"]);
        assert_eq!(answer.direction, Direction::SendOnly);
    }

    #[test]
    fn red_around_the_chosen_opus_leads_the_audio_answer() {
        let offered = section(concat!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 0\r\na=mid:a\r\na=sendonly\r\na=rtcp-mux\r\n",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n",
            "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n",
        ));
        let answer = select_media(&offered);
        assert_eq!(pts(&answer), [63, 111]);
        assert_eq!(answer.codecs[0].fmtp.as_deref(), Some("111/111"));
    }

    #[test]
    fn red_wrapping_anything_but_the_chosen_opus_is_left_out() {
        for red in [
            "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/0\r\n",
            "a=rtpmap:63 red/48000/2\r\n",
            "a=rtpmap:63 red/8000/1\r\na=fmtp:63 111/111\r\n",
        ] {
            let offered = section(&format!(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 0\r\na=mid:a\r\na=sendonly\r\n\
                 a=rtpmap:111 opus/48000/2\r\n{red}"
            ));
            assert_eq!(pts(&select_media(&offered)), [111], "{red}");
        }
        let no_opus = section(concat!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 63 0\r\na=mid:a\r\na=sendonly\r\n",
            "a=rtpmap:63 red/48000/2\r\na=fmtp:63 0/0\r\n",
        ));
        assert!(!select_media(&no_opus).accepted);
    }

    #[test]
    fn no_common_codec_inactive_port_zero_and_data_channels_are_rejected() {
        let cases = [
            "m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:0\r\na=rtpmap:98 H265/90000\r\n",
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=inactive\r\na=rtpmap:96 VP8/90000\r\n",
            "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n",
            "m=video 9 RTP/AVP 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n",
        ];
        for case in cases {
            let answer = select_media(&section(case));
            assert!(!answer.accepted, "{case}");
            assert_eq!(answer.mid, "0");
            assert_eq!(answer.direction, Direction::Inactive);
        }
    }

    #[test]
    fn bundle_only_with_port_zero_is_accepted() {
        let offered = section("m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=bundle-only\r\na=rtpmap:96 VP8/90000\r\n");
        assert!(select_media(&offered).accepted);
    }

    #[test]
    fn extmaps_keep_offered_ids_and_complement_directions() {
        let offered = section(concat!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n",
            "a=extmap:7/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n",
            "a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
            "a=extmap:2 urn:ietf:params:rtp-hdrext:toffset\r\n",
            "a=extmap:15 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n",
            "a=extmap:4/inactive urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n",
        ));
        let answer = select_media(&offered);
        let kept: Vec<(u8, Option<Direction>)> =
            answer.extmaps.iter().map(|e| (e.id, e.direction)).collect();
        assert_eq!(kept, [(7, Some(Direction::RecvOnly)), (9, None)]);
    }

    #[test]
    fn simulcast_answer_keeps_only_declared_send_rids() {
        let offered = section(concat!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n",
            "a=rid:l send\r\na=rid:h send\r\na=rid:x recv\r\n",
            "a=simulcast:send l;~m;h,x\r\n",
        ));
        let answer = select_media(&offered);
        assert_eq!(answer.recv_simulcast, [vec!["l"], vec!["h"]]);
        assert_eq!(answer.recv_rids().collect::<Vec<_>>(), ["l", "h"]);
    }

    #[test]
    fn an_offer_preferring_vp9_or_av1_keeps_them_first_with_the_dependency_descriptor() {
        let offered = section(concat!(
            "m=video 9 UDP/TLS/RTP/SAVPF 45 98 100 96\r\na=mid:0\r\na=sendonly\r\n",
            "a=extmap:12 https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension\r\n",
            "a=rtpmap:45 AV1/90000\r\na=fmtp:45 level-idx=5;profile=0;tier=0\r\n",
            "a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=2\r\n",
            "a=rtpmap:100 VP9/90000\r\na=fmtp:100 profile-id=0\r\n",
            "a=rtpmap:96 VP8/90000\r\n",
        ));
        let answer = select_media(&offered);
        assert_eq!(pts(&answer), [45, 100, 96], "VP9 profile 2 is left out");
        assert_eq!(
            answer.extmaps.iter().map(|e| e.id).collect::<Vec<_>>(),
            [12]
        );
    }

    #[test]
    fn extmap_allow_mixed_is_answered_only_when_offered() {
        let local = LocalTransport {
            ice_ufrag: "u".into(),
            ice_pwd: "p".into(),
            fingerprint_sha256: "AB".into(),
            candidate: "127.0.0.1:40000".parse().unwrap(),
            setup: Setup::Passive,
        };
        let media = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n";
        for allow in [false, true] {
            let mut description = offer(media);
            description.extmap_allow_mixed = allow;
            let answers: Vec<AnswerMedia> = description.media.iter().map(select_media).collect();
            let text = write_answer(&description, &local, &answers, 1);
            assert_eq!(text.contains("a=extmap-allow-mixed\r\n"), allow);
        }
    }

    #[test]
    fn engine_strings_cannot_break_lines() {
        let offer = offer(OPUS_RECVONLY);
        let mut answer = select_media(&offer.media[0]);
        answer.send = Some(SendStream {
            ssrc: 1,
            rtx_ssrc: Some(2),
            cname: "evil\r\na=setup:active".into(),
            stream_id: "".into(),
            track_id: "t t".into(),
        });
        let local = LocalTransport {
            ice_ufrag: "ufra".into(),
            ice_pwd: "pwdpwdpwdpwdpwdpwdpwdpwd".into(),
            fingerprint_sha256: ["00"; 32].join(":"),
            candidate: SocketAddr::from(([192, 0, 2, 1], 4000)),
            setup: Setup::Passive,
        };
        let text = write_answer(&offer, &local, &[answer], 7);
        assert!(
            text.contains("a=ssrc:1 cname:evila=setup:active\r\n"),
            "{text}"
        );
        assert!(text.contains("a=msid:- tt\r\n"), "{text}");
        // No rtx codec was accepted, so no rtx SSRC is announced.
        assert!(!text.contains("a=ssrc:2"), "{text}");
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn offered_m_lines_without_a_decision_are_rejected_in_place() {
        let offer = offer(OPUS_RECVONLY);
        let local = LocalTransport {
            ice_ufrag: "ufra".into(),
            ice_pwd: "pwdpwdpwdpwdpwdpwdpwdpwd".into(),
            fingerprint_sha256: ["00"; 32].join(":"),
            candidate: "[2001:db8::1]:4000".parse().expect("an address"),
            setup: Setup::Passive,
        };
        let text = write_answer(&offer, &local, &[], 7);
        assert!(
            text.contains(
                "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP6 ::\r\na=mid:0\r\na=inactive\r\n"
            ),
            "{text}"
        );
        assert!(!text.contains("a=group:BUNDLE"), "{text}");
    }
}
