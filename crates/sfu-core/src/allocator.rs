//! Adaptive media policy: sharing a subscriber's downlink among its video subscriptions by
//! priority, and deciding which simulcast layers a publisher may pause (dynacast). Decisions
//! only; the engine measures the layers and applies the results.

use crate::track::MAX_LAYERS;
use std::time::{Duration, Instant};

/// Priority of a subscription unless the control plane sets one; higher is served first.
pub const DEFAULT_PRIORITY: u8 = 1;
/// A subscription of this priority is paused whatever the budget (video last-N: the control
/// plane keeps only the recent speakers' cameras flowing).
pub const PAUSED_PRIORITY: u8 = 0;

/// Moving a subscription up a layer (or out of a pause) needs this share of the budget left to
/// spare, so an estimate near a layer's rate does not flip it back and forth.
const UPGRADE_HEADROOM_PERCENT: u64 = 85;

/// What one video subscription could receive, its layers ranked from the lowest quality up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub priority: u8,
    /// Bitrate of each ranked layer (0 while unknown: it fits any budget).
    pub costs_bps: [u64; MAX_LAYERS],
    /// How many entries of `costs_bps` are layers (at least 1).
    pub layers: usize,
    /// The best rank the subscriber wants (its spatial and picture-height wish), whether or not
    /// that layer is being sent right now.
    pub wanted_rank: usize,
    /// The rank it receives now, `None` while paused.
    pub current_rank: Option<usize>,
}

/// The allocator's decision for one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// What was left of the budget when this subscription's turn came (`None`: no estimate,
    /// no limit). The engine picks the best sending layer within it.
    pub budget_bps: Option<u64>,
    /// The best rank that fits: the layer the publisher should keep sending for it.
    pub rank: usize,
    /// Not even the lowest layer fits what higher priorities left: forward nothing.
    pub paused: bool,
}

/// A subscription's priority and its latest grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allotment {
    pub priority: u8,
    pub grant: Grant,
}

impl Default for Allotment {
    fn default() -> Self {
        Allotment {
            priority: DEFAULT_PRIORITY,
            grant: Grant::default(),
        }
    }
}

/// Serves `demands` in priority order (ties in the given order): each takes the best layer up to
/// its wish that fits what is left of `budget_bps`, and that layer's cost is taken from the
/// budget. The first subscription always gets at least the lowest layer (a picture beats
/// none); later simulcast ones pause when even that does not fit, and those of
/// [`PAUSED_PRIORITY`] always. A track without simulcast never pauses for the budget: it has no
/// cheaper layer, and with its video gone the estimate (then application-limited) could not
/// grow back to resume it. `order` is scratch space, reused so
/// the engine's timers allocate nothing in steady state.
pub fn allocate(
    budget_bps: Option<u64>,
    demands: &[Demand],
    order: &mut Vec<usize>,
    grants: &mut [Grant],
) {
    order.clear();
    order.extend(0..demands.len().min(grants.len()));
    order.sort_by_key(|&i| std::cmp::Reverse(demands[i].priority));
    let mut remaining = budget_bps;
    let mut served = 0;
    for &index in order.iter() {
        let demand = &demands[index];
        if demand.priority == PAUSED_PRIORITY {
            grants[index] = Grant {
                budget_bps: Some(0),
                rank: 0,
                paused: true,
            };
            continue;
        }
        let layers = demand.layers.clamp(1, MAX_LAYERS);
        let top = demand.wanted_rank.min(layers - 1);
        let mut chosen = None;
        for rank in 0..=top {
            let cost = demand.costs_bps[rank];
            let fits = remaining.is_none_or(|left| {
                if demand.current_rank.is_none_or(|current| rank > current) {
                    cost <= left * UPGRADE_HEADROOM_PERCENT / 100
                } else {
                    cost <= left
                }
            });
            if !fits {
                break;
            }
            chosen = Some(rank);
        }
        let granted = match chosen {
            Some(rank) => Some(rank),
            None if served == 0 || layers == 1 => Some(0),
            None => None,
        };
        grants[index] = match granted {
            Some(rank) => {
                let grant = Grant {
                    budget_bps: remaining,
                    rank,
                    paused: false,
                };
                remaining = remaining.map(|left| left.saturating_sub(demand.costs_bps[rank]));
                served += 1;
                grant
            }
            None => Grant {
                budget_bps: Some(0),
                rank: 0,
                paused: true,
            },
        };
    }
}

/// A layer nobody needed for this long is paused at the publisher; a new need resumes it at
/// once. Long enough that a subscriber's brief dip (a resize, an estimate wobble) does not make
/// the publisher's encoder stop and restart.
pub const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// Nothing is paused during a track's first seconds: the engine still learns each layer's
/// picture size and bitrate, which rank them.
pub const WARM_UP: Duration = Duration::from_secs(3);

/// Which of a simulcast track's layers (in the publisher's encoding order) the publisher was
/// told to send, and since when each has been unneeded.
#[derive(Debug, Clone, Copy)]
pub struct LayerNeeds {
    announced: [bool; MAX_LAYERS],
    unneeded_since: [Option<Instant>; MAX_LAYERS],
    first_seen: Option<Instant>,
}

