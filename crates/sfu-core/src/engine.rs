//! The engine: owns every peer, track and subscription of one UDP port and runs the packet path
//! (demultiplex, ICE-lite, DTLS, SRTP, route, rewrite, protect). Formats live in their own
//! modules; this one decides.

use crate::api::{
    EngineConfig, EngineStats, Event, Input, Output, PeerStats, Subscription, Transmit,
};
use crate::dtls::{DtlsIdentity, DtlsOutcome, DtlsRole, DtlsTransport};
use crate::error::SfuError;
use crate::forward::{rtp_ticks, PacketCache, SequenceRewriter};
use crate::ice::{BindingOutcome, IceLite};
use crate::ids::{IdBuildHasher, MediaKind, PeerId, TrackId};
use crate::peer::{
    CodecKind, ConnectionState, DownlinkControl, IncomingStream, MediaLine, PayloadTypes, Peer,
    PeerCounters, SendSlot, SlotSubscription, Vp8Continuity,
};
use crate::receive_stats::to_clock_units;
use crate::track::{Layer, SenderReportInfo, Track, VoiceActivity, MAX_LAYERS};
use crate::twcc::{TransportFeedback, TwccRecorder};
use crate::{rtcp, rtp, sdp, srtp, stun};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod adaptive;
mod local_offer;
mod partition;
mod relay;
mod rtp_forward;
mod scalable;

pub use partition::MAIN_PARTITION;
pub use relay::{RelayedLayer, RelayedTrack, MAX_RELAYED_LAYERS, RELAY_KEYING_MATERIAL_LEN};

/// Every pooled datagram buffer has room for a full-size packet plus SRTP/RTX overhead, so
/// protecting or wrapping in RTX never reallocates.
const BUFFER_CAPACITY: usize = 1600;
/// Round-trip time assumed towards publishers when pacing NACK resends (we measure none upstream;
/// a resend too soon is ignored by the sender, one too late costs a frame).
const UPSTREAM_RTT: Duration = Duration::from_millis(100);
/// How often timers (DTLS retransmits, consent, reports) are looked at.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(25);
/// RTCP reports per peer: about once a second (RFC 3550 §6.2 allows far more for our few streams).
const REPORT_INTERVAL: Duration = Duration::from_millis(1000);
const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// How often each simulcast subscription's layer is reconsidered.
const LAYER_SELECTION_INTERVAL: Duration = Duration::from_millis(500);
const ICE_UFRAG_LEN: usize = 8;
const ICE_PWD_LEN: usize = 24;

/// Pooled buffers and the queue of datagrams to send; a field of its own so that the packet path
/// can borrow it beside `peers` and `tracks`.
#[derive(Default)]
struct Outbox {
    transmits: VecDeque<Transmit>,
    free: Vec<Vec<u8>>,
}

impl Outbox {
    fn buffer(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(mut buffer) => {
                buffer.clear();
                buffer
            }
            None => Vec::with_capacity(BUFFER_CAPACITY),
        }
    }

    fn send(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.transmits.push_back(Transmit {
            destination,
            contents,
        });
    }

    /// Encrypts `out` with `peer`'s SRTP keys, queues it to the peer's path and counts it; without
    /// a path or keys the buffer goes back to the pool and nothing is sent.
    fn send_protected(&mut self, peer: &mut Peer, mut out: Vec<u8>, packet: Packet) {
        let (Some(destination), Some(outbound)) =
            (peer.ice.selected(), peer.srtp_outbound.as_mut())
        else {
            self.free.push(out);
            return;
        };
        let protected = match packet {
            Packet::Rtp => outbound.protect_rtp(&mut out),
            Packet::Rtcp => outbound.protect_rtcp(&mut out),
        };
        if protected.is_err() {
            self.free.push(out);
            return;
        }
        peer.counters.packets_sent += 1;
        peer.counters.bytes_sent += out.len() as u64;
        self.send(destination, out);
    }

    fn send_copy(&mut self, destination: SocketAddr, data: &[u8]) {
        let mut buffer = self.buffer();
        buffer.extend_from_slice(data);
        self.send(destination, buffer);
    }
}

pub struct Engine {
    config: EngineConfig,
    /// Origin of the engine's RTP tick clock.
    epoch: Instant,
    identity: DtlsIdentity,
    rng: ChaCha20Rng,
    now: Instant,
    peers: HashMap<PeerId, Peer, IdBuildHasher>,
    tracks: HashMap<TrackId, Track, IdBuildHasher>,
    by_address: HashMap<SocketAddr, PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    next_peer: u32,
    next_track: u32,
    outbox: Outbox,
    events: VecDeque<Event>,
    /// Decrypted copy of the datagram being handled; reused so the packet path does not allocate.
    scratch: Vec<u8>,
    /// A publisher's retransmission unwrapped to its original packet (then swapped into `scratch`).
    rtx_scratch: Vec<u8>,
    /// Sequence numbers of one upstream NACK being written.
    lost_scratch: Vec<u16>,
    /// A publisher's layer found a gap in the packet just handled: NACK it now, not at the next tick.
    nack_now: Option<(TrackId, usize)>,
    next_housekeeping: Instant,
    live_peers_scratch: Vec<PeerId>,
    keyframe_scratch: Vec<(TrackId, usize)>,
    subscription_scratch: Vec<(PeerId, usize)>,
    next_layer_selection: Instant,
    adaptive: adaptive::AdaptiveScratch,
    report_blocks: Vec<rtcp::ReportBlock>,
    session_version: u64,
    stats: EngineStats,
    rtp_forwards: rtp_forward::RtpForwards,
}

