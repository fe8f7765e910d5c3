//! Bandwidth probing: when to send a burst above the estimate, how to pace it, and what its
//! arrival says about the link. A probe that gets through lets the estimate jump instead of
//! creeping up at 8% a second.

use std::time::{Duration, Instant};

use crate::twcc::PacketResult;

/// A burst the caller should send: `bytes` bytes in at least `packets` packets at `target_bps`.
/// Media sent meanwhile counts towards it; padding (or retransmissions) fill the rest. Hand it
/// to a [`Prober`], which paces it and tags each packet with `id` for `TwccSender::on_send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCluster {
    pub id: u32,
    pub target_bps: u64,
    pub packets: usize,
    pub bytes: usize,
}

impl ProbeCluster {
    /// How long the burst lasts at its target rate.
    pub fn duration(&self) -> Duration {
        time_to_send(self.bytes, self.target_bps)
    }
}

/// How long `bytes` take at `bps`, capped at an hour so that nonsense in a caller-built cluster
/// cannot overflow an `Instant`.
fn time_to_send(bytes: usize, bps: u64) -> Duration {
    let secs = bytes as f64 * 8.0 / bps.max(1) as f64;
    Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::MAX)
        .min(Duration::from_secs(3600))
}

/// A cluster lasts about this long; shorter ones are swamped by jitter, longer ones fill queues.
const CLUSTER_DURATION: Duration = Duration::from_millis(20);
const MIN_CLUSTER_PACKETS: usize = 5;
/// At low rates a cluster lasts longer: a few media-sized packets in a short cluster would
/// dominate it and make its rate unmeasurable.
const MIN_CLUSTER_BYTES: usize = 4000;
/// The first probe goes this far above the initial estimate.
const INITIAL_FACTOR: f64 = 3.0;
/// Each step of the exponential search goes this far above the last result.
const STEP_FACTOR: f64 = 2.0;
/// A periodic probe goes this far above the estimate: enough to see headroom (and start a
/// search if there is), little enough that the queue it leaves on a full link stays short.
const PERIODIC_FACTOR: f64 = 1.5;
/// An unsaturated result at least this fraction of the target means the link may carry more:
/// probe again.
const FURTHER_FRACTION: f64 = 0.7;
/// Without overuse, loss or a probe for this long, probe again for headroom.
const PERIODIC_INTERVAL: Duration = Duration::from_millis(2500);
/// A probe whose results have not come back by then is given up.
const RESULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Not worth a probe: a target this close above the estimate.
const MIN_GAIN: f64 = 1.2;

/// Validity of a measurement: enough of the cluster must have arrived, and send and receive
/// rates must be plausible for one another.
const MIN_RECEIVED_FRACTION: f64 = 0.8;
const MAX_SEND_RECEIVE_RATIO: f64 = 2.0;
/// Received clearly slower than sent: the link is saturated at the receive rate.
const SATURATED_RATIO: f64 = 0.8;
const SATURATED_RESULT: f64 = 0.95;

/// Least-squares line through (time, bytes so far): its slope is a rate that one late packet
/// moves far less than it moves a first-to-last span.
#[derive(Debug, Clone, Copy, Default)]
struct RateFit {
    origin: Option<f64>,
    /// Earliest and latest time relative to the origin.
    min_t: f64,
    max_t: f64,
    n: f64,
    sum_t: f64,
    sum_b: f64,
    sum_tt: f64,
    sum_tb: f64,
}

impl RateFit {
    /// `t_s` in seconds on any clock, `bytes` the cumulative count including this packet.
    fn add(&mut self, t_s: f64, bytes: f64) {
        let t = t_s - *self.origin.get_or_insert(t_s);
        self.min_t = self.min_t.min(t);
        self.max_t = self.max_t.max(t);
        self.n += 1.0;
        self.sum_t += t;
        self.sum_b += bytes;
        self.sum_tt += t * t;
        self.sum_tb += t * bytes;
    }

    fn span_s(&self) -> f64 {
        self.max_t - self.min_t
    }

