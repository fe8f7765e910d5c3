//! Adaptive media in the engine: runs the allocator over each subscriber's video subscriptions
//! (priorities, pauses) and tells the control plane which simulcast layers publishers should
//! keep sending (dynacast). The policy itself is [`crate::allocator`].

use super::Engine;
use crate::allocator::{allocate, Demand, Grant};
use crate::api::Event;
use crate::error::SfuError;
use crate::ids::{MediaKind, PeerId, TrackId};
use crate::track::MAX_LAYERS;
use std::time::{Duration, Instant};

/// How often audio last-N picks each subscriber's loudest tracks: fast enough that a new
/// speaker's first words are heard, slow enough to cost nothing.
const LAST_N_INTERVAL: Duration = Duration::from_millis(100);
/// A track already forwarded counts this much louder (in dB of level) when ranking, so two
/// voices of about the same loudness do not take turns.
const LAST_N_HYSTERESIS: f32 = 8.0;

/// Buffers reused by every allocation round, so timers allocate nothing in steady state.
#[derive(Default)]
pub(super) struct AdaptiveScratch {
    subscribers: Vec<PeerId>,
    slots: Vec<usize>,
    demands: Vec<Demand>,
    grants: Vec<Grant>,
    order: Vec<usize>,
    resumed: Vec<(TrackId, usize)>,
    /// Audio last-N: a subscriber's audio slots with their track's loudness (with the bonus of
    /// being forwarded already).
    audio: Vec<(usize, f32)>,
    next_last_n_at: Option<Instant>,
}

impl Engine {
    /// Sets how a subscriber's downlink favours `track` over its other video subscriptions:
    /// higher first (default [`crate::allocator::DEFAULT_PRIORITY`]). The control plane gives
    /// screen shares and the active speaker's camera more; the lowest drop to their low layer,
    /// or pause, when the estimate runs short.
    pub fn set_priority(
        &mut self,
        subscriber: PeerId,
        track: TrackId,
        priority: u8,
        now: Instant,
    ) -> Result<(), SfuError> {
        let (peer, slot_index) = self.subscribed_slot(subscriber, track)?;
        if let Some(subscription) = peer.slots[slot_index].subscription.as_mut() {
            if subscription.allotment.priority == priority {
                return Ok(());
            }
            subscription.allotment.priority = priority;
        }
        self.reallocate(subscriber, now);
        Ok(())
    }

    /// Allocates the subscriber's downlink again and applies it to every video subscription.
    fn reallocate(&mut self, subscriber: PeerId, now: Instant) {
        self.allocate_downlink(subscriber, now);
        let slots = self.peers.get(&subscriber).map_or(0, |p| p.slots.len());
        for slot in 0..slots {
            let is_video_subscription = self
                .peers
                .get(&subscriber)
                .and_then(|p| p.slots.get(slot))
                .is_some_and(|s| s.kind == MediaKind::Video && s.subscription.is_some());
            if is_video_subscription {
                self.choose_layer(subscriber, slot, now);
            }
        }
        self.update_layers_needed(now);
    }

    /// Runs [`Engine::allocate_downlink`] for every subscriber with video subscriptions.
    pub(super) fn allocate_downlinks(&mut self, now: Instant) {
        let mut subscribers = std::mem::take(&mut self.adaptive.subscribers);
        subscribers.clear();
        subscribers.extend(
            self.peers
                .values()
                .filter(|p| {
                    p.slots
                        .iter()
                        .any(|s| s.kind == MediaKind::Video && s.subscription.is_some())
                })
                .map(|p| p.id),
        );
        for &subscriber in &subscribers {
            self.allocate_downlink(subscriber, now);
        }
        self.adaptive.subscribers = subscribers;
    }

