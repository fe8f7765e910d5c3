//! The physical reference for the SFU benchmarks: how many 1200-byte UDP datagrams per second
//! one core can move over loopback with the kernel's batching (GSO/GRO through quinn-udp,
//! `sendmmsg`), with no parsing, crypto or routing. Not a benchmark of Conclave.
//!
//! Two measurements, each for `--seconds`:
//! - `send/recv`: one thread sends GSO trains to one socket, another drains it with GRO.
//! - `relay xN`: a generator blasts datagrams at a relay thread, which receives them in batches
//!   and sends every one to N destinations with `sendmmsg`, the shape of an SFU's fan-out; the
//!   relay is pinned alone to `--relay-core`.
//!
//! ```text
//! conclave-udp-ceiling [--seconds 3] [--relay-core 0] [--load-core 1] [--fanout 1,10] [--json FILE]
//! ```

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DATAGRAM_BYTES: usize = 1200;
/// Room for a GRO train (the kernel caps one at 64 KiB).
const SLOT_BYTES: usize = 64 * 1024;
const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// Datagrams per `sendmmsg` call in the relay.
const MMSG_BATCH: usize = 64;

struct Options {
    seconds: f64,
    relay_core: usize,
    load_core: usize,
    fanouts: Vec<usize>,
    json: Option<String>,
}

/// What one thread did: datagrams and the CPU time it used.
#[derive(Clone, Copy, Default)]
struct Work {
    datagrams: u64,
    cpu_s: f64,
    wall_s: f64,
}

impl Work {
    fn per_second(&self) -> f64 {
        self.datagrams as f64 / self.wall_s.max(1e-9)
    }

