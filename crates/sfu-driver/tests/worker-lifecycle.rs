//! A worker on a real loopback socket: serving commands, shrugging off bad datagrams,
//! restarting after an engine panic, and shutting down.

use sfu_core::{Event, PeerId};
use sfu_driver::{
    Command, DriverError, Reply, Worker, WorkerConfig, WorkerEvent, WorkerHandle, WorkerStats,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(10);

fn config(fault_injection: bool) -> WorkerConfig {
    let mut config =
        WorkerConfig::new("127.0.0.1:0".parse().unwrap(), "127.0.0.1".parse().unwrap());
    config.engine.seed = 7;
    config.fault_injection = fault_injection;
    config
}

fn start(fault_injection: bool) -> (WorkerHandle, mpsc::Receiver<Vec<WorkerEvent>>) {
    let (events_tx, events) = mpsc::channel();
    let handle = Worker::start(config(fault_injection), move |batch| {
        let _ = events_tx.send(batch);
    })
    .expect("the worker starts");
    (handle, events)
}

/// Asks for stats until `done` holds, or fails after `PATIENCE`.
fn stats_when(handle: &WorkerHandle, done: impl Fn(&WorkerStats) -> bool) -> WorkerStats {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = handle.stats().expect("stats are answered");
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never got there: {stats:?}"
        );
    }
}

/// Collects event batches until one holds an event matching `wanted`; returns everything seen.
fn events_until(
    events: &mpsc::Receiver<Vec<WorkerEvent>>,
    wanted: impl Fn(&WorkerEvent) -> bool,
) -> Vec<WorkerEvent> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !seen.iter().any(&wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the event never came; saw {seen:?}"));
        assert!(!batch.is_empty(), "batches are never empty");
        seen.extend(batch);
    }
    seen
}

fn client_for(handle: &WorkerHandle) -> (UdpSocket, SocketAddr) {
    (UdpSocket::bind("127.0.0.1:0").unwrap(), handle.local_addr())
}

/// A STUN binding request (RFC 8489 §5) with no attributes: well formed, but it names no peer.
fn stun_binding_request() -> Vec<u8> {
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[7; 12]);
    request
}

#[test]
fn serves_commands_and_survives_garbage_datagrams() {
    let (handle, _events) = start(false);
    let peer = handle.create_peer().expect("a peer is created");
    let (client, worker) = client_for(&handle);

    let garbage: [&[u8]; 4] = [
        &[0xff; 10],
        &[0x80, 0x60, 0x00],
        &[0x16, 0xfe, 0xfd, 0x00],
        &[0x00],
    ];
    for datagram in garbage {
        client.send_to(datagram, worker).unwrap();
    }
    client.send_to(&stun_binding_request(), worker).unwrap();

    let stats = stats_when(&handle, |stats| stats.io.datagrams_received >= 5);
    assert_eq!(stats.worker_restarts, 0);
    assert!(stats.io.recv_calls >= 1 && stats.io.recv_calls <= 5);
    handle.peer_stats(peer).expect("the peer is still there");
    handle.close_peer(peer).expect("the peer closes");
    let again = handle.close_peer(peer).unwrap_err();
    assert_eq!(again.code(), "peer_not_found");
    handle.shutdown().expect("the worker shuts down");
}

#[test]
fn the_engine_counts_what_it_dropped() {
    let (handle, _events) = start(false);
    let (client, worker) = client_for(&handle);
    client.send_to(&[0xff; 10], worker).unwrap();
    client.send_to(&[0x80, 0x60, 0x00, 0x01], worker).unwrap();
    client.send_to(&stun_binding_request(), worker).unwrap();

    let stats = stats_when(&handle, |stats| stats.io.datagrams_received >= 3);
    let engine = &stats.engine;
    assert!(engine.stun_requests >= 1, "{engine:?}");
    assert!(
        engine.dropped_malformed + engine.dropped_unknown_source >= 2,
        "{engine:?}"
    );
    handle.shutdown().unwrap();
}

