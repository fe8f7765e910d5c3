//! Dev-only simulated WebRTC peers for sfu-core's tests: each peer speaks real STUN, DTLS and SRTP
//! to an `Engine` over a simulated network with simulated time, so whole sessions run in
//! milliseconds without sockets or sleeps.

pub mod alloc_counter;
pub mod congestion;
pub mod link;
pub mod packet_path;

use hmac::{Hmac, Mac};
use sfu_core::dtls::{DtlsIdentity, DtlsOutcome, DtlsRole, DtlsTransport};
use sfu_core::{
    rtp, sdp, srtp, Engine, EngineConfig, Event, Input, MediaKind, Output, PeerId, TrackId,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The engine's address on the simulated network.
pub const SERVER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    40000,
);

/// Ports simulated engines listen on ([`SERVER`] and others made by [`SimNetwork::at`]);
/// peers use other ports.
pub const ENGINE_PORTS: std::ops::Range<u16> = 40000..40010;

/// An RTP packet a simulated peer decrypted.
#[derive(Debug, Clone)]
pub struct ReceivedRtp {
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
    /// The transport-wide sequence number, if the packet carried one.
    pub transport_sequence: Option<u16>,
    /// Every header extension element, `(id, value)`, in packet order.
    pub extensions: Vec<(u8, Vec<u8>)>,
}

pub struct SimPeer {
    pub name: String,
    pub address: SocketAddr,
    identity: DtlsIdentity,
    dtls: Option<DtlsTransport>,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    remote_ufrag: String,
    remote_pwd: String,
    srtp_outbound: Option<srtp::SrtpContext>,
    srtp_inbound: Option<srtp::SrtpContext>,
    pub connected: bool,
    pub received_rtp: Vec<ReceivedRtp>,
    pub received_rtcp: Vec<Vec<u8>>,
    pub answer: Option<sdp::SessionDescription>,
    outbox: VecDeque<Vec<u8>>,
    transaction: u32,
}

pub const AUDIO_SSRC: u32 = 0x1111_0001;
pub const VIDEO_SSRC: u32 = 0x2222_0001;
pub const VIDEO_RTX_SSRC: u32 = 0x2222_0002;
pub const OPUS_PT: u8 = 111;
/// RFC 2198 RED around Opus, as Chromium numbers it.
pub const RED_PT: u8 = 63;
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The transport-wide sequence number extension id in the simulated offers' video m-lines.
pub const TWCC_EXT: u8 = 5;
pub const VP8_PT: u8 = 96;
pub const VP8_RTX_PT: u8 = 97;

impl SimPeer {
    pub fn new(name: &str, port: u16) -> Self {
        SimPeer {
            name: name.to_owned(),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            identity: DtlsIdentity::generate().expect("certificate"),
            dtls: None,
            ice_ufrag: format!("{name}Uf"),
            ice_pwd: format!("{name}Password0123456789abcd"),
            remote_ufrag: String::new(),
            remote_pwd: String::new(),
            srtp_outbound: None,
            srtp_inbound: None,
            connected: false,
            received_rtp: Vec::new(),
            received_rtcp: Vec::new(),
            answer: None,
            outbox: VecDeque::new(),
            transaction: 0,
        }
    }

    fn session_header(&self) -> String {
        format!(
            "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{{BUNDLE}}a=msid-semantic: WMS\r\n\
             a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:sha-256 {}\r\na=setup:actpass\r\n",
            self.ice_ufrag,
            self.ice_pwd,
            self.identity.fingerprint_sha256()
        )
    }

