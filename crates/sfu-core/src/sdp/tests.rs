//! Specs over real-world offers: each is parsed and answered, and the answer read back by our parser.
//!
//! `chrome_*`, `firefox_*` and `whip_*` fixtures are hand-written in those clients' styles;
//! `chromium156_*` and `firefox153_*` were captured verbatim from those browsers, whose
//! setRemoteDescription accepted our answers to them (and to their re-offers).

use super::*;
use std::net::SocketAddr;

const CHROME_SENDONLY: &str = include_str!("../../tests/data/sdp/chrome_sendonly.sdp");
const CHROME_RECVONLY: &str = include_str!("../../tests/data/sdp/chrome_recvonly.sdp");
const CHROME_SIMULCAST: &str = include_str!("../../tests/data/sdp/chrome_simulcast.sdp");
const CHROME_DATACHANNEL: &str = include_str!("../../tests/data/sdp/chrome_datachannel.sdp");
const FIREFOX: &str = include_str!("../../tests/data/sdp/firefox_sendrecv_recvonly.sdp");
const WHIP: &str = include_str!("../../tests/data/sdp/whip_obs_sendonly.sdp");
const CHROMIUM_PUBLISHER: &str = include_str!("../../tests/data/sdp/chromium156_publisher.sdp");
const CHROMIUM_SIMULCAST: &str = include_str!("../../tests/data/sdp/chromium156_simulcast.sdp");
const CHROMIUM_SUBSCRIBER: &str = include_str!("../../tests/data/sdp/chromium156_subscriber.sdp");
const CHROMIUM_DATACHANNEL_REOFFER: &str =
    include_str!("../../tests/data/sdp/chromium156_datachannel_reoffer.sdp");
const CHROMIUM_VP9_ONLY_AND_INACTIVE: &str =
    include_str!("../../tests/data/sdp/chromium156_vp9_only_and_inactive.sdp");
const CHROMIUM_STOPPED_REOFFER: &str =
    include_str!("../../tests/data/sdp/chromium156_stopped_reoffer.sdp");
const FIREFOX_SIMULCAST: &str = include_str!("../../tests/data/sdp/firefox153_simulcast.sdp");
const FIREFOX_MAX_BUNDLE: &str = include_str!("../../tests/data/sdp/firefox153_max_bundle.sdp");
const FIREFOX_STOPPED_REOFFER: &str =
    include_str!("../../tests/data/sdp/firefox153_stopped_reoffer.sdp");

const FIXTURES: [(&str, &str); 15] = [
    ("chrome_sendonly", CHROME_SENDONLY),
    ("chrome_recvonly", CHROME_RECVONLY),
    ("chrome_simulcast", CHROME_SIMULCAST),
    ("chrome_datachannel", CHROME_DATACHANNEL),
    ("firefox", FIREFOX),
    ("whip", WHIP),
    ("chromium156_publisher", CHROMIUM_PUBLISHER),
    ("chromium156_simulcast", CHROMIUM_SIMULCAST),
    ("chromium156_subscriber", CHROMIUM_SUBSCRIBER),
    (
        "chromium156_datachannel_reoffer",
        CHROMIUM_DATACHANNEL_REOFFER,
    ),
    (
        "chromium156_vp9_only_and_inactive",
        CHROMIUM_VP9_ONLY_AND_INACTIVE,
    ),
    ("chromium156_stopped_reoffer", CHROMIUM_STOPPED_REOFFER),
    ("firefox153_simulcast", FIREFOX_SIMULCAST),
    ("firefox153_max_bundle", FIREFOX_MAX_BUNDLE),
    ("firefox153_stopped_reoffer", FIREFOX_STOPPED_REOFFER),
];

/// The cut tests parse every prefix, so they run on these only (the captured offers are alike).
const HAND_WRITTEN: &[(&str, &str)] = FIXTURES.split_at(6).0;

const CANDIDATE: &str = "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host";

fn local() -> LocalTransport {
    LocalTransport {
        ice_ufrag: "sfu1".into(),
        ice_pwd: "0123456789abcdefABCDEF+/".into(),
        fingerprint_sha256: (0..32)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        candidate: SocketAddr::from(([203, 0, 113, 7], 40000)),
        setup: Setup::Passive,
    }
}