    fn bps(&self) -> Option<f64> {
        let spread = self.n * self.sum_tt - self.sum_t * self.sum_t;
        let bps = 8.0 * (self.n * self.sum_tb - self.sum_t * self.sum_b) / spread;
        (spread > 0.0 && bps > 0.0).then_some(bps)
    }
}

#[derive(Debug, Clone, Copy)]
struct Measurement {
    cluster: ProbeCluster,
    requested_at: Instant,
    /// Fits over the received packets of the cluster, by send time and by arrival time. The
    /// same bytes feed both, so a pattern of packet sizes biases both alike and cancels when
    /// they are compared.
    sent: RateFit,
    arrived: RateFit,
    received: usize,
    received_bytes: usize,
    /// The highest sequence number seen in the cluster.
    last_seq: Option<u64>,
}

impl Measurement {
    fn new(cluster: ProbeCluster, now: Instant) -> Self {
        Measurement {
            cluster,
            requested_at: now,
            sent: RateFit::default(),
            arrived: RateFit::default(),
            received: 0,
            received_bytes: 0,
            last_seq: None,
        }
    }

    /// Takes the cluster's packets; returns true once the results have moved past the cluster.
    fn add(&mut self, results: &[PacketResult]) -> bool {
        let mut done = false;
        for r in results {
            if r.probe_cluster != Some(self.cluster.id) {
                done |= self.last_seq.is_some_and(|last| r.seq > last);
                continue;
            }
            self.last_seq = Some(self.last_seq.map_or(r.seq, |last| last.max(r.seq)));
            // Only received packets are measured, on both sides (lost ones say nothing about
            // the pace).
            let Some(arrival_us) = r.arrival_us else {
                continue;
            };
            self.received += 1;
            self.received_bytes += r.size_bytes;
            let bytes = self.received_bytes as f64;
            let sent_s = r
                .send_time
                .saturating_duration_since(self.requested_at)
                .as_secs_f64();
            self.sent.add(sent_s, bytes);
            self.arrived.add(arrival_us as f64 / 1e6, bytes);
        }
        done
    }

    /// The rate the link carried the cluster at, if the measurement holds up.
    fn result(&self) -> Option<ProbeResult> {
        let min_packets = self.cluster.packets as f64 * MIN_RECEIVED_FRACTION;
        let min_bytes = self.cluster.bytes as f64 * MIN_RECEIVED_FRACTION;
        if (self.received as f64) < min_packets || (self.received_bytes as f64) < min_bytes {
            return None;
        }
        if self.sent.span_s() > 1.0 || self.arrived.span_s() > 1.0 {
            return None;
        }
        let send_bps = self.sent.bps()?;
        let receive_bps = self.arrived.bps()?;
        if send_bps / receive_bps > MAX_SEND_RECEIVE_RATIO {
            return None;
        }
        let saturated = receive_bps < SATURATED_RATIO * send_bps;
        Some(ProbeResult {
            bps: if saturated {
                SATURATED_RESULT * receive_bps
            } else {
                send_bps.min(receive_bps)
            },
            saturated,
        })
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ProbeResult {
    pub bps: f64,
    /// The cluster arrived slower than it was sent: `bps` is the link's capacity, not a lower
    /// bound of it.
    pub saturated: bool,
}

/// What the prober's decisions depend on, from the estimator.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProbeContext {
    pub estimate_bps: f64,
    /// The highest rate worth probing for (the configured maximum, a REMB).
    pub ceiling_bps: f64,
    /// Whether the path is calm: no overuse, no loss cap.
    pub calm: bool,
    pub last_decrease: Option<Instant>,
}

/// Decides when to probe and reads the results.
#[derive(Debug)]
pub(super) struct ProbeControl {
    next_id: u32,
    outstanding: Option<Measurement>,
    /// A probe to send next: the exponential search continues.
    queued_bps: Option<f64>,
    started: bool,
    last_probe: Option<Instant>,
}

impl Default for ProbeControl {
    fn default() -> Self {
        ProbeControl {
            next_id: 1,
            outstanding: None,
            queued_bps: None,
            started: false,
            last_probe: None,
        }
    }
}

impl ProbeControl {
    pub(super) fn poll(&mut self, now: Instant, ctx: ProbeContext) -> Option<ProbeCluster> {
        if let Some(m) = self.outstanding {
            if now.saturating_duration_since(m.requested_at) < RESULT_TIMEOUT {
                return None;
            }
            self.outstanding = None;
        }
        let target = if let Some(queued) = self.queued_bps.take() {
            queued
        } else if !self.started {
            INITIAL_FACTOR * ctx.estimate_bps
        } else {
            let quiet_since = self.last_probe.max(ctx.last_decrease);
            let quiet =
                quiet_since.is_none_or(|t| now.saturating_duration_since(t) >= PERIODIC_INTERVAL);
            if !(ctx.calm && quiet) {
                return None;
            }
            PERIODIC_FACTOR * ctx.estimate_bps
        };
        self.started = true;
        let target = target.min(ctx.ceiling_bps);
        if target < MIN_GAIN * ctx.estimate_bps {
            return None;
        }
        let bytes =
            ((target * CLUSTER_DURATION.as_secs_f64() / 8.0) as usize).max(MIN_CLUSTER_BYTES);
        let cluster = ProbeCluster {
            id: self.next_id,
            target_bps: target as u64,
            packets: MIN_CLUSTER_PACKETS,
            bytes,
        };
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.outstanding = Some(Measurement::new(cluster, now));
        self.last_probe = Some(now);
        Some(cluster)
    }

