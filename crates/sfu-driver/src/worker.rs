//! One worker: a thread that owns one engine and its UDP socket, fed by a command channel.
//! The control side is [`WorkerHandle`]; nothing is shared with it on the packet path.

use crate::command::{Command, Reply};
use crate::error::DriverError;
use crate::udp::{IoCounters, UdpIo};
use mio::{Events, Interest, Poll, Token, Waker};
use sfu_core::engine::RelayedTrack;
use sfu_core::{
    Engine, EngineConfig, EngineStats, Event, Input, Output, PeerId, PeerStats, RtpForwardId,
    RtpForwardInfo, SfuError, Subscription, TrackId,
};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Receive batches handled before commands and timers get another look.
const MAX_RECV_BATCHES_PER_ITERATION: usize = 8;

/// Commands handled per iteration, so a flood of them cannot starve the socket.
const MAX_COMMANDS_PER_ITERATION: usize = 64;

/// The reason given in `PeerDisconnected` for peers lost with a panicked engine.
pub const RESTART_DISCONNECT_REASON: &str = "worker_restarted";

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where to bind the UDP socket; port 0 picks a free one. IPv4 or IPv6 (an IPv6 wildcard
    /// also serves IPv4 peers).
    pub bind_addr: SocketAddr,
    /// The engine's settings. An `announced_addr` with port 0 announces the bound port.
    pub engine: EngineConfig,
    /// Allows [`Command::InjectPanic`]. For tests of the restart path only.
    pub fault_injection: bool,
}

impl WorkerConfig {
    /// Binds `bind_addr` and announces `announced_ip` with the bound port. The engine's seed is
    /// drawn from the OS so that ICE credentials differ between runs; tests may fix it.
    pub fn new(bind_addr: SocketAddr, announced_ip: IpAddr) -> Self {
        let mut engine = EngineConfig::new(SocketAddr::new(announced_ip, 0));
        engine.seed = random_seed();
        WorkerConfig {
            bind_addr,
            engine,
            fault_injection: false,
        }
    }
}

/// What a worker reports to the control plane, in batches.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// Something the engine reported.
    Engine(Event),
    /// The engine panicked and was replaced by a fresh one on the same socket. Every peer is
    /// gone: a `PeerDisconnected` with reason [`RESTART_DISCONNECT_REASON`] follows for each
    /// peer that was not already disconnected. `reason` is the panic message.
    Restarted { reason: String },
}

/// The engine's counters plus the worker's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Counters of the current engine (they restart from zero with it).
    pub engine: EngineStats,
    /// Engines replaced after a panic since the worker started.
    pub worker_restarts: u64,
    pub io: IoCounters,
}

/// State shared with the handle for what it must answer without asking the thread.
struct Shared {
    /// Changes when a restarted engine makes a new certificate.
    fingerprint: Mutex<String>,
}

/// The control side of a running worker. Dropping it shuts the worker down and joins it.
pub struct WorkerHandle {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The current engine's DTLS fingerprint, `sha-256 AB:CD:...`.
    pub fn fingerprint(&self) -> String {
        self.shared
            .fingerprint
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// Queues `command` without waiting; its reply arrives through its [`Reply`], before any
    /// event the command caused. A worker that is gone answers `WorkerClosed`.
    pub fn send(&self, command: Command) {
        // A failed send hands the command back; dropping it answers WorkerClosed.
        if self.commands.send(command).is_ok() {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake the media worker: {e}");
            }
        }
    }