/// One negotiation as the engine runs it: every m-line selected, sendonly ones given a stream.
struct Negotiation {
    offer: SessionDescription,
    media: Vec<AnswerMedia>,
    text: String,
    answer: SessionDescription,
}

fn negotiate(sdp: &str) -> Negotiation {
    let offer = parse(sdp).expect("the offer parses");
    validate_offer(&offer).expect("the offer is one we can answer");
    let media: Vec<AnswerMedia> = offer
        .media
        .iter()
        .zip(100u32..)
        .map(|(section, n)| {
            let mut answer = select_media(section);
            if answer.accepted && answer.direction == Direction::SendOnly {
                answer.send = Some(SendStream {
                    ssrc: n,
                    rtx_ssrc: Some(n + 1000),
                    cname: "conclave".into(),
                    stream_id: "alice".into(),
                    track_id: format!("track-{n}"),
                });
            }
            answer
        })
        .collect();
    let text = write_answer(&offer, &local(), &media, 42);
    let answer = parse(&text).unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{text}"));
    let negotiation = Negotiation {
        offer,
        media,
        text,
        answer,
    };
    check_mirrors_offer(&negotiation);
    negotiation
}

/// What holds for every answer, whatever the offer.
fn check_mirrors_offer(n: &Negotiation) {
    let Negotiation {
        offer,
        media,
        text,
        answer,
    } = n;
    assert!(
        text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'),
        "CRLF only"
    );
    assert!(
        text.starts_with("v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"),
        "{text}"
    );
    assert!(answer.ice_lite);
    assert_eq!(answer.media.len(), offer.media.len());
    let accepted: Vec<&str> = media
        .iter()
        .filter(|m| m.accepted)
        .map(|m| m.mid.as_str())
        .collect();
    assert_eq!(answer.bundle, accepted);
    assert_eq!(text.matches(CANDIDATE).count(), accepted.len());
    assert_eq!(
        text.matches("a=end-of-candidates\r\n").count(),
        accepted.len()
    );
    for ((offered, ours), written) in offer.media.iter().zip(media).zip(&answer.media) {
        assert_eq!(written.mid, offered.mid, "same mids in the same order");
        assert_eq!(written.kind_name, offered.kind_name);
        assert_eq!(written.protocol, offered.protocol);
        if !ours.accepted {
            assert_eq!(written.port, 0);
            assert!(!written.is_rtp() || written.direction == Direction::Inactive);
            continue;
        }
        assert_eq!(written.port, 9);
        assert_eq!(written.direction, answered_direction(offered.direction));
        assert_eq!(written.ice_ufrag.as_deref(), Some("sfu1"));
        assert_eq!(written.ice_pwd.as_deref(), Some("0123456789abcdefABCDEF+/"));
        let fingerprint = written.fingerprint.as_ref().expect("a fingerprint");
        assert_eq!(
            (fingerprint.algorithm.as_str(), fingerprint.value.len()),
            ("sha-256", 32)
        );
        assert_eq!(written.setup, Some(Setup::Passive));
        assert!(written.rtcp_mux);
        assert_eq!(written.rtcp_rsize, offered.rtcp_rsize);
        for codec in &written.codecs {
            let original = offered
                .codec(codec.payload_type)
                .expect("payload types are the offer's");
            assert_eq!(
                (&codec.name, codec.clock_rate, codec.channels),
                (&original.name, original.clock_rate, original.channels)
            );
            if codec.is("rtx") {
                let apt = codec
                    .fmtp_param("apt")
                    .and_then(|pt| pt.parse::<u8>().ok())
                    .expect("rtx has apt");
                assert_eq!(
                    offered.rtx_for(apt),
                    Some(codec.payload_type),
                    "rtx apt is the offer's"
                );
                assert!(written.codec(apt).is_some(), "rtx follows a codec we kept");
            }
        }
        for extmap in &written.extmaps {
            assert!(
                offered
                    .extmaps
                    .iter()
                    .any(|e| e.id == extmap.id && e.uri == extmap.uri),
                "ext ids are the offer's"
            );
        }
        if let Some(send) = &ours.send {
            assert_eq!(written.ssrc_attribute(send.ssrc, "cname"), Some("conclave"));
            let msid = format!("alice {}", send.track_id);
            assert_eq!(
                written.ssrc_attribute(send.ssrc, "msid"),
                Some(msid.as_str())
            );
            assert_eq!(
                written.msid,
                Some(("alice".to_owned(), send.track_id.clone()))
            );
        }
    }
}

