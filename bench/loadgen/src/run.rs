//! One scenario against one target, start to finish: join the publishers, then the
//! subscribers, warm up, measure, tear down, summarise. Bounded by the scenario's time limit;
//! prints a progress line every second.

use crate::media::{Media, State};
use crate::procfs::{self, ProcSample};
use crate::scenario::Scenario;
use crate::signaling::{Conclave, Janus, JoinJob, Joined, Role, Target};
use crate::stats::percentile;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const PUBLISHER_SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Conclave,
    Janus,
}

pub struct Options {
    pub target: TargetKind,
    pub url: String,
    pub scenario: Scenario,
    pub server_pid: Option<u32>,
    /// Signaling threads (blocking HTTP).
    pub workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Publishers,
    /// Publishers are up on our side; give the server a moment to make their tracks available
    /// (Janus refuses to subscribe to a feed whose PeerConnection it has not finished yet).
    Settle(Instant),
    Subscribers,
    Warmup(Instant),
    Measuring(Instant),
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Publishers => "join-pub",
            Phase::Settle(_) => "settle",
            Phase::Subscribers => "join-sub",
            Phase::Warmup(_) => "warmup",
            Phase::Measuring(_) => "measure",
        }
    }
}

/// Everything one run measured; written as JSON and summarised in RESULTS.md.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub description: String,
    pub target: String,
    pub publishers: usize,
    pub subscribers: usize,
    pub subscribe_to: usize,
    pub audio: bool,
    pub video: bool,
    /// Why the run stopped early (time limit), if it did.
    pub incomplete: Option<String>,
    pub measure_s: f64,
    pub publishers_connected: usize,
    pub subscribers_receiving: usize,
    pub failed_joins: usize,
    pub failure_reasons: BTreeMap<String, usize>,
    /// Media packets sent by all publishers per second, in the window.
    pub tx_pps: f64,
    /// Media packets received by all subscribers per second, in the window: what the server
    /// forwarded and delivered.
    pub rx_pps: f64,
    pub rx_mbps: f64,
    pub server_cpu_pct: Option<f64>,
    /// rx_pps / (server CPU in cores): packets forwarded per CPU-second.
    pub forwarded_pps_per_core: Option<f64>,
    pub server_rss_idle_mb: Option<f64>,
    pub server_rss_mb: Option<f64>,
    /// (RSS under load - idle RSS) / peer connections.
    pub server_rss_per_pc_kb: Option<f64>,
    pub server_threads: Option<u64>,
    /// Subscribers: first HTTP request to first media packet.
    pub join_ms_p50: f64,
    pub join_ms_p99: f64,
    pub join_ms_max: f64,
    /// Publishers: first HTTP request to DTLS connected.
    pub publish_ms_p50: f64,
    pub publish_ms_p99: f64,
    /// Subscribers with video: first HTTP request to the first keyframe packet.
    pub first_keyframe_ms_p50: f64,
    pub first_keyframe_ms_p99: f64,
    /// Send (embedded timestamp) to receive, through the server, on this process's clock.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_ms_max: f64,
    pub latency_ms_mean: f64,
    pub latency_samples: u64,
    /// Lost / expected over all received streams in the window (from RTP sequence numbers).
    pub loss_pct: f64,
    pub jitter_ms_mean: f64,
    pub jitter_ms_p99: f64,
    /// Video streams with a gap over 200 ms between frames, and the total time stalled.
    pub stalls: u64,
    pub stalled_s: f64,
    pub streams_expected: usize,
    pub streams_received: usize,
    pub keyframes_on_request: u32,
    pub plis_received: u64,
    pub srtp_errors: u64,
    pub tx_errors: u64,
    pub srtp_profiles: BTreeMap<String, usize>,
    /// The load generator's own CPU in the window; near 100% means it, not the server, limits.
    pub loadgen_cpu_pct: Option<f64>,
    /// How far behind its send schedule the load generator ran at worst in the window (other
    /// work on its core); large values make the latency and jitter figures suspect.
    pub loadgen_late_ms_max: f64,
}

