//! Offers the engine makes on a negotiated peer (to add m-lines it sends on) and their answers.
//!
//! The peer stays the one that opened the session; the engine offers only to grow it. While an
//! offer of ours waits, the peer's own offers are refused (`apply_offer` says `invalid_state`):
//! the engine is the impolite side of perfect negotiation, the peer rolls back and answers.

use super::{send_stream, Engine};
use crate::dtls::DtlsRole;
use crate::error::SfuError;
use crate::ids::{MediaKind, PeerId};
use crate::peer::{CodecKind, DownlinkControl, LocalOffer, MediaLine, PayloadTypes, SendSlot};
use crate::sdp::{self, AnswerMedia, Codec, Direction, SdpMediaKind};
use rand_chacha::rand_core::RngCore;
use std::collections::HashSet;

/// The rid header extensions describe what a publisher sends; an m-line we send on has none.
const PUBLISH_ONLY_EXTENSIONS: &[&str] = &[
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
];

impl Engine {
    /// Offers the peer one new m-line we send on per entry of `add`, after every m-line it has
    /// negotiated (each as it stands). The peer must have applied an offer of its own first, and
    /// have no offer of ours unanswered. Apply its answer with [`Engine::apply_answer`].
    pub fn create_offer(&mut self, peer_id: PeerId, add: &[MediaKind]) -> Result<String, SfuError> {
        let peer = self
            .peers
            .get(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        if peer.local_offer.is_some() {
            return Err(SfuError::InvalidState {
                peer: peer_id,
                state: "have-local-offer",
            });
        }
        let Some(dtls_role) = peer.dtls.as_ref().map(|d| d.role()) else {
            return Err(SfuError::InvalidState {
                peer: peer_id,
                state: "not-negotiated",
            });
        };
        let mut media = peer.negotiated.clone();
        let mut used_mids: HashSet<String> = media.iter().map(|m| m.mid.clone()).collect();
        let mut new_slots = Vec::with_capacity(add.len());
        for &kind in add {
            let mid = (0..)
                .map(|n| format!("s{n}"))
                .find(|candidate| !used_mids.contains(candidate))
                .expect("an unused mid");
            used_mids.insert(mid.clone());
            let mut line = self.new_send_line(peer_id, kind, mid);
            let slot = self.new_slot(&line, kind);
            line.send = Some(send_stream(&slot, &self.peers[&peer_id].cname));
            media.push(line);
            new_slots.push(slot);
        }
        let peer = &self.peers[&peer_id];
        let local = sdp::LocalTransport {
            ice_ufrag: peer.ice.local_ufrag.clone(),
            ice_pwd: peer.ice.local_pwd.clone(),
            fingerprint_sha256: self.identity.fingerprint_sha256().to_owned(),
            candidate: self.config.announced_addr,
            setup: match dtls_role {
                DtlsRole::Client => sdp::Setup::Active,
                DtlsRole::Server => sdp::Setup::Passive,
            },
        };
        self.session_version += 1;
        let offer = sdp::write_offer(&local, &media, self.session_version);
        let peer = self.peers.get_mut(&peer_id).expect("checked above");
        peer.local_offer = Some(Box::new(LocalOffer { media, new_slots }));
        Ok(offer)
    }

    /// Whether an offer of ours waits for the peer's answer.
    pub fn has_local_offer(&self, peer_id: PeerId) -> bool {
        self.peers
            .get(&peer_id)
            .is_some_and(|peer| peer.local_offer.is_some())
    }

    /// Applies the peer's answer to our offer: each new m-line it accepts becomes a free send
    /// slot (subscribe a track to it), each it rejects stays rejected. The offer is settled
    /// either way: an answer that does not fit it is refused and the offer dropped.
    pub fn apply_answer(&mut self, peer_id: PeerId, answer_text: &str) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        let Some(offer) = peer.local_offer.take() else {
            return Err(SfuError::InvalidState {
                peer: peer_id,
                state: "stable",
            });
        };
        let LocalOffer {
            mut media,
            new_slots,
        } = *offer;
        let answer = sdp::parse(answer_text).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        if answer.media.len() != media.len() {
            return Err(SfuError::InvalidSdp(format!(
                "the answer has {} m-lines for an offer of {}",
                answer.media.len(),
                media.len()
            )));
        }
        for (answered, offered) in answer.media.iter().zip(&media) {
            if answered.is_enabled() && answered.mid.as_deref() != Some(offered.mid.as_str()) {
                return Err(SfuError::InvalidSdp(format!(
                    "the answer's m-line for mid {} has mid {:?}",
                    offered.mid, answered.mid
                )));
            }
        }
        let first_new = media.len() - new_slots.len();
        for ((answered, line), mut slot) in answer.media[first_new..]
            .iter()
            .zip(&mut media[first_new..])
            .zip(new_slots)
        {
            let receives = answered.is_enabled()
                && matches!(
                    answered.direction,
                    Direction::RecvOnly | Direction::SendRecv
                );
            let accepted: HashSet<u8> = answered.codecs.iter().map(|c| c.payload_type).collect();
            slot.payload_types.retain(|p| accepted.contains(&p.pt));
            line.codecs.retain(|c| accepted.contains(&c.payload_type));
            if !receives || slot.payload_types.is_empty() {
                line.reject();
                peer.media.push(MediaLine::Rejected {
                    mid: line.mid.clone(),
                });
                continue;
            }
            if peer.twcc_extension.is_some() && peer.downlink.is_none() {
                peer.downlink = Some(Box::new(DownlinkControl::new()));
            }
            peer.slots.push(slot);
            peer.media.push(MediaLine::Send {
                slot: peer.slots.len() - 1,
            });
        }
        peer.negotiated = media;
        Ok(())
    }