/// We never answer sendrecv: an m-line either publishes to us or subscribes.
fn answered_direction(offered: Direction) -> Direction {
    match offered {
        Direction::SendRecv | Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    }
}

fn pts(section: &MediaSection) -> Vec<u8> {
    section.codecs.iter().map(|c| c.payload_type).collect()
}

fn ext_ids(section: &MediaSection) -> Vec<u8> {
    section.extmaps.iter().map(|e| e.id).collect()
}

#[test]
fn chrome_sendonly_offer_parses_into_what_chrome_meant() {
    let offer = parse(CHROME_SENDONLY).expect("parses");
    assert_eq!(offer.origin_session_id, "3918457129873305521");
    assert_eq!(offer.bundle, ["0", "1"]);
    assert_eq!(
        offer.ice_credentials(),
        Some(("Qm7t", "h3Vx9kLr0aPzT5wYc2NbE8sJ"))
    );
    assert_eq!(offer.effective_setup(), Some(Setup::ActPass));
    assert_eq!(
        offer.effective_fingerprint().map(|f| f.value.len()),
        Some(32)
    );
    let [audio, video] = offer.media.as_slice() else {
        panic!("two m-lines")
    };
    assert_eq!(
        (audio.kind, audio.direction, audio.codecs.len()),
        (SdpMediaKind::Audio, Direction::SendOnly, 8)
    );
    assert_eq!(
        audio.codec(111).and_then(|c| c.fmtp.as_deref()),
        Some("minptime=10;useinbandfec=1")
    );
    assert_eq!(video.codecs.len(), 29);
    assert_eq!(video.codec(96).map(|c| c.rtcp_fbs.len()), Some(5));
    assert_eq!(
        (video.rtx_for(96), video.rtx_for(35), video.rtx_for(116)),
        (Some(97), Some(36), None)
    );
    assert_eq!(
        video.ssrc_groups,
        [SsrcGroup {
            semantics: "FID".into(),
            ssrcs: vec![2790165348, 1106470923]
        }]
    );
    assert_eq!(
        video.ssrc_attribute(2790165348, "cname"),
        Some("Vd3pQx8Lr2KmN7sA")
    );
    assert_eq!(
        video.msid.as_ref().map(|(s, _)| s.as_str()),
        Some("2f1c7a4e-5b0d-4c29-9e61-0d8b3a7f6c15")
    );
    assert!(video.rtcp_mux && video.rtcp_rsize);
    assert_eq!(ext_ids(video), [14, 2, 13, 3, 5, 6, 7, 8, 4, 10, 11]);
}

#[test]
fn chrome_publisher_is_answered_recvonly_with_vp8_then_h264_and_supported_extensions() {
    let n = negotiate(CHROME_SENDONLY);
    let [audio, video] = n.answer.media.as_slice() else {
        panic!("two m-lines")
    };
    assert_eq!(audio.direction, Direction::RecvOnly);
    // RED (RFC 2198) leads so that Chromium sends it.
    assert_eq!(pts(audio), [63, 111]);
    assert_eq!(audio.codecs[1].rtcp_fbs, ["transport-cc"]);
    assert_eq!(ext_ids(audio), [1, 2, 3, 4]);
    // VP8, then H264 pm=1 with 42e01f first, then VP9 and AV1 profile 0, each followed by its
    // rtx; pm=0, other VP9 profiles, red and ulpfec are dropped.
    assert_eq!(
        pts(video),
        [96, 97, 106, 107, 102, 103, 127, 125, 41, 42, 112, 113, 98, 99, 35, 36]
    );
    assert_eq!(
        video.codecs[0].rtcp_fbs,
        ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    );
    assert_eq!(ext_ids(video), [2, 3, 4, 10, 11]);
    assert!(
        video.ssrcs.is_empty(),
        "we announce no SSRC on a receiving m-line"
    );
    assert!(n.text.contains("a=msid-semantic: WMS *\r\n"));
}