pub struct Outcome {
    pub summary: Summary,
    /// One CSV line per peer connection (header first).
    pub clients_csv: String,
}

pub fn run(options: Options) -> Result<Outcome, String> {
    let scenario = &options.scenario;
    procfs::raise_open_files_limit();
    let mut media = Media::new(scenario).map_err(|e| format!("cannot open sockets: {e}"))?;
    let waker = Arc::new(media.waker().map_err(|e| e.to_string())?);
    let room = format!("bench-{}-{}", scenario.name, std::process::id());
    let target: Arc<dyn Target> = match options.target {
        TargetKind::Conclave => Arc::new(Conclave::new(&options.url, &room)?),
        TargetKind::Janus => {
            let room_id = 1_000_000 + u64::from(std::process::id());
            Arc::new(Janus::new(&options.url, room_id, scenario.publishers)?)
        }
    };
    let label = format!("{} {}", target.name(), scenario.name);

    let (job_send, job_receive) = mpsc::channel::<JoinJob>();
    let job_receive = Arc::new(Mutex::new(job_receive));
    let (result_send, result_receive) = mpsc::channel::<Result<Joined, (usize, String)>>();
    let mut workers = Vec::new();
    for i in 0..options.workers.max(1) {
        let (jobs, results, target, waker) = (
            job_receive.clone(),
            result_send.clone(),
            target.clone(),
            waker.clone(),
        );
        let worker = std::thread::Builder::new()
            .name(format!("signaling-{i}"))
            .spawn(move || loop {
                let job = match jobs.lock() {
                    Ok(jobs) => jobs.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let result = target.join(&job).map_err(|e| (job.client, e));
                if results.send(result).is_err() {
                    return;
                }
                let _ = waker.wake();
            });
        workers.push(worker.map_err(|e| format!("cannot start a signaling thread: {e}"))?);
    }
    drop(result_send);

    let publishers = 0..scenario.publishers;
    let subscribers = scenario.publishers..scenario.peer_connections();
    let idle = options.server_pid.and_then(|pid| procfs::sample(Some(pid)));
    let started = Instant::now();
    let hard_stop = started + scenario.time_limit();
    let join_interval = Duration::from_secs_f64(1.0 / scenario.joins_per_second);
    let mut next_join_at = started;
    let mut next_client = 0;
    let mut phase = Phase::Publishers;
    let mut incomplete = None;
    let mut progress = Progress::new(options.server_pid, &media);
    let mut window: Option<Window> = None;

    loop {
        let now = Instant::now();
        if now >= hard_stop {
            incomplete = Some(format!(
                "time limit {:?} reached during {}",
                scenario.time_limit(),
                phase.name()
            ));
            break;
        }
        match phase {
            Phase::Publishers | Phase::Subscribers => {
                let end = if phase == Phase::Publishers {
                    publishers.end
                } else {
                    subscribers.end
                };
                while next_client < end && now >= next_join_at {
                    let job = job_for(&media, scenario, next_client);
                    media.start_join(next_client, now);
                    let _ = job_send.send(job);
                    next_client += 1;
                    next_join_at += join_interval;
                }
                if next_join_at < now {
                    next_join_at = now; // A slow loop must not turn into a burst of joins.
                }
                let range = if phase == Phase::Publishers {
                    publishers.clone()
                } else {
                    subscribers.clone()
                };
                if next_client == end && media.settled(range) {
                    phase = if phase == Phase::Publishers && !subscribers.is_empty() {
                        Phase::Settle(now + PUBLISHER_SETTLE)
                    } else {
                        Phase::Warmup(now + Duration::from_secs_f64(scenario.warmup_s))
                    };
                }
            }
            Phase::Settle(until) if now >= until => {
                next_join_at = now;
                phase = Phase::Subscribers;
            }
            Phase::Warmup(until) if now >= until => {
                media.open_window();
                window = Some(Window::open(options.server_pid, &media));
                phase = Phase::Measuring(now + Duration::from_secs_f64(scenario.measure_s));
            }
            Phase::Measuring(until) if now >= until => {
                media.close_window(now);
                break;
            }
            Phase::Settle(_) | Phase::Warmup(_) | Phase::Measuring(_) => {}
        }
        if let Some(line) = progress.tick(now, &mut media, phase, &label, started) {
            eprintln!("{line}");
            if let Some(window) = window.as_mut() {
                window.observe(progress.last_server);
            }
        }
        let wait = if next_client < subscribers.end {
            next_join_at
                .saturating_duration_since(now)
                .min(Duration::from_millis(10))
        } else {
            Duration::from_millis(10)
        };
        let woken = media.turn(wait).map_err(|e| format!("poll: {e}"))?;
        if woken {
            let now = Instant::now();
            while let Ok(result) = result_receive.try_recv() {
                match result {
                    Ok(joined) => media.on_joined(joined, now),
                    Err((client, reason)) => media.fail(client, reason),
                }
            }
        }
    }
    let window = window.map(|w| w.close(options.server_pid, &media));

    drop(job_send);
    teardown(&*target, &media);
    let summary = summarize(scenario, target.name(), &media, idle, window, incomplete);
    let clients_csv = clients_csv(&media);
    Ok(Outcome {
        summary,
        clients_csv,
    })
}

fn job_for(media: &Media, scenario: &Scenario, client: usize) -> JoinJob {
    let c = &media.clients[client];
    let wanted = scenario.subscribe_count();
    let feeds = if c.role == Role::Subscriber {
        media.clients[..scenario.publishers]
            .iter()
            .filter_map(|p| p.feed)
            .take(wanted)
            .collect()
    } else {
        Vec::new()
    };
    JoinJob {
        client,
        role: c.role,
        local: c.local.clone(),
        ssrcs: c.ssrcs,
        feeds,
        audio_slots: if scenario.audio { wanted } else { 0 },
        video_slots: if scenario.video { wanted } else { 0 },
    }
}

/// Ends every session, within a few seconds in all.
fn teardown(target: &dyn Target, media: &Media) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &media.clients {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(resource) = &c.resource {
            target.leave(resource);
        }
    }
    target.finish();
}

