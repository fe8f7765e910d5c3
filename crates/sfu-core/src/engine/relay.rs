//! Relay links between engines (cascading): one peer per remote engine carries tracks both ways
//! over SRTP keyed by the control plane, without ICE, DTLS or SDP. The exporting engine sends a
//! track into a send slot of the link as it would to a subscriber (layer choice, congestion
//! control, NACK answers, keyframe requests upstream); the importing engine takes that stream as
//! a track of its own and fans it out to its subscribers.

use super::{Engine, REPORT_INTERVAL};
use crate::error::SfuError;
use crate::forward::PacketCache;
use crate::ids::{MediaKind, PeerId, TrackId};
use crate::peer::{
    ConnectionState, DownlinkControl, IncomingStream, MediaLine, PayloadTypes, SendSlot,
};
use crate::srtp::{self, SrtpProfile};
use crate::track::{Layer, Track, VoiceActivity};
use crate::twcc::TwccRecorder;
use std::net::SocketAddr;
use std::time::Instant;

/// Both ends of a link use these header extension ids; no SDP negotiates them.
const RELAY_TWCC_EXTENSION: u8 = 1;
const RELAY_DEPENDENCY_DESCRIPTOR_EXTENSION: u8 = 2;
const RELAY_AUDIO_LEVEL_EXTENSION: u8 = 3;
const RELAY_SRTP_PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

/// Bytes of keying material a link needs: two keys and two salts, as DTLS-SRTP exports them.
pub const RELAY_KEYING_MATERIAL_LEN: usize = 2 * (16 + 12);

/// One stream of a relayed track on the link: a simulcast layer, or the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayedLayer {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
}

/// What the importing engine needs to know of a track the exporting engine sends on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedTrack {
    pub kind: MediaKind,
    /// One stream per simulcast layer, in the publisher's layer order, so that the importing
    /// engine chooses a layer for each of its subscribers as the exporting one would.
    pub layers: Vec<RelayedLayer>,
    /// The payload types the streams use on the link, one entry per codec.
    pub payload_types: Vec<PayloadTypes>,
}

/// A simulcast track has at most this many layers (and so streams on a link).
pub const MAX_RELAYED_LAYERS: usize = crate::track::MAX_LAYERS;

impl Engine {
    /// Opens a link to the engine at `remote`. Both ends get the same `keying_material`
    /// ([`RELAY_KEYING_MATERIAL_LEN`] random bytes, shared through the control plane) and opposite
    /// `initiator` flags, which decide who protects with which half.
    pub fn create_relay_peer(
        &mut self,
        remote: SocketAddr,
        keying_material: &[u8],
        initiator: bool,
        now: Instant,
    ) -> Result<PeerId, SfuError> {
        if keying_material.len() != RELAY_KEYING_MATERIAL_LEN {
            return Err(SfuError::InvalidArgument(format!(
                "a relay link needs {RELAY_KEYING_MATERIAL_LEN} bytes of keying material, got {}",
                keying_material.len()
            )));
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(SfuError::InvalidArgument(format!(
                "a relay link needs a concrete address, got {remote}"
            )));
        }
        if let Some(&existing) = self.by_address.get(&remote) {
            return Err(SfuError::InvalidArgument(format!(
                "{remote} is already the address of {existing}"
            )));
        }
        debug_assert_eq!(
            srtp::keying_material_len(RELAY_SRTP_PROFILE),
            RELAY_KEYING_MATERIAL_LEN
        );
        let id = self.create_peer(now);
        let (outbound, inbound) =
            srtp::contexts_from_keying_material(RELAY_SRTP_PROFILE, keying_material, initiator);
        let peer = self.peers.get_mut(&id).expect("just created");
        // Nobody checks a relay's credentials: a binding request naming them must not find it.
        self.by_ufrag.remove(&peer.ice.local_ufrag);
        peer.relay = true;
        peer.ice.pin(remote);
        peer.srtp_outbound = Some(outbound);
        peer.srtp_inbound = Some(inbound);
        peer.state = ConnectionState::Connected;
        peer.twcc_extension = Some(RELAY_TWCC_EXTENSION);
        peer.twcc_recorder = Some(TwccRecorder::new());
        peer.downlink = Some(Box::new(DownlinkControl::new()));
        peer.dependency_descriptor_extension = Some(RELAY_DEPENDENCY_DESCRIPTOR_EXTENSION);
        peer.audio_level_extension = Some(RELAY_AUDIO_LEVEL_EXTENSION);
        peer.next_report_at = now + REPORT_INTERVAL;
        self.by_address.insert(remote, id);
        Ok(id)
    }