#[test]
fn chrome_subscriber_is_answered_sendonly_with_our_ssrcs() {
    let n = negotiate(CHROME_RECVONLY);
    assert_eq!(n.answer.bundle, ["0", "1", "2"]);
    for (section, ours) in n.answer.media.iter().zip(&n.media) {
        assert_eq!(section.direction, Direction::SendOnly);
        let send = ours.send.as_ref().expect("a stream");
        if section.kind == SdpMediaKind::Video {
            assert_eq!(
                section.ssrc_groups,
                [SsrcGroup {
                    semantics: "FID".into(),
                    ssrcs: vec![send.ssrc, send.ssrc + 1000]
                }]
            );
            assert_eq!(
                section.ssrc_attribute(send.ssrc + 1000, "cname"),
                Some("conclave")
            );
        } else {
            assert!(
                section.ssrc_groups.is_empty(),
                "opus has no rtx, so no FID group"
            );
        }
    }
}

#[test]
fn chrome_simulcast_is_answered_with_recv_rids_in_the_offered_order() {
    let n = negotiate(CHROME_SIMULCAST);
    let offered = n.offer.media[1]
        .simulcast
        .as_ref()
        .expect("simulcast offered");
    assert_eq!(offered.send, [vec!["q"], vec!["h"], vec!["f"]]);
    let video = &n.answer.media[1];
    let rids: Vec<(&str, &str)> = video
        .rids
        .iter()
        .map(|r| (r.id.as_str(), r.direction.as_str()))
        .collect();
    assert_eq!(rids, [("q", "recv"), ("h", "recv"), ("f", "recv")]);
    let answered = video.simulcast.as_ref().expect("simulcast answered");
    assert_eq!(
        (&answered.recv, answered.send.is_empty()),
        (&offered.send, true)
    );
    assert!(
        ext_ids(video).contains(&10),
        "rtp-stream-id is kept for simulcast"
    );
    assert!(n.answer.media[0].simulcast.is_none());
}

#[test]
fn firefox_offer_uses_session_fingerprint_and_its_own_extmap_ids() {
    let n = negotiate(FIREFOX);
    assert!(
        n.offer.fingerprint.is_some(),
        "Firefox puts the fingerprint at session level"
    );
    assert_eq!(
        n.offer.ice_credentials(),
        Some(("e4a29b7c", "7c1f0e93b2d84a6f95e0c3a18d2b47f6"))
    );
    let [audio, sent, received] = n.answer.media.as_slice() else {
        panic!("three m-lines")
    };
    assert_eq!(
        (audio.direction, sent.direction, received.direction),
        (
            Direction::RecvOnly,
            Direction::RecvOnly,
            Direction::SendOnly
        )
    );
    assert_eq!(pts(audio), [109]);
    assert_eq!(ext_ids(audio), [1, 3]);
    // H264 97 lacks packetization-mode=1; 126 (42e01f) goes before 105; VP9 last.
    assert_eq!(pts(sent), [120, 124, 126, 127, 105, 106, 121, 125]);
    assert_eq!(ext_ids(sent), [3, 4, 7]);
    assert!(n.offer.media[2].ssrcs.is_empty());
    assert!(!received.ssrcs.is_empty());
}

#[test]
fn whip_offer_with_session_level_transport_is_answered() {
    let n = negotiate(WHIP);
    assert_eq!(
        n.offer.media[1].ice_ufrag.as_deref(),
        Some("Ly5w"),
        "session-level ufrag applies to the m-line"
    );
    assert_eq!(n.offer.media[1].setup, Some(Setup::ActPass));
    assert_eq!(pts(&n.answer.media[0]), [111]);
    assert_eq!(pts(&n.answer.media[1]), [96]);
    assert_eq!(
        n.answer.media[1].codecs[0].rtcp_fbs,
        ["nack", "nack pli", "goog-remb"]
    );
}