    fn audio_section(mid: &str, direction: &str, ssrc: Option<u32>) -> String {
        let mut s = format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=mid:{mid}\r\n\
             a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
             a={direction}\r\na=rtcp-mux\r\na=rtpmap:{OPUS_PT} opus/48000/2\r\na=fmtp:{OPUS_PT} minptime=10;useinbandfec=1\r\n"
        );
        if let Some(ssrc) = ssrc {
            s.push_str(&format!(
                "a=msid:sim-stream sim-audio\r\na=ssrc:{ssrc} cname:sim\r\n"
            ));
        }
        s
    }

    fn video_section(mid: &str, direction: &str, ssrcs: Option<(u32, u32)>) -> String {
        let mut s = format!(
            "m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT} {VP8_RTX_PT}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=mid:{mid}\r\n\
             a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:5 {TWCC_URI}\r\na={direction}\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
             a=rtpmap:{VP8_PT} VP8/90000\r\na=rtcp-fb:{VP8_PT} nack\r\na=rtcp-fb:{VP8_PT} nack pli\r\na=rtcp-fb:{VP8_PT} ccm fir\r\na=rtcp-fb:{VP8_PT} transport-cc\r\n\
             a=rtpmap:{VP8_RTX_PT} rtx/90000\r\na=fmtp:{VP8_RTX_PT} apt={VP8_PT}\r\n"
        );
        if let Some((ssrc, rtx)) = ssrcs {
            s.push_str(&format!(
                "a=msid:sim-stream sim-video\r\na=ssrc-group:FID {ssrc} {rtx}\r\na=ssrc:{ssrc} cname:sim\r\na=ssrc:{rtx} cname:sim\r\n"
            ));
        }
        s
    }

    fn offer(&self, sections: Vec<(String, String)>) -> String {
        let mids: Vec<&str> = sections.iter().map(|(mid, _)| mid.as_str()).collect();
        let header = self.session_header().replace(
            "{BUNDLE}",
            &format!("a=group:BUNDLE {}\r\n", mids.join(" ")),
        );
        sections.iter().fold(header, |mut acc, (_, s)| {
            acc.push_str(s);
            acc
        })
    }

    /// A browser publishing one microphone and one camera (sendonly, with SSRCs announced).
    pub fn publisher_offer(&self) -> String {
        self.offer(vec![
            (
                "0".into(),
                Self::audio_section("0", "sendonly", Some(AUDIO_SSRC)),
            ),
            (
                "1".into(),
                Self::video_section("1", "sendonly", Some((VIDEO_SSRC, VIDEO_RTX_SSRC))),
            ),
        ])
    }

    /// A viewer with `audio` + `video` receive-only transceivers.
    pub fn subscriber_offer(&self, audio: usize, video: usize) -> String {
        let mut sections = Vec::new();
        for i in 0..audio {
            let mid = format!("a{i}");
            sections.push((mid.clone(), Self::audio_section(&mid, "recvonly", None)));
        }
        for i in 0..video {
            let mid = format!("v{i}");
            sections.push((mid.clone(), Self::video_section(&mid, "recvonly", None)));
        }
        self.offer(sections)
    }

    pub fn apply_answer(&mut self, answer_text: &str) {
        let answer = sdp::parse(answer_text).expect("the engine's answer parses");
        let (ufrag, pwd) = answer
            .ice_credentials()
            .expect("answer has ICE credentials");
        self.remote_ufrag = ufrag.to_owned();
        self.remote_pwd = pwd.to_owned();
        let fingerprint = answer
            .effective_fingerprint()
            .expect("answer has a fingerprint")
            .value
            .clone();
        let role = match answer.effective_setup() {
            Some(sdp::Setup::Active) => DtlsRole::Server,
            _ => DtlsRole::Client,
        };
        if self.dtls.is_none() {
            self.dtls = Some(DtlsTransport::new(&self.identity, role, fingerprint).expect("dtls"));
        }
        self.answer = Some(answer);
    }

    /// Queues a STUN Binding request as the controlling ICE agent would send it.
    pub fn send_connectivity_check(&mut self, use_candidate: bool) {
        self.transaction += 1;
        let mut transaction_id = [0u8; 12];
        transaction_id[..4].copy_from_slice(&self.transaction.to_be_bytes());
        let username = format!("{}:{}", self.remote_ufrag, self.ice_ufrag);
        let request = binding_request(
            &transaction_id,
            &username,
            self.remote_pwd.as_bytes(),
            use_candidate,
        );
        self.outbox.push_back(request);
    }

    /// Datagrams queued for the engine and not yet delivered.
    pub fn pending_datagrams(&self) -> &VecDeque<Vec<u8>> {
        &self.outbox
    }

    /// Takes the oldest queued datagram instead of letting the network deliver it.
    pub fn take_pending(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Queues an unmodified datagram (for garbage tests).
    pub fn send_raw(&mut self, data: Vec<u8>) {
        self.outbox.push_back(data);
    }

    /// Sends RTP with header extensions, e.g. MID and RID for simulcast: `(id, value)`.
    #[allow(clippy::too_many_arguments)]
    pub fn send_rtp_with_extensions(
        &mut self,
        payload_type: u8,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        extensions: &[(u8, &[u8])],
    ) {
        let mut packet = Vec::with_capacity(1500);
        rtp::RtpHeaderWriter {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            extensions,
        }
        .write(&mut packet)
        .expect("valid extensions");
        packet.extend_from_slice(payload);
        let outbound = self
            .srtp_outbound
            .as_mut()
            .expect("connected before sending media");
        outbound.protect_rtp(&mut packet).expect("protect");
        self.outbox.push_back(packet);
    }

    /// A browser publishing one camera as three simulcast encodings `q`, `h`, `f` (by RID,
    /// no SSRCs announced), with the MID and RID header extensions.
    pub fn simulcast_offer(&self) -> String {
        let video = format!(
            "m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT} {VP8_RTX_PT}\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
             a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\na=sendonly\r\na=msid:sim-stream sim-video\r\n\
             a=rtcp-mux\r\na=rtpmap:{VP8_PT} VP8/90000\r\na=rtcp-fb:{VP8_PT} nack\r\na=rtcp-fb:{VP8_PT} nack pli\r\n\
             a=rtpmap:{VP8_RTX_PT} rtx/90000\r\na=fmtp:{VP8_RTX_PT} apt={VP8_PT}\r\n\
             a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n"
        );
        self.offer(vec![("0".into(), video)])
    }

    pub fn send_rtp(
        &mut self,
        payload_type: u8,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let mut packet = Vec::with_capacity(1500);
        packet.push(0x80);
        packet.push(((marker as u8) << 7) | payload_type);
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        let outbound = self
            .srtp_outbound
            .as_mut()
            .expect("connected before sending media");
        outbound.protect_rtp(&mut packet).expect("protect");
        self.outbox.push_back(packet);
    }

    /// PLIs (keyframe requests) received so far for `media_ssrc`.
    pub fn plis_received(&self, media_ssrc: u32) -> usize {
        self.received_rtcp
            .iter()
            .flat_map(|compound| sfu_core::rtcp::packets(compound).filter_map(Result::ok))
            .filter(|packet| {
                matches!(packet, sfu_core::rtcp::RtcpPacket::Pli { media_ssrc: ssrc, .. } if *ssrc == media_ssrc)
            })
            .count()
    }

    /// Every sequence number of `media_ssrc` the peer was asked for in a generic NACK, in order.
    pub fn nacked(&self, media_ssrc: u32) -> Vec<u16> {
        self.received_rtcp
            .iter()
            .flat_map(|compound| sfu_core::rtcp::packets(compound).filter_map(Result::ok))
            .filter_map(|packet| match packet {
                sfu_core::rtcp::RtcpPacket::Nack(nack) if nack.media_ssrc == media_ssrc => {
                    Some(nack.lost().collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Queues an RTCP compound packet (plain; protected here).
    pub fn send_rtcp(&mut self, mut packet: Vec<u8>) {
        let outbound = self
            .srtp_outbound
            .as_mut()
            .expect("connected before sending RTCP");
        outbound.protect_rtcp(&mut packet).expect("protect");
        self.outbox.push_back(packet);
    }

    fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        match data.first() {
            Some(0..=3) => {} // STUN responses: the check worked.
            Some(20..=63) => {
                let Some(dtls) = self.dtls.as_mut() else {
                    return;
                };
                let outcome = dtls.handle_datagram(now, data);
                self.after_dtls(outcome);
            }
            Some(128..=191) => {
                let Some(inbound) = self.srtp_inbound.as_mut() else {
                    return;
                };
                let mut buffer = data.to_vec();
                if data.len() > 1 && (192..=223).contains(&data[1]) {
                    if let Ok(len) = inbound.unprotect_rtcp(&mut buffer) {
                        buffer.truncate(len);
                        self.received_rtcp.push(buffer);
                    }
                } else if let Ok(len) = inbound.unprotect_rtp(&mut buffer) {
                    buffer.truncate(len);
                    if let Ok(h) = rtp::parse_rtp(&buffer) {
                        self.received_rtp.push(ReceivedRtp {
                            ssrc: h.ssrc,
                            payload_type: h.payload_type,
                            sequence: h.sequence,
                            timestamp: h.timestamp,
                            marker: h.marker,
                            payload: buffer[h.payload_start..h.payload_end].to_vec(),
                            transport_sequence: rtp::extensions(&buffer, &h)
                                .find(|(id, _)| *id == TWCC_EXT)
                                .and_then(|(_, v)| <[u8; 2]>::try_from(v).ok())
                                .map(u16::from_be_bytes),
                            extensions: rtp::extensions(&buffer, &h)
                                .map(|(id, value)| (id, value.to_vec()))
                                .collect(),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn after_dtls(&mut self, outcome: DtlsOutcome) {
        if let Some(dtls) = self.dtls.as_mut() {
            while let Some(datagram) = dtls.poll_transmit() {
                self.outbox.push_back(datagram.to_vec());
            }
        }
        if let DtlsOutcome::Connected(keys) = outcome {
            let profile = srtp::SrtpProfile::from_dtls_id(keys.profile_id).expect("profile");
            let (outbound, inbound) =
                srtp::contexts_from_keying_material(profile, &keys.material, keys.we_are_client);
            self.srtp_outbound = Some(outbound);
            self.srtp_inbound = Some(inbound);
            self.connected = true;
        }
    }

    fn start_dtls(&mut self, now: Instant) {
        if let Some(dtls) = self.dtls.as_mut() {
            let outcome = dtls.start(now);
            self.after_dtls(outcome);
        }
    }

    /// The SSRC the engine announced for the answer's m-line `mid`.
    pub fn announced_ssrc(&self, mid: &str) -> Option<u32> {
        let answer = self.answer.as_ref()?;
        let section = answer
            .media
            .iter()
            .find(|m| m.mid.as_deref() == Some(mid))?;
        section.ssrcs.first().map(|l| l.ssrc)
    }
}

/// `offer` with RED (`red/48000/2`, fmtp `111/111`) offered after Opus on every audio m-line,
/// as Chromium offers it.
pub fn with_red(offer: &str) -> String {
    let opus_fmtp = format!("a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1\r\n");
    offer
        .replace(
            &format!("m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}\r\n"),
            &format!("m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT} {RED_PT}\r\n"),
        )
        .replace(
            &opus_fmtp,
            &format!("{opus_fmtp}a=rtpmap:{RED_PT} red/48000/2\r\na=fmtp:{RED_PT} {OPUS_PT}/{OPUS_PT}\r\n"),
        )
}

/// A STUN Binding request from a controlling agent (RFC 8445 §7.1.2), written here rather than in
/// sfu-core because the engine, being ICE-lite, never sends one.
pub fn binding_request(
    transaction_id: &[u8; 12],
    username: &str,
    password: &[u8],
    use_candidate: bool,
) -> Vec<u8> {
    let mut attributes = Vec::new();
    let mut push_attribute = |kind: u16, value: &[u8]| {
        attributes.extend_from_slice(&kind.to_be_bytes());
        attributes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        attributes.extend_from_slice(value);
        while attributes.len() % 4 != 0 {
            attributes.push(0);
        }
    };
    push_attribute(0x0006, username.as_bytes());
    push_attribute(0x0024, &0x6e00_01ffu32.to_be_bytes()); // PRIORITY
    push_attribute(0x802a, &0x1234_5678_9abc_def0u64.to_be_bytes()); // ICE-CONTROLLING
    if use_candidate {
        push_attribute(0x0025, &[]);
    }
    let mut message = Vec::new();
    message.extend_from_slice(&0x0001u16.to_be_bytes());
    // Length covers MESSAGE-INTEGRITY (24) while it is computed (RFC 5389 §15.4).
    message.extend_from_slice(&((attributes.len() + 24) as u16).to_be_bytes());
    message.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    message.extend_from_slice(transaction_id);
    message.extend_from_slice(&attributes);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(password).expect("any key length");
    mac.update(&message);
    let integrity = mac.finalize().into_bytes();
    message.extend_from_slice(&0x0008u16.to_be_bytes());
    message.extend_from_slice(&20u16.to_be_bytes());
    message.extend_from_slice(&integrity);
    let length = (message.len() - 20 + 8) as u16;
    message[2..4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32fast::hash(&message) ^ 0x5354_554e;
    message.extend_from_slice(&0x8028u16.to_be_bytes());
    message.extend_from_slice(&4u16.to_be_bytes());
    message.extend_from_slice(&crc.to_be_bytes());
    message
}

/// The engine and its peers on one simulated loopback network with simulated time.
pub struct SimNetwork {
    pub engine: Engine,
    pub now: Instant,
    pub peers: Vec<SimPeer>,
    pub events: Vec<Event>,
    /// Datagrams the engine sent to addresses no peer has.
    pub undelivered: usize,
    /// Datagrams the engine sent to other engines (relay links), for [`SimNetwork::exchange`].
    pub to_engines: Vec<(SocketAddr, Vec<u8>)>,
    /// Drop every n-th datagram from the engine to peers (0 = none); for loss tests.
    pub drop_every_nth_to_peers: usize,
    delivered_to_peers: usize,
}

impl SimNetwork {
    pub fn new(seed: u64) -> Self {
        Self::at(seed, SERVER, Instant::now())
    }

    /// A network whose engine listens on `address` (a second engine for relay tests), with its
    /// clock at `now` so that two networks can keep one time.
    pub fn at(seed: u64, address: SocketAddr, now: Instant) -> Self {
        let mut config = EngineConfig::new(address);
        config.seed = seed;
        SimNetwork {
            engine: Engine::new(config, now).expect("engine"),
            now,
            peers: Vec::new(),
            events: Vec::new(),
            undelivered: 0,
            to_engines: Vec::new(),
            drop_every_nth_to_peers: 0,
            delivered_to_peers: 0,
        }
    }

    pub fn add_peer(&mut self, peer: SimPeer) -> usize {
        self.peers.push(peer);
        self.peers.len() - 1
    }

    /// Adds a peer named `name` on `port`, applies the offer `offer` writes for it to a new
    /// engine peer, and connects it; panics if any step fails (tests want to know).
    pub fn join(
        &mut self,
        name: &str,
        port: u16,
        offer: impl Fn(&SimPeer) -> String,
    ) -> (usize, PeerId) {
        let index = self.add_peer(SimPeer::new(name, port));
        let peer = self.engine.create_peer(self.now);
        let offer = offer(&self.peers[index]);
        let answer = self
            .engine
            .apply_offer(peer, &offer, self.now)
            .expect("the engine accepts the offer");
        self.peers[index].apply_answer(&answer);
        self.connect(index);
        assert!(self.peers[index].connected, "{name} connected");
        (index, peer)
    }

    /// Adds `name` on `port` publishing the three-layer simulcast offer (`q`, `h`, `f`), with
    /// `edit` applied to it (another codec, say), and connects it. Returns its index, the
    /// engine's answer and the video track it published; panics if any step fails.
    pub fn join_simulcast_publisher(
        &mut self,
        name: &str,
        port: u16,
        edit: impl Fn(String) -> String,
    ) -> (usize, String, TrackId) {
        let index = self.add_peer(SimPeer::new(name, port));
        let peer = self.engine.create_peer(self.now);
        let offer = edit(self.peers[index].simulcast_offer());
        let answer = self
            .engine
            .apply_offer(peer, &offer, self.now)
            .expect("the engine accepts the simulcast offer");
        self.peers[index].apply_answer(&answer);
        self.connect(index);
        let track = self
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::TrackPublished {
                    track,
                    kind: MediaKind::Video,
                    ..
                } => Some(*track),
                _ => None,
            })
            .expect("the simulcast track is published");
        (index, answer, track)
    }

    /// The first track of `kind` the engine announced as published.
    pub fn published(&self, kind: MediaKind) -> Option<TrackId> {
        self.events.iter().find_map(|e| match e {
            Event::TrackPublished { track, kind: k, .. } if *k == kind => Some(*track),
            _ => None,
        })
    }

    /// Lets ICE and DTLS complete for peer `index` (its answer must be applied).
    pub fn connect(&mut self, index: usize) {
        self.peers[index].send_connectivity_check(true);
        self.run();
        let now = self.now;
        self.peers[index].start_dtls(now);
        for _ in 0..20 {
            self.run();
            if self.peers[index].connected {
                break;
            }
            self.advance(Duration::from_millis(10));
        }
    }

    /// Delivers datagrams both ways until the network is quiet (no time passes).
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.peers.len() {
                while let Some(datagram) = self.peers[i].outbox.pop_front() {
                    moved = true;
                    let source = self.peers[i].address;
                    self.engine.handle_input(Input::Datagram {
                        at: self.now,
                        source,
                        data: &datagram,
                    });
                }
            }
            loop {
                match self.engine.poll_output() {
                    Output::Transmit(transmit) => {
                        moved = true;
                        self.delivered_to_peers += 1;
                        let dropped = self.drop_every_nth_to_peers > 0
                            && self
                                .delivered_to_peers
                                .is_multiple_of(self.drop_every_nth_to_peers);
                        match self
                            .peers
                            .iter_mut()
                            .find(|p| p.address == transmit.destination)
                        {
                            Some(peer) if !dropped => {
                                peer.handle_datagram(self.now, &transmit.contents)
                            }
                            Some(_) => {}
                            None if transmit.destination.port() >= ENGINE_PORTS.start
                                && transmit.destination.port() < ENGINE_PORTS.end =>
                            {
                                self.to_engines
                                    .push((transmit.destination, transmit.contents.clone()))
                            }
                            None => self.undelivered += 1,
                        }
                        self.engine.recycle(transmit.contents);
                    }
                    Output::Event(event) => self.events.push(event),
                    Output::Timeout(_) => break,
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Delivers what each engine sent the other over a relay link until both are quiet.
    pub fn exchange(a: &mut SimNetwork, b: &mut SimNetwork) {
        let (a_address, b_address) = (
            a.engine.config().announced_addr,
            b.engine.config().announced_addr,
        );
        for _ in 0..1000 {
            a.run();
            b.run();
            if a.to_engines.is_empty() && b.to_engines.is_empty() {
                return;
            }
            for (destination, datagram) in std::mem::take(&mut a.to_engines) {
                if destination == b_address {
                    b.engine.handle_input(Input::Datagram {
                        at: b.now,
                        source: a_address,
                        data: &datagram,
                    });
                }
            }
            for (destination, datagram) in std::mem::take(&mut b.to_engines) {
                if destination == a_address {
                    a.engine.handle_input(Input::Datagram {
                        at: a.now,
                        source: b_address,
                        data: &datagram,
                    });
                }
            }
        }
    }

    /// Moves both networks' time on in `step`s, exchanging relay traffic after each.
    pub fn advance_both(a: &mut SimNetwork, b: &mut SimNetwork, duration: Duration) {
        let step = Duration::from_millis(10);
        let end = a.now + duration;
        while a.now < end {
            a.now += step;
            b.now = a.now;
            a.engine.handle_input(Input::Tick(a.now));
            b.engine.handle_input(Input::Tick(b.now));
            SimNetwork::exchange(a, b);
        }
    }

    /// Moves simulated time on in `step`s, running the network after each.
    pub fn advance(&mut self, duration: Duration) {
        let step = Duration::from_millis(10);
        let end = self.now + duration;
        while self.now < end {
            self.now += step;
            self.engine.handle_input(Input::Tick(self.now));
            self.run();
        }
    }
}

/// A VP8 payload with a 15-bit PictureID and TL0PICIDX, of the given picture size if a keyframe.
pub fn vp8_payload_with_ids(
    keyframe: bool,
    picture_id: u16,
    tl0: u8,
    size: (u16, u16),
    len: usize,
) -> Vec<u8> {
    let mut payload = vec![
        0x90,
        0xc0,
        0x80 | (picture_id >> 8) as u8 & 0x7f,
        picture_id as u8,
        tl0,
    ];
    payload.extend_from_slice(&[if keyframe { 0x00 } else { 0x01 }, 0x00, 0x00]);
    if keyframe {
        payload.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        payload.extend_from_slice(&size.0.to_le_bytes());
        payload.extend_from_slice(&size.1.to_le_bytes());
    }
    payload.resize(len.max(payload.len()), 0x42);
    payload
}

/// A VP8 payload (RFC 7741 descriptor + VP8 frame header) that decoders see as a keyframe or not.
pub fn vp8_payload(keyframe: bool, fill: u8, len: usize) -> Vec<u8> {
    let mut payload = vec![0x10, if keyframe { 0x00 } else { 0x01 }, 0x00, 0x00];
    if keyframe {
        payload.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    }
    payload.resize(len.max(payload.len()), fill);
    payload
}