    /// A sendonly m-line of `kind`: the codecs and header extensions of one the peer already
    /// negotiated (its payload types stay consistent under BUNDLE), or our defaults.
    fn new_send_line(&self, peer_id: PeerId, kind: MediaKind, mid: String) -> AnswerMedia {
        let peer = &self.peers[&peer_id];
        let sdp_kind = match kind {
            MediaKind::Audio => SdpMediaKind::Audio,
            MediaKind::Video => SdpMediaKind::Video,
        };
        let same_kind = |m: &&AnswerMedia| m.accepted && m.kind == sdp_kind && !m.codecs.is_empty();
        // A line we already send on has exactly the codecs the peer receives.
        let template = peer
            .negotiated
            .iter()
            .filter(same_kind)
            .find(|m| m.direction == Direction::SendOnly)
            .or_else(|| peer.negotiated.iter().find(same_kind));
        let (codecs, extmaps, protocol, rtcp_rsize) = match template {
            Some(template) => (
                template.codecs.clone(),
                template
                    .extmaps
                    .iter()
                    .filter(|e| !PUBLISH_ONLY_EXTENSIONS.contains(&e.uri.as_str()))
                    .cloned()
                    .collect(),
                template.protocol.clone(),
                template.rtcp_rsize,
            ),
            None => (
                default_codecs(kind, &peer.negotiated),
                Vec::new(),
                "UDP/TLS/RTP/SAVPF".to_owned(),
                true,
            ),
        };
        AnswerMedia {
            mid,
            kind: sdp_kind,
            kind_name: kind.as_str().to_owned(),
            accepted: true,
            direction: Direction::SendOnly,
            rejected_format: codecs
                .first()
                .map(|c| c.payload_type.to_string())
                .unwrap_or_default(),
            codecs,
            extmaps,
            send: None,
            protocol,
            rtcp_rsize,
            recv_simulcast: Vec::new(),
        }
    }

    fn new_slot(&mut self, line: &AnswerMedia, kind: MediaKind) -> SendSlot {
        let payload_types: Vec<PayloadTypes> = line
            .codecs
            .iter()
            .filter_map(|codec| {
                Some(PayloadTypes {
                    codec: CodecKind::from_name(&codec.name)?,
                    pt: codec.payload_type,
                    rtx_pt: rtx_for(&line.codecs, codec.payload_type),
                })
            })
            .collect();
        let has_rtx = payload_types.iter().any(|p| p.rtx_pt.is_some());
        let ssrc = loop {
            let candidate = self.rng.next_u32();
            if candidate != 0 {
                break candidate;
            }
        };
        let rtx_ssrc = has_rtx.then(|| self.rng.next_u32() | 1);
        SendSlot {
            mid: line.mid.clone(),
            kind,
            ssrc,
            rtx_ssrc,
            payload_types,
            subscription: None,
            rtx_sequence: self.rng.next_u32() as u16,
            packets_sent: 0,
            octets_sent: 0,
            continuation: None,
        }
    }
}

/// The rtx payload type whose `apt` is `pt`, among `codecs`.
fn rtx_for(codecs: &[Codec], pt: u8) -> Option<u8> {
    codecs
        .iter()
        .find(|c| c.is("rtx") && c.fmtp_param("apt").and_then(|v| v.parse().ok()) == Some(pt))
        .map(|c| c.payload_type)
}

/// Opus, or VP8 with rtx, on payload types no negotiated m-line uses for something else.
fn default_codecs(kind: MediaKind, negotiated: &[AnswerMedia]) -> Vec<Codec> {
    let used: HashSet<u8> = negotiated
        .iter()
        .flat_map(|m| m.codecs.iter().map(|c| c.payload_type))
        .collect();
    let mut free = (96..=127u8).rev().filter(|pt| !used.contains(pt));
    let feedback = |list: &[&str]| list.iter().map(|f| (*f).to_owned()).collect();
    match kind {
        MediaKind::Audio => {
            let pt = if used.contains(&111) {
                free.next()
            } else {
                Some(111)
            };
            pt.map(|pt| Codec {
                payload_type: pt,
                name: "opus".into(),
                clock_rate: 48_000,
                channels: Some(2),
                fmtp: Some("minptime=10;useinbandfec=1".into()),
                rtcp_fbs: feedback(&["transport-cc"]),
            })
            .into_iter()
            .collect()
        }
        MediaKind::Video => {
            let (Some(vp8), Some(rtx)) = (free.next(), free.next()) else {
                return Vec::new();
            };
            vec![
                Codec {
                    payload_type: vp8,
                    name: "VP8".into(),
                    clock_rate: 90_000,
                    channels: None,
                    fmtp: None,
                    rtcp_fbs: feedback(&[
                        "goog-remb",
                        "transport-cc",
                        "ccm fir",
                        "nack",
                        "nack pli",
                    ]),
                },
                Codec {
                    payload_type: rtx,
                    name: "rtx".into(),
                    clock_rate: 90_000,
                    channels: None,
                    fmtp: Some(format!("apt={vp8}")),
                    rtcp_fbs: Vec::new(),
                },
            ]
        }
    }
}
