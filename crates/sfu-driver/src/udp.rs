//! The worker's UDP socket: batched receive (recvmmsg, GRO) and send (GSO) through quinn-udp.
//! Moves bytes only; what they mean is the engine's business.
//!
//! quinn-udp 0.6 sends one `sendmsg` per call, so send batching is GSO trains. Measured on
//! loopback (release, shared 2-core machine, 1200-byte datagrams, 200k sent): to one
//! destination in flushes of 32, 6,250 `sendmsg` instead of 200,000 and ~12x the rate; fanned out
//! to 8 destinations, 4 per destination per flush, 50,000 calls and ~2.3x. Receiving took 32
//! datagrams per `recvmmsg` (or per GRO train) in both cases.

use quinn_udp::{RecvMeta, Transmit as UdpTransmit, UdpSocketState, BATCH_SIZE};
use sfu_core::Transmit;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

/// Room for the largest UDP datagram, and for a GRO-coalesced train of them (the kernel caps
/// one at 64 KiB). A smaller slot would truncate a coalesced train and lose datagrams.
const SLOT_LEN: usize = 64 * 1024;

/// Payload bytes in one GSO send; the kernel refuses trains over 64 KiB including headers.
const MAX_GSO_BYTES: usize = 65_000;

/// Socket buffers asked for (best effort: the kernel caps them at `net.core.[rw]mem_max`).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Counters of the socket's own work; how well batching does is `datagrams / calls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub datagrams_received: u64,
    /// `recvmmsg` calls that returned datagrams.
    pub recv_calls: u64,
    pub recv_errors: u64,
    pub datagrams_sent: u64,
    /// `sendmsg` calls made, each one datagram or one GSO train.
    pub send_calls: u64,
    /// Datagrams dropped because the kernel refused them (full buffer, unreachable, ...).
    pub send_errors: u64,
}

struct Pending {
    /// Order of queueing; kept within a destination when batches are regrouped.
    seq: u32,
    transmit: Transmit,
}

pub(crate) struct UdpIo {
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    local_addr: SocketAddr,
    recv_buf: Box<[u8]>,
    metas: [RecvMeta; BATCH_SIZE],
    send_buf: Vec<u8>,
    pending: Vec<Pending>,
    pub(crate) counters: IoCounters,
}