#[test]
fn an_engine_panic_restarts_the_worker_and_it_keeps_serving() {
    let (handle, events) = start(true);
    let address = handle.local_addr();
    let peer = handle.create_peer().unwrap();

    let error = handle.inject_panic().unwrap_err();
    assert!(
        matches!(error, DriverError::WorkerRestarted(ref why) if why.contains("InjectPanic")),
        "{error:?}"
    );
    assert_eq!(error.code(), "worker_restarted");

    let seen = events_until(
        &events,
        |event| matches!(event, WorkerEvent::Engine(Event::PeerDisconnected { peer: gone, .. }) if *gone == peer),
    );
    let restarted = seen.iter().position(|event| matches!(event, WorkerEvent::Restarted { reason } if reason.contains("InjectPanic")));
    let disconnected = seen.iter().position(|event| {
        *event
            == WorkerEvent::Engine(Event::PeerDisconnected {
                peer,
                reason: sfu_driver::RESTART_DISCONNECT_REASON,
            })
    });
    assert!(restarted.is_some() && restarted < disconnected, "{seen:?}");

    assert_eq!(handle.local_addr(), address, "the same socket serves on");
    assert_eq!(handle.stats().unwrap().worker_restarts, 1);
    let new_peer = handle.create_peer().expect("the new engine takes commands");
    assert!(
        new_peer > peer,
        "ids of the dead engine are never reused ({new_peer:?} after {peer:?})"
    );
    let (client, worker) = client_for(&handle);
    let before = handle.stats().unwrap().io.datagrams_received;
    client.send_to(&[0xff; 4], worker).unwrap();
    stats_when(&handle, |stats| stats.io.datagrams_received > before);
    handle.shutdown().unwrap();
}

#[test]
fn a_reply_is_delivered_before_the_events_its_command_caused() {
    enum Seen {
        Reply,
        Events,
    }
    let (seen_tx, seen) = mpsc::channel();
    let events_tx = seen_tx.clone();
    let handle = Worker::start(config(true), move |_| {
        let _ = events_tx.send(Seen::Events);
    })
    .unwrap();
    handle.create_peer().unwrap();
    handle.send(Command::InjectPanic {
        reply: Reply::new(move |_| {
            let _ = seen_tx.send(Seen::Reply);
        }),
    });
    assert!(
        matches!(seen.recv_timeout(PATIENCE), Ok(Seen::Reply)),
        "the reply comes first"
    );
    assert!(
        matches!(seen.recv_timeout(PATIENCE), Ok(Seen::Events)),
        "then the restart's events"
    );
    handle.shutdown().unwrap();
}

#[test]
fn a_layer_preference_reaches_the_engine_and_misuse_answers_its_code() {
    let (handle, _events) = start(false);
    let peer = handle.create_peer().unwrap();
    let track = sfu_core::TrackId(42);
    let unknown = handle
        .set_layer_preference(PeerId(999), track, Some(0), None)
        .unwrap_err();
    assert_eq!(unknown.code(), "peer_not_found");
    let not_received = handle
        .set_layer_preference(peer, track, None, Some(180))
        .unwrap_err();
    assert_eq!(not_received.code(), "not_subscribed");
    handle.shutdown().unwrap();
}

#[test]
fn inject_panic_is_refused_without_fault_injection() {
    let (handle, _events) = start(false);
    assert_eq!(
        handle.inject_panic(),
        Err(DriverError::FaultInjectionDisabled)
    );
    assert_eq!(handle.stats().unwrap().worker_restarts, 0);
    handle.shutdown().unwrap();
}

#[test]
fn commands_after_shutdown_answer_worker_closed_and_the_port_is_freed() {
    let (handle, _events) = start(false);
    let address = handle.local_addr();
    let (closed_tx, closed) = mpsc::channel();
    handle.send(Command::Shutdown {
        reply: Reply::new(move |result| closed_tx.send(result).unwrap()),
    });
    let late = handle.call(|reply| Command::CreatePeer { reply });
    assert_eq!(late, Err::<PeerId, _>(DriverError::WorkerClosed));
    assert_eq!(closed.recv_timeout(PATIENCE).unwrap(), Ok(()));
    UdpSocket::bind(address).expect("the worker's port is free once Shutdown is answered");
    drop(handle);
}

#[test]
fn binding_a_taken_port_fails_with_bind_failed() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = config(false);
    config.bind_addr = taken.local_addr().unwrap();
    let error = Worker::start(config, |_| {})
        .err()
        .expect("the port is taken");
    assert_eq!(error.code(), "bind_failed");
}
