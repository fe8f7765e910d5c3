//! Partitions of one engine's peers (breakout rooms): media flows only between peers of the same
//! partition. Subscriptions and send slots stay as negotiated, so moving a peer never needs a
//! new offer/answer; a slot whose publisher is elsewhere simply carries nothing.

use super::Engine;
use crate::error::SfuError;
use crate::ids::{MediaKind, PeerId, TrackId};
use std::time::Instant;

/// Partition every peer starts in: the main room.
pub const MAIN_PARTITION: u32 = 0;

/// A subscription whose publisher and subscriber stopped or started sharing a partition.
struct Crossing {
    subscriber: PeerId,
    slot: usize,
    track: TrackId,
    now_together: bool,
}

impl Engine {
    /// Moves `peer` into `partition` (0 is the main room): from now on it receives only what
    /// publishers of that partition send, and only subscribers of that partition receive its
    /// tracks. A subscription that starts flowing again resumes on a keyframe, continuing the
    /// subscriber's sequence numbers with timestamps advanced by the pause.
    pub fn set_partition(
        &mut self,
        peer_id: PeerId,
        partition: u32,
        now: Instant,
    ) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        let previous = std::mem::replace(&mut peer.partition, partition);
        if previous == partition {
            return Ok(());
        }
        let mut crossings = Vec::new();
        let peer = &self.peers[&peer_id];
        for (slot, subscription) in peer
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.subscription.as_ref().map(|sub| (i, sub)))
        {
            let Some(publisher_partition) = self
                .tracks
                .get(&subscription.track)
                .and_then(|t| self.peers.get(&t.publisher))
                .map(|p| p.partition)
            else {
                continue;
            };
            if (publisher_partition == previous) != (publisher_partition == partition) {
                crossings.push(Crossing {
                    subscriber: peer_id,
                    slot,
                    track: subscription.track,
                    now_together: publisher_partition == partition,
                });
            }
        }
        for track in peer.published_tracks().filter_map(|t| self.tracks.get(&t)) {
            for &(subscriber, slot) in &track.subscribers {
                let Some(subscriber_partition) = self.peers.get(&subscriber).map(|p| p.partition)
                else {
                    continue;
                };
                if subscriber != peer_id
                    && (subscriber_partition == previous) != (subscriber_partition == partition)
                {
                    crossings.push(Crossing {
                        subscriber,
                        slot,
                        track: track.id,
                        now_together: subscriber_partition == partition,
                    });
                }
            }
        }
        for crossing in crossings {
            self.cross_partition(crossing, now);
        }
        Ok(())
    }

    /// The partition `peer` is in, if it exists.
    pub fn partition_of(&self, peer_id: PeerId) -> Option<u32> {
        self.peers.get(&peer_id).map(|p| p.partition)
    }

    /// Whether `track`'s publisher and `subscriber` share a partition (media may flow).
    pub(super) fn shares_partition(&self, track: TrackId, subscriber: PeerId) -> bool {
        let publisher = self
            .tracks
            .get(&track)
            .and_then(|t| self.peers.get(&t.publisher));
        match (publisher, self.peers.get(&subscriber)) {
            (Some(publisher), Some(subscriber)) => publisher.partition == subscriber.partition,
            _ => false,
        }
    }

    /// The slot (index, RTX SSRC, RTX payload type) that carries probe padding to `peer`: one
    /// with RTX whose publisher shares its partition, so that not even padding crosses.
    pub(super) fn padding_slot(&self, peer_id: PeerId) -> Option<(usize, u32, u8)> {
        let peer = self.peers.get(&peer_id)?;
        peer.slots.iter().enumerate().find_map(|(i, s)| {
            let rtx_pt = s.payload_types.iter().find_map(|p| p.rtx_pt)?;
            let track = s.subscription.as_ref()?.track;
            self.shares_partition(track, peer_id)
                .then_some((i, s.rtx_ssrc?, rtx_pt))
        })
    }

    fn cross_partition(&mut self, crossing: Crossing, now: Instant) {
        let Some(subscriber) = self.peers.get_mut(&crossing.subscriber) else {
            return;
        };
        let connected = subscriber.is_connected();
        let Some(subscription) = subscriber
            .slots
            .get_mut(crossing.slot)
            .and_then(|s| s.subscription.as_mut())
            .filter(|s| s.track == crossing.track)
        else {
            return;
        };
        // Either way the stream restarts from nothing: no layer until a keyframe (video must
        // restart where a decoder can), and the rewriter continues the subscriber's numbering
        // after the gap as it does after a pause, so the jump is neither loss nor a restart.
        subscription.layer = None;
        subscription.rewriter.switch_source();
        subscription.vp8.resync = true;
        let target = subscription.target_layer;
        let is_video = self
            .tracks
            .get(&crossing.track)
            .is_some_and(|t| t.kind == MediaKind::Video);
        if crossing.now_together && connected && is_video {
            self.request_keyframe_from_publisher(
                crossing.track,
                Some(target),
                Some(crossing.subscriber),
                now,
            );
        }
    }
}