    /// Reads one feedback's results; returns what the outstanding cluster found once it is
    /// complete.
    pub(super) fn on_results(
        &mut self,
        results: &[PacketResult],
        now: Instant,
        ceiling_bps: f64,
    ) -> Option<ProbeResult> {
        let m = self.outstanding.as_mut()?;
        let done = m.add(results);
        if !done && now.saturating_duration_since(m.requested_at) < RESULT_TIMEOUT {
            return None;
        }
        let m = self.outstanding.take()?;
        self.last_probe = Some(now);
        let result = m.result()?;
        if !result.saturated
            && result.bps >= FURTHER_FRACTION * m.cluster.target_bps as f64
            && result.bps < ceiling_bps
        {
            self.queued_bps = Some(STEP_FACTOR * result.bps);
        }
        Some(result)
    }
}

/// Paces a [`ProbeCluster`]: says when to send padding and tags every packet sent meanwhile.
///
/// While a cluster runs, pass every media packet through [`Prober::on_media_sent`] and send
/// padding as [`Prober::poll_padding`] asks, waking at [`Prober::poll_timeout`]; register each
/// with `TwccSender::on_send(.., tag)`.
#[derive(Debug)]
pub struct Prober {
    max_padding_bytes: usize,
    active: Option<Running>,
}

/// One padding packet to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    /// Bytes on the wire the packet should have.
    pub size_bytes: usize,
    pub cluster: u32,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    cluster: ProbeCluster,
    start: Instant,
    sent_bytes: usize,
    sent_packets: usize,
}

/// A cluster that cannot finish in this many times its duration is abandoned.
const OVERRUN_FACTOR: u32 = 3;

impl Prober {
    /// `max_padding_bytes`: the largest padding packet the caller can send (about 275 bytes for
    /// RTP padding-only packets, an MTU for retransmissions).
    pub fn new(max_padding_bytes: usize) -> Self {
        Prober {
            max_padding_bytes: max_padding_bytes.max(1),
            active: None,
        }
    }

    /// Starts `cluster`, replacing any running one.
    pub fn start(&mut self, cluster: ProbeCluster, now: Instant) {
        self.active = Some(Running {
            cluster,
            start: now,
            sent_bytes: 0,
            sent_packets: 0,
        });
    }

    pub fn is_probing(&self) -> bool {
        self.active.is_some()
    }

    /// Accounts a media packet sent at `now`; returns the cluster to tag it with.
    pub fn on_media_sent(&mut self, size_bytes: usize, now: Instant) -> Option<u32> {
        self.expire(now);
        let running = self.active.as_mut()?;
        let id = running.cluster.id;
        running.sent_bytes += size_bytes;
        running.sent_packets += 1;
        self.finish_if_done();
        Some(id)
    }