impl UdpIo {
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = std::net::UdpSocket::bind(addr)?;
        // Also makes the socket non-blocking and turns on GRO where the kernel has it.
        let state = UdpSocketState::new((&socket).into())?;
        if let Err(e) = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER_BYTES) {
            log::warn!("cannot set the UDP receive buffer size: {e}");
        }
        if let Err(e) = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER_BYTES) {
            log::warn!("cannot set the UDP send buffer size: {e}");
        }
        let local_addr = socket.local_addr()?;
        Ok(UdpIo {
            socket: mio::net::UdpSocket::from_std(socket),
            state,
            local_addr,
            recv_buf: vec![0; SLOT_LEN * BATCH_SIZE].into_boxed_slice(),
            metas: [RecvMeta::default(); BATCH_SIZE],
            send_buf: Vec::with_capacity(MAX_GSO_BYTES),
            pending: Vec::with_capacity(BATCH_SIZE * 8),
            counters: IoCounters::default(),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub(crate) fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// Receives one batch and calls `each` for every datagram in it, with IPv4-mapped sources
    /// turned back into IPv4. `Err(WouldBlock)` when nothing is waiting.
    pub(crate) fn recv_batch(
        &mut self,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let filled = {
            let mut slots = self.recv_buf.chunks_mut(SLOT_LEN);
            let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            match self
                .state
                .recv((&self.socket).into(), &mut bufs, &mut self.metas)
            {
                Ok(filled) => filled,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock
                        && e.kind() != io::ErrorKind::Interrupted
                    {
                        self.counters.recv_errors += 1;
                    }
                    return Err(e);
                }
            }
        };
        self.counters.recv_calls += 1;
        let mut datagrams = 0;
        for (slot, meta) in self.recv_buf.chunks(SLOT_LEN).zip(&self.metas[..filled]) {
            let train = &slot[..meta.len.min(slot.len())];
            // With GRO one slot holds a train of datagrams `stride` bytes apart (the last may be
            // shorter); without it, stride is the length.
            let stride = if meta.stride == 0 {
                train.len().max(1)
            } else {
                meta.stride
            };
            let source = SocketAddr::new(meta.addr.ip().to_canonical(), meta.addr.port());
            for datagram in train.chunks(stride) {
                each(source, datagram);
                datagrams += 1;
            }
        }
        self.counters.datagrams_received += datagrams as u64;
        Ok(datagrams)
    }

    /// Queues a datagram for the next [`UdpIo::flush`].
    pub(crate) fn queue(&mut self, transmit: Transmit) {
        let seq = self.pending.len() as u32;
        self.pending.push(Pending { seq, transmit });
    }

    /// Sends everything queued and hands each buffer to `recycle`.
    ///
    /// Datagrams are regrouped by destination (keeping their order per destination) so that runs
    /// to one peer go out as one GSO train: same-size segments, the last one possibly shorter.
    /// Anything that cannot join a train is sent alone. A refused datagram is dropped and
    /// counted; media over UDP is loss tolerant, and waiting would stall every other peer.
    pub(crate) fn flush(&mut self, mut recycle: impl FnMut(Vec<u8>)) {
        if self.pending.is_empty() {
            return;
        }
        self.pending.sort_unstable_by(|a, b| {
            (a.transmit.destination, a.seq).cmp(&(b.transmit.destination, b.seq))
        });
        let max_segments = self.state.max_gso_segments().max(1);
        let mut start = 0;
        while start < self.pending.len() {
            let end = train_end(&self.pending, start, max_segments);
            self.send_train(start, end);
            start = end;
        }
        for pending in self.pending.drain(..) {
            recycle(pending.transmit.contents);
        }
    }

    /// Drops queued datagrams without sending them (their engine is gone).
    pub(crate) fn discard_pending(&mut self) {
        self.pending.clear();
    }

    fn send_train(&mut self, start: usize, end: usize) {
        let count = end - start;
        let destination = self.destination_for_socket(self.pending[start].transmit.destination);
        let UdpIo {
            socket,
            state,
            send_buf,
            pending,
            counters,
            ..
        } = self;
        let train = &pending[start..end];
        let send = |contents: &[u8], segment_size: Option<usize>| {
            let transmit = UdpTransmit {
                destination,
                ecn: None,
                contents,
                segment_size,
                src_ip: None,
            };
            state.try_send((&*socket).into(), &transmit)
        };
        if count > 1 {
            send_buf.clear();
            for pending in train {
                send_buf.extend_from_slice(&pending.transmit.contents);
            }
            counters.send_calls += 1;
            match send(send_buf, Some(train[0].transmit.contents.len())) {
                Ok(()) => {
                    counters.datagrams_sent += count as u64;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    counters.send_errors += count as u64;
                    return;
                }
                // Some paths refuse GSO (quinn-udp then stops offering it): send one by one.
                Err(e) => log::debug!(
                    "GSO train of {count} to {destination} refused ({e}); sending singly"
                ),
            }
        }
        for pending in train {
            counters.send_calls += 1;
            match send(&pending.transmit.contents, None) {
                Ok(()) => counters.datagrams_sent += 1,
                Err(e) => {
                    counters.send_errors += 1;
                    log::debug!("dropped a datagram to {destination}: {e}");
                }
            }
        }
    }

    /// An IPv6 socket reaches IPv4 peers through IPv4-mapped addresses.
    fn destination_for_socket(&self, destination: SocketAddr) -> SocketAddr {
        match (self.local_addr.ip(), destination.ip()) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), destination.port())
            }
            _ => destination,
        }
    }
}