#[test]
fn data_channel_m_line_is_rejected_in_place_and_left_out_of_bundle() {
    let n = negotiate(CHROME_DATACHANNEL);
    assert_eq!(n.answer.bundle, ["0", "1"]);
    let data = &n.answer.media[2];
    assert_eq!(
        (data.kind, data.port, data.mid.as_deref()),
        (SdpMediaKind::Application, 0, Some("2"))
    );
    assert!(
        n.text.contains(
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"
        ),
        "{}",
        n.text
    );
}

/// VP8 first, then only H264 with packetization-mode=1, Constrained Baseline 42e01f first, then
/// VP9 and AV1 profile 0.
fn check_video_preference(section: &MediaSection) {
    let primaries: Vec<&Codec> = section.codecs.iter().filter(|c| !c.is("rtx")).collect();
    assert!(primaries[0].is("VP8"), "VP8 first");
    let h264: Vec<&Codec> = primaries.iter().copied().filter(|c| c.is("H264")).collect();
    let svc: Vec<&Codec> = primaries
        .iter()
        .copied()
        .filter(|c| c.is("VP9") || c.is("AV1"))
        .collect();
    assert!(svc.len() <= 2, "one VP9 and one AV1 at most");
    assert_eq!(
        h264.len() + svc.len() + 1,
        primaries.len(),
        "only VP8, H264, VP9, AV1"
    );
    assert!(h264
        .iter()
        .all(|c| c.fmtp_param("packetization-mode") == Some("1")));
    assert_eq!(
        h264.first().and_then(|c| c.fmtp_param("profile-level-id")),
        Some("42e01f")
    );
    for codec in &primaries {
        let rtx = section
            .rtx_for(codec.payload_type)
            .expect("Chromium offers rtx for every video codec");
        let at = section
            .codecs
            .iter()
            .position(|c| c.payload_type == codec.payload_type)
            .expect("present");
        assert_eq!(
            section.codecs[at + 1].payload_type,
            rtx,
            "rtx follows its codec"
        );
    }
}

#[test]
fn captured_chromium_offers_are_answered_like_the_hand_written_ones() {
    for sdp in [
        CHROMIUM_PUBLISHER,
        CHROMIUM_SIMULCAST,
        CHROMIUM_SUBSCRIBER,
        CHROMIUM_DATACHANNEL_REOFFER,
    ] {
        let n = negotiate(sdp);
        for section in n
            .answer
            .media
            .iter()
            .filter(|m| m.kind == SdpMediaKind::Video && m.port != 0)
        {
            check_video_preference(section);
        }
        for section in n
            .answer
            .media
            .iter()
            .filter(|m| m.kind == SdpMediaKind::Audio)
        {
            assert_eq!(pts(section), [63, 111], "RED around Opus, leading");
        }
    }
    let simulcast = negotiate(CHROMIUM_SIMULCAST);
    let recv = simulcast.answer.media[1]
        .simulcast
        .as_ref()
        .map(|s| s.recv.clone());
    assert_eq!(
        recv,
        Some(vec![
            vec!["q".to_owned()],
            vec!["h".to_owned()],
            vec!["f".to_owned()]
        ])
    );
    let data = negotiate(CHROMIUM_DATACHANNEL_REOFFER);
    assert_eq!(
        (data.offer.media[2].port, data.answer.media[2].port),
        (0, 0),
        "still rejected on re-offer"
    );
}

#[test]
fn a_vp9_only_m_line_is_accepted_and_inactive_m_lines_are_rejected_and_leave_the_bundle() {
    let n = negotiate(CHROMIUM_VP9_ONLY_AND_INACTIVE);
    let states: Vec<(u16, Direction)> = n
        .answer
        .media
        .iter()
        .map(|m| (m.port, m.direction))
        .collect();
    assert_eq!(
        states,
        [
            (9, Direction::SendOnly),
            (0, Direction::Inactive),
            (9, Direction::SendOnly)
        ]
    );
    assert_eq!(
        pts(&n.answer.media[0]),
        [98, 99],
        "VP9 profile 0 and its rtx"
    );
    assert_eq!(n.answer.bundle, ["0", "2"]);
    let reoffer = negotiate(CHROMIUM_STOPPED_REOFFER);
    assert_eq!(reoffer.offer.bundle, ["2"]);
    assert_eq!(
        reoffer
            .answer
            .media
            .iter()
            .map(|m| m.port)
            .collect::<Vec<_>>(),
        [0, 0, 9]
    );
}