    /// Sends a command and blocks until its reply.
    pub fn call<T: Send + 'static>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DriverError> {
        let (reply, answer) = Reply::channel();
        self.send(command(reply));
        answer.recv().unwrap_or(Err(DriverError::WorkerClosed))
    }

    pub fn create_peer(&self) -> Result<PeerId, DriverError> {
        self.call(|reply| Command::CreatePeer { reply })
    }

    /// Returns the answer SDP.
    pub fn apply_offer(&self, peer: PeerId, sdp: impl Into<String>) -> Result<String, DriverError> {
        let sdp = sdp.into();
        self.call(|reply| Command::ApplyOffer { peer, sdp, reply })
    }

    /// Returns an offer of one new m-line we send on per entry of `kinds`.
    pub fn create_offer(
        &self,
        peer: PeerId,
        kinds: Vec<sfu_core::MediaKind>,
    ) -> Result<String, DriverError> {
        self.call(|reply| Command::CreateOffer { peer, kinds, reply })
    }

    pub fn apply_answer(&self, peer: PeerId, sdp: impl Into<String>) -> Result<(), DriverError> {
        let sdp = sdp.into();
        self.call(|reply| Command::ApplyAnswer { peer, sdp, reply })
    }

    pub fn close_peer(&self, peer: PeerId) -> Result<(), DriverError> {
        self.call(|reply| Command::ClosePeer { peer, reply })
    }

    pub fn subscribe(&self, peer: PeerId, track: TrackId) -> Result<Subscription, DriverError> {
        self.call(|reply| Command::Subscribe { peer, track, reply })
    }

    pub fn unsubscribe(&self, peer: PeerId, track: TrackId) -> Result<(), DriverError> {
        self.call(|reply| Command::Unsubscribe { peer, track, reply })
    }

    pub fn request_keyframe(&self, track: TrackId) -> Result<(), DriverError> {
        self.call(|reply| Command::RequestKeyframe { track, reply })
    }

    /// Limits what `peer` receives of a simulcast `track`; `None` lifts a limit.
    pub fn set_layer_preference(
        &self,
        peer: PeerId,
        track: TrackId,
        max_spatial_layer: Option<u8>,
        max_height: Option<u16>,
    ) -> Result<(), DriverError> {
        self.call(|reply| Command::SetLayerPreference {
            peer,
            track,
            max_spatial_layer,
            max_height,
            reply,
        })
    }

    /// How `peer`'s downlink favours `track` over its other video subscriptions (higher first).
    pub fn set_priority(
        &self,
        peer: PeerId,
        track: TrackId,
        priority: u8,
    ) -> Result<(), DriverError> {
        self.call(|reply| Command::SetPriority {
            peer,
            track,
            priority,
            reply,
        })
    }

    /// Moves `peer` into media `partition` (0 is the main room).
    pub fn set_partition(&self, peer: PeerId, partition: u32) -> Result<(), DriverError> {
        self.call(|reply| Command::SetPartition {
            peer,
            partition,
            reply,
        })
    }

    /// Tees `track` as plain RTP to `destination`.
    pub fn add_rtp_forward(
        &self,
        track: TrackId,
        destination: SocketAddr,
    ) -> Result<RtpForwardInfo, DriverError> {
        self.call(|reply| Command::AddRtpForward {
            track,
            destination,
            reply,
        })
    }

    /// Whether a forward by that id still existed.
    pub fn remove_rtp_forward(&self, id: RtpForwardId) -> Result<bool, DriverError> {
        self.call(|reply| Command::RemoveRtpForward { id, reply })
    }

    /// Opens a relay link to the engine at `remote`.
    pub fn create_relay_peer(
        &self,
        remote: SocketAddr,
        keying_material: Vec<u8>,
        initiator: bool,
    ) -> Result<PeerId, DriverError> {
        self.call(|reply| Command::CreateRelayPeer {
            remote,
            keying_material,
            initiator,
            reply,
        })
    }

    pub fn relay_export(&self, relay: PeerId, track: TrackId) -> Result<RelayedTrack, DriverError> {
        self.call(|reply| Command::RelayExport {
            relay,
            track,
            reply,
        })
    }

    pub fn relay_import(
        &self,
        relay: PeerId,
        relayed: RelayedTrack,
        stream_id: String,
        partition: u32,
    ) -> Result<TrackId, DriverError> {
        self.call(|reply| Command::RelayImport {
            relay,
            relayed,
            stream_id,
            partition,
            reply,
        })
    }

    pub fn peer_stats(&self, peer: PeerId) -> Result<PeerStats, DriverError> {
        self.call(|reply| Command::PeerStats { peer, reply })
    }

    pub fn stats(&self) -> Result<WorkerStats, DriverError> {
        self.call(|reply| Command::Stats { reply })
    }

    pub fn inject_panic(&self) -> Result<(), DriverError> {
        self.call(|reply| Command::InjectPanic { reply })
    }

    /// Stops the worker and joins its thread; the socket is closed when this returns.
    pub fn shutdown(mut self) -> Result<(), DriverError> {
        let result = self.call(|reply| Command::Shutdown { reply });
        self.join();
        result
    }

    /// Stops the worker without waiting: `reply` is answered once the socket is closed and the
    /// engine dropped, as the thread's last act.
    pub fn close(mut self, reply: Reply<()>) {
        self.send(Command::Shutdown { reply });
        // The thread ends by itself right after answering; nothing is left to wait for.
        self.thread = None;
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the media worker thread ended with a panic");
            }
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.send(Command::Shutdown {
                reply: Reply::new(|_| {}),
            });
            self.join();
        }
    }
}

