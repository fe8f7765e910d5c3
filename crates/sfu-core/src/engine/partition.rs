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
            let Some(publisher_partition) = self.track_partition(subscription.track) else {
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
                let Some(subscriber_partition) = self
                    .peers
                    .get(&subscriber)
                    .filter(|p| !p.relay)
                    .map(|p| p.partition)
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
        match (self.track_partition(track), self.peers.get(&subscriber)) {
            (Some(_), Some(subscriber)) if subscriber.relay => true,
            (Some(partition), Some(subscriber)) => partition == subscriber.partition,
            _ => false,
        }
    }

    /// The partition `track`'s media belongs to: its own when a relay brought it, else its
    /// publisher's.
    pub(super) fn track_partition(&self, track: TrackId) -> Option<u32> {
        let track = self.tracks.get(&track)?;
        track
            .partition
            .or_else(|| self.peers.get(&track.publisher).map(|p| p.partition))
    }

    /// Moves a track a relay link brought into `partition`: it then reaches only this engine's
    /// subscribers in that partition (its original publisher moved into a breakout room on the
    /// other engine). Subscriptions that start flowing again resume at a keyframe.
    pub fn set_track_partition(
        &mut self,
        track_id: TrackId,
        partition: u32,
        now: Instant,
    ) -> Result<(), SfuError> {
        let previous = self
            .track_partition(track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        track.partition = Some(partition);
        if previous == partition {
            return Ok(());
        }
        let mut crossings = Vec::new();
        for &(subscriber, slot) in &track.subscribers {
            let Some(subscriber_partition) = self
                .peers
                .get(&subscriber)
                .filter(|p| !p.relay)
                .map(|p| p.partition)
            else {
                continue;
            };
            if (subscriber_partition == previous) != (subscriber_partition == partition) {
                crossings.push(Crossing {
                    subscriber,
                    slot,
                    track: track_id,
                    now_together: subscriber_partition == partition,
                });
            }
        }
        for crossing in crossings {
            self.cross_partition(crossing, now);
        }
        Ok(())
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