#[test]
fn firefox_simulcast_gets_recv_rids_and_complemented_extension_directions() {
    let n = negotiate(FIREFOX_SIMULCAST);
    let video = &n.answer.media[1];
    let rids: Vec<&str> = video.rids.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(rids, ["q", "h", "f"]);
    // Firefox offers the rid extensions sendonly; we only receive them.
    let rid_ext = video
        .extmaps
        .iter()
        .find(|e| e.uri.ends_with("sdes:rtp-stream-id"));
    assert_eq!(
        rid_ext.map(|e| (e.id, e.direction)),
        Some((9, Some(Direction::RecvOnly)))
    );
    assert_eq!(
        pts(video),
        [120, 124, 121, 125, 99, 100],
        "this Firefox build has no H264"
    );
}

#[test]
fn firefox_max_bundle_port_zero_bundle_only_m_lines_are_accepted() {
    let n = negotiate(FIREFOX_MAX_BUNDLE);
    let offered: Vec<(u16, bool)> = n
        .offer
        .media
        .iter()
        .map(|m| (m.port, m.bundle_only))
        .collect();
    assert_eq!(offered, [(9, false), (0, true), (0, true)]);
    assert_eq!(n.answer.bundle, ["0", "1", "2"]);
    assert!(n.answer.media.iter().all(|m| m.port == 9 && !m.bundle_only));
}

#[test]
fn firefox_stopped_m_lines_are_answered_rejected() {
    let n = negotiate(FIREFOX_STOPPED_REOFFER);
    let offered: Vec<(u16, Direction)> = n
        .offer
        .media
        .iter()
        .map(|m| (m.port, m.direction))
        .collect();
    assert_eq!(
        offered,
        [
            (0, Direction::Inactive),
            (0, Direction::Inactive),
            (9, Direction::RecvOnly)
        ]
    );
    assert_eq!(
        n.answer.media.iter().map(|m| m.port).collect::<Vec<_>>(),
        [0, 0, 9]
    );
    assert_eq!(n.answer.bundle, ["2"]);
}

#[test]
fn every_fixture_survives_the_fuzz_entry_point() {
    for (_, sdp) in FIXTURES {
        fuzz_parse(sdp.as_bytes());
    }
}

fn with_replaced(sdp: &str, from: &str, to: &str) -> String {
    assert!(sdp.contains(from), "fixture has {from:?}");
    sdp.replace(from, to)
}

#[test]
fn offers_the_engine_cannot_answer_fail_validation_with_a_reason() {
    let sha1 = ["AB"; 20].join(":");
    let cases = [
        (with_replaced(WHIP, "a=group:BUNDLE 0 1\r\n", ""), "BUNDLE"),
        (
            with_replaced(CHROME_SENDONLY, "a=group:BUNDLE 0 1\r\n", ""),
            "BUNDLE",
        ),
        (
            with_replaced(WHIP, "a=group:BUNDLE 0 1\r\n", "a=group:BUNDLE 0\r\n"),
            "BUNDLE",
        ),
        (
            with_replaced(CHROME_SENDONLY, "a=rtcp-mux\r\n", ""),
            "rtcp-mux",
        ),
        (
            with_replaced(WHIP, "a=ice-pwd:Rk2fP8vT0qXn6bZc4mHs1dGa\r\n", ""),
            "ice-pwd",
        ),
        (
            with_replaced(
                WHIP,
                "a=ice-pwd:Rk2fP8vT0qXn6bZc4mHs1dGa\r\n",
                "a=ice-pwd:short\r\n",
            ),
            "ice-pwd",
        ),
        (
            with_replaced(WHIP, "a=setup:actpass", "a=setup:holdconn"),
            "holdconn",
        ),
        (
            WHIP.lines()
                .filter(|l| !l.starts_with("a=fingerprint"))
                .map(|l| format!("{l}\r\n"))
                .collect(),
            "fingerprint",
        ),
        (
            WHIP.lines()
                .map(|l| {
                    if l.starts_with("a=fingerprint") {
                        format!("a=fingerprint:sha-1 {sha1}\r\n")
                    } else {
                        format!("{l}\r\n")
                    }
                })
                .collect(),
            "sha-1",
        ),
    ];
    for (sdp, reason) in cases {
        let offer = parse(&sdp).expect("still valid SDP");
        let error = validate_offer(&offer).expect_err(reason);
        assert!(
            error.to_string().contains(reason),
            "{error} should mention {reason}"
        );
        assert!(matches!(error, SdpError::Unsupported { .. }));
    }
}