    fn relay_peer(&mut self, relay: PeerId) -> Result<&mut crate::peer::Peer, SfuError> {
        let peer = self
            .peers
            .get_mut(&relay)
            .ok_or(SfuError::UnknownPeer(relay))?;
        if !peer.relay {
            return Err(SfuError::InvalidArgument(format!(
                "{relay} is not a relay link"
            )));
        }
        Ok(peer)
    }

    /// Starts sending `track` (published on this engine) over the link, each simulcast layer on
    /// a slot of its own; the answer is what the other engine passes to [`Engine::relay_import`].
    /// Slots a finished export left free are reused, so a long meeting does not grow the link.
    pub fn relay_export(
        &mut self,
        relay: PeerId,
        track_id: TrackId,
        now: Instant,
    ) -> Result<RelayedTrack, SfuError> {
        let track = self
            .tracks
            .get(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        if self.peers.get(&track.publisher).is_some_and(|p| p.relay) {
            // Links form a full mesh; passing a relayed track on could loop.
            return Err(SfuError::InvalidArgument(format!(
                "{track_id} came over a relay link and is not sent on"
            )));
        }
        let (kind, payload_types) = (track.kind, track.payload_types.clone());
        // An SVC track is one stream whatever its layers; simulcast is one per layer (with or
        // without a Dependency Descriptor on each, as Chromium sends VP8 simulcast when allowed).
        let layer_count = track.layers.len().max(1);
        if self.relay_peer(relay)?.slot_of_track(track_id).is_some() {
            return Err(SfuError::AlreadySubscribed {
                peer: relay,
                track: track_id,
            });
        }
        let mut chosen = Vec::with_capacity(layer_count);
        for _ in 0..layer_count {
            let peer = self.relay_peer(relay)?;
            let free = peer.slots.iter().enumerate().position(|(index, slot)| {
                slot.kind == kind
                    && slot.subscription.is_none()
                    && slot.payload_types == payload_types
                    && !chosen.contains(&index)
            });
            let index = match free {
                Some(index) => index,
                None => self.add_relay_slot(relay, kind, &payload_types)?,
            };
            chosen.push(index);
        }
        for (layer, &slot) in chosen.iter().enumerate() {
            let pinned = (layer_count > 1).then_some(layer);
            self.subscribe_slot(relay, track_id, slot, pinned, now)?;
        }
        let peer = self.relay_peer(relay)?;
        Ok(RelayedTrack {
            kind,
            layers: chosen
                .iter()
                .map(|&slot| RelayedLayer {
                    ssrc: peer.slots[slot].ssrc,
                    rtx_ssrc: peer.slots[slot].rtx_ssrc,
                })
                .collect(),
            payload_types,
        })
    }

    /// A new send slot on the link for streams with exactly these payload types: the other
    /// engine maps the streams by them.
    fn add_relay_slot(
        &mut self,
        relay: PeerId,
        kind: MediaKind,
        payload_types: &[PayloadTypes],
    ) -> Result<usize, SfuError> {
        let ssrc = self.random_ssrc();
        let has_rtx = payload_types.iter().any(|p| p.rtx_pt.is_some());
        let rtx_ssrc = if has_rtx {
            Some(self.random_ssrc())
        } else {
            None
        };
        let rtx_sequence = self.rng_u16();
        let peer = self.relay_peer(relay)?;
        let mid = format!("relay{}", peer.slots.len());
        peer.slots.push(SendSlot {
            mid,
            kind,
            ssrc,
            rtx_ssrc,
            payload_types: payload_types.to_vec(),
            subscription: None,
            rtx_sequence,
            packets_sent: 0,
            octets_sent: 0,
            continuation: None,
        });
        Ok(peer.slots.len() - 1)
    }

    /// Stops sending `track` over the link; its slots wait for the next export.
    pub fn relay_unexport(&mut self, relay: PeerId, track_id: TrackId) -> Result<(), SfuError> {
        let peer = self.relay_peer(relay)?;
        let slots: Vec<usize> = peer
            .slots
            .iter_mut()
            .enumerate()
            .filter(|(_, slot)| {
                slot.subscription
                    .as_ref()
                    .is_some_and(|s| s.track == track_id)
            })
            .map(|(index, slot)| {
                slot.end_subscription();
                index
            })
            .collect();
        if slots.is_empty() {
            return Err(SfuError::NotSubscribed {
                peer: relay,
                track: track_id,
            });
        }
        if let Some(track) = self.tracks.get_mut(&track_id) {
            track
                .subscribers
                .retain(|&(peer, slot)| !(peer == relay && slots.contains(&slot)));
        }
        Ok(())
    }

    /// Dynacast across the link: which of `track`'s layers the other engine's subscribers need
    /// (its `LayersNeeded` for the imported track, in layer order). Unwanted layers are not sent on
    /// the link and no longer keep the publisher encoding them; a wanted one resumes at once (the
    /// other engine asks for the keyframe its subscribers wait for).
    pub fn relay_set_wanted_layers(
        &mut self,
        relay: PeerId,
        track_id: TrackId,
        wanted: &[bool],
        now: Instant,
    ) -> Result<(), SfuError> {
        let peer = self.relay_peer(relay)?;
        let mut found = false;
        for subscription in peer
            .slots
            .iter_mut()
            .filter_map(|slot| slot.subscription.as_mut())
            .filter(|subscription| subscription.track == track_id)
        {
            found = true;
            if let Some(pinned) = subscription.pinned_layer {
                subscription.relay_wanted = wanted.get(pinned).copied().unwrap_or(true);
            }
        }
        if !found {
            return Err(SfuError::NotSubscribed {
                peer: relay,
                track: track_id,
            });
        }
        self.update_layers_needed(now);
        Ok(())
    }

    /// Takes the streams the other engine exports on the link as a track of this engine, which
    /// this engine's peers can subscribe to. `partition` is its original publisher's.
    pub fn relay_import(
        &mut self,
        relay: PeerId,
        relayed: &RelayedTrack,
        stream_id: &str,
        partition: u32,
    ) -> Result<TrackId, SfuError> {
        let Some(first) = relayed.payload_types.first() else {
            return Err(SfuError::InvalidArgument(
                "a relayed track needs at least one payload type".into(),
            ));
        };
        if relayed.layers.is_empty() || relayed.layers.len() > MAX_RELAYED_LAYERS {
            return Err(SfuError::InvalidArgument(format!(
                "a relayed track has 1 to {MAX_RELAYED_LAYERS} layers, got {}",
                relayed.layers.len()
            )));
        }
        let clock_rate = first.codec.clock_rate();
        let track_id = TrackId(self.next_track);
        let cache_packets = self.config.nack_cache_packets;
        let peer = self.relay_peer(relay)?;
        let mut ssrcs: Vec<u32> = Vec::with_capacity(2 * relayed.layers.len());
        for layer in &relayed.layers {
            for ssrc in std::iter::once(layer.ssrc).chain(layer.rtx_ssrc) {
                if peer.incoming.contains_key(&ssrc) || ssrcs.contains(&ssrc) {
                    return Err(SfuError::InvalidArgument(format!(
                        "SSRC {ssrc} already carries a stream on {relay}"
                    )));
                }
                ssrcs.push(ssrc);
            }
        }
        for (index, layer) in relayed.layers.iter().enumerate() {
            peer.incoming
                .insert(layer.ssrc, IncomingStream::Media(track_id, index as u8));
            if let Some(rtx) = layer.rtx_ssrc {
                peer.incoming
                    .insert(rtx, IncomingStream::Retransmission(track_id, index as u8));
            }
        }
        let mid = format!("relay-in{}", track_id.0);
        peer.media.push(MediaLine::Publish {
            mid: mid.clone(),
            track: track_id,
        });
        self.next_track += 1;
        // Each simulcast layer keeps its own history; smaller, as for a publisher's.
        let packets = if relayed.layers.len() > 1 {
            cache_packets / 2
        } else {
            cache_packets
        };
        let layers = relayed
            .layers
            .iter()
            .map(|layer| {
                let cache =
                    (relayed.kind == MediaKind::Video).then(|| PacketCache::new(packets.max(64)));
                Layer::new(None, Some(layer.ssrc), layer.rtx_ssrc, cache)
            })
            .collect();
        self.tracks.insert(
            track_id,
            Track {
                id: track_id,
                publisher: relay,
                kind: relayed.kind,
                mid,
                stream_id: stream_id.to_owned(),
                payload_types: relayed.payload_types.clone(),
                layers,
                subscribers: Vec::new(),
                clock_rate,
                voice: VoiceActivity::default(),
                svc: None,
                needs: Default::default(),
                partition: Some(partition),
            },
        );
        Ok(track_id)
    }

    /// Ends a track [`Engine::relay_import`] made: its subscribers' slots are freed (the
    /// exporting engine ended or stopped it).
    pub fn relay_end_import(&mut self, relay: PeerId, track_id: TrackId) -> Result<(), SfuError> {
        let peer = self.relay_peer(relay)?;
        let position = peer
            .media
            .iter()
            .position(|line| matches!(line, MediaLine::Publish { track, .. } if *track == track_id))
            .ok_or(SfuError::UnknownTrack(track_id))?;
        peer.media.remove(position);
        self.end_published_track(relay, track_id);
        Ok(())
    }

    fn rng_u16(&mut self) -> u16 {
        use rand_chacha::rand_core::RngCore;
        self.rng.next_u32() as u16
    }
}