/// The worker thread's state. Built by [`Worker::start`]; lives on its thread only.
pub struct Worker<F> {
    io: UdpIo,
    poll: Poll,
    commands: mpsc::Receiver<Command>,
    engine_config: EngineConfig,
    session: Session,
    on_events: F,
    /// Events of this iteration, delivered in one call at its end.
    events: Vec<WorkerEvent>,
    /// When the engine wants a `Tick` if nothing arrives before.
    deadline: Instant,
    /// The socket may have more to read (mio is edge-triggered: only an empty read clears this).
    readable: bool,
    /// Commands were left in the channel by the per-iteration limit.
    commands_waiting: bool,
    restarts: u64,
    fault_injection: bool,
    shared: Arc<Shared>,
    /// Set by `Shutdown`: the loop ends and this is answered last.
    shutdown: Option<Reply<()>>,
    /// No engine could be rebuilt after a panic; the worker stops.
    broken: bool,
}

/// One engine and what the driver remembers about it.
struct Session {
    engine: Engine,
    /// Peers created and not closed; `false` once the engine reported them disconnected.
    peers: BTreeMap<PeerId, bool>,
}

impl<F: FnMut(Vec<WorkerEvent>) + Send + 'static> Worker<F> {
    /// Binds the socket, starts the worker thread and returns its handle.
    ///
    /// `on_events` runs on the worker thread with every event of one loop iteration, never one
    /// call per packet. Like a [`Reply`], it must hand the batch over and return.
    pub fn start(config: WorkerConfig, on_events: F) -> Result<WorkerHandle, DriverError> {
        let mut io = UdpIo::bind(config.bind_addr)
            .map_err(|e| DriverError::Bind(format!("{}: {e}", config.bind_addr)))?;
        let local_addr = io.local_addr();
        let poll =
            Poll::new().map_err(|e| DriverError::Spawn(format!("cannot create a poller: {e}")))?;
        poll.registry()
            .register(io.socket_mut(), SOCKET, Interest::READABLE)
            .map_err(|e| DriverError::Spawn(format!("cannot watch the socket: {e}")))?;
        let waker = Waker::new(poll.registry(), WAKER)
            .map_err(|e| DriverError::Spawn(format!("cannot create a waker: {e}")))?;
        let (commands_tx, commands) = mpsc::channel();
        let mut engine_config = config.engine;
        if engine_config.announced_addr.port() == 0 {
            engine_config.announced_addr.set_port(local_addr.port());
        }
        let shared = Arc::new(Shared {
            fingerprint: Mutex::new(String::new()),
        });
        let fault_injection = config.fault_injection;

        // The engine is built on its own thread: it never has to cross threads (or be `Send`).
        let (started_tx, started) = mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        let thread = thread::Builder::new()
            .name("conclave-media".into())
            .spawn(move || {
                let now = Instant::now();
                let engine = match build_engine(&engine_config, now) {
                    Ok(engine) => engine,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                set_fingerprint(&thread_shared, &engine);
                let _ = started_tx.send(Ok(()));
                Worker {
                    io,
                    poll,
                    commands,
                    engine_config,
                    session: Session {
                        engine,
                        peers: BTreeMap::new(),
                    },
                    on_events,
                    events: Vec::new(),
                    deadline: now,
                    readable: true,
                    commands_waiting: false,
                    restarts: 0,
                    fault_injection,
                    shared: thread_shared,
                    shutdown: None,
                    broken: false,
                }
                .run();
            })
            .map_err(|e| DriverError::Spawn(e.to_string()))?;
        let handle = WorkerHandle {
            commands: commands_tx,
            waker: Arc::new(waker),
            local_addr,
            shared,
            thread: Some(thread),
        };
        match started.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DriverError::Spawn(
                "the worker thread died while starting".into(),
            )),
        }
    }

    fn run(mut self) {
        let mut ready = Events::with_capacity(4);
        // The first step asks the new engine for its first timeout.
        self.step(Instant::now(), |_, _, _| ());
        while self.shutdown.is_none() && !self.broken {
            let timeout = if self.readable || self.commands_waiting {
                Duration::ZERO
            } else {
                self.deadline.saturating_duration_since(Instant::now())
            };
            if let Err(e) = self.poll.poll(&mut ready, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("media worker: polling failed, stopping: {e}");
                break;
            }
            if ready.iter().any(|event| event.token() == SOCKET) {
                self.readable = true;
            }
            self.handle_commands();
            if self.readable && self.shutdown.is_none() {
                self.receive();
            }
            let now = Instant::now();
            if now >= self.deadline && self.shutdown.is_none() {
                self.step(now, |session, _, now| {
                    session.engine.handle_input(Input::Tick(now))
                });
            }
            self.deliver_events();
        }
        self.stop();
    }

    fn handle_commands(&mut self) {
        self.commands_waiting = false;
        for _ in 0..MAX_COMMANDS_PER_ITERATION {
            let Ok(command) = self.commands.try_recv() else {
                return;
            };
            self.handle_command(command);
            if self.shutdown.is_some() || self.broken {
                return;
            }
        }
        self.commands_waiting = true;
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::CreatePeer { reply } => self.call(reply, |session, now| {
                let peer = session.engine.create_peer(now);
                session.peers.insert(peer, true);
                Ok(peer)
            }),
            Command::ApplyOffer { peer, sdp, reply } => self.call(reply, |session, now| {
                session.engine.apply_offer(peer, &sdp, now)
            }),
            Command::CreateOffer { peer, kinds, reply } => self.call(reply, |session, _| {
                session.engine.create_offer(peer, &kinds)
            }),
            Command::ApplyAnswer { peer, sdp, reply } => {
                self.call(reply, |session, _| session.engine.apply_answer(peer, &sdp))
            }
            Command::ClosePeer { peer, reply } => self.call(reply, |session, _| {
                session.engine.close_peer(peer)?;
                session.peers.remove(&peer);
                Ok(())
            }),
            Command::Subscribe { peer, track, reply } => self.call(reply, |session, now| {
                session.engine.subscribe(peer, track, now)
            }),
            Command::Unsubscribe { peer, track, reply } => {
                self.call(reply, |session, _| session.engine.unsubscribe(peer, track))
            }
            Command::RequestKeyframe { track, reply } => self.call(reply, |session, now| {
                session.engine.request_keyframe(track, now)
            }),
            Command::SetLayerPreference {
                peer,
                track,
                max_spatial_layer,
                max_height,
                reply,
            } => self.call(reply, |session, now| {
                session
                    .engine
                    .set_layer_preference(peer, track, max_spatial_layer, max_height, now)
            }),
            Command::SetPriority {
                peer,
                track,
                priority,
                reply,
            } => self.call(reply, |session, now| {
                session.engine.set_priority(peer, track, priority, now)
            }),
            Command::SetPartition {
                peer,
                partition,
                reply,
            } => self.call(reply, |session, now| {
                session.engine.set_partition(peer, partition, now)
            }),
            Command::AddRtpForward {
                track,
                destination,
                reply,
            } => self.call(reply, |session, now| {
                session.engine.add_rtp_forward(track, destination, now)
            }),
            Command::RemoveRtpForward { id, reply } => self.call(reply, |session, _| {
                Ok(session.engine.remove_rtp_forward(id))
            }),
            Command::CreateRelayPeer {
                remote,
                keying_material,
                initiator,
                reply,
            } => self.call(reply, |session, now| {
                session
                    .engine
                    .create_relay_peer(remote, &keying_material, initiator, now)
            }),
            Command::RelayExport {
                relay,
                track,
                reply,
            } => self.call(reply, |session, now| {
                session.engine.relay_export(relay, track, now)
            }),
            Command::RelayUnexport {
                relay,
                track,
                reply,
            } => self.call(reply, |session, _| {
                session.engine.relay_unexport(relay, track)
            }),
            Command::RelayImport {
                relay,
                relayed,
                stream_id,
                partition,
                reply,
            } => self.call(reply, |session, _| {
                session
                    .engine
                    .relay_import(relay, &relayed, &stream_id, partition)
            }),
            Command::RelayEndImport {
                relay,
                track,
                reply,
            } => self.call(reply, |session, _| {
                session.engine.relay_end_import(relay, track)
            }),
            Command::RelaySetWantedLayers {
                relay,
                track,
                wanted,
                reply,
            } => self.call(reply, |session, now| {
                session
                    .engine
                    .relay_set_wanted_layers(relay, track, &wanted, now)
            }),
            Command::SetTrackPartition {
                track,
                partition,
                reply,
            } => self.call(reply, |session, now| {
                session.engine.set_track_partition(track, partition, now)
            }),
            Command::PeerStats { peer, reply } => {
                self.call(reply, |session, _| session.engine.peer_stats(peer))
            }
            Command::Stats { reply } => {
                let (worker_restarts, io) = (self.restarts, self.io.counters);
                self.call(reply, |session, _| {
                    Ok(WorkerStats {
                        engine: session.engine.stats(),
                        worker_restarts,
                        io,
                    })
                })
            }
            Command::InjectPanic { reply } if !self.fault_injection => {
                reply.send(Err(DriverError::FaultInjectionDisabled))
            }
            Command::InjectPanic { reply } => self.call(reply, |_, _| -> Result<(), SfuError> {
                panic!("panic injected by a test (InjectPanic)")
            }),
            Command::Shutdown { reply } => self.shutdown = Some(reply),
        }
    }

    /// Runs one command on the engine under the panic guard and answers it. A panic answers
    /// `WorkerRestarted` before the restart's events, like any reply before its events.
    fn call<T>(
        &mut self,
        reply: Reply<T>,
        command: impl FnOnce(&mut Session, Instant) -> Result<T, SfuError>,
    ) {
        let now = Instant::now();
        match self.guarded(now, |session, _, now| command(session, now)) {
            Ok(result) => reply.send(result.map_err(DriverError::from)),
            Err(reason) => {
                reply.send(Err(DriverError::WorkerRestarted(reason.clone())));
                self.restart(reason, now);
            }
        }
    }

    fn receive(&mut self) {
        for _ in 0..MAX_RECV_BATCHES_PER_ITERATION {
            let now = Instant::now();
            let received = self.step(now, |session, io, now| {
                io.recv_batch(|source, data| {
                    session.engine.handle_input(Input::Datagram {
                        at: now,
                        source,
                        data,
                    });
                })
            });
            match received {
                Some(Ok(_)) => {}
                Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return;
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Left readable: the next iteration tries again after commands and timers.
                Some(Err(e)) => {
                    log::warn!("media worker: receiving failed: {e}");
                    return;
                }
                None => return,
            }
        }
    }

    /// Runs `input` on the engine under the panic guard; `None` if the engine panicked (and
    /// was replaced).
    fn step<T>(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Session, &mut UdpIo, Instant) -> T,
    ) -> Option<T> {
        match self.guarded(now, input) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.restart(reason, now);
                None
            }
        }
    }

    /// Runs `input`, then drains the engine's outputs and sends its datagrams, all under one
    /// panic guard. A panic in the engine is a bug in us; catching it keeps the other peers of
    /// this process (and the other workers) serving. Everything of the panicked engine is thrown
    /// away, so no broken invariant outlives the guard.
    fn guarded<T>(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Session, &mut UdpIo, Instant) -> T,
    ) -> Result<T, String> {
        let Worker {
            io,
            session,
            events,
            deadline,
            ..
        } = self;
        panic::catch_unwind(AssertUnwindSafe(|| {
            let value = input(session, io, now);
            session.drain(io, events, deadline);
            value
        }))
        .map_err(|payload| panic_message(payload.as_ref()))
    }

    /// Replaces a panicked engine with a fresh one on the same socket.
    fn restart(&mut self, reason: String, now: Instant) {
        log::error!(
            "media worker: the engine panicked ({reason}); restarting it, all peers are lost"
        );
        self.restarts += 1;
        self.io.discard_pending();
        // Commands already queued were meant for the engine that died.
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Shutdown { reply } => self.shutdown = Some(reply),
                command => command.fail(DriverError::WorkerRestarted(reason.clone())),
            }
        }
        let mut config = self.engine_config.clone();
        // New ICE credentials and SSRCs, not a replay of the dead engine's.
        config.seed ^= self.restarts.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // Ids the control plane still holds must not name the new engine's peers. The dead
        // engine's memory is intact after the unwind, so its counters can still be read.
        config.first_id = self.session.engine.id_watermark();
        let built = match panic::catch_unwind(AssertUnwindSafe(|| build_engine(&config, now))) {
            Ok(built) => built.map_err(|e| e.to_string()),
            Err(payload) => Err(panic_message(payload.as_ref())),
        };
        let lost = match built {
            Ok(engine) => {
                set_fingerprint(&self.shared, &engine);
                std::mem::replace(
                    &mut self.session,
                    Session {
                        engine,
                        peers: BTreeMap::new(),
                    },
                )
                .peers
            }
            Err(why) => {
                log::error!("media worker: cannot build a new engine ({why}); stopping");
                self.broken = true;
                std::mem::take(&mut self.session.peers)
            }
        };
        self.events.push(WorkerEvent::Restarted { reason });
        for (peer, _) in lost.into_iter().filter(|(_, connected)| *connected) {
            self.events
                .push(WorkerEvent::Engine(Event::PeerDisconnected {
                    peer,
                    reason: RESTART_DISCONNECT_REASON,
                }));
        }
        self.deadline = now;
    }

    fn deliver_events(&mut self) {
        if !self.events.is_empty() {
            (self.on_events)(std::mem::take(&mut self.events));
        }
    }

    /// Closes the socket and drops the engine, answers what is left, then the `Shutdown`.
    fn stop(mut self) {
        self.deliver_events();
        let Worker {
            io,
            poll,
            commands,
            session,
            shutdown,
            ..
        } = self;
        drop(session);
        drop(poll);
        drop(io);
        while let Ok(command) = commands.try_recv() {
            command.fail(DriverError::WorkerClosed);
        }
        // Commands sent from here on find the channel closed and answer WorkerClosed.
        drop(commands);
        if let Some(reply) = shutdown {
            reply.send(Ok(()));
        }
    }
}

