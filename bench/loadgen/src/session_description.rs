//! The SDP a load-generator client writes (publisher and viewer offers, answers to a server's
//! offer) and what it needs from the remote description (ICE credentials, fingerprint, DTLS
//! role, the server's candidate). Parsing is sfu-core's; policy here is "what a browser would do".

use sfu_core::dtls::DtlsRole;
use sfu_core::sdp::{self, SdpMediaKind, Setup};
use std::fmt::Write as _;
use std::net::SocketAddr;

pub const OPUS_PT: u8 = 111;
pub const VP8_PT: u8 = 96;
pub const VP8_RTX_PT: u8 = 97;

/// What a client puts in every description it writes.
#[derive(Debug, Clone)]
pub struct LocalDescription {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// `AB:CD:...` SHA-256 of the client certificate.
    pub fingerprint: String,
    /// The client's UDP socket, announced as its one host candidate.
    pub candidate: SocketAddr,
}

/// SSRCs a publisher sends with.
#[derive(Debug, Clone, Copy)]
pub struct PublisherSsrcs {
    pub audio: Option<u32>,
    pub video: Option<(u32, u32)>,
}

/// What the client needs from the server's description to connect.
#[derive(Debug, Clone)]
pub struct RemoteDescription {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    pub fingerprint: Vec<u8>,
    pub dtls_role: DtlsRole,
    pub candidate: SocketAddr,
    /// Enabled audio/video m-lines: how many streams can flow.
    pub media_sections: usize,
}

impl LocalDescription {
    fn session(&self, mids: &[String], setup: &str) -> String {
        let mut s = String::with_capacity(4096);
        s.push_str("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        let _ = write!(
            s,
            "a=group:BUNDLE {}\r\na=msid-semantic: WMS\r\n",
            mids.join(" ")
        );
        let _ = write!(
            s,
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\na=fingerprint:sha-256 {}\r\na=setup:{setup}\r\n",
            self.ice_ufrag, self.ice_pwd, self.fingerprint
        );
        s
    }

    fn transport(&self, s: &mut String, first: bool) {
        s.push_str("c=IN IP4 127.0.0.1\r\na=rtcp:9 IN IP4 0.0.0.0\r\n");
        if first {
            let _ = write!(
                s,
                "a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
                self.candidate.ip(),
                self.candidate.port()
            );
        }
        s.push_str("a=rtcp-mux\r\n");
    }

    fn audio(&self, s: &mut String, mid: &str, direction: &str, first: bool) {
        let _ = write!(s, "m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}\r\n");
        self.transport(s, first);
        let _ = write!(
            s,
            "a=mid:{mid}\r\na={direction}\r\na=rtpmap:{OPUS_PT} opus/48000/2\r\na=fmtp:{OPUS_PT} minptime=10;useinbandfec=1\r\n"
        );
    }

    fn video(&self, s: &mut String, mid: &str, direction: &str, first: bool) {
        let _ = write!(s, "m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT} {VP8_RTX_PT}\r\n");
        self.transport(s, first);
        let _ = write!(
            s,
            "a=mid:{mid}\r\na={direction}\r\na=rtcp-rsize\r\na=rtpmap:{VP8_PT} VP8/90000\r\na=rtcp-fb:{VP8_PT} nack\r\n\
             a=rtcp-fb:{VP8_PT} nack pli\r\na=rtcp-fb:{VP8_PT} ccm fir\r\na=rtpmap:{VP8_RTX_PT} rtx/90000\r\n\
             a=fmtp:{VP8_RTX_PT} apt={VP8_PT}\r\n"
        );
    }

    /// A browser publishing a microphone and/or a camera, SSRCs announced.
    pub fn publisher_offer(&self, ssrcs: PublisherSsrcs, cname: &str) -> String {
        let mut mids = Vec::new();
        if ssrcs.audio.is_some() {
            mids.push("0".to_owned());
        }
        if ssrcs.video.is_some() {
            mids.push("1".to_owned());
        }
        let mut s = self.session(&mids, "actpass");
        let mut first = true;
        if let Some(ssrc) = ssrcs.audio {
            self.audio(&mut s, "0", "sendonly", first);
            let _ = write!(
                s,
                "a=msid:{cname} {cname}-audio\r\na=ssrc:{ssrc} cname:{cname}\r\n"
            );
            first = false;
        }
        if let Some((ssrc, rtx)) = ssrcs.video {
            self.video(&mut s, "1", "sendonly", first);
            let _ = write!(
                s,
                "a=msid:{cname} {cname}-video\r\na=ssrc-group:FID {ssrc} {rtx}\r\na=ssrc:{ssrc} cname:{cname}\r\na=ssrc:{rtx} cname:{cname}\r\n"
            );
        }
        s
    }