/// Server and load generator samples at the edges of the measurement window.
struct Window {
    server_start: Option<ProcSample>,
    own_start: Option<ProcSample>,
    rx_start: u64,
    rx_bytes_start: u64,
    tx_start: u64,
    opened: Instant,
    max_rss_kb: u64,
    threads: u64,
}

struct ClosedWindow {
    seconds: f64,
    server_cpu_pct: Option<f64>,
    own_cpu_pct: Option<f64>,
    rx: u64,
    rx_bytes: u64,
    tx: u64,
    max_rss_kb: Option<u64>,
    threads: Option<u64>,
}

impl Window {
    fn open(server_pid: Option<u32>, media: &Media) -> Window {
        let server_start = server_pid.and_then(|pid| procfs::sample(Some(pid)));
        Window {
            server_start,
            own_start: procfs::sample(None),
            rx_start: media.counters.rx_media,
            rx_bytes_start: media.counters.rx_bytes,
            tx_start: media.counters.tx_packets,
            opened: Instant::now(),
            max_rss_kb: server_start.map_or(0, |s| s.rss_kb),
            threads: server_start.map_or(0, |s| s.threads),
        }
    }

    fn observe(&mut self, server: Option<ProcSample>) {
        if let Some(s) = server {
            self.max_rss_kb = self.max_rss_kb.max(s.rss_kb);
            self.threads = self.threads.max(s.threads);
        }
    }