impl Session {
    /// Takes every output the engine has: datagrams are sent (in batches), events kept for the
    /// end of the iteration, and the timeout becomes the next deadline.
    fn drain(&mut self, io: &mut UdpIo, events: &mut Vec<WorkerEvent>, deadline: &mut Instant) {
        loop {
            match self.engine.poll_output() {
                Output::Transmit(transmit) => io.queue(transmit),
                Output::Event(event) => {
                    if let Event::PeerDisconnected { peer, .. } = &event {
                        if let Some(connected) = self.peers.get_mut(peer) {
                            *connected = false;
                        }
                    }
                    events.push(WorkerEvent::Engine(event));
                }
                Output::Timeout(at) => {
                    *deadline = at;
                    break;
                }
            }
        }
        let engine = &mut self.engine;
        io.flush(|buffer| engine.recycle(buffer));
    }
}

fn build_engine(config: &EngineConfig, now: Instant) -> Result<Engine, DriverError> {
    Engine::new(config.clone(), now).map_err(DriverError::Engine)
}

fn set_fingerprint(shared: &Shared, engine: &Engine) {
    if let Ok(mut fingerprint) = shared.fingerprint.lock() {
        *fingerprint = engine.fingerprint();
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// 64 random bits from the OS; if it has none to give, the per-process random hasher keys.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    }
}