    /// Shares the subscriber's estimated downlink among its video subscriptions by priority and
    /// records each one's grant; a subscription coming out of a pause restarts at a keyframe.
    pub(super) fn allocate_downlink(&mut self, subscriber: PeerId, now: Instant) {
        let Engine {
            peers,
            tracks,
            adaptive,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&subscriber) else {
            return;
        };
        // A tenth stays free for audio, RTCP and retransmissions.
        let budget_bps = peer
            .downlink
            .as_ref()
            .map(|d| d.estimator.estimate_bps() * 9 / 10);
        adaptive.slots.clear();
        adaptive.demands.clear();
        adaptive.resumed.clear();
        for (index, slot) in peer.slots.iter().enumerate() {
            if slot.kind != MediaKind::Video {
                continue;
            }
            let Some(subscription) = slot.subscription.as_ref() else {
                continue;
            };
            let Some(track) = tracks.get_mut(&subscription.track) else {
                continue;
            };
            let mut ranked = [0usize; MAX_LAYERS];
            let count = track.layers_by_quality(now, &mut ranked);
            if count == 0 {
                continue;
            }
            if let Some(pinned) = subscription.pinned_layer {
                // A relay slot carries one layer: it costs that layer's rate, or is paused. When
                // the link runs short the lower layers go first: every viewer on the other side
                // can fall back to them.
                let rank = ranked[..count]
                    .iter()
                    .position(|&i| i == pinned)
                    .unwrap_or(0);
                let mut demand = Demand {
                    priority: subscription
                        .allotment
                        .priority
                        .saturating_add((MAX_LAYERS - rank) as u8),
                    layers: 1,
                    ..Demand::default()
                };
                demand.costs_bps[0] = track
                    .layers
                    .get(pinned)
                    .map_or(0, |layer| layer.known_bitrate_bps);
                demand.current_rank = (!subscription.allotment.grant.paused).then_some(0);
                adaptive.slots.push(index);
                adaptive.demands.push(demand);
                continue;
            }
            let mut demand = Demand {
                priority: subscription.allotment.priority,
                layers: count,
                ..Demand::default()
            };
            let allowed_rank = subscription
                .max_spatial_layer
                .map_or(count - 1, |max| (max as usize).min(count - 1));
            // The wish climbs from the lowest layer while each next one is allowed and not taller
            // than the subscriber draws (a size not known yet does not stop it).
            for (rank, &layer_index) in ranked[..count].iter().enumerate() {
                let layer = &track.layers[layer_index];
                demand.costs_bps[rank] = layer.known_bitrate_bps;
                let too_tall = subscription
                    .max_height
                    .is_some_and(|max| layer.height != 0 && layer.height > max);
                if rank <= allowed_rank && !too_tall && rank == demand.wanted_rank + 1 {
                    demand.wanted_rank = rank;
                }
            }
            demand.current_rank = if subscription.allotment.grant.paused {
                None
            } else {
                ranked[..count]
                    .iter()
                    .position(|&i| i == subscription.target_layer)
                    .or(Some(0))
            };
            adaptive.slots.push(index);
            adaptive.demands.push(demand);
        }
        adaptive.grants.clear();
        adaptive
            .grants
            .resize(adaptive.demands.len(), Grant::default());
        allocate(
            budget_bps,
            &adaptive.demands,
            &mut adaptive.order,
            &mut adaptive.grants,
        );
        for (&index, &grant) in adaptive.slots.iter().zip(adaptive.grants.iter()) {
            let Some(subscription) = peer.slots[index].subscription.as_mut() else {
                continue;
            };
            let was_paused = subscription.allotment.grant.paused;
            subscription.allotment.grant = grant;
            if was_paused && !grant.paused {
                // The subscriber's stream continues from where it stopped, at a keyframe.
                if subscription.layer.take().is_some() {
                    subscription.rewriter.switch_source();
                    subscription.vp8.resync = true;
                }
                adaptive
                    .resumed
                    .push((subscription.track, subscription.target_layer));
            }
        }
        let connected = peer.is_connected();
        let mut resumed = std::mem::take(&mut self.adaptive.resumed);
        for &(track, layer) in &resumed {
            if connected && self.shares_partition(track, subscriber) {
                self.request_keyframe_from_publisher(track, Some(layer), Some(subscriber), now);
            }
        }
        resumed.clear();
        self.adaptive.resumed = resumed;
    }