    fn close(mut self, server_pid: Option<u32>, media: &Media) -> ClosedWindow {
        let server_end = server_pid.and_then(|pid| procfs::sample(Some(pid)));
        self.observe(server_end);
        let own_end = procfs::sample(None);
        ClosedWindow {
            seconds: self.opened.elapsed().as_secs_f64(),
            server_cpu_pct: self
                .server_start
                .zip(server_end)
                .map(|(a, b)| procfs::cpu_percent(&a, &b)),
            own_cpu_pct: self
                .own_start
                .zip(own_end)
                .map(|(a, b)| procfs::cpu_percent(&a, &b)),
            rx: media.counters.rx_media - self.rx_start,
            rx_bytes: media.counters.rx_bytes - self.rx_bytes_start,
            tx: media.counters.tx_packets - self.tx_start,
            max_rss_kb: self.server_start.map(|_| self.max_rss_kb),
            threads: self.server_start.map(|_| self.threads),
        }
    }
}

/// The once-a-second progress line.
struct Progress {
    server_pid: Option<u32>,
    next_at: Instant,
    last_at: Instant,
    last_rx: u64,
    last_tx: u64,
    last_server: Option<ProcSample>,
}

impl Progress {
    fn new(server_pid: Option<u32>, media: &Media) -> Progress {
        let now = Instant::now();
        Progress {
            server_pid,
            next_at: now + Duration::from_secs(1),
            last_at: now,
            last_rx: media.counters.rx_media,
            last_tx: media.counters.tx_packets,
            last_server: server_pid.and_then(|pid| procfs::sample(Some(pid))),
        }
    }

    fn tick(
        &mut self,
        now: Instant,
        media: &mut Media,
        phase: Phase,
        label: &str,
        started: Instant,
    ) -> Option<String> {
        if now < self.next_at {
            return None;
        }
        self.next_at += Duration::from_secs(1);
        if self.next_at < now {
            self.next_at = now + Duration::from_secs(1);
        }
        let seconds = now
            .saturating_duration_since(self.last_at)
            .as_secs_f64()
            .max(1e-3);
        let rx_pps = (media.counters.rx_media - self.last_rx) as f64 / seconds;
        let tx_pps = (media.counters.tx_packets - self.last_tx) as f64 / seconds;
        let server = self.server_pid.and_then(|pid| procfs::sample(Some(pid)));
        let server_text = match (self.last_server, server) {
            (Some(a), Some(b)) => format!(
                " | server cpu {:5.1}% rss {:6.1} MB",
                procfs::cpu_percent(&a, &b),
                b.rss_kb as f64 / 1024.0
            ),
            _ => String::new(),
        };
        self.last_at = now;
        self.last_rx = media.counters.rx_media;
        self.last_tx = media.counters.tx_packets;
        self.last_server = server;
        let publishers = media.clients.iter().filter(|c| c.role == Role::Publisher);
        let subscribers = media.clients.iter().filter(|c| c.role == Role::Subscriber);
        let pubs_up = publishers
            .clone()
            .filter(|c| c.state == State::Connected)
            .count();
        let subs_up = subscribers
            .clone()
            .filter(|c| c.first_media_at.is_some())
            .count();
        let failed = media
            .clients
            .iter()
            .filter(|c| c.state == State::Failed)
            .count();
        let (publishers, subscribers) = (publishers.count(), subscribers.count());
        let late_ms = media.take_lateness().as_secs_f64() * 1000.0;
        Some(format!(
            "[{label}] {:5.1}s {:<8} pub {pubs_up}/{publishers} sub {subs_up}/{subscribers} failed {failed} | tx {tx_pps:7.0} pps rx {rx_pps:8.0} pps late {late_ms:5.1} ms{server_text}",
            now.saturating_duration_since(started).as_secs_f64(),
            phase.name(),
        ))
    }
}

fn millis(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(to?.saturating_duration_since(from?).as_secs_f64() * 1000.0)
}