    /// When the next padding packet is due, while a cluster runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let running = self.active.as_ref()?;
        Some(running.start + running.pace(running.sent_bytes))
    }

    /// A padding packet to send now, if one is due; it is accounted as sent.
    pub fn poll_padding(&mut self, now: Instant) -> Option<Padding> {
        self.expire(now);
        let max = self.max_padding_bytes;
        let running = self.active.as_mut()?;
        if now < running.start + running.pace(running.sent_bytes) {
            return None;
        }
        let left_bytes = running.cluster.bytes.saturating_sub(running.sent_bytes);
        let left_packets = running
            .cluster
            .packets
            .saturating_sub(running.sent_packets)
            .max(1);
        let size_bytes = left_bytes.div_ceil(left_packets).clamp(1, max);
        running.sent_bytes += size_bytes;
        running.sent_packets += 1;
        let cluster = running.cluster.id;
        self.finish_if_done();
        Some(Padding {
            size_bytes,
            cluster,
        })
    }

    fn finish_if_done(&mut self) {
        if self
            .active
            .is_some_and(|r| r.sent_bytes >= r.cluster.bytes && r.sent_packets >= r.cluster.packets)
        {
            self.active = None;
        }
    }

    fn expire(&mut self, now: Instant) {
        if self.active.is_some_and(|r| {
            now.saturating_duration_since(r.start) > r.cluster.duration() * OVERRUN_FACTOR
        }) {
            self.active = None;
        }
    }
}