impl Engine {
    pub fn new(config: EngineConfig, now: Instant) -> Result<Self, SfuError> {
        let identity = DtlsIdentity::generate()?;
        let first_id = config.first_id.max(1);
        let rng = ChaCha20Rng::seed_from_u64(config.seed);
        Ok(Engine {
            config,
            epoch: now,
            identity,
            rng,
            now,
            peers: HashMap::default(),
            tracks: HashMap::default(),
            by_address: HashMap::with_capacity(1024),
            by_ufrag: HashMap::new(),
            next_peer: first_id,
            next_track: first_id,
            outbox: Outbox::default(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(BUFFER_CAPACITY),
            rtx_scratch: Vec::with_capacity(BUFFER_CAPACITY),
            lost_scratch: Vec::with_capacity(64),
            nack_now: None,
            next_housekeeping: now,
            live_peers_scratch: Vec::new(),
            keyframe_scratch: Vec::new(),
            subscription_scratch: Vec::new(),
            next_layer_selection: now,
            adaptive: adaptive::AdaptiveScratch::default(),
            report_blocks: Vec::new(),
            session_version: 1,
            stats: EngineStats::default(),
            rtp_forwards: rtp_forward::RtpForwards::new(first_id),
        })
    }

    /// The DTLS certificate fingerprint put in every answer, as `sha-256 AB:CD:...`.
    pub fn fingerprint(&self) -> String {
        format!("sha-256 {}", self.identity.fingerprint_sha256())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// One above every peer and track id this engine has handed out.
    pub fn id_watermark(&self) -> u32 {
        self.next_peer.max(self.next_track)
    }

    fn random_string(&mut self, len: usize) -> String {
        // RFC 8445 §5.3: ice-chars are ALPHA / DIGIT / "+" / "/".
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..len)
            .map(|_| ALPHABET[(self.rng.next_u32() % ALPHABET.len() as u32) as usize] as char)
            .collect()
    }

    fn random_ssrc(&mut self) -> u32 {
        loop {
            let ssrc = self.rng.next_u32();
            if ssrc != 0 {
                return ssrc;
            }
        }
    }

    pub fn create_peer(&mut self, now: Instant) -> PeerId {
        let id = PeerId(self.next_peer);
        self.next_peer += 1;
        let ufrag = loop {
            let candidate = self.random_string(ICE_UFRAG_LEN);
            if !self.by_ufrag.contains_key(&candidate) {
                break candidate;
            }
        };
        let pwd = self.random_string(ICE_PWD_LEN);
        let rtcp_ssrc = self.random_ssrc();
        let cname = self.random_string(16);
        self.by_ufrag.insert(ufrag.clone(), id);
        self.peers.insert(
            id,
            Peer {
                id,
                ice: IceLite::new(ufrag, pwd),
                dtls: None,
                remote_fingerprint: None,
                srtp_outbound: None,
                srtp_inbound: None,
                state: ConnectionState::New,
                media: Vec::new(),
                negotiated: Vec::new(),
                local_offer: None,
                slots: Vec::new(),
                incoming: HashMap::new(),
                mid_extension: None,
                rid_extension: None,
                repaired_rid_extension: None,
                twcc_extension: None,
                audio_level_extension: None,
                dependency_descriptor_extension: None,
                twcc_recorder: None,
                downlink: None,
                rtcp_ssrc,
                cname,
                partition: MAIN_PARTITION,
                relay: false,
                counters: PeerCounters::default(),
                next_report_at: now + REPORT_INTERVAL,
                created_at: now,
            },
        );
        id
    }

    /// Applies a remote offer (initial or renegotiation) and returns the answer.
    pub fn apply_offer(
        &mut self,
        peer_id: PeerId,
        offer_text: &str,
        now: Instant,
    ) -> Result<String, SfuError> {
        match self.peers.get(&peer_id) {
            None => return Err(SfuError::UnknownPeer(peer_id)),
            // Offers collided: ours stands (the peer is the polite side and rolls back).
            Some(peer) if peer.relay => {
                return Err(SfuError::InvalidState {
                    peer: peer_id,
                    state: "a relay link (no SDP)",
                })
            }
            Some(peer) if peer.local_offer.is_some() => {
                return Err(SfuError::InvalidState {
                    peer: peer_id,
                    state: "have-local-offer",
                })
            }
            Some(_) => {}
        }
        let offer = sdp::parse(offer_text).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        sdp::validate_offer(&offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let (remote_ufrag, remote_pwd) = offer
            .ice_credentials()
            .ok_or_else(|| SfuError::InvalidSdp("no ICE credentials".into()))?;
        let (remote_ufrag, remote_pwd) = (remote_ufrag.to_owned(), remote_pwd.to_owned());
        let fingerprint = offer
            .effective_fingerprint()
            .ok_or_else(|| SfuError::InvalidSdp("no a=fingerprint".into()))?;
        if fingerprint.algorithm != "sha-256" || fingerprint.value.len() != 32 {
            return Err(SfuError::InvalidSdp(format!(
                "fingerprint algorithm {} is not supported; use sha-256",
                fingerprint.algorithm
            )));
        }
        let remote_fingerprint = fingerprint.value.clone();
        let remote_setup = offer.effective_setup().unwrap_or(sdp::Setup::ActPass);
        // ICE-lite answers take the DTLS server side whenever the offer lets us: the browser then
        // starts the handshake as soon as its checks succeed.
        let (our_role, answer_setup) = match remote_setup {
            sdp::Setup::Passive => (DtlsRole::Client, sdp::Setup::Active),
            _ => (DtlsRole::Server, sdp::Setup::Passive),
        };

        // Decide every m-line before touching state, so that a refused offer changes nothing.
        let existing_mids: Vec<String> = {
            let peer = &self.peers[&peer_id];
            peer.media
                .iter()
                .map(|line| match line {
                    MediaLine::Publish { mid, .. } | MediaLine::Rejected { mid } => mid.clone(),
                    MediaLine::Send { slot } => peer.slots[*slot].mid.clone(),
                })
                .collect()
        };
        let mut decisions: Vec<sdp::AnswerMedia> =
            offer.media.iter().map(sdp::select_media).collect();
        let recyclable: Vec<bool> = {
            let peer = &self.peers[&peer_id];
            peer.media
                .iter()
                .map(|line| matches!(line, MediaLine::Rejected { .. }))
                .collect()
        };
        for (index, decision) in decisions.iter_mut().enumerate() {
            if let Some(existing) = existing_mids.get(index) {
                // RFC 8829 §5.2.2: a rejected m-line may be reused by a new transceiver, new mid.
                if recyclable[index] {
                    continue;
                }
                if decision.accepted && decision.mid != *existing {
                    return Err(SfuError::InvalidSdp(format!(
                        "m-line {index} changed its mid from {existing} to {}",
                        decision.mid
                    )));
                }
            }
        }
        {
            let peer = &self.peers[&peer_id];
            if let Some(known) = &peer.remote_fingerprint {
                if *known != remote_fingerprint {
                    return Err(SfuError::InvalidSdp(
                        "the DTLS fingerprint changed during renegotiation".into(),
                    ));
                }
            }
        }

        let mut new_tracks = Vec::new();
        let mut ended_tracks = Vec::new();
        for (index, (offered, decision)) in offer.media.iter().zip(decisions.iter_mut()).enumerate()
        {
            let peer = self.peers.get_mut(&peer_id).expect("checked above");
            let recycled = decision.accepted && recyclable.get(index) == Some(&true);
            if index < peer.media.len() && !recycled {
                // Renegotiation keeps what each known m-line does; a send slot re-announces its SSRCs.
                match &peer.media[index] {
                    MediaLine::Send { slot }
                        if decision.accepted && decision.direction == sdp::Direction::SendOnly =>
                    {
                        let slot = &peer.slots[*slot];
                        decision.send = Some(send_stream(slot, &peer.cname));
                    }
                    MediaLine::Publish { .. }
                        if decision.accepted && decision.direction == sdp::Direction::RecvOnly => {}
                    MediaLine::Publish { mid, track } => {
                        // The publisher stopped the transceiver (port 0) or stopped sending on it:
                        // its track ends and the m-line stays rejected until a transceiver reuses it.
                        ended_tracks.push(*track);
                        let mid = mid.clone();
                        peer.media[index] = MediaLine::Rejected { mid };
                        decision.accepted = false;
                    }
                    _ => decision.accepted = false,
                }
                continue;
            }
            if !decision.accepted {
                place_media_line(
                    &mut peer.media,
                    index,
                    MediaLine::Rejected {
                        mid: decision.mid.clone(),
                    },
                );
                continue;
            }
            let payload_types = payload_types_of(offered, decision);
            if payload_types.is_empty() {
                decision.accepted = false;
                place_media_line(
                    &mut peer.media,
                    index,
                    MediaLine::Rejected {
                        mid: decision.mid.clone(),
                    },
                );
                continue;
            }
            let kind = match offered.kind {
                sdp::SdpMediaKind::Audio => MediaKind::Audio,
                _ => MediaKind::Video,
            };
            for ext in &decision.extmaps {
                match ext.uri.as_str() {
                    "urn:ietf:params:rtp-hdrext:sdes:mid" => peer.mid_extension = Some(ext.id),
                    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" => {
                        peer.rid_extension = Some(ext.id)
                    }
                    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id" => {
                        peer.repaired_rid_extension = Some(ext.id)
                    }
                    TWCC_URI => peer.twcc_extension = Some(ext.id),
                    "urn:ietf:params:rtp-hdrext:ssrc-audio-level" => {
                        peer.audio_level_extension = Some(ext.id)
                    }
                    // A descriptor with its structure needs two-byte headers (over 16 bytes).
                    crate::dependency_descriptor::URI if offer.extmap_allow_mixed => {
                        peer.dependency_descriptor_extension = Some(ext.id)
                    }
                    _ => {}
                }
            }
            match decision.direction {
                sdp::Direction::RecvOnly => {
                    let track_id = TrackId(self.next_track);
                    self.next_track += 1;
                    let cache_packets = self.config.nack_cache_packets;
                    let layers = publish_layers(offered, kind, cache_packets);
                    for (index, layer) in layers.iter().enumerate() {
                        if let Some(ssrc) = layer.ssrc {
                            peer.incoming
                                .insert(ssrc, IncomingStream::Media(track_id, index as u8));
                        }
                        if let Some(rtx) = layer.rtx_ssrc {
                            peer.incoming
                                .insert(rtx, IncomingStream::Retransmission(track_id, index as u8));
                        }
                    }
                    let stream_id = offered
                        .msid
                        .as_ref()
                        .map(|(stream, _)| stream.clone())
                        .or_else(|| {
                            offered
                                .ssrcs
                                .iter()
                                .find(|l| l.attribute == "msid")
                                .and_then(|l| {
                                    l.value
                                        .as_deref()
                                        .and_then(|v| v.split_whitespace().next())
                                        .map(str::to_owned)
                                })
                        })
                        .unwrap_or_else(|| format!("{peer_id}"));
                    let clock_rate = payload_types[0].codec.clock_rate();
                    place_media_line(
                        &mut peer.media,
                        index,
                        MediaLine::Publish {
                            mid: decision.mid.clone(),
                            track: track_id,
                        },
                    );
                    if peer.twcc_extension.is_some() && peer.twcc_recorder.is_none() {
                        peer.twcc_recorder = Some(TwccRecorder::new());
                    }
                    new_tracks.push(Track {
                        id: track_id,
                        publisher: peer_id,
                        kind,
                        mid: decision.mid.clone(),
                        stream_id,
                        payload_types,
                        layers,
                        subscribers: Vec::new(),
                        clock_rate,
                        voice: VoiceActivity::default(),
                        svc: None,
                        needs: Default::default(),
                        partition: None,
                    });
                }
                sdp::Direction::SendOnly => {
                    let has_rtx = payload_types.iter().any(|p| p.rtx_pt.is_some());
                    let ssrc = loop {
                        let candidate = self.rng.next_u32();
                        if candidate != 0 {
                            break candidate;
                        }
                    };
                    let rtx_ssrc = has_rtx.then(|| self.rng.next_u32() | 1);
                    let initial_sequence = self.rng.next_u32() as u16;
                    let peer = self.peers.get_mut(&peer_id).expect("checked above");
                    let slot = SendSlot {
                        mid: decision.mid.clone(),
                        kind,
                        ssrc,
                        rtx_ssrc,
                        payload_types,
                        subscription: None,
                        rtx_sequence: initial_sequence,
                        packets_sent: 0,
                        octets_sent: 0,
                        continuation: None,
                    };
                    decision.send = Some(send_stream(&slot, &peer.cname));
                    peer.slots.push(slot);
                    if peer.twcc_extension.is_some() && peer.downlink.is_none() {
                        peer.downlink = Some(Box::new(DownlinkControl::new()));
                    }
                    let slot = peer.slots.len() - 1;
                    place_media_line(&mut peer.media, index, MediaLine::Send { slot });
                }
                _ => {
                    decision.accepted = false;
                    place_media_line(
                        &mut peer.media,
                        index,
                        MediaLine::Rejected {
                            mid: decision.mid.clone(),
                        },
                    );
                }
            }
        }

        // RFC 8839 §4.4.1.1.1: new remote credentials on a known peer mean an ICE restart.
        let ice = &self.peers[&peer_id].ice;
        if ice
            .remote_ufrag
            .as_ref()
            .is_some_and(|known| *known != remote_ufrag)
            || ice
                .remote_pwd
                .as_ref()
                .is_some_and(|known| *known != remote_pwd)
        {
            self.restart_ice(peer_id);
        }
        let peer = self.peers.get_mut(&peer_id).expect("checked above");
        if peer.dtls.is_none() {
            peer.dtls = Some(DtlsTransport::new(
                &self.identity,
                our_role,
                remote_fingerprint.clone(),
            )?);
            peer.remote_fingerprint = Some(remote_fingerprint);
        }
        peer.ice.remote_ufrag = Some(remote_ufrag);
        peer.ice.remote_pwd = Some(remote_pwd);
        let local = sdp::LocalTransport {
            ice_ufrag: peer.ice.local_ufrag.clone(),
            ice_pwd: peer.ice.local_pwd.clone(),
            fingerprint_sha256: self.identity.fingerprint_sha256().to_owned(),
            candidate: self.config.announced_addr,
            setup: peer.dtls.as_ref().map_or(answer_setup, |d| match d.role() {
                DtlsRole::Client => sdp::Setup::Active,
                DtlsRole::Server => sdp::Setup::Passive,
            }),
        };
        self.session_version += 1;
        let answer = sdp::write_answer(&offer, &local, &decisions, self.session_version);
        decisions.truncate(offer.media.len());
        let peer = self.peers.get_mut(&peer_id).expect("checked above");
        peer.negotiated = decisions;
        for track_id in ended_tracks {
            self.end_published_track(peer_id, track_id);
        }
        for track in new_tracks {
            self.events.push_back(Event::TrackPublished {
                peer: peer_id,
                track: track.id,
                kind: track.kind,
                mid: track.mid.clone(),
                stream_id: track.stream_id.clone(),
            });
            self.tracks.insert(track.id, track);
        }
        let _ = now;
        Ok(answer)
    }

    /// New local ICE credentials for a peer; DTLS and SRTP stay as they are (no new handshake).
    fn restart_ice(&mut self, peer_id: PeerId) {
        let ufrag = loop {
            let candidate = self.random_string(ICE_UFRAG_LEN);
            if !self.by_ufrag.contains_key(&candidate) {
                break candidate;
            }
        };
        let pwd = self.random_string(ICE_PWD_LEN);
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        self.by_ufrag.remove(&peer.ice.local_ufrag);
        self.by_ufrag.insert(ufrag.clone(), peer_id);
        peer.ice.restart(ufrag, pwd);
    }