fn summarize(
    scenario: &Scenario,
    target: &str,
    media: &Media,
    idle: Option<ProcSample>,
    window: Option<ClosedWindow>,
    incomplete: Option<String>,
) -> Summary {
    let publishers: Vec<_> = media
        .clients
        .iter()
        .filter(|c| c.role == Role::Publisher)
        .collect();
    let subscribers: Vec<_> = media
        .clients
        .iter()
        .filter(|c| c.role == Role::Subscriber)
        .collect();
    let mut failure_reasons = BTreeMap::new();
    for c in &media.clients {
        let reason = match (&c.failure, c.role, c.first_media_at) {
            (Some(reason), _, _) => Some(reason.clone()),
            (None, Role::Subscriber, None) => Some("connected but no media".to_owned()),
            (None, Role::Publisher, _) if c.state != State::Connected => {
                Some("not connected".to_owned())
            }
            _ => None,
        };
        if let Some(reason) = reason {
            // Janus and HTTP errors carry ids; keep the reasons countable.
            let reason: String = reason.chars().take(160).collect();
            *failure_reasons.entry(reason).or_insert(0) += 1;
        }
    }
    let mut joins: Vec<f64> = subscribers
        .iter()
        .filter_map(|c| millis(c.join_started, c.first_media_at))
        .collect();
    let mut publishes: Vec<f64> = publishers
        .iter()
        .filter_map(|c| millis(c.join_started, c.connected_at))
        .collect();
    let mut keyframes: Vec<f64> = if scenario.video {
        subscribers
            .iter()
            .filter_map(|c| millis(c.join_started, c.first_keyframe_at))
            .collect()
    } else {
        Vec::new()
    };
    let (mut expected, mut received) = (0u64, 0u64);
    let mut jitters = Vec::new();
    let (mut stalls, mut stalled_us) = (0u64, 0u64);
    for stream in subscribers.iter().flat_map(|c| c.streams.iter()) {
        let (e, r) = stream.window_counts();
        expected += e;
        received += r.min(e);
        jitters.push(stream.jitter_ms());
        stalls += stream.stalls;
        stalled_us += stream.stalled_us;
    }
    let jitter_mean = if jitters.is_empty() {
        0.0
    } else {
        jitters.iter().sum::<f64>() / jitters.len() as f64
    };
    let mut srtp_profiles = BTreeMap::new();
    for c in &media.clients {
        if let Some(profile) = c.srtp_profile {
            *srtp_profiles.entry(format!("{profile:?}")).or_insert(0) += 1;
        }
    }
    let seconds = window.as_ref().map_or(0.0, |w| w.seconds);
    let per_second = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let rx_pps = window.as_ref().map_or(0.0, |w| per_second(w.rx));
    let server_cpu_pct = window.as_ref().and_then(|w| w.server_cpu_pct);
    let server_rss_kb = window.as_ref().and_then(|w| w.max_rss_kb);
    let quantile_ms = |q: f64| media.latency.quantile(q) as f64 / 1000.0;
    let streams_per_subscriber =
        scenario.subscribe_count() * (scenario.audio as usize + scenario.video as usize);
    Summary {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        target: target.to_owned(),
        publishers: scenario.publishers,
        subscribers: scenario.subscribers,
        subscribe_to: scenario.subscribe_count(),
        audio: scenario.audio,
        video: scenario.video,
        incomplete,
        measure_s: seconds,
        publishers_connected: publishers
            .iter()
            .filter(|c| c.state == State::Connected)
            .count(),
        subscribers_receiving: subscribers
            .iter()
            .filter(|c| c.first_media_at.is_some())
            .count(),
        failed_joins: failure_reasons.values().sum(),
        failure_reasons,
        tx_pps: window.as_ref().map_or(0.0, |w| per_second(w.tx)),
        rx_pps,
        rx_mbps: window
            .as_ref()
            .map_or(0.0, |w| per_second(w.rx_bytes) * 8.0 / 1e6),
        server_cpu_pct,
        forwarded_pps_per_core: server_cpu_pct
            .filter(|cpu| *cpu > 0.5)
            .map(|cpu| rx_pps / (cpu / 100.0)),
        server_rss_idle_mb: idle.map(|s| s.rss_kb as f64 / 1024.0),
        server_rss_mb: server_rss_kb.map(|kb| kb as f64 / 1024.0),
        server_rss_per_pc_kb: idle.zip(server_rss_kb).map(|(idle, kb)| {
            kb.saturating_sub(idle.rss_kb) as f64 / scenario.peer_connections() as f64
        }),
        server_threads: window.as_ref().and_then(|w| w.threads),
        join_ms_p50: percentile(&mut joins, 0.5),
        join_ms_p99: percentile(&mut joins, 0.99),
        join_ms_max: percentile(&mut joins, 1.0),
        publish_ms_p50: percentile(&mut publishes, 0.5),
        publish_ms_p99: percentile(&mut publishes, 0.99),
        first_keyframe_ms_p50: percentile(&mut keyframes, 0.5),
        first_keyframe_ms_p99: percentile(&mut keyframes, 0.99),
        latency_ms_p50: quantile_ms(0.5),
        latency_ms_p99: quantile_ms(0.99),
        latency_ms_p999: quantile_ms(0.999),
        latency_ms_max: media.latency.max() as f64 / 1000.0,
        latency_ms_mean: media.latency.mean() / 1000.0,
        latency_samples: media.latency.count(),
        loss_pct: if expected > 0 {
            (expected - received) as f64 * 100.0 / expected as f64
        } else {
            0.0
        },
        jitter_ms_mean: jitter_mean,
        jitter_ms_p99: percentile(&mut jitters, 0.99),
        stalls,
        stalled_s: stalled_us as f64 / 1e6,
        streams_expected: subscribers.len() * streams_per_subscriber,
        streams_received: subscribers.iter().map(|c| c.streams.len()).sum(),
        keyframes_on_request: media.keyframes_on_request(),
        plis_received: media.counters.plis_received,
        srtp_errors: media.counters.srtp_errors,
        tx_errors: media.counters.tx_errors,
        srtp_profiles,
        loadgen_cpu_pct: window.as_ref().and_then(|w| w.own_cpu_pct),
        loadgen_late_ms_max: media.window_lateness.as_secs_f64() * 1000.0,
    }
}

