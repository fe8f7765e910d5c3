//! The engine's side of SVC layer selection: announcing a subscriber's new decode target and
//! asking for the keyframe a higher spatial layer needs. The policy is [`crate::svc`].

use super::Engine;
use crate::api::Event;
use crate::ids::{PeerId, TrackId};
use crate::svc::TargetChange;
use std::time::Instant;

impl Engine {
    pub(super) fn svc_target_changed(
        &mut self,
        subscriber: PeerId,
        track: TrackId,
        change: TargetChange,
        now: Instant,
    ) {
        self.events.push_back(Event::LayerSwitched {
            peer: subscriber,
            track,
            layer: change.spatial_id,
        });
        let connected = self
            .peers
            .get(&subscriber)
            .is_some_and(|p| p.is_connected());
        if change.needs_keyframe && connected && self.shares_partition(track, subscriber) {
            // An SVC track has one RTP stream: its only layer carries every spatial layer.
            self.request_keyframe_from_publisher(track, Some(0), Some(subscriber), now);
        }
    }
}