    /// A viewer with `audio` then `video` receive-only transceivers (WHEP).
    pub fn viewer_offer(&self, audio: usize, video: usize) -> String {
        let mids: Vec<String> = (0..audio)
            .map(|i| format!("a{i}"))
            .chain((0..video).map(|i| format!("v{i}")))
            .collect();
        let mut s = self.session(&mids, "actpass");
        for (i, mid) in mids.iter().enumerate() {
            if i < audio {
                self.audio(&mut s, mid, "recvonly", i == 0);
            } else {
                self.video(&mut s, mid, "recvonly", i == 0);
            }
        }
        s
    }

    /// Answers a server's offer (Janus subscribers) as a receive-only browser: Opus and VP8
    /// m-lines are accepted recvonly with the offerer's payload type, anything else is rejected.
    /// We take the DTLS client role (`a=setup:active`), as browsers do.
    pub fn answer(&self, offer: &sdp::SessionDescription) -> Result<String, String> {
        let mut accepted = Vec::new();
        let mut body = String::with_capacity(4096);
        for section in &offer.media {
            let mid = section.mid.clone().unwrap_or_default();
            let codec = match section.kind {
                SdpMediaKind::Audio => section.codecs.iter().find(|c| c.is("opus")),
                SdpMediaKind::Video => section.codecs.iter().find(|c| c.is("VP8")),
                _ => None,
            };
            let Some(codec) = codec.filter(|_| section.is_enabled() && !mid.is_empty()) else {
                let format = section.formats.first().map(String::as_str).unwrap_or("0");
                let _ = write!(
                    body,
                    "m={} 0 {} {format}\r\nc=IN IP4 0.0.0.0\r\n",
                    section.kind_name, section.protocol
                );
                if !mid.is_empty() {
                    let _ = write!(body, "a=mid:{mid}\r\n");
                }
                body.push_str("a=inactive\r\n");
                continue;
            };
            let pt = codec.payload_type;
            let _ = write!(body, "m={} 9 UDP/TLS/RTP/SAVPF {pt}\r\n", section.kind_name);
            self.transport(&mut body, accepted.is_empty());
            let channels = codec.channels.map(|c| format!("/{c}")).unwrap_or_default();
            let _ = write!(
                body,
                "a=mid:{mid}\r\na=recvonly\r\na=rtpmap:{pt} {}/{}{channels}\r\n",
                codec.name, codec.clock_rate
            );
            if let Some(fmtp) = &codec.fmtp {
                let _ = write!(body, "a=fmtp:{pt} {fmtp}\r\n");
            }
            for fb in codec
                .rtcp_fbs
                .iter()
                .filter(|fb| matches!(fb.as_str(), "nack" | "nack pli" | "ccm fir"))
            {
                let _ = write!(body, "a=rtcp-fb:{pt} {fb}\r\n");
            }
            accepted.push(mid);
        }
        if accepted.is_empty() {
            return Err("the offer has no Opus or VP8 m-line".into());
        }
        let mut s = self.session(&accepted, "active");
        s.push_str(&body);
        Ok(s)
    }
}

/// What the client needs from the server's offer or answer. `we_offered` says which side wrote
/// `text`: the DTLS role complements the remote `a=setup` (RFC 5763 §5).
pub fn remote_description(text: &str, we_offered: bool) -> Result<RemoteDescription, String> {
    let description = sdp::parse(text).map_err(|e| format!("remote SDP: {e:?}"))?;
    remote_from(&description, text, we_offered)
}

pub fn remote_from(
    description: &sdp::SessionDescription,
    text: &str,
    we_offered: bool,
) -> Result<RemoteDescription, String> {
    let (ufrag, pwd) = description
        .ice_credentials()
        .ok_or("remote SDP has no ICE credentials")?;
    let fingerprint = description
        .effective_fingerprint()
        .ok_or("remote SDP has no fingerprint")?;
    if fingerprint.algorithm != "sha-256" {
        return Err(format!(
            "remote fingerprint is {}, not sha-256",
            fingerprint.algorithm
        ));
    }
    let dtls_role = match (we_offered, description.effective_setup()) {
        // We offered actpass: an active answerer is the DTLS client.
        (true, Some(Setup::Active)) => DtlsRole::Server,
        (true, _) => DtlsRole::Client,
        // They offered: we answered active (see `LocalDescription::answer`).
        (false, _) => DtlsRole::Client,
    };
    let candidate = host_candidate(text).ok_or("remote SDP has no IPv4 UDP host candidate")?;
    if !candidate.ip().is_loopback() {
        return Err(format!("remote candidate {candidate} is not on loopback"));
    }
    let media_sections = description
        .media
        .iter()
        .filter(|m| matches!(m.kind, SdpMediaKind::Audio | SdpMediaKind::Video) && m.is_enabled())
        .count();
    Ok(RemoteDescription {
        ice_ufrag: ufrag.to_owned(),
        ice_pwd: pwd.to_owned(),
        fingerprint: fingerprint.value.clone(),
        dtls_role,
        candidate,
        media_sections,
    })
}