fn clients_csv(media: &Media) -> String {
    let mut out = String::from(
        "client,role,state,join_ms,connect_ms,first_keyframe_ms,streams,rx_packets,lost,loss_pct,jitter_ms_max,latency_ms_mean,latency_ms_max,stalls,stalled_ms,tx_packets,failure\n",
    );
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    for (i, c) in media.clients.iter().enumerate() {
        let (expected, received) = c
            .streams
            .iter()
            .map(|s| s.window_counts())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1.min(b.0)));
        let lost = expected - received;
        let jitter = c.streams.iter().map(|s| s.jitter_ms()).fold(0.0, f64::max);
        let join = if c.role == Role::Subscriber {
            c.first_media_at
        } else {
            c.connected_at
        };
        out.push_str(&format!(
            "{i},{},{:?},{},{},{},{},{},{lost},{:.3},{jitter:.2},{},{:.2},{},{},{},\"{}\"\n",
            if c.role == Role::Publisher {
                "publisher"
            } else {
                "subscriber"
            },
            c.state,
            cell(millis(c.join_started, join)),
            cell(millis(c.join_started, c.connected_at)),
            cell(millis(c.join_started, c.first_keyframe_at)),
            c.streams.len(),
            c.rx_media,
            if expected > 0 {
                lost as f64 * 100.0 / expected as f64
            } else {
                0.0
            },
            cell(
                (c.latency_count > 0)
                    .then(|| c.latency_sum_us as f64 / c.latency_count as f64 / 1000.0)
            ),
            c.latency_max_us as f64 / 1000.0,
            c.streams.iter().map(|s| s.stalls).sum::<u64>(),
            c.streams.iter().map(|s| s.stalled_us / 1000).sum::<u64>(),
            c.tx_packets,
            c.failure.as_deref().unwrap_or("").replace('"', "'"),
        ));
    }
    out
}