impl Default for LayerNeeds {
    fn default() -> Self {
        LayerNeeds {
            // Publishers start with every encoding active.
            announced: [true; MAX_LAYERS],
            unneeded_since: [None; MAX_LAYERS],
            first_seen: None,
        }
    }
}

impl LayerNeeds {
    /// Records which of `count` layers some subscriber needs now; returns what the publisher
    /// should send from now on when that changed.
    pub fn update(
        &mut self,
        needed: [bool; MAX_LAYERS],
        count: usize,
        now: Instant,
    ) -> Option<[bool; MAX_LAYERS]> {
        let count = count.min(MAX_LAYERS);
        let first_seen = *self.first_seen.get_or_insert(now);
        let warming_up = now < first_seen + WARM_UP;
        let mut next = self.announced;
        for layer in 0..count {
            if needed[layer] || warming_up {
                self.unneeded_since[layer] = None;
                next[layer] = true;
            } else {
                let since = *self.unneeded_since[layer].get_or_insert(now);
                if now >= since + PAUSE_AFTER {
                    next[layer] = false;
                }
            }
        }
        if next[..count] == self.announced[..count] {
            return None;
        }
        self.announced = next;
        Some(next)
    }

    /// Whether the publisher was told to send `layer`.
    pub fn is_announced_active(&self, layer: usize) -> bool {
        self.announced.get(layer).copied().unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(priority: u8, current_rank: Option<usize>) -> Demand {
        Demand {
            priority,
            costs_bps: [150_000, 500_000, 1_500_000, 0],
            layers: 3,
            wanted_rank: 2,
            current_rank,
        }
    }

    fn run(budget: Option<u64>, demands: &[Demand]) -> Vec<Grant> {
        let mut grants = vec![Grant::default(); demands.len()];
        allocate(budget, demands, &mut Vec::new(), &mut grants);
        grants
    }

    #[test]
    fn the_highest_priority_is_served_first_and_the_rest_share_what_is_left() {
        let grants = run(
            Some(1_700_000),
            &[camera(1, Some(0)), camera(3, Some(2)), camera(1, Some(0))],
        );
        assert_eq!(grants[1].rank, 2, "priority 3 keeps its high layer");
        assert_eq!(grants[0].rank, 0);
        assert!(!grants[0].paused);
        assert!(grants[2].paused, "nothing left for the third: {grants:?}");
    }

    #[test]
    fn without_an_estimate_everyone_gets_its_wish() {
        let grants = run(None, &[camera(1, None), camera(2, Some(0))]);
        assert!(grants
            .iter()
            .all(|g| g.rank == 2 && !g.paused && g.budget_bps.is_none()));
    }

    #[test]
    fn the_first_subscription_keeps_the_lowest_layer_even_below_its_cost() {
        let grants = run(Some(10_000), &[camera(1, Some(0)), camera(1, Some(0))]);
        assert_eq!((grants[0].rank, grants[0].paused), (0, false));
        assert!(grants[1].paused);
    }

    #[test]
    fn a_track_without_simulcast_is_never_paused_for_the_budget() {
        let single = Demand {
            layers: 1,
            wanted_rank: 0,
            ..camera(1, Some(0))
        };
        let grants = run(Some(100_000), &[camera(2, Some(0)), single]);
        assert_eq!((grants[1].rank, grants[1].paused), (0, false));
    }

    #[test]
    fn priority_zero_pauses_whatever_the_budget() {
        let grants = run(None, &[camera(0, Some(2)), camera(1, Some(0))]);
        assert!(grants[0].paused);
        assert_eq!((grants[1].rank, grants[1].paused), (2, false));
    }

    #[test]
    fn moving_up_needs_headroom_staying_does_not() {
        // 500 kbit/s layer, 550 kbit/s budget: kept when current, not entered from below.
        let staying = run(Some(550_000), &[camera(1, Some(1))]);
        let climbing = run(Some(550_000), &[camera(1, Some(0))]);
        assert_eq!((staying[0].rank, climbing[0].rank), (1, 0));
    }

    #[test]
    fn a_layer_is_paused_after_being_unneeded_for_a_while_and_resumed_at_once() {
        let t0 = crate::test_epoch();
        let mut needs = LayerNeeds::default();
        let only_low = [true, false, false, false];
        assert_eq!(needs.update(only_low, 3, t0), None, "warming up");
        let after_warm_up = t0 + WARM_UP;
        assert_eq!(needs.update(only_low, 3, after_warm_up), None);
        assert_eq!(
            needs.update(only_low, 3, after_warm_up + PAUSE_AFTER),
            Some([true, false, false, true])
        );
        assert_eq!(needs.update(only_low, 3, after_warm_up + PAUSE_AFTER), None);
        assert_eq!(
            needs.update([true, false, true, false], 3, after_warm_up + PAUSE_AFTER),
            Some([true, false, true, true])
        );
    }
}