    pub fn close_peer(&mut self, peer_id: PeerId) -> Result<(), SfuError> {
        if !self.peers.contains_key(&peer_id) {
            return Err(SfuError::UnknownPeer(peer_id));
        }
        self.end_peer_media(peer_id);
        let Some(mut peer) = self.peers.remove(&peer_id) else {
            return Err(SfuError::UnknownPeer(peer_id));
        };
        if let (Some(dtls), Some(destination)) = (peer.dtls.as_mut(), peer.ice.selected()) {
            dtls.close(self.now);
            while let Some(datagram) = dtls.poll_transmit() {
                self.outbox.send_copy(destination, &datagram);
            }
        }
        self.by_ufrag.remove(&peer.ice.local_ufrag);
        for address in peer.ice.validated_addresses() {
            if self.by_address.get(address) == Some(&peer_id) {
                self.by_address.remove(address);
            }
        }
        Ok(())
    }

    /// Ends one track the peer published: its SSRCs are forgotten, its subscribers' slots freed.
    fn end_published_track(&mut self, peer_id: PeerId, track_id: TrackId) {
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            peer.incoming.retain(|_, stream| match stream {
                IncomingStream::Media(track, _) | IncomingStream::Retransmission(track, _) => {
                    *track != track_id
                }
            });
        }
        let Some(track) = self.tracks.remove(&track_id) else {
            return;
        };
        for (subscriber, slot) in track.subscribers {
            if let Some(slot) = self
                .peers
                .get_mut(&subscriber)
                .and_then(|p| p.slots.get_mut(slot))
            {
                slot.end_subscription();
            }
        }
        self.events.push_back(Event::TrackEnded {
            peer: peer_id,
            track: track_id,
        });
    }

    /// Ends the peer's published tracks and drops its subscriptions (it stays known until closed).
    fn end_peer_media(&mut self, peer_id: PeerId) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let published: Vec<TrackId> = peer.published_tracks().collect();
        let subscribed: Vec<(usize, TrackId)> = peer
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.subscription.take().map(|sub| (i, sub.track)))
            .collect();
        peer.media.iter_mut().for_each(|m| {
            if let MediaLine::Publish { mid, .. } = m {
                *m = MediaLine::Rejected {
                    mid: std::mem::take(mid),
                };
            }
        });
        peer.incoming.clear();
        for (slot, track_id) in subscribed {
            if let Some(track) = self.tracks.get_mut(&track_id) {
                track
                    .subscribers
                    .retain(|&(p, s)| !(p == peer_id && s == slot));
            }
        }
        for track_id in published {
            self.end_published_track(peer_id, track_id);
        }
    }

    pub fn subscribe(
        &mut self,
        subscriber: PeerId,
        track_id: TrackId,
        now: Instant,
    ) -> Result<Subscription, SfuError> {
        let track = self
            .tracks
            .get(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let kind = track.kind;
        let codecs: Vec<CodecKind> = track.payload_types.iter().map(|p| p.codec).collect();
        let peer = self
            .peers
            .get_mut(&subscriber)
            .ok_or(SfuError::UnknownPeer(subscriber))?;
        if peer.slot_of_track(track_id).is_some() {
            return Err(SfuError::AlreadySubscribed {
                peer: subscriber,
                track: track_id,
            });
        }
        let slot_index = peer
            .slots
            .iter()
            .position(|s| {
                s.kind == kind
                    && s.subscription.is_none()
                    && codecs.iter().any(|c| s.payload_types_for(*c).is_some())
            })
            .ok_or(SfuError::NoFreeSlot {
                peer: subscriber,
                track: track_id,
            })?;
        self.subscribe_slot(subscriber, track_id, slot_index, None, now)?;
        let slot = &self.peers[&subscriber].slots[slot_index];
        Ok(Subscription {
            mid: slot.mid.clone(),
            ssrc: slot.ssrc,
        })
    }

    /// Starts sending `track_id` to `subscriber` on its free slot `slot_index`; with
    /// `pinned_layer`, always that simulcast layer.
    fn subscribe_slot(
        &mut self,
        subscriber: PeerId,
        track_id: TrackId,
        slot_index: usize,
        pinned_layer: Option<usize>,
        now: Instant,
    ) -> Result<(), SfuError> {
        let initial_sequence = self.rng.next_u32() as u16;
        let initial_timestamp = self.rng.next_u32();
        let peer = self.peers.get_mut(&subscriber).expect("looked up above");
        let slot = &mut peer.slots[slot_index];
        let (rewriter, vp8) = match slot.continuation.take() {
            Some(previous) => (previous.rewriter, previous.vp8),
            None => (
                SequenceRewriter::new(initial_sequence, initial_timestamp),
                Vp8Continuity::default(),
            ),
        };
        slot.subscription = Some(SlotSubscription {
            track: track_id,
            rewriter,
            layer: None,
            target_layer: pinned_layer.unwrap_or(0),
            pinned_layer,
            relay_wanted: true,
            max_spatial_layer: None,
            max_height: None,
            max_temporal_layer: None,
            temporal_limit: u8::MAX,
            vp8,
            svc: Default::default(),
            has_sent: false,
            allotment: Default::default(),
        });
        if let Some(track) = self.tracks.get_mut(&track_id) {
            track.subscribers.push((subscriber, slot_index));
        }
        self.allocate_downlink(subscriber, now);
        let target = self.choose_layer(subscriber, slot_index, now);
        // Before the subscriber is connected a keyframe would be wasted; connecting asks then.
        // Across partitions nothing flows, so nothing is asked until they share one.
        if self
            .peers
            .get(&subscriber)
            .is_some_and(|p| p.is_connected())
            && self.shares_partition(track_id, subscriber)
        {
            self.request_keyframe_from_publisher(track_id, Some(target), Some(subscriber), now);
        }
        Ok(())
    }

    /// The subscriber and the index of the slot carrying `track` to it.
    fn subscribed_slot(
        &mut self,
        subscriber: PeerId,
        track: TrackId,
    ) -> Result<(&mut Peer, usize), SfuError> {
        let peer = self
            .peers
            .get_mut(&subscriber)
            .ok_or(SfuError::UnknownPeer(subscriber))?;
        let slot = peer.slot_of_track(track).ok_or(SfuError::NotSubscribed {
            peer: subscriber,
            track,
        })?;
        Ok((peer, slot))
    }

    pub fn unsubscribe(&mut self, subscriber: PeerId, track_id: TrackId) -> Result<(), SfuError> {
        let (peer, slot_index) = self.subscribed_slot(subscriber, track_id)?;
        peer.slots[slot_index].end_subscription();
        if let Some(track) = self.tracks.get_mut(&track_id) {
            track
                .subscribers
                .retain(|&(p, s)| !(p == subscriber && s == slot_index));
        }
        Ok(())
    }

    pub fn request_keyframe(&mut self, track: TrackId, now: Instant) -> Result<(), SfuError> {
        if !self.tracks.contains_key(&track) {
            return Err(SfuError::UnknownTrack(track));
        }
        self.request_keyframe_from_publisher(track, None, None, now);
        Ok(())
    }

    pub fn peer_stats(&self, peer_id: PeerId) -> Result<PeerStats, SfuError> {
        let peer = self
            .peers
            .get(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        let c = peer.counters;
        Ok(PeerStats {
            peer: Some(peer_id),
            connected: peer.is_connected(),
            packets_received: c.packets_received,
            bytes_received: c.bytes_received,
            packets_sent: c.packets_sent,
            bytes_sent: c.bytes_sent,
            nacks_received: c.nacks_received,
            retransmissions_sent: c.retransmissions_sent,
            keyframe_requests_sent: c.keyframe_requests_sent,
            published_tracks: peer.published_tracks().count() as u32,
            subscriptions: peer
                .slots
                .iter()
                .filter(|s| s.subscription.is_some())
                .count() as u32,
            available_outgoing_bitrate_bps: peer
                .downlink
                .as_ref()
                .map_or(0, |d| d.estimator.estimate_bps()),
        })
    }

    pub fn stats(&self) -> EngineStats {
        let mut stats = self.stats.clone();
        stats.peers = self.peers.len() as u32;
        stats.connected_peers = self.peers.values().filter(|p| p.is_connected()).count() as u32;
        stats.tracks = self.tracks.len() as u32;
        stats.subscriptions = self
            .tracks
            .values()
            .map(|t| t.subscribers.len() as u32)
            .sum();
        stats
    }

    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Datagram { at, source, data } => {
                self.now = self.now.max(at);
                self.handle_datagram(source, data);
            }
            Input::Tick(at) => self.now = self.now.max(at),
        }
        if self.now >= self.next_housekeeping {
            self.housekeeping();
            self.next_housekeeping = self.now + HOUSEKEEPING_INTERVAL;
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(transmit) = self.outbox.transmits.pop_front() {
            return Output::Transmit(transmit);
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        Output::Timeout(self.next_housekeeping)
    }

    /// Returns a sent datagram's buffer to the pool.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if buffer.capacity() >= BUFFER_CAPACITY && self.outbox.free.len() < 4096 {
            self.outbox.free.push(buffer);
        }
    }

    fn handle_datagram(&mut self, source: SocketAddr, data: &[u8]) {
        let Some(&first) = data.first() else {
            self.stats.dropped_malformed += 1;
            return;
        };
        // RFC 7983 §7: the first byte tells STUN, DTLS and RTP/RTCP apart on one port.
        match first {
            0..=3 => self.handle_stun(source, data),
            20..=63 => self.handle_dtls(source, data),
            128..=191 => {
                let Some(&peer_id) = self.by_address.get(&source) else {
                    self.stats.dropped_unknown_source += 1;
                    return;
                };
                // RFC 5761 §4: RTCP packet types 192..=223 sit where RTP's marker bit and payload type are.
                if data.len() >= 2 && (192..=223).contains(&data[1]) {
                    self.handle_rtcp(peer_id, data);
                } else {
                    self.handle_rtp(peer_id, data);
                    if let Some((track, layer)) = self.nack_now.take() {
                        self.send_upstream_nack(track, layer);
                    }
                }
            }
            _ => self.stats.dropped_malformed += 1,
        }
    }

    fn handle_stun(&mut self, source: SocketAddr, data: &[u8]) {
        self.stats.stun_requests += 1;
        let request = match stun::parse_binding_request(data) {
            Ok(request) => request,
            Err(_) => {
                self.stats.stun_rejected += 1;
                return;
            }
        };
        let local_ufrag = request.username.split(':').next().unwrap_or("");
        let Some(&peer_id) = self.by_ufrag.get(local_ufrag) else {
            self.stats.stun_rejected += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let mut response = self.outbox.buffer();
        if stun::verify_integrity(data, peer.ice.local_pwd.as_bytes()).is_err() {
            self.stats.stun_rejected += 1;
            stun::write_binding_error(&request.transaction_id, 401, "Unauthorized", &mut response);
            self.outbox.send(source, response);
            return;
        }
        let remote_part = request.username.split_once(':').map(|(_, r)| r);
        if peer.ice.remote_ufrag.is_none() || remote_part != peer.ice.remote_ufrag.as_deref() {
            // Checks may race the answer; RFC 8445 §7.3 lets us refuse until we know the peer.
            self.stats.stun_rejected += 1;
            stun::write_binding_error(&request.transaction_id, 400, "Bad Request", &mut response);
            self.outbox.send(source, response);
            return;
        }
        stun::write_binding_success(
            &request.transaction_id,
            source,
            peer.ice.local_pwd.as_bytes(),
            &mut response,
        );
        self.outbox.send(source, response);
        if peer.state == ConnectionState::Disconnected {
            return;
        }
        let outcome = peer
            .ice
            .on_binding_request(source, request.use_candidate, self.now);
        if outcome != BindingOutcome::Refreshed {
            self.by_address.insert(source, peer_id);
        }
        let retired = peer.ice.take_retired();
        let moved = outcome == BindingOutcome::Nominated && !retired.is_empty();
        for address in retired {
            if self.by_address.get(&address) == Some(&peer_id) {
                self.by_address.remove(&address);
            }
        }
        if outcome == BindingOutcome::Nominated {
            if let Some(dtls) = peer.dtls.as_mut() {
                let result = dtls.start(self.now);
                self.after_dtls(peer_id, result);
            }
        }
        if moved {
            // An ICE restart moved the path: what the publisher sent meanwhile from its new
            // address was dropped, so its subscribers' decoders wait for a keyframe.
            let published: Vec<TrackId> = self
                .tracks
                .values()
                .filter(|track| track.publisher == peer_id)
                .map(|track| track.id)
                .collect();
            for track in published {
                self.request_keyframe_from_publisher(track, None, None, self.now);
            }
        }
    }

    fn handle_dtls(&mut self, source: SocketAddr, data: &[u8]) {
        let Some(&peer_id) = self.by_address.get(&source) else {
            self.stats.dropped_unknown_source += 1;
            return;
        };
        let Some(dtls) = self.peers.get_mut(&peer_id).and_then(|p| p.dtls.as_mut()) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let outcome = dtls.handle_datagram(self.now, data);
        self.after_dtls(peer_id, outcome);
    }

    /// Sends what DTLS queued and acts on how the handshake went.
    fn after_dtls(&mut self, peer_id: PeerId, outcome: DtlsOutcome) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if let (Some(dtls), Some(destination)) = (peer.dtls.as_mut(), peer.ice.selected()) {
            while let Some(datagram) = dtls.poll_transmit() {
                self.outbox.send_copy(destination, &datagram);
            }
        }
        match outcome {
            DtlsOutcome::Nothing => {}
            DtlsOutcome::Connected(keys) => {
                let Some(profile) = srtp::SrtpProfile::from_dtls_id(keys.profile_id) else {
                    self.disconnect(peer_id, "dtls_failed");
                    return;
                };
                let (outbound, inbound) = srtp::contexts_from_keying_material(
                    profile,
                    &keys.material,
                    keys.we_are_client,
                );
                peer.srtp_outbound = Some(outbound);
                peer.srtp_inbound = Some(inbound);
                peer.state = ConnectionState::Connected;
                let remote = peer.ice.selected().unwrap_or(self.config.announced_addr);
                self.events.push_back(Event::PeerConnected {
                    peer: peer_id,
                    remote,
                });
                // Subscriptions made before the path existed still need their first keyframe.
                let subscribed: Vec<(TrackId, usize)> = peer
                    .slots
                    .iter()
                    .filter_map(|s| {
                        s.subscription
                            .as_ref()
                            .map(|sub| (sub.track, sub.target_layer))
                    })
                    .collect();
                for (track, layer) in subscribed {
                    if !self.shares_partition(track, peer_id) {
                        continue;
                    }
                    self.request_keyframe_from_publisher(
                        track,
                        Some(layer),
                        Some(peer_id),
                        self.now,
                    );
                }
            }
            DtlsOutcome::Closed => self.disconnect(peer_id, "dtls_closed"),
            DtlsOutcome::Failed(reason) => self.disconnect(peer_id, reason),
        }
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &'static str) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if peer.state == ConnectionState::Disconnected {
            return;
        }
        peer.state = ConnectionState::Disconnected;
        peer.srtp_inbound = None;
        peer.srtp_outbound = None;
        let addresses: Vec<SocketAddr> = peer.ice.validated_addresses().to_vec();
        for address in addresses {
            if self.by_address.get(&address) == Some(&peer_id) {
                self.by_address.remove(&address);
            }
        }
        self.end_peer_media(peer_id);
        self.events.push_back(Event::PeerDisconnected {
            peer: peer_id,
            reason,
        });
    }

    fn handle_rtp(&mut self, peer_id: PeerId, data: &[u8]) {
        let now = self.now;
        let now_ticks_base = now.saturating_duration_since(self.epoch);
        let Engine {
            peers,
            tracks,
            outbox,
            scratch,
            rtx_scratch,
            stats,
            events,
            rtp_forwards,
            nack_now,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&peer_id) else {
            return;
        };
        let Some(mut plain_len) = decrypt_into(
            scratch,
            data,
            peer.srtp_inbound.as_mut(),
            stats,
            Packet::Rtp,
        ) else {
            return;
        };
        let Ok(mut header) = rtp::parse_rtp(scratch) else {
            stats.dropped_malformed += 1;
            return;
        };
        peer.counters.packets_received += 1;
        peer.counters.bytes_received += data.len() as u64;
        stats.packets_received += 1;
        if let (Some(id), Some(recorder)) = (peer.twcc_extension, peer.twcc_recorder.as_mut()) {
            // Every packet counts for the sender's estimate, padding and retransmissions too.
            if let Some((_, &[high, low])) =
                rtp::extensions(scratch, &header).find(|(i, _)| *i == id)
            {
                recorder.record(u16::from_be_bytes([high, low]), now);
            }
        }

        let stream = match peer.incoming.get(&header.ssrc) {
            Some(stream) => *stream,
            None => match bind_unknown_ssrc(peer, tracks, scratch, &header) {
                Some(stream) => stream,
                None => {
                    stats.dropped_unknown_source += 1;
                    return;
                }
            },
        };
        let (track_id, layer_index, recovered) = match stream {
            IncomingStream::Media(track, layer) => (track, layer as usize, false),
            IncomingStream::Retransmission(track_id, layer) => {
                // An answer to our NACK: the original packet, handled as if it came late. RTX
                // without an original sequence number is only bandwidth probing.
                let Some(track) = tracks.get(&track_id) else {
                    return;
                };
                let original = track
                    .payload_types
                    .iter()
                    .find(|p| p.rtx_pt == Some(header.payload_type))
                    .map(|p| p.pt);
                let ssrc = track.layers.get(layer as usize).and_then(|l| l.ssrc);
                let (Some(original_pt), Some(original_ssrc)) = (original, ssrc) else {
                    return;
                };
                rtx_scratch.clear();
                if crate::forward::unwrap_rtx(
                    rtx_scratch,
                    &scratch[..plain_len],
                    &header,
                    original_pt,
                    original_ssrc,
                )
                .is_none()
                {
                    return;
                }
                let Ok(original_header) = rtp::parse_rtp(rtx_scratch) else {
                    stats.dropped_malformed += 1;
                    return;
                };
                std::mem::swap(scratch, rtx_scratch);
                header = original_header;
                plain_len = scratch.len();
                (track_id, layer as usize, true)
            }
        };
        let Some(track) = tracks.get_mut(&track_id) else {
            return;
        };
        if let Some(layer) = track.layers.get_mut(layer_index) {
            // A retransmission of what already came (browsers probe bandwidth with copies of
            // recent packets) would reach subscribers twice; one of a packet lost before we
            // noticed is new.
            if recovered
                && layer
                    .cache
                    .as_ref()
                    .is_some_and(|cache| cache.get(header.sequence).is_some())
            {
                return;
            }
            if let Some(nack) = layer.nack.as_mut() {
                let before = nack.missing();
                nack.on_packet(header.sequence, now);
                if nack.missing() > before {
                    *nack_now = Some((track_id, layer_index));
                }
            }
        }
        if header.payload_end <= header.payload_start {
            // Padding-only packets probe bandwidth; they carry nothing to forward.
            return;
        }
        let Some(codec) = track.codec_of(header.payload_type) else {
            stats.dropped_malformed += 1;
            return;
        };
        let Ok(red_primary) = crate::red::primary_of_packet(
            codec.codec,
            &track.payload_types,
            &scratch[header.payload_start..header.payload_end],
        ) else {
            stats.dropped_malformed += 1;
            return;
        };
        let clock_rate = track.clock_rate;
        let Some(layer) = track.layers.get_mut(layer_index) else {
            return;
        };
        let arrival = to_clock_units(now, peer.created_at, clock_rate);
        layer
            .receive
            .record(header.sequence, header.timestamp, arrival);
        layer.last_packet_at = Some(now);
        layer.rate.record(now, plain_len);
        if let Some(cache) = layer.cache.as_mut() {
            cache.insert(header.sequence, scratch);
        }
        let payload = &scratch[header.payload_start..header.payload_end];
        let now_ticks = rtp_ticks(now_ticks_base, clock_rate);
        let vp8 = match codec.codec {
            CodecKind::Vp8 => rtp::parse_vp8_descriptor(payload),
            _ => None,
        };
        let is_keyframe = match codec.codec {
            CodecKind::Vp8 => rtp::vp8_is_keyframe(payload),
            CodecKind::H264 => rtp::h264_is_keyframe(payload),
            CodecKind::Vp9 => rtp::vp9_is_keyframe(payload),
            CodecKind::Av1 => rtp::av1_is_keyframe(payload),
            CodecKind::Opus | CodecKind::Red => true,
        };
        let svc_frame = crate::svc::on_publisher_packet(
            &mut track.svc,
            peer.dependency_descriptor_extension,
            scratch,
            &header,
            plain_len,
            now,
        );
        let is_keyframe = is_keyframe || svc_frame.is_some_and(|f| f.starts_keyframe);
        if let (MediaKind::Audio, Some(id)) = (track.kind, peer.audio_level_extension) {
            // RFC 6464: the low 7 bits are the level in -dBov.
            if let Some((_, &[level, ..])) =
                rtp::extensions(scratch, &header).find(|(i, _)| *i == id)
            {
                if let Some(speaking) = track.voice.record(level & 0x7f, now) {
                    events.push_back(Event::SpeakingChanged {
                        peer: peer_id,
                        track: track_id,
                        speaking,
                    });
                }
            }
        }
        // Relay links carry the publisher's audio level on, so that the other engine's voice
        // activity (active speaker, audio last-N) sees the track as this one does.
        let audio_level = match (track.kind, peer.audio_level_extension) {
            (MediaKind::Audio, Some(id)) => rtp::extensions(scratch, &header)
                .find(|(i, value)| *i == id && !value.is_empty())
                .map(|(_, value)| &value[..1]),
            _ => None,
        };
        let partition = track.partition.unwrap_or(peer.partition);
        // Forwarded to subscribers that negotiated it: their decoders find frames and layers by it.
        let descriptor = svc_frame
            .and(peer.dependency_descriptor_extension)
            .and_then(|id| rtp::extensions(scratch, &header).find(|(i, _)| *i == id))
            .map(|(_, data)| data);
        if is_keyframe && track.kind == MediaKind::Video {
            layer.keyframe_wanted = false;
            let dimensions = match codec.codec {
                CodecKind::Vp8 => rtp::vp8_keyframe_dimensions(payload),
                CodecKind::H264 => rtp::h264_keyframe_dimensions(payload),
                _ => None,
            };
            if let Some((width, height)) = dimensions {
                layer.width = width;
                layer.height = height;
            }
        }

        for &(subscriber_id, slot_index) in &track.subscribers {
            let Some(subscriber) = peers.get_mut(&subscriber_id) else {
                continue;
            };
            if subscriber.partition != partition && !subscriber.relay {
                continue;
            }
            let Some(destination) = subscriber.ice.selected() else {
                continue;
            };
            if subscriber.state != ConnectionState::Connected {
                continue;
            }
            if let (Some(_), Some(svc)) = (svc_frame, track.svc.as_deref_mut()) {
                // A subscription made before the track's first structure gets its target now.
                crate::svc::choose_if_unset(subscriber, slot_index, svc, now);
            }
            let Some(outbound) = subscriber.srtp_outbound.as_mut() else {
                continue;
            };
            let Some(slot) = subscriber.slots.get_mut(slot_index) else {
                continue;
            };
            let Some(sent) = crate::red::for_slot(slot, codec.codec, payload, red_primary) else {
                continue;
            };
            let (payload_types, payload) = (sent.payload_types, sent.payload);
            let Some(subscription) = slot.subscription.as_mut() else {
                continue;
            };
            if subscription.allotment.grant.paused || !subscription.relay_wanted {
                // The allocator found no room for it; it resumes at a keyframe.
                continue;
            }
            if subscription.layer != Some(layer_index) {
                // Packets of other layers never reach the subscriber; the target layer takes
                // over at its keyframe, where a decoder can start.
                if subscription.target_layer != layer_index || !is_keyframe {
                    continue;
                }
                if subscription.layer.is_some() {
                    subscription.rewriter.switch_source();
                    subscription.vp8.resync = true;
                }
                subscription.layer = Some(layer_index);
            }
            if let Some((descriptor, (temporal_id, layer_sync))) =
                vp8.and_then(|d| d.temporal.map(|t| (d, t)))
            {
                let wanted = subscription.max_temporal_layer.unwrap_or(u8::MAX);
                if descriptor.starts_frame
                    && (wanted < subscription.temporal_limit
                        || temporal_id == 0
                        || (layer_sync && temporal_id <= wanted))
                {
                    subscription.temporal_limit = wanted;
                }
                if temporal_id > subscription.temporal_limit {
                    // The subscriber's stream must show no hole where the frame was.
                    subscription.rewriter.drop_packet(header.sequence);
                    if descriptor.starts_frame {
                        skip_vp8_picture(&mut subscription.vp8, &descriptor);
                    }
                    continue;
                }
            }
            let mut marker = header.marker;
            // A relay slot pinned to a simulcast layer carries every frame of it: the other
            // engine chooses decode targets for its own subscribers.
            let svc_structure = track
                .svc
                .as_deref()
                .and_then(|s| s.structure())
                .filter(|_| subscription.pinned_layer.is_none());
            if let (Some(frame), Some(structure)) = (svc_frame.as_ref(), svc_structure) {
                match subscription
                    .svc
                    .admit(frame, structure, header.timestamp, header.marker)
                {
                    Some(end_of_picture) => marker = end_of_picture,
                    None => {
                        // Outside the subscriber's decode target: no hole where it was.
                        subscription.rewriter.drop_packet(header.sequence);
                        continue;
                    }
                }
            }
            let Some((sequence, timestamp)) =
                subscription
                    .rewriter
                    .rewrite(header.sequence, header.timestamp, now_ticks)
            else {
                continue;
            };
            subscription.has_sent = true;
            let mut out = outbox.buffer();
            write_rtp_header(
                &mut out,
                marker,
                payload_types.pt,
                sequence,
                timestamp,
                slot.ssrc,
            );
            let descriptor = descriptor
                .zip(subscriber.dependency_descriptor_extension)
                .or_else(|| {
                    audio_level
                        .filter(|_| subscriber.relay)
                        .zip(subscriber.audio_level_extension)
                });
            if let (Some(id), Some(downlink)) = (
                subscriber.twcc_extension,
                subscriber.downlink.as_deref_mut(),
            ) {
                let extensions_len = descriptor.map_or(TWCC_EXTENSION_LEN, |(d, _)| {
                    crate::svc::extension_block_len(true, d.len())
                });
                let wire_len = RTP_HEADER_LEN + extensions_len + payload.len() + SRTP_TAG_LEN;
                let cluster = downlink.prober.on_media_sent(wire_len, now);
                let transport_sequence = downlink.sender.on_send(now, wire_len, cluster);
                match descriptor {
                    Some((data, dd_id)) => crate::svc::append_extensions(
                        &mut out,
                        Some((id, transport_sequence)),
                        (dd_id, data),
                    ),
                    None => append_twcc_extension(&mut out, id, transport_sequence),
                }
            } else if let Some((data, dd_id)) = descriptor {
                crate::svc::append_extensions(&mut out, None, (dd_id, data));
            }
            let payload_start = out.len();
            out.extend_from_slice(payload);
            if let Some((from, to)) = sent.renumber {
                crate::red::renumber_blocks(&mut out[payload_start..], from, to);
            }
            if let Some(descriptor) = vp8 {
                keep_vp8_continuous(
                    &mut subscription.vp8,
                    &descriptor,
                    &mut out[payload_start..],
                );
            }
            if outbound.protect_rtp(&mut out).is_err() {
                outbox.free.push(out);
                continue;
            }
            slot.packets_sent = slot.packets_sent.wrapping_add(1);
            slot.octets_sent = slot.octets_sent.wrapping_add(payload.len() as u32);
            subscriber.counters.packets_sent += 1;
            subscriber.counters.bytes_sent += out.len() as u64;
            stats.packets_forwarded += 1;
            outbox.send(destination, out);
        }
        let (codec_without_red, payload) =
            crate::red::without_red(codec.codec, payload, red_primary);
        let packet = rtp_forward::ForwardedPacket {
            track: track_id,
            layer: layer_index,
            codec: codec_without_red,
            header: &header,
            payload,
            vp8,
            is_keyframe,
            now,
            now_ticks,
        };
        rtp_forwards.forward(&packet, outbox, stats);
    }

    fn handle_rtcp(&mut self, peer_id: PeerId, data: &[u8]) {
        let now = self.now;
        let mut keyframe_requests: Vec<(TrackId, usize)> = Vec::new();
        {
            let Engine {
                peers,
                tracks,
                outbox,
                scratch,
                stats,
                ..
            } = self;
            let Some(peer) = peers.get_mut(&peer_id) else {
                return;
            };
            if decrypt_into(
                scratch,
                data,
                peer.srtp_inbound.as_mut(),
                stats,
                Packet::Rtcp,
            )
            .is_none()
            {
                return;
            }
            peer.counters.packets_received += 1;
            peer.counters.bytes_received += data.len() as u64;
            for packet in rtcp::packets(scratch) {
                let Ok(packet) = packet else {
                    stats.dropped_malformed += 1;
                    break;
                };
                match packet {
                    rtcp::RtcpPacket::SenderReport(report) => {
                        if let Some(IncomingStream::Media(track_id, layer)) =
                            peer.incoming.get(&report.ssrc)
                        {
                            if let Some(layer) = tracks
                                .get_mut(track_id)
                                .and_then(|t| t.layers.get_mut(*layer as usize))
                            {
                                layer.last_sender_report = Some(SenderReportInfo {
                                    ntp: report.ntp,
                                    rtp_timestamp: report.rtp_timestamp,
                                    received_at: now,
                                });
                            }
                        }
                    }
                    rtcp::RtcpPacket::TransportCc(cc) => {
                        let Some(downlink) = peer.downlink.as_deref_mut() else {
                            continue;
                        };
                        let Ok(feedback) = TransportFeedback::parse(&cc) else {
                            stats.dropped_malformed += 1;
                            continue;
                        };
                        downlink.results.clear();
                        downlink
                            .sender
                            .on_feedback(&feedback, &mut downlink.results);
                        downlink.estimator.on_feedback(&downlink.results, now);
                        if let Some(cluster) = downlink.estimator.poll_probe(now) {
                            downlink.prober.start(cluster, now);
                        }
                    }
                    rtcp::RtcpPacket::Remb(remb) => {
                        if let Some(downlink) = peer.downlink.as_deref_mut() {
                            downlink.estimator.on_remb(remb.bitrate_bps(), now);
                        }
                    }
                    rtcp::RtcpPacket::Tmmbr(tmmbr) => {
                        // Per stream in RFC 5104; the allocator shares one budget per subscriber,
                        // so the tightest request for a stream we send caps it, like REMB.
                        let cap = tmmbr
                            .requests()
                            .filter(|request| peer.slot_by_ssrc(request.ssrc).is_some())
                            .map(|request| request.bitrate_bps)
                            .min();
                        if let (Some(cap), Some(downlink)) = (cap, peer.downlink.as_deref_mut()) {
                            downlink.estimator.on_remb(cap, now);
                        }
                    }
                    rtcp::RtcpPacket::Pli { media_ssrc, .. } => {
                        if let Some(track) = subscribed_track(peer, media_ssrc) {
                            keyframe_requests.push(track);
                        }
                    }
                    rtcp::RtcpPacket::Fir(fir) => {
                        for (ssrc, _) in fir.entries() {
                            if let Some(track) = subscribed_track(peer, ssrc) {
                                keyframe_requests.push(track);
                            }
                        }
                    }
                    rtcp::RtcpPacket::Nack(nack) => {
                        peer.counters.nacks_received += 1;
                        let Some(slot_index) = peer.slot_by_ssrc(nack.media_ssrc) else {
                            continue;
                        };
                        let Some(destination) = peer.ice.selected() else {
                            continue;
                        };
                        let Some(outbound) = peer.srtp_outbound.as_mut() else {
                            continue;
                        };
                        let slot = &mut peer.slots[slot_index];
                        let Some(subscription) = slot.subscription.as_ref() else {
                            continue;
                        };
                        let Some(track) = tracks.get(&subscription.track) else {
                            continue;
                        };
                        let Some(cache) = subscription
                            .layer
                            .and_then(|l| track.layers.get(l))
                            .and_then(|l| l.cache.as_ref())
                        else {
                            continue;
                        };
                        for lost in nack.lost() {
                            let Some(original_sequence) =
                                subscription.rewriter.original_sequence(lost)
                            else {
                                continue;
                            };
                            let Some(original) = cache.get(original_sequence) else {
                                continue;
                            };
                            let Ok(original_header) = rtp::parse_rtp(original) else {
                                continue;
                            };
                            let Some(codec) = track.codec_of(original_header.payload_type) else {
                                continue;
                            };
                            let Some(payload_types) = slot.payload_types_for(codec.codec) else {
                                continue;
                            };
                            let Some(offset) = subscription.rewriter.timestamp_offset() else {
                                continue;
                            };
                            let timestamp = original_header.timestamp.wrapping_add(offset);
                            let payload = &original
                                [original_header.payload_start..original_header.payload_end];
                            let mut out = outbox.buffer();
                            match (payload_types.rtx_pt, slot.rtx_ssrc) {
                                (Some(rtx_pt), Some(rtx_ssrc)) => {
                                    // RFC 4588: the original sequence number leads the RTX payload.
                                    slot.rtx_sequence = slot.rtx_sequence.wrapping_add(1);
                                    write_rtp_header(
                                        &mut out,
                                        original_header.marker,
                                        rtx_pt,
                                        slot.rtx_sequence,
                                        timestamp,
                                        rtx_ssrc,
                                    );
                                    out.extend_from_slice(&lost.to_be_bytes());
                                }
                                _ => write_rtp_header(
                                    &mut out,
                                    original_header.marker,
                                    payload_types.pt,
                                    lost,
                                    timestamp,
                                    slot.ssrc,
                                ),
                            }
                            out.extend_from_slice(payload);
                            if outbound.protect_rtp(&mut out).is_err() {
                                outbox.free.push(out);
                                continue;
                            }
                            peer.counters.retransmissions_sent += 1;
                            peer.counters.packets_sent += 1;
                            peer.counters.bytes_sent += out.len() as u64;
                            outbox.send(destination, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (track, layer) in keyframe_requests {
            if !self.shares_partition(track, peer_id) {
                continue;
            }
            self.request_keyframe_from_publisher(track, Some(layer), Some(peer_id), now);
        }
    }

    /// Asks `track`'s publisher for the packets of `layer` it did not deliver (RFC 4585 generic
    /// NACK); browsers answer on RTX, a relay link's other end from its cache.
    fn send_upstream_nack(&mut self, track_id: TrackId, layer: usize) {
        let now = self.now;
        let Engine {
            peers,
            tracks,
            outbox,
            lost_scratch,
            ..
        } = self;
        let Some(track) = tracks.get_mut(&track_id) else {
            return;
        };
        let Some(layer) = track.layers.get_mut(layer) else {
            return;
        };
        let (Some(nack), Some(media_ssrc)) = (layer.nack.as_mut(), layer.ssrc) else {
            return;
        };
        lost_scratch.clear();
        let polled = nack.poll(now, UPSTREAM_RTT, lost_scratch);
        if polled.abandoned > 0 {
            // A packet that will not come leaves every subscriber's decoder waiting; a keyframe
            // now spares them the receiver's own timeout (Chromium waits up to 3 s to ask).
            layer.keyframe_wanted = true;
        }
        if lost_scratch.is_empty() {
            return;
        }
        let Some(publisher) = peers.get_mut(&track.publisher) else {
            return;
        };
        if !publisher.is_connected() {
            return;
        }
        let mut out = outbox.buffer();
        rtcp::write_nack(
            &mut out,
            publisher.rtcp_ssrc,
            media_ssrc,
            lost_scratch.iter().copied(),
        );
        publisher.counters.nacks_sent += 1;
        outbox.send_protected(publisher, out, Packet::Rtcp);
    }

    /// Marks that a subscriber of `track_id` needs a keyframe of `layer` (all layers if `None`)
    /// and asks the publisher with a PLI unless one went out within
    /// `keyframe_request_interval_ms`. Until a keyframe arrives, the request is repeated by
    /// `housekeeping`: browsers ignore requests that come too soon after the previous one
    /// (Chromium: 300 ms), and a lost PLI must not leave a subscriber black.
    fn request_keyframe_from_publisher(
        &mut self,
        track_id: TrackId,
        layer: Option<usize>,
        by: Option<PeerId>,
        now: Instant,
    ) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let layers = track.layers.len();
        for index in 0..layers {
            if layer.is_none_or(|l| l == index) {
                if let Some(layer) = self
                    .tracks
                    .get_mut(&track_id)
                    .and_then(|t| t.layers.get_mut(index))
                {
                    layer.keyframe_wanted = true;
                }
                self.send_pli_if_due(track_id, index, by, now);
            }
        }
    }

    fn send_pli_if_due(
        &mut self,
        track_id: TrackId,
        layer: usize,
        by: Option<PeerId>,
        now: Instant,
    ) {
        let interval = Duration::from_millis(self.config.keyframe_request_interval_ms);
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(layer) = track.layers.get_mut(layer) else {
            return;
        };
        if layer
            .last_keyframe_request
            .is_some_and(|at| now < at + interval)
        {
            return;
        }
        let Some(media_ssrc) = layer.ssrc else { return };
        let Some(publisher) = self.peers.get_mut(&track.publisher) else {
            return;
        };
        if !publisher.is_connected() {
            return;
        }
        layer.last_keyframe_request = Some(now);
        let mut out = self.outbox.buffer();
        rtcp::write_pli(&mut out, publisher.rtcp_ssrc, media_ssrc);
        publisher.counters.keyframe_requests_sent += 1;
        self.outbox.send_protected(publisher, out, Packet::Rtcp);
        self.events.push_back(Event::KeyframeRequested {
            track: track_id,
            by,
        });
    }

    /// Picks the layer a subscription should receive: the best layer that is sending, within the
    /// subscriber's wish (highest spatial layer, largest picture height). Switching up or down
    /// happens at the new layer's next keyframe; a change asks for one. Returns the target.
    fn choose_layer(&mut self, subscriber: PeerId, slot_index: usize, now: Instant) -> usize {
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return 0;
        };
        let Some(subscription) = peer
            .slots
            .get_mut(slot_index)
            .and_then(|s| s.subscription.as_mut())
        else {
            return 0;
        };
        if let Some(pinned) = subscription.pinned_layer {
            return pinned;
        }
        let Some(track) = self.tracks.get_mut(&subscription.track) else {
            return 0;
        };
        if track.layers.len() < 2 {
            let track_id = track.id;
            if let Some(change) = track
                .svc
                .as_deref_mut()
                .and_then(|svc| crate::svc::choose_for(peer, slot_index, svc, now))
            {
                self.svc_target_changed(subscriber, track_id, change, now);
            }
            return 0;
        }
        let mut ranked = [0usize; MAX_LAYERS];
        let count = track.layers_by_quality(now, &mut ranked);
        // What the allocator left of the subscriber's downlink when this subscription's turn
        // came (by priority).
        let budget_bps = subscription.allotment.grant.budget_bps;
        let Some(subscription) = peer
            .slots
            .get_mut(slot_index)
            .and_then(|s| s.subscription.as_mut())
        else {
            return 0;
        };
        let allowed_rank = subscription
            .max_spatial_layer
            .map_or(count - 1, |max| (max as usize).min(count - 1));
        let mut choice = None;
        let current_rank = ranked[..count]
            .iter()
            .position(|&i| i == subscription.target_layer)
            .unwrap_or(0);
        for (rank, &index) in ranked[..count].iter().enumerate() {
            let layer = &mut track.layers[index];
            // Hysteresis: keeping a layer needs it to fit the budget, moving up to one needs
            // 15 % to spare, so an estimate near a layer's rate does not flip it back and forth.
            let affordable = budget_bps.is_none_or(|budget| {
                let needed = layer.rate.bitrate_bps(now);
                if rank > current_rank {
                    needed <= budget * 85 / 100
                } else {
                    needed <= budget
                }
            });
            let fits = rank <= allowed_rank
                && affordable
                && subscription
                    .max_height
                    .is_none_or(|max| layer.height == 0 || layer.height <= max);
            if layer.is_active(now) && (fits || choice.is_none()) {
                // Always fall back to the lowest sending layer rather than to nothing.
                choice = Some(index);
            }
            if !fits {
                break;
            }
        }
        let target = choice.unwrap_or(ranked[0]);
        if target != subscription.target_layer {
            subscription.target_layer = target;
            let track_id = subscription.track;
            let connected = peer.is_connected();
            let quality_rank = ranked[..count]
                .iter()
                .position(|&i| i == target)
                .unwrap_or(0);
            self.events.push_back(Event::LayerSwitched {
                peer: subscriber,
                track: track_id,
                layer: quality_rank as u8,
            });
            if connected && self.shares_partition(track_id, subscriber) {
                self.request_keyframe_from_publisher(track_id, Some(target), Some(subscriber), now);
            }
        }
        target
    }

    /// Limits a subscriber to VP8 temporal layers up to `max_temporal_layer` (`None`: all), e.g.
    /// 15 fps of a 30 fps L1T3 stream with `Some(1)`. Lowering applies from the next frame,
    /// raising from the next frame a decoder can start at (TL0 or a layer-sync frame). For an
    /// SVC track (Dependency Descriptor) it bounds the decode target from the next selection.
    pub fn set_temporal_preference(
        &mut self,
        subscriber: PeerId,
        track: TrackId,
        max_temporal_layer: Option<u8>,
    ) -> Result<(), SfuError> {
        let (peer, slot_index) = self.subscribed_slot(subscriber, track)?;
        if let Some(subscription) = peer.slots[slot_index].subscription.as_mut() {
            subscription.max_temporal_layer = max_temporal_layer;
        }
        Ok(())
    }

    /// Sets what a subscriber wants of a simulcast track: at most `max_spatial_layer` (0 is the
    /// lowest quality) and pictures at most `max_height` tall (e.g. its video element's size).
    pub fn set_layer_preference(
        &mut self,
        subscriber: PeerId,
        track: TrackId,
        max_spatial_layer: Option<u8>,
        max_height: Option<u16>,
        now: Instant,
    ) -> Result<(), SfuError> {
        let (peer, slot_index) = self.subscribed_slot(subscriber, track)?;
        let subscription = peer.slots[slot_index]
            .subscription
            .as_mut()
            .expect("found above");
        subscription.max_spatial_layer = max_spatial_layer;
        subscription.max_height = max_height;
        self.allocate_downlink(subscriber, now);
        self.choose_layer(subscriber, slot_index, now);
        // A layer this wish needs again resumes without waiting for the next round.
        self.update_layers_needed(now);
        Ok(())
    }

    /// Timers: DTLS retransmissions, consent expiry and periodic RTCP reports.
    fn housekeeping(&mut self) {
        let now = self.now;
        let consent_timeout = Duration::from_millis(self.config.consent_timeout_ms);
        // Reused so that timers, like packets, allocate nothing in steady state.
        let mut live = std::mem::take(&mut self.live_peers_scratch);
        live.clear();
        live.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.state != ConnectionState::Disconnected)
                .map(|(id, _)| *id),
        );
        for &id in &live {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            let consent_deadline = peer
                .ice
                .consent_expires_at(consent_timeout)
                .unwrap_or(peer.created_at + consent_timeout);
            // A relay link has no ICE; the control plane closes it when the other node is gone.
            if now >= consent_deadline && !peer.relay {
                self.disconnect(id, "consent_expired");
                continue;
            }
            if let Some(dtls) = peer.dtls.as_mut() {
                if dtls.poll_timeout().is_some_and(|at| now >= at) {
                    let outcome = dtls.handle_timeout(now);
                    self.after_dtls(id, outcome);
                }
            }
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if !peer.is_connected() {
                continue;
            }
            if now >= peer.next_report_at {
                peer.next_report_at = now + REPORT_INTERVAL;
                self.send_reports(id);
            }
            self.send_transport_feedback(id);
            self.send_probe_padding(id);
        }
        self.live_peers_scratch = live;

        self.apply_audio_last_n(now);
        for track in self.tracks.values_mut().filter(|t| t.voice.speaking) {
            if let Some(speaking) = track.voice.poll(now) {
                self.events.push_back(Event::SpeakingChanged {
                    peer: track.publisher,
                    track: track.id,
                    speaking,
                });
            }
        }

        let mut waiting = std::mem::take(&mut self.keyframe_scratch);
        waiting.clear();
        // Upstream NACKs due again (resends) or first asked after reordering; same scratch.
        for track in self.tracks.values() {
            for (index, layer) in track.layers.iter().enumerate() {
                if layer
                    .nack
                    .as_ref()
                    .and_then(|n| n.next_due(UPSTREAM_RTT))
                    .is_some_and(|due| now >= due)
                {
                    waiting.push((track.id, index));
                }
            }
        }
        for &(track, layer) in &waiting {
            self.send_upstream_nack(track, layer);
        }
        waiting.clear();
        for track in self.tracks.values() {
            for (index, layer) in track.layers.iter().enumerate() {
                if layer.keyframe_wanted {
                    waiting.push((track.id, index));
                }
            }
        }
        for &(track, layer) in &waiting {
            self.send_pli_if_due(track, layer, None, now);
        }
        self.keyframe_scratch = waiting;
        self.rtp_forward_housekeeping(now);

        if now >= self.next_layer_selection {
            self.next_layer_selection = now + LAYER_SELECTION_INTERVAL;
            self.allocate_downlinks(now);
            let mut subscriptions = std::mem::take(&mut self.subscription_scratch);
            subscriptions.clear();
            for track in self
                .tracks
                .values()
                .filter(|t| t.layers.len() > 1 || t.svc.is_some())
            {
                subscriptions.extend_from_slice(&track.subscribers);
            }
            for &(subscriber, slot) in &subscriptions {
                self.choose_layer(subscriber, slot, now);
            }
            self.subscription_scratch = subscriptions;
            self.update_layers_needed(now);
        }
    }

    /// Transport-wide feedback to a publisher about the packets it sent us, as it falls due.
    fn send_transport_feedback(&mut self, peer_id: PeerId) {
        let now = self.now;
        let Engine {
            peers,
            tracks,
            outbox,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&peer_id) else {
            return;
        };
        if peer
            .twcc_recorder
            .as_ref()
            .and_then(TwccRecorder::poll_timeout)
            .is_none_or(|due| now < due)
        {
            return;
        }
        let media_ssrc = peer
            .media
            .iter()
            .find_map(|line| match line {
                MediaLine::Publish { track, .. } => tracks
                    .get(track)
                    .and_then(|t| t.layers.iter().find_map(|l| l.ssrc)),
                _ => None,
            })
            .unwrap_or(0);
        let Some(mut recorder) = peer.twcc_recorder.take() else {
            return;
        };
        loop {
            let mut out = outbox.buffer();
            if !recorder.poll_feedback(now, peer.rtcp_ssrc, media_ssrc, &mut out) {
                outbox.free.push(out);
                break;
            }
            outbox.send_protected(peer, out, Packet::Rtcp);
        }
        peer.twcc_recorder = Some(recorder);
    }

    /// Padding-only RTP on a retransmission SSRC, as the bandwidth prober asks (RFC 4588 streams
    /// carry padding without disturbing the media sequence numbers).
    fn send_probe_padding(&mut self, peer_id: PeerId) {
        let now = self.now;
        let padding_slot = self.padding_slot(peer_id);
        let Engine { peers, outbox, .. } = self;
        let Some(peer) = peers.get_mut(&peer_id) else {
            return;
        };
        let Some(twcc_id) = peer.twcc_extension else {
            return;
        };
        if !peer
            .downlink
            .as_ref()
            .is_some_and(|d| d.prober.is_probing())
        {
            return;
        }
        let Some((slot_index, rtx_ssrc, rtx_pt)) = padding_slot else {
            return;
        };
        let Some(mut downlink) = peer.downlink.take() else {
            return;
        };
        while let Some(padding) = downlink.prober.poll_padding(now) {
            let overhead = RTP_HEADER_LEN + TWCC_EXTENSION_LEN + SRTP_TAG_LEN;
            let padding_len = padding.size_bytes.saturating_sub(overhead).clamp(1, 255);
            let transport_sequence =
                downlink
                    .sender
                    .on_send(now, overhead + padding_len, Some(padding.cluster));
            let slot = &mut peer.slots[slot_index];
            slot.rtx_sequence = slot.rtx_sequence.wrapping_add(1);
            let mut out = outbox.buffer();
            write_rtp_header(&mut out, false, rtx_pt, slot.rtx_sequence, 0, rtx_ssrc);
            out[0] |= 0x20; // RFC 3550 §5.1: padding; its last byte counts the padding bytes.
            append_twcc_extension(&mut out, twcc_id, transport_sequence);
            out.resize(out.len() + padding_len - 1, 0);
            out.push(padding_len as u8);
            outbox.send_protected(peer, out, Packet::Rtp);
        }
        peer.downlink = Some(downlink);
    }

    /// One compound RTCP packet per peer: a sender report for each stream we send it, a receiver
    /// report for the streams it publishes, and our CNAME.
    fn send_reports(&mut self, peer_id: PeerId) {
        let now = self.now;
        let Engine {
            peers,
            tracks,
            outbox,
            report_blocks,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&peer_id) else {
            return;
        };
        if peer.ice.selected().is_none() || peer.srtp_outbound.is_none() {
            return;
        }
        let mut out = outbox.buffer();
        let mut first_sender: Option<u32> = None;
        for slot in &peer.slots {
            let Some(subscription) = slot.subscription.as_ref() else {
                continue;
            };
            if !subscription.has_sent || out.len() > 1000 {
                continue;
            }
            let Some(track) = tracks.get(&subscription.track) else {
                continue;
            };
            let Some(report) = subscription
                .layer
                .and_then(|l| track.layers.get(l))
                .and_then(|l| l.last_sender_report)
            else {
                continue;
            };
            let Some(timestamp_offset) = subscription.rewriter.timestamp_offset() else {
                continue;
            };
            // Extrapolate the publisher's NTP/RTP pair to now so the report is fresh, then map
            // the RTP time into this subscriber's timeline; both clocks move together, so lip
            // sync survives the rewrite.
            let elapsed = now.saturating_duration_since(report.received_at);
            let ntp = report.ntp.wrapping_add(duration_to_ntp(elapsed));
            let rtp_now = report
                .rtp_timestamp
                .wrapping_add(
                    (elapsed.as_micros() as u64 * track.clock_rate as u64 / 1_000_000) as u32,
                )
                .wrapping_add(timestamp_offset);
            rtcp::write_sender_report(
                &mut out,
                slot.ssrc,
                ntp,
                rtp_now,
                slot.packets_sent,
                slot.octets_sent,
                &[],
            );
            first_sender.get_or_insert(slot.ssrc);
        }
        let blocks = report_blocks;
        blocks.clear();
        for track_id in peer.published_tracks() {
            let Some(track) = tracks.get_mut(&track_id) else {
                continue;
            };
            for layer in &mut track.layers {
                let (Some(ssrc), true) = (layer.ssrc, layer.receive.has_data()) else {
                    continue;
                };
                let loss = layer.receive.report();
                let (last_sr, delay_since_last_sr) = match layer.last_sender_report {
                    Some(sr) => {
                        let delay = now.saturating_duration_since(sr.received_at);
                        ((sr.ntp >> 16) as u32, (duration_to_ntp(delay) >> 16) as u32)
                    }
                    None => (0, 0),
                };
                blocks.push(rtcp::ReportBlock {
                    ssrc,
                    fraction_lost: loss.fraction_lost,
                    cumulative_lost: loss.cumulative_lost,
                    extended_highest_seq: loss.extended_highest_seq,
                    jitter: loss.jitter,
                    last_sr,
                    delay_since_last_sr,
                });
            }
        }
        if !blocks.is_empty() || first_sender.is_none() {
            for chunk in blocks.chunks(31) {
                rtcp::write_receiver_report(&mut out, peer.rtcp_ssrc, chunk);
            }
            if blocks.is_empty() {
                rtcp::write_receiver_report(&mut out, peer.rtcp_ssrc, &[]);
            }
        }
        rtcp::write_sdes_cname(
            &mut out,
            first_sender.unwrap_or(peer.rtcp_ssrc),
            &peer.cname,
        );
        outbox.send_protected(peer, out, Packet::Rtcp);
    }
}

/// The stream a subscriber's slot announces in the answer.
/// Puts the m-line at `index`: a new one at the end, or a reused rejected one in its place.
fn place_media_line(media: &mut Vec<MediaLine>, index: usize, line: MediaLine) {
    match media.get_mut(index) {
        Some(existing) => *existing = line,
        None => media.push(line),
    }
}

fn send_stream(slot: &SendSlot, cname: &str) -> sdp::SendStream {
    sdp::SendStream {
        ssrc: slot.ssrc,
        rtx_ssrc: slot.rtx_ssrc,
        cname: cname.to_owned(),
        stream_id: format!("conclave-{}", slot.mid),
        track_id: format!("conclave-{}-{}", slot.kind.as_str(), slot.mid),
    }
}

/// Codecs of the answer's m-line that the engine can forward, with their RTX payload types.
fn payload_types_of(offered: &sdp::MediaSection, decision: &sdp::AnswerMedia) -> Vec<PayloadTypes> {
    let mut payload_types: Vec<PayloadTypes> = decision
        .codecs
        .iter()
        .filter_map(|c| {
            let codec = CodecKind::from_name(&c.name)?;
            Some(PayloadTypes {
                codec,
                pt: c.payload_type,
                rtx_pt: offered.rtx_for(c.payload_type),
            })
        })
        .collect();
    // RED wraps Opus, so Opus stays a track's first codec: the one plain-RTP forwards send.
    payload_types.sort_by_key(|p| p.codec == CodecKind::Red);
    payload_types
}

/// The layers a publisher's m-line announces: one per sent RID (simulcast by RID), one per SSRC
/// of an `a=ssrc-group:SIM` (simulcast by SSRC), else a single layer with the SSRC (and its
/// `FID` retransmission SSRC) if the SDP names them. Unnamed SSRCs are bound by MID/RID later.
fn publish_layers(
    offered: &sdp::MediaSection,
    kind: MediaKind,
    cache_packets: usize,
) -> Vec<Layer> {
    let cache = |layers: usize| {
        // Each simulcast layer keeps its own history; smaller, so three layers cost about one.
        let packets = if layers > 1 {
            cache_packets / 2
        } else {
            cache_packets
        };
        (kind == MediaKind::Video).then(|| PacketCache::new(packets.max(64)))
    };
    let rtx_of = |primary: u32| {
        offered
            .ssrc_groups
            .iter()
            .find(|g| g.semantics.eq_ignore_ascii_case("FID") && g.ssrcs.first() == Some(&primary))
            .and_then(|g| g.ssrcs.get(1).copied())
    };
    let rids: Vec<&sdp::Rid> = offered
        .rids
        .iter()
        .filter(|r| r.direction == "send")
        .take(MAX_LAYERS)
        .collect();
    if !rids.is_empty() {
        return rids
            .iter()
            .map(|r| Layer::new(Some(r.id.clone()), None, None, cache(rids.len())))
            .collect();
    }
    if let Some(sim) = offered
        .ssrc_groups
        .iter()
        .find(|g| g.semantics.eq_ignore_ascii_case("SIM"))
    {
        let count = sim.ssrcs.len().min(MAX_LAYERS);
        return sim
            .ssrcs
            .iter()
            .take(count)
            .map(|&ssrc| Layer::new(None, Some(ssrc), rtx_of(ssrc), cache(count)))
            .collect();
    }
    let primary = offered
        .ssrc_groups
        .iter()
        .find(|g| g.semantics.eq_ignore_ascii_case("FID"))
        .and_then(|g| g.ssrcs.first().copied())
        .or_else(|| offered.ssrcs.first().map(|l| l.ssrc));
    vec![Layer::new(
        None,
        primary,
        primary.and_then(rtx_of),
        cache(1),
    )]
}

/// Binds an SSRC the SDP did not announce, by its MID header extension and, with simulcast,
/// its RID or repaired RID (RFC 8852).
fn bind_unknown_ssrc(
    peer: &mut Peer,
    tracks: &mut HashMap<TrackId, Track, IdBuildHasher>,
    packet: &[u8],
    header: &rtp::RtpHeader,
) -> Option<IncomingStream> {
    let mid_id = peer.mid_extension?;
    let mut mid: Option<&[u8]> = None;
    let mut rid: Option<&[u8]> = None;
    let mut repaired: Option<&[u8]> = None;
    for (id, value) in rtp::extensions(packet, header) {
        if id == mid_id {
            mid = Some(value);
        } else if Some(id) == peer.rid_extension {
            rid = Some(value);
        } else if Some(id) == peer.repaired_rid_extension {
            repaired = Some(value);
        }
    }
    let mid = mid?;
    let track_id = peer.media.iter().find_map(|m| match m {
        MediaLine::Publish { mid: m, track } if m.as_bytes() == mid => Some(*track),
        _ => None,
    })?;
    let track = tracks.get_mut(&track_id)?;
    let simulcast = track.layers.iter().any(|l| l.rid.is_some());
    let layer_named = |wanted: Option<&[u8]>| {
        track
            .layers
            .iter()
            .position(|l| l.rid.as_deref().map(str::as_bytes) == wanted && wanted.is_some())
    };
    if repaired.is_some() {
        let index = if simulcast { layer_named(repaired)? } else { 0 };
        track.layers[index].rtx_ssrc = Some(header.ssrc);
        let stream = IncomingStream::Retransmission(track_id, index as u8);
        peer.incoming.insert(header.ssrc, stream);
        return Some(stream);
    }
    let index = if simulcast { layer_named(rid)? } else { 0 };
    let layer = &mut track.layers[index];
    if let Some(old) = layer.ssrc.filter(|&old| old != header.ssrc) {
        // A new SSRC for the same layer (the sender restarted): forward it from here on.
        peer.incoming.remove(&old);
    }
    layer.ssrc = Some(header.ssrc);
    let stream = IncomingStream::Media(track_id, index as u8);
    peer.incoming.insert(header.ssrc, stream);
    Some(stream)
}

/// A dropped VP8 picture leaves no gap in the PictureIDs the subscriber sees.
fn skip_vp8_picture(state: &mut Vp8Continuity, descriptor: &rtp::Vp8Descriptor) {
    if let Some((_, _, long)) = descriptor.picture_id {
        let modulus: u16 = if long { 0x8000 } else { 0x80 };
        state.picture_id_offset = (state.picture_id_offset + modulus - 1) % modulus;
    }
}

/// Rewrites the PictureID and TL0PICIDX of an outgoing VP8 payload so that they continue the
/// subscriber's sequence across layer switches.
fn keep_vp8_continuous(
    state: &mut Vp8Continuity,
    descriptor: &rtp::Vp8Descriptor,
    payload: &mut [u8],
) {
    if let Some((picture_id, offset, long)) = descriptor.picture_id {
        let modulus: u16 = if long { 0x8000 } else { 0x80 };
        if state.resync && descriptor.starts_frame {
            let next = state
                .last_picture_id
                .map_or(picture_id, |last| (last + 1) % modulus);
            state.picture_id_offset = next.wrapping_sub(picture_id) % modulus;
        }
        let out = (picture_id.wrapping_add(state.picture_id_offset)) % modulus;
        if long {
            payload[offset] = 0x80 | (out >> 8) as u8;
            payload[offset + 1] = out as u8;
        } else {
            payload[offset] = out as u8;
        }
        state.last_picture_id = Some(out);
    }
    if let Some((tl0, offset)) = descriptor.tl0_pic_idx {
        if state.resync && descriptor.starts_frame {
            let next = state.last_tl0.map_or(tl0, |last| last.wrapping_add(1));
            state.tl0_offset = next.wrapping_sub(tl0);
        }
        let out = tl0.wrapping_add(state.tl0_offset);
        payload[offset] = out;
        state.last_tl0 = Some(out);
    }
    if descriptor.starts_frame {
        state.resync = false;
    }
}

/// The track (and the layer it needs refreshed) that a subscriber's feedback about
/// `media_ssrc` concerns.
fn subscribed_track(peer: &Peer, media_ssrc: u32) -> Option<(TrackId, usize)> {
    let slot = peer.slot_by_ssrc(media_ssrc)?;
    peer.slots[slot]
        .subscription
        .as_ref()
        .map(|s| (s.track, s.layer.unwrap_or(s.target_layer)))
}

/// A 12-byte RTP header with no CSRCs and no extensions: subscribers demultiplex by the SSRCs our
/// answer announced, so the publisher's extensions (its MID among them) are not forwarded.
fn write_rtp_header(
    out: &mut Vec<u8>,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) {
    out.push(0x80);
    out.push(((marker as u8) << 7) | (payload_type & 0x7f));
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
}

const RTP_HEADER_LEN: usize = 12;
/// One-byte-form extension block holding only the 2-byte transport-wide sequence number.
const TWCC_EXTENSION_LEN: usize = 8;
const SRTP_TAG_LEN: usize = 16;

#[derive(Clone, Copy)]
enum Packet {
    Rtp,
    Rtcp,
}

/// Decrypts `data` into `scratch` (truncated to the plain packet) and returns its length, or
/// counts why SRTP refused it and returns `None`.
fn decrypt_into(
    scratch: &mut Vec<u8>,
    data: &[u8],
    inbound: Option<&mut srtp::SrtpContext>,
    stats: &mut EngineStats,
    packet: Packet,
) -> Option<usize> {
    let Some(inbound) = inbound else {
        // Media before DTLS finished: nothing to decrypt it with.
        stats.dropped_malformed += 1;
        return None;
    };
    scratch.clear();
    scratch.extend_from_slice(data);
    let result = match packet {
        Packet::Rtp => inbound.unprotect_rtp(scratch),
        Packet::Rtcp => inbound.unprotect_rtcp(scratch),
    };
    match result {
        Ok(len) => {
            scratch.truncate(len);
            Some(len)
        }
        Err(srtp::SrtpError::Replayed | srtp::SrtpError::TooOld) => {
            stats.dropped_replay += 1;
            None
        }
        Err(_) => {
            stats.dropped_srtp_auth += 1;
            None
        }
    }
}

/// Turns the plain 12-byte header at the start of `out` into one with an RFC 8285 one-byte
/// extension block carrying the transport-wide sequence number.
fn append_twcc_extension(out: &mut Vec<u8>, id: u8, transport_sequence: u16) {
    out[0] |= 0x10;
    let [high, low] = transport_sequence.to_be_bytes();
    out.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, (id << 4) | 1, high, low, 0]);
}

/// A duration in NTP's 32.32 fixed point.
fn duration_to_ntp(duration: Duration) -> u64 {
    (duration.as_secs() << 32) + ((duration.subsec_nanos() as u64) << 32) / 1_000_000_000
}