impl Running {
    /// When, after the start, `bytes` have been sent at the target rate.
    fn pace(&self, bytes: usize) -> Duration {
        time_to_send(bytes, self.cluster.target_bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(estimate_bps: f64) -> ProbeContext {
        ProbeContext {
            estimate_bps,
            ceiling_bps: 1e8,
            calm: true,
            last_decrease: None,
        }
    }

    /// Results for a cluster of `n` packets of 1000 bytes sent every `send_gap_us`, arriving
    /// every `arrival_gap_us`, followed by one untagged packet.
    fn cluster_results(
        t0: Instant,
        id: u32,
        n: u64,
        send_gap_us: u64,
        arrival_gap_us: i64,
    ) -> Vec<PacketResult> {
        let mut v: Vec<_> = (0..n)
            .map(|i| PacketResult {
                seq: 100 + i,
                send_time: t0 + Duration::from_micros(i * send_gap_us),
                size_bytes: 1000,
                arrival_us: Some(40_000 + i as i64 * arrival_gap_us),
                probe_cluster: Some(id),
            })
            .collect();
        v.push(PacketResult {
            seq: 100 + n,
            probe_cluster: None,
            ..v[0]
        });
        v
    }

    #[test]
    fn first_probe_is_three_times_the_estimate_then_the_search_doubles() {
        let t0 = crate::test_epoch();
        let mut control = ProbeControl::default();
        let first = control.poll(t0, ctx(300_000.0)).unwrap();
        assert_eq!(first.target_bps, 900_000);
        // 20 ms at 900 kbit/s is 2250 bytes, under the minimum.
        assert_eq!(first.bytes, MIN_CLUSTER_BYTES);
        assert_eq!(control.poll(t0, ctx(300_000.0)), None, "one at a time");
        // 10 x 1000 bytes sent and received 1 ms apart: 8 Mbit/s.
        let results = cluster_results(t0, first.id, 10, 1_000, 1_000);
        let got = control.on_results(&results, t0, 1e8).unwrap();
        assert!((got.bps - 8e6).abs() < 1.0 && !got.saturated, "{got:?}");
        let next = control.poll(t0, ctx(8e6)).unwrap();
        assert!(next.target_bps.abs_diff(16_000_000) <= 1, "{next:?}");
    }

    #[test]
    fn a_saturated_probe_reports_95_percent_of_the_receive_rate_and_ends_the_search() {
        let t0 = crate::test_epoch();
        let mut control = ProbeControl::default();
        let first = control.poll(t0, ctx(8e6 / 3.0)).unwrap();
        assert_eq!(first.target_bps, 8_000_000);
        // Sent 1 ms apart (8 Mbit/s), received 1.5 ms apart: 19000 bytes over 28.5 ms.
        let results = cluster_results(t0, first.id, 20, 1_000, 1_500);
        let got = control.on_results(&results, t0, 1e8).unwrap();
        let want = 0.95 * 19000.0 * 8.0 / 0.0285;
        assert!((got.bps - want).abs() < 1.0 && got.saturated, "{got:?}");
        assert_eq!(control.queued_bps, None);
        assert_eq!(control.poll(t0, ctx(5e6)), None, "periodic probes wait");
    }

    #[test]
    fn one_late_packet_does_not_read_as_saturation() {
        let t0 = crate::test_epoch();
        let mut control = ProbeControl::default();
        let first = control.poll(t0, ctx(8e6 / 3.0)).unwrap();
        let mut results = cluster_results(t0, first.id, 20, 1_000, 1_000);
        // First to last arrival would give 19000 bytes in 25 ms: 76% of the send rate.
        results[19].arrival_us = results[19].arrival_us.map(|a| a + 6_000);
        let got = control.on_results(&results, t0, 1e8).unwrap();
        assert!(!got.saturated && got.bps > 7e6, "{got:?}");
    }

    #[test]
    fn too_few_received_packets_give_no_result() {
        let t0 = crate::test_epoch();
        let mut control = ProbeControl::default();
        let first = control.poll(t0, ctx(1e6)).unwrap();
        let mut results = cluster_results(t0, first.id, 10, 1_000, 1_000);
        for r in &mut results[..7] {
            r.arrival_us = None;
        }
        assert_eq!(control.on_results(&results, t0, 1e8), None);
        assert!(control.outstanding.is_none());
    }

    #[test]
    fn periodic_probes_need_a_calm_path_and_quiet_time() {
        let t0 = crate::test_epoch();
        let mut control = ProbeControl::default();
        let first = control.poll(t0, ctx(1e6)).unwrap();
        let results = cluster_results(t0, first.id, 10, 1_000, 3_000);
        control.on_results(&results, t0, 1e8);
        let later = t0 + PERIODIC_INTERVAL;
        let stormy = ProbeContext {
            calm: false,
            ..ctx(1e6)
        };
        assert_eq!(control.poll(later, stormy), None);
        let cut = ProbeContext {
            last_decrease: Some(t0 + Duration::from_secs(1)),
            ..ctx(1e6)
        };
        assert_eq!(control.poll(later, cut), None);
        let probe = control.poll(later, ctx(1e6)).unwrap();
        assert_eq!(probe.target_bps, 1_500_000);
        let capped = ProbeContext {
            ceiling_bps: 1.1e6,
            ..ctx(1e6)
        };
        control.outstanding = None;
        assert_eq!(control.poll(later + PERIODIC_INTERVAL, capped), None);
    }

    #[test]
    fn prober_paces_padding_and_counts_media() {
        let t0 = crate::test_epoch();
        let mut prober = Prober::new(500);
        let cluster = ProbeCluster {
            id: 4,
            target_bps: 1_000_000,
            packets: 5,
            bytes: 2500,
        };
        prober.start(cluster, t0);
        let mut sent = Vec::new();
        let mut now = t0;
        assert_eq!(prober.on_media_sent(500, t0), Some(4));
        while let Some(at) = prober.poll_timeout() {
            now = now.max(at);
            let padding = prober.poll_padding(now).unwrap();
            assert_eq!(padding.cluster, 4);
            sent.push((now.duration_since(t0), padding.size_bytes));
        }
        // 500 media bytes, then 4 x 500 padding bytes at 1 Mbit/s: one every 4 ms.
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            sent,
            vec![(ms(4), 500), (ms(8), 500), (ms(12), 500), (ms(16), 500)]
        );
        assert_eq!(prober.on_media_sent(500, now), None);
    }

    #[test]
    fn a_stalled_cluster_is_abandoned() {
        let t0 = crate::test_epoch();
        let mut prober = Prober::new(100);
        let cluster = ProbeCluster {
            id: 1,
            target_bps: 800_000,
            packets: 5,
            bytes: 2000,
        };
        prober.start(cluster, t0);
        assert!(prober.is_probing());
        assert_eq!(prober.poll_padding(t0 + Duration::from_millis(61)), None);
        assert!(!prober.is_probing());
    }
}