#[test]
fn broken_sdp_is_an_error_naming_the_line() {
    let garbage =
        String::from_utf8_lossy(&[0xff, 0x00, 0x13, 0x37, b'\n', 0xc3, 0x28, b'\r', b'\n'])
            .into_owned();
    let cases: Vec<(&str, String, Option<usize>)> = vec![
        ("empty", String::new(), None),
        ("whitespace", " \r\n\t".into(), None),
        ("no v=", CHROME_SENDONLY.replacen("v=0\r\n", "", 1), Some(1)),
        ("v=1", CHROME_SENDONLY.replacen("v=0", "v=1", 1), Some(1)),
        ("garbage bytes", garbage, Some(1)),
        (
            "no o=",
            with_replaced(WHIP, "o=rtc 2871069453 0 IN IP4 127.0.0.1\r\n", ""),
            Some(12),
        ),
        (
            "short o=",
            with_replaced(WHIP, "o=rtc 2871069453 0 IN IP4 127.0.0.1", "o=rtc 1 0"),
            Some(2),
        ),
        (
            "m-line without mid",
            with_replaced(WHIP, "a=mid:1\r\n", ""),
            Some(26),
        ),
        (
            "rtpmap pt 300",
            with_replaced(WHIP, "a=rtpmap:96 H264", "a=rtpmap:300 H264"),
            Some(34),
        ),
        (
            "m-line pt 300",
            with_replaced(WHIP, "SAVPF 96", "SAVPF 300"),
            Some(26),
        ),
        (
            "rtpmap pt not on the m-line",
            with_replaced(WHIP, "a=rtpmap:96 H264", "a=rtpmap:97 H264"),
            Some(34),
        ),
        (
            "fingerprint bad hex",
            with_replaced(WHIP, "a=fingerprint:sha-256 ", "a=fingerprint:sha-256 G7:"),
            Some(12),
        ),
        (
            "fingerprint odd digit",
            with_replaced(FIREFOX, "a=fingerprint:sha-256 ", "a=fingerprint:sha-256 A"),
            Some(5),
        ),
        ("bare CR line ending", WHIP.replace("\r\n", "\r"), Some(1)),
        (
            "line without =",
            with_replaced(WHIP, "a=rtcp-mux", "a rtcp-mux"),
            Some(20),
        ),
        (
            "duplicate mid",
            with_replaced(WHIP, "a=mid:1", "a=mid:0"),
            Some(28),
        ),
        (
            "bad setup",
            with_replaced(WHIP, "a=setup:actpass", "a=setup:maybe"),
            Some(8),
        ),
        (
            "bad ice-ufrag",
            with_replaced(WHIP, "a=ice-ufrag:Ly5w", "a=ice-ufrag:Ly5w!"),
            Some(9),
        ),
        (
            "rid with a bad name",
            with_replaced(CHROME_SIMULCAST, "a=rid:q send", "a=rid:q! send"),
            Some(182),
        ),
        (
            "simulcast naming a rid twice",
            with_replaced(CHROME_SIMULCAST, "send q;h;f", "send q;h;q"),
            Some(185),
        ),
        (
            "extmap id 0",
            with_replaced(CHROME_SENDONLY, "a=extmap:1 ", "a=extmap:0 "),
            Some(17),
        ),
        ("too large", "v=0\r\n".repeat(MAX_SDP_BYTES / 5 + 1), None),
    ];
    for (name, sdp, line) in cases {
        let error = match parse(&sdp) {
            Err(error) => error,
            Ok(_) => panic!("{name}: parsed"),
        };
        assert!(!error.to_string().is_empty());
        if let Some(line) = line {
            assert_eq!(error.line(), Some(line), "{name}: {error}");
            assert!(
                error.to_string().contains(&format!("line {line}")),
                "{name}: {error}"
            );
        }
    }
}

