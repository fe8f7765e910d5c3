//! The send-side bandwidth estimator follows a simulated bottleneck: `sfu_testkit::congestion`'s
//! loop (a sender paced at the estimate plus its probes, transport-cc feedback back to the
//! estimator), all in simulated time.
//!
//! Run with `--nocapture` to see convergence times and queuing delays per phase.

use sfu_testkit::alloc_counter::{counted, CountingAllocator};
use sfu_testkit::congestion::{CongestionLoop, TICK};
use sfu_testkit::link::{LinkConfig, SimLink};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

const SAMPLE_EVERY: Duration = Duration::from_millis(10);

struct Scenario {
    initial_bps: u64,
    capacity_bps: u64,
    /// `(at, capacity_bps)`.
    capacity_steps: Vec<(f64, u64)>,
    /// `(at, loss)`.
    loss_steps: Vec<(f64, f64)>,
    duration_s: f64,
    seed: u64,
    /// Count allocations in the congestion-control calls after this many seconds.
    count_allocations_after_s: Option<f64>,
}

impl Scenario {
    fn new(initial_bps: u64, capacity_bps: u64, duration_s: f64) -> Self {
        Scenario {
            initial_bps,
            capacity_bps,
            capacity_steps: Vec::new(),
            loss_steps: Vec::new(),
            duration_s,
            seed: 7,
            count_allocations_after_s: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    estimate_bps: u64,
    capacity_bps: u64,
    queue_delay_ms: f64,
}

struct Trace {
    samples: Vec<Sample>,
    probes: usize,
    allocations: usize,
    lost: u64,
    dropped: u64,
    sent: u64,
}

/// The shared congestion loop, stepped 1 ms at a time, sampled every 10 ms.
fn run(scenario: &Scenario) -> Trace {
    let t0 = epoch();
    let config = LinkConfig {
        capacity_bps: scenario.capacity_bps,
        queue_limit: Duration::from_millis(250),
        base_delay: Duration::from_millis(20),
        jitter: Duration::from_millis(2),
        loss: 0.0,
        seed: scenario.seed,
    };
    let mut link = SimLink::new(t0, config);
    for &(at, bps) in &scenario.capacity_steps {
        link = link.capacity_step(secs(at), bps);
    }
    for &(at, loss) in &scenario.loss_steps {
        link = link.loss_step(secs(at), loss);
    }
    let mut congestion = CongestionLoop::new(t0, scenario.initial_bps, link);
    let mut trace = Trace {
        samples: Vec::with_capacity(
            (scenario.duration_s / SAMPLE_EVERY.as_secs_f64()) as usize + 1,
        ),
        probes: 0,
        allocations: 0,
        lost: 0,
        dropped: 0,
        sent: 0,
    };
    let mut next_sample = t0;
    let end = t0 + secs(scenario.duration_s);
    let mut now = t0;
    while now < end {
        let count = scenario
            .count_allocations_after_s
            .is_some_and(|after| now >= t0 + secs(after));
        if count {
            let ((), allocations) = counted(|| congestion.step(now));
            trace.allocations += allocations.count;
        } else {
            congestion.step(now);
        }
        if now >= next_sample {
            trace.samples.push(Sample {
                at_s: now.duration_since(t0).as_secs_f64(),
                estimate_bps: congestion.estimate_bps(),
                capacity_bps: congestion.link().capacity_bps(now),
                queue_delay_ms: congestion.link().queue_delay(now).as_secs_f64() * 1e3,
            });
            next_sample += SAMPLE_EVERY;
        }
        now += TICK;
    }
    trace.probes = congestion.probes_started();
    let stats = congestion.link().stats();
    trace.lost = stats.lost;
    trace.dropped = stats.dropped;
    trace.sent = stats.sent;
    trace
}

/// The samples of one phase `[from_s, to_s)`.
fn phase(trace: &Trace, from_s: f64, to_s: f64) -> Vec<Sample> {
    trace
        .samples
        .iter()
        .filter(|s| s.at_s >= from_s && s.at_s < to_s)
        .copied()
        .collect()
}

fn ratio(s: &Sample) -> f64 {
    s.estimate_bps as f64 / s.capacity_bps as f64
}

fn in_band(s: &Sample) -> bool {
    (0.70..=1.05).contains(&ratio(s))
}

/// Seconds from the phase start until the estimate first enters [70%, 105%] of capacity.
fn convergence_time(samples: &[Sample]) -> Option<f64> {
    let start = samples.first()?.at_s;
    samples.iter().find(|s| in_band(s)).map(|s| s.at_s - start)
}

/// Seconds from the phase start until the estimate stays within [70%, 105%] for the rest of
/// the phase; `None` if it ends outside.
fn settle_time(samples: &[Sample]) -> Option<f64> {
    let start = samples.first()?.at_s;
    match samples.iter().rposition(|s| !in_band(s)) {
        None => Some(0.0),
        Some(i) => samples.get(i + 1).map(|s| s.at_s - start),
    }
}

/// Seconds from the phase start until the estimate first reaches `fraction` of capacity (from
/// below) or comes down to it (from above).
fn time_to(samples: &[Sample], fraction: f64, from_below: bool) -> Option<f64> {
    let start = samples.first()?.at_s;
    samples
        .iter()
        .find(|s| {
            if from_below {
                ratio(s) >= fraction
            } else {
                ratio(s) <= fraction
            }
        })
        .map(|s| s.at_s - start)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(((values.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

fn seconds(t: Option<f64>) -> String {
    t.map_or("never".to_owned(), |t| format!("{t:.2} s"))
}

struct PhaseReport {
    converged_s: Option<f64>,
    /// From convergence to the end of the phase.
    in_band_fraction: f64,
    peak_ratio: f64,
    mean_ratio: f64,
    /// Over the last 5 s of the phase.
    queue_p95_ms: f64,
    /// Over the whole phase, including what a step down leaves queued.
    queue_max_ms: f64,
}

/// Convergence of one phase, and how the estimate and the queue behave after it.
fn report(name: &str, samples: &[Sample]) -> PhaseReport {
    let converged_s = convergence_time(samples);
    let start = samples.first().map_or(0.0, |s| s.at_s);
    let after: Vec<_> = samples
        .iter()
        .filter(|s| converged_s.is_some_and(|c| s.at_s >= start + c))
        .collect();
    let n = after.len().max(1) as f64;
    let in_band_fraction = after.iter().filter(|s| in_band(s)).count() as f64 / n;
    let peak_ratio = after.iter().map(|s| ratio(s)).fold(0.0, f64::max);
    let mean_ratio = after.iter().map(|s| ratio(s)).sum::<f64>() / n;
    let end = samples.last().map_or(0.0, |s| s.at_s);
    let mut queue: Vec<f64> = samples
        .iter()
        .filter(|s| s.at_s > end - 5.0)
        .map(|s| s.queue_delay_ms)
        .collect();
    let queue_p95_ms = percentile(&mut queue, 0.95);
    let queue_max_ms = samples.iter().map(|s| s.queue_delay_ms).fold(0.0, f64::max);
    let drained_s = samples
        .iter()
        .rposition(|s| s.queue_delay_ms > 50.0)
        .and_then(|i| samples.get(i + 1))
        .map(|s| s.at_s - start);
    let first = samples.first();
    let from_below = first.is_some_and(|s| s.estimate_bps < s.capacity_bps);
    println!(
        "{name}: capacity {:.2} Mbit/s; in [70%, 105%] after {}, stays after {}; {} after {}; \
         then {:.0}% of the time in band, mean {:.0}%, peak {:.0}% of capacity; \
         queue max {queue_max_ms:.1} ms, under 50 ms after {}, last 5 s p95 {queue_p95_ms:.1} ms",
        first.map_or(0.0, |s| s.capacity_bps as f64 / 1e6),
        seconds(converged_s),
        seconds(settle_time(samples)),
        if from_below { ">= 90%" } else { "<= 105%" },
        seconds(time_to(
            samples,
            if from_below { 0.9 } else { 1.05 },
            from_below
        )),
        in_band_fraction * 100.0,
        mean_ratio * 100.0,
        peak_ratio * 100.0,
        drained_s.map_or("0 s".to_owned(), |t| format!("{t:.2} s")),
    );
    PhaseReport {
        converged_s,
        in_band_fraction,
        peak_ratio,
        mean_ratio,
        queue_p95_ms,
        queue_max_ms,
    }
}

#[test]
fn follows_a_link_stepping_3_to_0_5_to_2_mbit() {
    let mut scenario = Scenario::new(300_000, 3_000_000, 30.0);
    scenario.capacity_steps = vec![(10.0, 500_000), (20.0, 2_000_000)];
    let trace = run(&scenario);
    println!(
        "3 -> 0.5 -> 2 Mbit/s from 300 kbit/s: {} probes, {} of {} packets dropped at the queue",
        trace.probes, trace.dropped, trace.sent
    );
    for (name, from, to) in [
        ("0-10 s", 0.0, 10.0),
        ("10-20 s", 10.0, 20.0),
        ("20-30 s", 20.0, 30.0),
    ] {
        let r = report(name, &phase(&trace, from, to));
        let converged = r.converged_s.unwrap_or(f64::INFINITY);
        assert!(converged <= 4.0, "{name}: converged after {converged} s");
        assert!(r.in_band_fraction >= 0.9, "{name}: {}", r.in_band_fraction);
        assert!(r.peak_ratio <= 1.10, "{name}: peak {}", r.peak_ratio);
        assert!(r.mean_ratio >= 0.8, "{name}: mean {}", r.mean_ratio);
        assert!(r.queue_p95_ms <= 60.0, "{name}: p95 {} ms", r.queue_p95_ms);
        assert!(r.queue_max_ms <= 300.0, "{name}: max {} ms", r.queue_max_ms);
    }
}

#[test]
fn ramps_from_300_kbit_to_a_2_mbit_link_within_3_s() {
    let trace = run(&Scenario::new(300_000, 2_000_000, 10.0));
    let samples = phase(&trace, 0.0, 10.0);
    let reached = time_to(&samples, 0.9, true);
    println!(
        "300 kbit/s start on 2 Mbit/s: >= 90% after {}",
        seconds(reached)
    );
    let r = report("2 Mbit/s", &samples);
    assert!(reached.is_some_and(|t| t <= 3.0), "{reached:?}");
    assert!(r.in_band_fraction >= 0.9);
    assert!(r.queue_p95_ms <= 60.0);
}

#[test]
fn holds_the_rate_under_5_percent_random_loss() {
    let mut scenario = Scenario::new(300_000, 2_000_000, 20.0);
    scenario.loss_steps = vec![(10.0, 0.05)];
    let trace = run(&scenario);
    let lossy = phase(&trace, 10.0, 20.0);
    let min = lossy.iter().map(|s| s.estimate_bps).min().unwrap_or(0);
    let r = report("5% loss", &lossy);
    println!(
        "5% loss on 2 Mbit/s: lowest estimate {:.2} Mbit/s, {} packets lost",
        min as f64 / 1e6,
        trace.lost
    );
    assert!(min as f64 >= 0.7 * 2e6, "fell to {min}");
    assert!(r.mean_ratio >= 0.8);
}

#[test]
fn backs_off_under_15_percent_random_loss() {
    let mut scenario = Scenario::new(300_000, 2_000_000, 20.0);
    scenario.loss_steps = vec![(10.0, 0.15)];
    let trace = run(&scenario);
    let lossy = phase(&trace, 10.0, 20.0);
    let before = phase(&trace, 9.0, 10.0)
        .last()
        .map_or(0, |s| s.estimate_bps);
    let after_5s = phase(&trace, 15.0, 15.1)
        .first()
        .map_or(u64::MAX, |s| s.estimate_bps);
    let end = lossy.last().map_or(u64::MAX, |s| s.estimate_bps);
    let halved = lossy
        .iter()
        .find(|s| s.estimate_bps * 2 <= before)
        .map(|s| s.at_s - 10.0);
    println!(
        "15% loss on 2 Mbit/s: {:.2} Mbit/s before, {:.2} after 5 s, {:.2} after 10 s; halved after {}",
        before as f64 / 1e6,
        after_5s as f64 / 1e6,
        end as f64 / 1e6,
        seconds(halved),
    );
    assert!(before as f64 >= 0.8 * 2e6);
    assert!(after_5s * 10 <= before * 7, "after 5 s: {after_5s}");
    assert!(end * 2 <= before, "after 10 s: {end}");
}

#[test]
fn congestion_control_allocates_nothing_once_warm() {
    let mut scenario = Scenario::new(300_000, 3_000_000, 12.0);
    scenario.capacity_steps = vec![(6.0, 1_000_000)];
    scenario.loss_steps = vec![(8.0, 0.05)];
    scenario.count_allocations_after_s = Some(2.0);
    let trace = run(&scenario);
    assert_eq!(trace.allocations, 0);
}