/// The first `a=candidate` for component 1 over UDP with an IPv4 address (RFC 8839 §5.1:
/// foundation, component, transport, priority, address, port, `typ`, type).
pub fn host_candidate(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let value = line.trim_end_matches('\r').strip_prefix("a=candidate:")?;
        let fields: Vec<&str> = value.split_whitespace().collect();
        let [_, component, transport, _, address, port, ..] = fields.as_slice() else {
            return None;
        };
        if *component != "1" || !transport.eq_ignore_ascii_case("udp") {
            return None;
        }
        let ip: std::net::Ipv4Addr = address.parse().ok()?;
        Some(SocketAddr::new(ip.into(), port.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalDescription {
        LocalDescription {
            ice_ufrag: "abcd".into(),
            ice_pwd: "0123456789abcdefghijklmn".into(),
            fingerprint: ["AB"; 32].join(":"),
            candidate: "127.0.0.1:5000".parse().expect("address"),
        }
    }

    #[test]
    fn a_publisher_offer_parses_and_announces_both_ssrcs() {
        let text = local().publisher_offer(
            PublisherSsrcs {
                audio: Some(1),
                video: Some((2, 3)),
            },
            "c7",
        );
        let offer = sdp::parse(&text).expect("our offer parses");
        assert_eq!(offer.media.len(), 2);
        assert_eq!(
            offer.media[1]
                .ssrcs
                .iter()
                .filter(|l| l.attribute == "cname")
                .count(),
            2
        );
        assert!(sdp::validate_offer(&offer).is_ok());
    }

    #[test]
    fn a_viewer_offer_has_one_bundle_with_every_receive_slot() {
        let offer = sdp::parse(&local().viewer_offer(2, 3)).expect("parses");
        assert_eq!(offer.bundle, ["a0", "a1", "v0", "v1", "v2"]);
        assert!(sdp::validate_offer(&offer).is_ok());
    }

    #[test]
    fn the_answer_to_a_server_offer_keeps_payload_types_and_rejects_what_it_cannot_play() {
        let head = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
             a=ice-ufrag:srv\r\na=ice-pwd:serverpasswordserverpass\r\na=fingerprint:sha-256 {}\r\na=setup:actpass\r\n",
            ["AA"; 32].join(":")
        );
        let body = "\
            m=audio 9 UDP/TLS/RTP/SAVPF 109\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n\
            a=rtpmap:109 opus/48000/2\r\na=candidate:1 1 udp 2015363327 127.0.0.1 20004 typ host\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 100\r\nc=IN IP4 127.0.0.1\r\na=mid:1\r\na=sendonly\r\na=rtcp-mux\r\n\
            a=rtpmap:100 VP8/90000\r\na=rtcp-fb:100 nack pli\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 98\r\nc=IN IP4 127.0.0.1\r\na=mid:2\r\na=sendonly\r\na=rtcp-mux\r\n\
            a=rtpmap:98 VP9/90000\r\n";
        let offer_text = format!("{head}{body}");
        let offer_text = offer_text.as_str();
        let offer = sdp::parse(offer_text).expect("parses");
        let answer =
            sdp::parse(&local().answer(&offer).expect("answers")).expect("our answer parses");
        assert_eq!(answer.bundle, ["0", "1"]);
        assert_eq!(answer.media[0].codecs[0].payload_type, 109);
        assert_eq!(answer.media[1].codecs[0].payload_type, 100);
        assert_eq!(answer.media[2].port, 0);
        assert_eq!(answer.effective_setup(), Some(Setup::Active));
        let remote = remote_from(&offer, offer_text, false).expect("usable");
        assert_eq!(
            remote.candidate,
            "127.0.0.1:20004".parse::<SocketAddr>().expect("address")
        );
        assert_eq!(remote.dtls_role, DtlsRole::Client);
        assert_eq!(remote.media_sections, 3);
    }

    #[test]
    fn host_candidate_skips_other_components_and_tcp() {
        let text = "a=candidate:1 2 udp 1 127.0.0.1 9 typ host\r\na=candidate:2 1 tcp 1 127.0.0.1 8 typ host\r\n\
                    a=candidate:3 1 UDP 1 127.0.0.1 7 typ host\r\n";
        assert_eq!(
            host_candidate(text),
            Some("127.0.0.1:7".parse::<SocketAddr>().expect("address"))
        );
        assert_eq!(host_candidate("a=candidate:garbage\r\n"), None);
    }
}