    /// Audio last-N: pauses all but the `audio_last_n` loudest audio subscriptions of every
    /// subscriber. A paused one continues its slot's sequence numbers when it resumes, so the
    /// subscriber sees no loss; it needs no keyframe.
    pub(super) fn apply_audio_last_n(&mut self, now: Instant) {
        let last_n = self.config.audio_last_n;
        if last_n == 0 || self.adaptive.next_last_n_at.is_some_and(|at| now < at) {
            return;
        }
        self.adaptive.next_last_n_at = Some(now + LAST_N_INTERVAL);
        let Engine {
            peers,
            tracks,
            adaptive,
            ..
        } = self;
        for peer in peers.values_mut() {
            adaptive.audio.clear();
            for (index, slot) in peer.slots.iter().enumerate() {
                let Some(subscription) = slot.subscription.as_ref() else {
                    continue;
                };
                if slot.kind != MediaKind::Audio {
                    continue;
                }
                let loudness = tracks
                    .get(&subscription.track)
                    .map_or(0.0, |t| t.voice.recent_loudness(now));
                let bonus = if subscription.allotment.grant.paused {
                    0.0
                } else {
                    LAST_N_HYSTERESIS
                };
                adaptive.audio.push((index, loudness + bonus));
            }
            // Loudest first; ties keep slot order, so silence changes nothing.
            adaptive.audio.sort_unstable_by(|a, b| {
                b.1.partial_cmp(&a.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.0.cmp(&b.0))
            });
            for (rank, &(index, _)) in adaptive.audio.iter().enumerate() {
                let Some(subscription) = peer.slots[index].subscription.as_mut() else {
                    continue;
                };
                let forward = rank < last_n;
                let paused = &mut subscription.allotment.grant.paused;
                if forward && *paused {
                    *paused = false;
                    subscription.rewriter.switch_source();
                } else if !forward && !*paused {
                    *paused = true;
                }
            }
        }
    }

    /// Dynacast: for each simulcast track, the layers up to the best one some subscriber is
    /// granted or still receives. Only layers above it pause: re-activating an encoding makes
    /// Chromium reconfigure its whole simulcast encoder (every layer restarts at a keyframe), so
    /// the layers between stay on to let subscribers move among them freely. A track nobody
    /// subscribes to keeps every layer: there is no need to judge by, and the first subscriber
    /// should not wait for an encoder to restart. A change is told with [`Event::LayersNeeded`];
    /// pauses only after [`crate::allocator::PAUSE_AFTER`].
    pub(super) fn update_layers_needed(&mut self, now: Instant) {
        let Engine {
            peers,
            tracks,
            events,
            ..
        } = self;
        for track in tracks.values_mut().filter(|t| t.layers.len() > 1) {
            let mut ranked = [0usize; MAX_LAYERS];
            let count = track.layers_by_quality(now, &mut ranked);
            let mut needed = [track.subscribers.is_empty(); MAX_LAYERS];
            needed[ranked[0]] = true;
            for &(subscriber, slot) in &track.subscribers {
                let Some(subscription) = peers
                    .get(&subscriber)
                    .and_then(|p| p.slots.get(slot))
                    .and_then(|s| s.subscription.as_ref())
                else {
                    continue;
                };
                if let Some(pinned) = subscription.pinned_layer.filter(|&l| l < MAX_LAYERS) {
                    // A relay slot needs its own layer, while the other engine wants it.
                    needed[pinned] |= subscription.relay_wanted;
                    continue;
                }
                if subscription.allotment.grant.paused {
                    continue;
                }
                needed[ranked[subscription.allotment.grant.rank.min(count - 1)]] = true;
                // Until the switch down happens at a keyframe, the old layer still shows.
                if let Some(layer) = subscription.layer.filter(|&l| l < MAX_LAYERS) {
                    needed[layer] = true;
                }
            }
            let best_rank = (0..count).rev().find(|&rank| needed[ranked[rank]]);
            for &layer in &ranked[..best_rank.map_or(0, |rank| rank + 1)] {
                needed[layer] = true;
            }
            if let Some(active) = track.needs.update(needed, count, now) {
                events.push_back(Event::LayersNeeded {
                    peer: track.publisher,
                    track: track.id,
                    active: active[..count].to_vec(),
                });
            }
        }
    }
}