/// Where the GSO train starting at `start` ends (exclusive): same destination, same size,
/// except that one shorter datagram may close the train.
fn train_end(pending: &[Pending], start: usize, max_segments: usize) -> usize {
    let first = &pending[start].transmit;
    let segment_size = first.contents.len();
    let mut end = start + 1;
    if segment_size == 0 {
        return end;
    }
    let mut bytes = segment_size;
    while end < pending.len() && end - start < max_segments {
        let next = &pending[end].transmit;
        let len = next.contents.len();
        if next.destination != first.destination
            || len > segment_size
            || len == 0
            || bytes + len > MAX_GSO_BYTES
        {
            break;
        }
        bytes += len;
        end += 1;
        if len < segment_size {
            break;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn transmit(to: SocketAddr, len: usize, fill: u8) -> Transmit {
        Transmit {
            destination: to,
            contents: vec![fill; len],
        }
    }

    fn receive_all(io: &mut UdpIo, expected: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < expected && Instant::now() < deadline {
            match io.recv_batch(|from, data| got.push((from, data.to_vec()))) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("recv failed: {e}"),
            }
        }
        got
    }

    #[test]
    fn trains_hold_one_destination_and_one_size_with_a_shorter_tail() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let pending: Vec<Pending> = [(a, 100), (a, 100), (a, 60), (a, 100), (b, 100)]
            .into_iter()
            .enumerate()
            .map(|(seq, (to, len))| Pending {
                seq: seq as u32,
                transmit: transmit(to, len, 0),
            })
            .collect();
        assert_eq!(
            train_end(&pending, 0, 64),
            3,
            "the shorter datagram closes the train"
        );
        assert_eq!(
            train_end(&pending, 3, 64),
            4,
            "another destination starts a new train"
        );
        assert_eq!(
            train_end(&pending, 0, 2),
            2,
            "trains stop at the kernel's segment limit"
        );
    }

    #[test]
    fn flush_delivers_every_datagram_in_order_per_destination() {
        let mut sender = UdpIo::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut left = UdpIo::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut right = UdpIo::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // Interleaved like an SFU's output: each incoming packet fans out to both receivers.
        for i in 0..20u8 {
            sender.queue(transmit(left.local_addr(), 1200, i));
            sender.queue(transmit(
                right.local_addr(),
                if i == 19 { 300 } else { 1200 },
                i,
            ));
        }
        let mut recycled = 0;
        sender.flush(|_| recycled += 1);
        assert_eq!(recycled, 40);

        for (receiver, last_len) in [(&mut left, 1200), (&mut right, 300)] {
            let got = receive_all(receiver, 20);
            let fills: Vec<u8> = got.iter().map(|(_, data)| data[0]).collect();
            assert_eq!(fills, (0..20).collect::<Vec<u8>>());
            assert!(got.iter().all(|(from, _)| *from == sender.local_addr()));
            assert_eq!(got[19].1.len(), last_len);
        }
        let counters = sender.counters;
        assert_eq!(counters.datagrams_sent, 40);
        assert_eq!(counters.send_errors, 0);
        if sender.state.max_gso_segments() > 1 {
            assert_eq!(counters.send_calls, 2, "one GSO train per destination");
        }
    }

    #[test]
    fn an_ipv6_socket_reports_ipv4_peers_as_ipv4() {
        let Ok(mut v6) = UdpIo::bind("[::]:0".parse().unwrap()) else {
            return; // no IPv6 on this machine
        };
        let v4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        v4.send_to(b"hello", ("127.0.0.1", v6.local_addr().port()))
            .unwrap();
        let got = receive_all(&mut v6, 1);
        assert_eq!(got, vec![(v4.local_addr().unwrap(), b"hello".to_vec())]);

        v6.queue(transmit(v4.local_addr().unwrap(), 3, 7));
        v6.flush(|_| {});
        v4.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        let (len, _) = v4.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], &[7, 7, 7]);
    }
}