#[test]
fn a_fingerprint_with_a_non_hex_digit_is_a_syntax_error() {
    let sdp = with_replaced(
        FIREFOX,
        "a=fingerprint:sha-256 ",
        "a=fingerprint:sha-256 ZZ:",
    );
    assert!(matches!(parse(&sdp), Err(SdpError::Syntax { line: 5, .. })));
}

/// Byte offsets just past each line ending.
fn line_ends(sdp: &str) -> Vec<usize> {
    sdp.match_indices('\n').map(|(i, _)| i + 1).collect()
}

#[test]
fn an_offer_cut_inside_a_line_is_truncated() {
    for (name, sdp) in HAND_WRITTEN {
        for end in line_ends(sdp) {
            // Cut before the line ending: the last line has no terminator.
            let cut = sdp[..end].trim_end_matches(['\r', '\n']);
            if cut.trim().is_empty() {
                continue;
            }
            let lines = cut.matches('\n').count() + 1;
            assert_eq!(
                parse(cut),
                Err(SdpError::Truncated { line: lines }),
                "{name} cut at byte {}",
                cut.len()
            );
        }
    }
}

#[test]
fn an_offer_cut_at_a_line_boundary_never_panics_and_is_refused_where_incomplete() {
    for (name, sdp) in HAND_WRITTEN {
        for end in line_ends(sdp) {
            let cut = &sdp[..end];
            fuzz_parse(cut.as_bytes());
            // SDP has no length field: a prefix ending in a complete line can be a valid offer,
            // but not when it stops before the session is complete or before an m-line's mid.
            let last_m = cut.rfind("\nm=");
            let has_m = last_m.is_some();
            let stops_before_mid = last_m.is_some_and(|at| {
                let section = &cut[at + 1..];
                let needs_mid = (section.starts_with("m=audio ")
                    || section.starts_with("m=video "))
                    && !section.starts_with("m=audio 0 ")
                    && !section.starts_with("m=video 0 ");
                needs_mid && !section.contains("\na=mid:")
            });
            let session_incomplete = !has_m && !cut.contains("\ns=");
            if stops_before_mid || session_incomplete {
                assert!(parse(cut).is_err(), "{name} cut at byte {end} parsed");
            }
        }
    }
}

/// xorshift64*: seeded, so every failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, sdp: &[u8]) -> Vec<u8> {
    let mut bytes = sdp.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len());
        match rng.below(8) {
            0 => bytes[at] = rng.next() as u8,
            1 => bytes.insert(at, rng.next() as u8),
            2 => {
                let len = rng.below(64).min(bytes.len() - at);
                bytes.drain(at..at + len);
            }
            3 => bytes.truncate(at),
            4 => bytes
                .splice(at..at, b"4294967296".iter().copied())
                .for_each(drop),
            5 => bytes.insert(at, b'\r'),
            6 => {
                // Duplicate a whole line somewhere else.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                let line = lines[rng.below(lines.len())].as_bytes().to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, line).for_each(drop);
            }
            _ => {
                // Swap two lines.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(a, b);
                bytes = lines.concat().into_bytes();
            }
        }
        if bytes.is_empty() {
            break;
        }
    }
    bytes
}

#[test]
fn seeded_random_mutations_never_panic_and_answers_always_reparse() {
    let mut rng = Rng(0x5eed_5d90_0000_0001);
    let mut refused = 0;
    let mut total = 0;
    for (_, sdp) in FIXTURES {
        for _ in 0..120 {
            let mutated = mutate(&mut rng, sdp.as_bytes());
            // fuzz_parse answers whatever parses and panics if our answer does not parse back.
            fuzz_parse(&mutated);
            total += 1;
            refused += usize::from(parse(&String::from_utf8_lossy(&mutated)).is_err());
        }
    }
    // Many mutations land in free text (cnames, fmtp) and stay valid; most must still be caught.
    assert!(
        refused * 2 > total,
        "only {refused} of {total} mutations were refused"
    );
}

#[test]
fn random_bytes_are_refused() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(parse(&String::from_utf8_lossy(&bytes)).is_err());
        fuzz_parse(&bytes);
    }
}