    /// Datagrams per CPU-second of the thread: the per-core rate if it had the core to itself.
    fn per_core_second(&self) -> f64 {
        self.datagrams as f64 / self.cpu_s.max(1e-9)
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 3.0,
        relay_core: 0,
        load_core: 1,
        fanouts: vec![1, 10],
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--seconds" => options.seconds = number(&value)?.clamp(0.5, 60.0),
            "--relay-core" => options.relay_core = number(&value)? as usize,
            "--load-core" => options.load_core = number(&value)? as usize,
            "--fanout" => {
                options.fanouts = value
                    .split(',')
                    .map(|n| n.parse::<usize>().map_err(|_| format!("--fanout: {n}")))
                    .collect::<Result<_, _>>()?;
                if options.fanouts.iter().any(|&n| n == 0 || n > 64) {
                    return Err("--fanout values must be 1..=64".into());
                }
            }
            "--json" => options.json = Some(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity only touch the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        // Best effort: a smaller machine or a restricted cpuset still measures, unpinned.
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// Runs `body` on a thread pinned to `core` and measures its CPU and wall time.
fn spawn_measured(
    core: usize,
    body: impl FnOnce() -> u64 + Send + 'static,
) -> std::thread::JoinHandle<Work> {
    std::thread::spawn(move || {
        pin_to_core(core);
        let cpu = thread_cpu_seconds();
        let wall = Instant::now();
        let datagrams = body();
        Work {
            datagrams,
            cpu_s: thread_cpu_seconds() - cpu,
            wall_s: wall.elapsed().as_secs_f64(),
        }
    })
}

struct BatchedSocket {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl BatchedSocket {
    fn bind() -> io::Result<BatchedSocket> {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let state = UdpSocketState::new((&socket).into())?;
        // Best effort: the kernel caps these at net.core.[rw]mem_max.
        let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER_BYTES);
        let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER_BYTES);
        // Blocking, so an idle thread sleeps instead of spinning on EAGAIN and its CPU time is
        // work; the timeout lets it notice the end of the run.
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        socket.set_write_timeout(Some(Duration::from_millis(20)))?;
        Ok(BatchedSocket { socket, state })
    }

    fn address(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Sends GSO trains of 1200-byte datagrams to `destination` until `stop`; returns datagrams sent.
fn blast(socket: &BatchedSocket, destination: SocketAddr, stop: &AtomicBool) -> u64 {
    let segments = socket.state.max_gso_segments().clamp(1, 50);
    let train = vec![0x5au8; DATAGRAM_BYTES * segments];
    let transmit = Transmit {
        destination,
        ecn: None,
        contents: &train,
        segment_size: Some(DATAGRAM_BYTES),
        src_ip: None,
    };
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        // A timeout or ENOBUFS just means the receiver is the bottleneck.
        if socket
            .state
            .try_send((&socket.socket).into(), &transmit)
            .is_ok()
        {
            sent += segments as u64;
        }
    }
    sent
}

/// Receives with GRO/recvmmsg until `stop`, calling `each` per datagram; returns the count.
fn drain(socket: &BatchedSocket, stop: &AtomicBool, mut each: impl FnMut(&[u8])) -> u64 {
    let mut buffer = vec![0u8; SLOT_BYTES * BATCH_SIZE];
    let mut metas = [RecvMeta::default(); BATCH_SIZE];
    let mut received = 0;
    while !stop.load(Ordering::Relaxed) {
        let filled = {
            let mut slots = buffer.chunks_mut(SLOT_BYTES);
            let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            match socket
                .state
                .recv((&socket.socket).into(), &mut bufs, &mut metas)
            {
                Ok(filled) => filled,
                Err(_) => continue, // The read timeout lets us see `stop`.
            }
        };
        for (slot, meta) in buffer.chunks(SLOT_BYTES).zip(&metas[..filled]) {
            let train = &slot[..meta.len.min(slot.len())];
            let stride = if meta.stride == 0 {
                train.len().max(1)
            } else {
                meta.stride
            };
            for datagram in train.chunks(stride) {
                each(datagram);
                received += 1;
            }
        }
    }
    received
}

/// `sendmmsg` of up to `MMSG_BATCH` queued datagrams, each to its own destination.
struct MmsgSender {
    fd: i32,
    data: Vec<[u8; DATAGRAM_BYTES]>,
    lengths: Vec<usize>,
    destinations: Vec<libc::sockaddr_in>,
    queued: usize,
    sent: u64,
}

impl MmsgSender {
    fn new(socket: &UdpSocket) -> MmsgSender {
        MmsgSender {
            fd: socket.as_raw_fd(),
            data: vec![[0; DATAGRAM_BYTES]; MMSG_BATCH],
            lengths: vec![0; MMSG_BATCH],
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            destinations: vec![unsafe { std::mem::zeroed() }; MMSG_BATCH],
            queued: 0,
            sent: 0,
        }
    }

    fn queue(&mut self, datagram: &[u8], destination: &libc::sockaddr_in) {
        let len = datagram.len().min(DATAGRAM_BYTES);
        self.data[self.queued][..len].copy_from_slice(&datagram[..len]);
        self.lengths[self.queued] = len;
        self.destinations[self.queued] = *destination;
        self.queued += 1;
        if self.queued == MMSG_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.queued == 0 {
            return;
        }
        let mut iovecs: Vec<libc::iovec> = (0..self.queued)
            .map(|i| libc::iovec {
                iov_base: self.data[i].as_mut_ptr().cast(),
                iov_len: self.lengths[i],
            })
            .collect();
        let mut messages: Vec<libc::mmsghdr> = (0..self.queued)
            .map(|i| {
                // SAFETY: msghdr is plain data; we fill the fields sendmmsg reads.
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = (&mut self.destinations[i] as *mut libc::sockaddr_in).cast();
                header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                header.msg_iov = &mut iovecs[i];
                header.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: header,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: every pointer in `messages` points into buffers that outlive the call.
        let sent = unsafe { libc::sendmmsg(self.fd, messages.as_mut_ptr(), self.queued as u32, 0) };
        if sent > 0 {
            self.sent += sent as u64;
        }
        self.queued = 0;
    }
}

fn sockaddr(address: SocketAddr) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut out: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    out.sin_family = libc::AF_INET as libc::sa_family_t;
    out.sin_port = address.port().to_be();
    if let SocketAddr::V4(v4) = address {
        out.sin_addr = libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        };
    }
    out
}

fn measure_send_recv(options: &Options) -> io::Result<(Work, Work)> {
    let sender = BatchedSocket::bind()?;
    let receiver = BatchedSocket::bind()?;
    let destination = receiver.address();
    let stop = Arc::new(AtomicBool::new(false));
    let (stop_send, stop_receive) = (stop.clone(), stop.clone());
    let receiving = spawn_measured(options.relay_core, move || {
        drain(&receiver, &stop_receive, |_| {})
    });
    let sending = spawn_measured(options.load_core, move || {
        blast(&sender, destination, &stop_send)
    });
    std::thread::sleep(Duration::from_secs_f64(options.seconds));
    stop.store(true, Ordering::Relaxed);
    let sent = sending
        .join()
        .map_err(|_| io::Error::other("sender panicked"))?;
    let received = receiving
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))?;
    Ok((sent, received))
}

/// (relay received, relay sent, sink received).
fn measure_relay(options: &Options, fanout: usize) -> io::Result<(Work, u64, u64)> {
    let generator = BatchedSocket::bind()?;
    let relay = BatchedSocket::bind()?;
    let sink = BatchedSocket::bind()?;
    // One socket (and one draining thread) per destination, as subscribers have their own ports.
    let mut sinks = vec![sink];
    for _ in 1..fanout {
        sinks.push(BatchedSocket::bind()?);
    }
    let destinations: Vec<libc::sockaddr_in> =
        sinks.iter().map(|s| sockaddr(s.address())).collect();
    let relay_address = relay.address();
    let stop = Arc::new(AtomicBool::new(false));
    let relay_sent = Arc::new(AtomicU64::new(0));
    let sink_received = Arc::new(AtomicU64::new(0));

    let mut sink_threads = Vec::new();
    for sink in sinks {
        let (stop, counter) = (stop.clone(), sink_received.clone());
        sink_threads.push(spawn_measured(options.load_core, move || {
            let n = drain(&sink, &stop, |_| {});
            counter.fetch_add(n, Ordering::Relaxed);
            n
        }));
    }
    let (stop_relay, sent_counter) = (stop.clone(), relay_sent.clone());
    let relaying = spawn_measured(options.relay_core, move || {
        let mut out = MmsgSender::new(&relay.socket);
        let received = drain(&relay, &stop_relay, |datagram| {
            for destination in &destinations {
                out.queue(datagram, destination);
            }
        });
        out.flush();
        sent_counter.store(out.sent, Ordering::Relaxed);
        received
    });
    let stop_generate = stop.clone();
    let generating = spawn_measured(options.load_core, move || {
        blast(&generator, relay_address, &stop_generate)
    });
    std::thread::sleep(Duration::from_secs_f64(options.seconds));
    stop.store(true, Ordering::Relaxed);
    let relayed = relaying
        .join()
        .map_err(|_| io::Error::other("relay panicked"))?;
    let _ = generating.join();
    for thread in sink_threads {
        let _ = thread.join();
    }
    Ok((
        relayed,
        relay_sent.load(Ordering::Relaxed),
        sink_received.load(Ordering::Relaxed),
    ))
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\nusage: conclave-udp-ceiling [--seconds 3] [--relay-core 0] [--load-core 1] [--fanout 1,10] [--json FILE]");
            std::process::exit(2);
        }
    };
    let mut results = Vec::new();
    match measure_send_recv(&options) {
        Ok((sent, received)) => {
            println!(
                "send/recv: sent {:.0}/s ({:.0} per core-s), received {:.0}/s ({:.0} per core-s, {:.0}% of a core)",
                sent.per_second(),
                sent.per_core_second(),
                received.per_second(),
                received.per_core_second(),
                received.cpu_s / received.wall_s * 100.0
            );
            results.push(format!(
                "{{\"mode\":\"send/recv\",\"sent_pps\":{:.0},\"send_pps_per_core\":{:.0},\"received_pps\":{:.0},\"recv_pps_per_core\":{:.0}}}",
                sent.per_second(),
                sent.per_core_second(),
                received.per_second(),
                received.per_core_second()
            ));
        }
        Err(e) => eprintln!("send/recv failed: {e}"),
    }
    for &fanout in &options.fanouts {
        match measure_relay(&options, fanout) {
            Ok((relay, sent, delivered)) => {
                let sent_per_s = sent as f64 / relay.wall_s.max(1e-9);
                let core_share = relay.cpu_s / relay.wall_s.max(1e-9);
                println!(
                    "relay x{fanout}: in {:.0}/s, out {sent_per_s:.0}/s, delivered {:.0}/s, relay core {:.0}% -> {:.0} forwarded per core-s",
                    relay.per_second(),
                    delivered as f64 / relay.wall_s.max(1e-9),
                    core_share * 100.0,
                    sent as f64 / relay.cpu_s.max(1e-9)
                );
                results.push(format!(
                    "{{\"mode\":\"relay\",\"fanout\":{fanout},\"in_pps\":{:.0},\"out_pps\":{sent_per_s:.0},\"relay_core_pct\":{:.1},\"forwarded_pps_per_core\":{:.0}}}",
                    relay.per_second(),
                    core_share * 100.0,
                    sent as f64 / relay.cpu_s.max(1e-9)
                ));
            }
            Err(e) => eprintln!("relay x{fanout} failed: {e}"),
        }
    }
    if let Some(path) = options.json {
        let json = format!("[\n  {}\n]\n", results.join(",\n  "));
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
