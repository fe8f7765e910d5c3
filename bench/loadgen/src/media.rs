//! The media thread: every client's UDP socket, ICE checks (controlling agent), DTLS, SRTP, the
//! synthetic Opus/VP8 senders and the receive-side measurements. One thread, one `mio::Poll`,
//! one timer heap; signaling happens elsewhere and arrives as [`Joined`].

use crate::scenario::{MediaProfile, Scenario};
use crate::session_description::{
    LocalDescription, PublisherSsrcs, RemoteDescription, OPUS_PT, VP8_PT,
};
use crate::signaling::{Joined, Role};
use crate::stats::{Histogram, StreamStats};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use sfu_core::dtls::{DtlsIdentity, DtlsOutcome, DtlsRole, DtlsTransport};
use sfu_core::srtp::{self, SrtpContext, SrtpProfile};
use sfu_core::{rtcp, rtp, stun};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The poll token that wakes the media thread when signaling has news.
pub const WAKE: Token = Token(usize::MAX);

/// Embedded at the end of every payload we send: who sent it and when, on the clock of this
/// process, so the receiving client measures latency without clock sync.
pub const TRAILER_LEN: usize = 24;
const TRAILER_MAGIC: u32 = 0x434c_5631; // "CLV1"

/// ICE checks: retransmit every 100 ms while checking (RFC 8445 Ta is 50 ms; we are many), then
/// one consent check every 2 s (RFC 7675 allows 30 s of silence; browsers check every ~5 s).
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
const CONSENT_INTERVAL: Duration = Duration::from_secs(2);
const RTCP_INTERVAL: Duration = Duration::from_secs(1);
/// A DTLS client waiting for the server's own check starts anyway after this.
const DTLS_START_GRACE: Duration = Duration::from_millis(300);
/// Janus sets up its DTLS stack asynchronously after ICE nomination and drops a ClientHello
/// that comes first. Browsers get past this with their first DTLS retransmission, 50 ms later
/// (rtc-dtls would wait 1 s), so against such a server the ClientHello goes out 50 ms after we
/// answer the server's check: what a browser's successful second ClientHello would cost.
const DTLS_AFTER_SERVER_CHECK: Duration = Duration::from_millis(50);
/// How far behind its schedule a sender catches up (by sending late) rather than skipping.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);
/// Browsers answer a PLI storm with at most a few keyframes a second.
const MIN_KEYFRAME_SPACING: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub video: bool,
    pub keyframe: bool,
    pub publisher: u32,
    pub counter: u32,
    pub sent_ns: u64,
}

impl Trailer {
    pub fn write(&self, out: &mut [u8; TRAILER_LEN]) {
        out[0..4].copy_from_slice(&TRAILER_MAGIC.to_be_bytes());
        out[4] = self.video as u8;
        out[5] = self.keyframe as u8;
        out[6..8].copy_from_slice(&[0, 0]);
        out[8..12].copy_from_slice(&self.publisher.to_be_bytes());
        out[12..16].copy_from_slice(&self.counter.to_be_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    pub fn read(payload: &[u8]) -> Option<Trailer> {
        let at = payload.len().checked_sub(TRAILER_LEN)?;
        let t: &[u8; TRAILER_LEN] = payload[at..].try_into().ok()?;
        if u32::from_be_bytes([t[0], t[1], t[2], t[3]]) != TRAILER_MAGIC {
            return None;
        }
        Some(Trailer {
            video: t[4] == 1,
            keyframe: t[5] == 1,
            publisher: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
            counter: u32::from_be_bytes([t[12], t[13], t[14], t[15]]),
            sent_ns: u64::from_be_bytes([t[16], t[17], t[18], t[19], t[20], t[21], t[22], t[23]]),
        })
    }
}

/// Writes an RTP payload of exactly `len` bytes: the codec header, filler, the trailer.
/// Video: an RFC 7741 descriptor with a 15-bit PictureID; the first packet of a frame carries
/// the VP8 payload header (RFC 6386 §9.1 frame tag; a keyframe adds the start code and 640x480).
pub fn write_payload(
    out: &mut Vec<u8>,
    len: usize,
    vp8: Option<(bool, bool, u16)>,
    trailer: &Trailer,
) {
    let start = out.len();
    match vp8 {
        Some((first_of_frame, keyframe, picture_id)) => {
            let s_bit = if first_of_frame { 0x10 } else { 0x00 };
            out.extend_from_slice(&[
                0x80 | s_bit,
                0x80,
                0x80 | ((picture_id >> 8) as u8 & 0x7f),
                picture_id as u8,
            ]);
            if first_of_frame {
                // Frame tag: P (inverse keyframe) bit 0, version 0, show_frame bit 4, size bits.
                out.extend_from_slice(&[if keyframe { 0x10 } else { 0x11 }, 0x02, 0x00]);
                if keyframe {
                    out.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
                }
            }
        }
        // Opus TOC: config 15 (SILK-only WB 20 ms is 9; 15 is hybrid FB 20 ms), mono, one frame.
        None => out.push(0x78),
    }
    let filled = out.len() - start;
    out.resize(start + len.max(filled + TRAILER_LEN) - TRAILER_LEN, 0x55);
    let mut bytes = [0u8; TRAILER_LEN];
    trailer.write(&mut bytes);
    out.extend_from_slice(&bytes);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    Audio,
    Video,
    Rtcp,
    Check,
    Dtls,
    DtlsStart,
    Deadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Socket open, not asked to join yet.
    Idle,
    Signaling,
    Checking,
    Handshaking,
    Connected,
    Failed,
}

#[derive(Default)]
struct SendState {
    audio_seq: u16,
    audio_ts: u32,
    video_seq: u16,
    frame: u32,
    picture_id: u16,
    counter: u32,
    audio_packets: u32,
    audio_octets: u32,
    video_packets: u32,
    video_octets: u32,
    keyframe_requested: bool,
    last_keyframe: Option<Instant>,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
    keyframes_on_request: u32,
}

pub struct Client {
    pub role: Role,
    socket: UdpSocket,
    pub local: LocalDescription,
    pub ssrcs: PublisherSsrcs,
    pub state: State,
    remote: Option<RemoteDescription>,
    dtls: Option<DtlsTransport>,
    dtls_timer: Option<Instant>,
    srtp_out: Option<SrtpContext>,
    srtp_in: Option<SrtpContext>,
    pub srtp_profile: Option<SrtpProfile>,
    transaction: u32,
    checks_sent: u32,
    server_checks_back: bool,
    check_succeeded: bool,
    check_answered: bool,
    dtls_started: bool,
    pub join_started: Option<Instant>,
    pub negotiated_at: Option<Instant>,
    pub connected_at: Option<Instant>,
    pub first_media_at: Option<Instant>,
    pub first_keyframe_at: Option<Instant>,
    pub failure: Option<String>,
    pub resource: Option<String>,
    pub feed: Option<u64>,
    /// Receive m-lines the server gave us (subscribers).
    pub media_sections: usize,
    send: SendState,
    pub streams: Vec<StreamStats>,
    pub latency_count: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    pub rx_media: u64,
    pub rx_other: u64,
    pub tx_packets: u64,
}

/// Cumulative counters over all clients; progress lines print their per-second differences.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub rx_media: u64,
    pub rx_bytes: u64,
    pub rx_rtcp: u64,
    pub srtp_errors: u64,
    pub plis_received: u64,
}

pub struct Media {
    poll: Poll,
    events: Events,
    pub clients: Vec<Client>,
    timers: BinaryHeap<Reverse<(Instant, usize, Task)>>,
    base: Instant,
    identity: DtlsIdentity,
    profile: MediaProfile,
    join_timeout: Duration,
    measuring: bool,
    /// Latency of every media packet received while measuring, microseconds.
    pub latency: Histogram,
    pub counters: Counters,
    /// Worst lateness of a timer (how far behind schedule this process ran) since the last
    /// `take_lateness`, and over the measurement window.
    recent_lateness: Duration,
    pub window_lateness: Duration,
    send_buf: Vec<u8>,
    recv_buf: Box<[u8; 2048]>,
}

impl Media {
    /// Opens one UDP socket per peer connection on 127.0.0.1: publishers first, then subscribers.
    pub fn new(scenario: &Scenario) -> io::Result<Media> {
        let poll = Poll::new()?;
        let identity = DtlsIdentity::generate().map_err(|e| io::Error::other(format!("{e:?}")))?;
        let fingerprint = identity.fingerprint_sha256().to_owned();
        let mut clients = Vec::with_capacity(scenario.peer_connections());
        for index in 0..scenario.peer_connections() {
            let role = if index < scenario.publishers {
                Role::Publisher
            } else {
                Role::Subscriber
            };
            let mut socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            poll.registry()
                .register(&mut socket, Token(index), Interest::READABLE)?;
            let candidate = socket.local_addr()?;
            let base_ssrc = 0x1000_0000 + (index as u32) * 4;
            let ssrcs = PublisherSsrcs {
                audio: (role == Role::Publisher && scenario.audio).then_some(base_ssrc),
                video: (role == Role::Publisher && scenario.video)
                    .then_some((base_ssrc + 1, base_ssrc + 2)),
            };
            clients.push(Client {
                role,
                socket,
                local: LocalDescription {
                    ice_ufrag: format!("lg{index:05}"),
                    ice_pwd: format!("loadgenpassword{index:010}"),
                    fingerprint: fingerprint.clone(),
                    candidate,
                },
                ssrcs,
                state: State::Idle,
                remote: None,
                dtls: None,
                dtls_timer: None,
                srtp_out: None,
                srtp_in: None,
                srtp_profile: None,
                transaction: 0,
                checks_sent: 0,
                server_checks_back: false,
                check_succeeded: false,
                check_answered: false,
                dtls_started: false,
                join_started: None,
                negotiated_at: None,
                connected_at: None,
                first_media_at: None,
                first_keyframe_at: None,
                failure: None,
                resource: None,
                feed: None,
                media_sections: 0,
                send: SendState {
                    audio_seq: index as u16 * 101,
                    video_seq: index as u16 * 211,
                    ..SendState::default()
                },
                streams: Vec::new(),
                latency_count: 0,
                latency_sum_us: 0,
                latency_max_us: 0,
                rx_media: 0,
                rx_other: 0,
                tx_packets: 0,
            });
        }
        Ok(Media {
            poll,
            events: Events::with_capacity(1024),
            clients,
            timers: BinaryHeap::new(),
            base: Instant::now(),
            identity,
            profile: scenario.media.clone(),
            join_timeout: Duration::from_secs_f64(scenario.join_timeout_s),
            measuring: false,
            latency: Histogram::default(),
            counters: Counters::default(),
            recent_lateness: Duration::ZERO,
            window_lateness: Duration::ZERO,
            send_buf: Vec::with_capacity(2048),
            recv_buf: Box::new([0; 2048]),
        })
    }

    pub fn waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(self.poll.registry(), WAKE)
    }

    /// Signaling for `client` starts now; it has `join_timeout` to get media flowing.
    pub fn start_join(&mut self, client: usize, now: Instant) {
        let c = &mut self.clients[client];
        c.state = State::Signaling;
        c.join_started = Some(now);
        self.timers
            .push(Reverse((now + self.join_timeout, client, Task::Deadline)));
    }

    pub fn fail(&mut self, client: usize, reason: String) {
        let c = &mut self.clients[client];
        if c.failure.is_none() {
            c.failure = Some(reason);
        }
        c.state = State::Failed;
    }

    /// Signaling succeeded: connect the socket and start ICE.
    pub fn on_joined(&mut self, joined: Joined, now: Instant) {
        let index = joined.client;
        let c = &mut self.clients[index];
        if c.state != State::Signaling {
            return; // Timed out meanwhile.
        }
        c.join_started = Some(joined.started);
        c.negotiated_at = Some(now);
        c.resource = Some(joined.resource);
        c.feed = joined.feed;
        c.server_checks_back = joined.server_checks_back;
        c.media_sections = joined.remote.media_sections;
        if let Err(e) = c.socket.connect(joined.remote.candidate) {
            return self.fail(index, format!("connect: {e}"));
        }
        match DtlsTransport::new(
            &self.identity,
            joined.remote.dtls_role,
            joined.remote.fingerprint.clone(),
        ) {
            Ok(dtls) => c.dtls = Some(dtls),
            Err(e) => return self.fail(index, format!("dtls: {e:?}")),
        }
        c.remote = Some(joined.remote);
        c.state = State::Checking;
        self.send_check(index);
        self.timers
            .push(Reverse((now + CHECK_INTERVAL, index, Task::Check)));
    }

    /// Opens the measurement window: latency, loss and stalls count from now.
    pub fn open_window(&mut self) {
        self.measuring = true;
        self.window_lateness = Duration::ZERO;
        self.latency.clear();
        for c in &mut self.clients {
            c.latency_count = 0;
            c.latency_sum_us = 0;
            c.latency_max_us = 0;
            c.streams.iter_mut().for_each(StreamStats::open_window);
        }
    }

    pub fn close_window(&mut self, now: Instant) {
        self.measuring = false;
        let now_us = self.micros(now);
        for c in &mut self.clients {
            c.streams.iter_mut().for_each(|s| s.close_window(now_us));
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// Runs due timers, then waits up to `timeout` for datagrams (or a wake-up) and handles them.
    /// Returns whether the waker fired.
    pub fn turn(&mut self, timeout: Duration) -> io::Result<bool> {
        let now = Instant::now();
        self.run_timers(now);
        let until_timer = self
            .timers
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
            .unwrap_or(timeout);
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = self.poll.poll(&mut events, Some(timeout.min(until_timer)));
        let mut woken = false;
        if let Err(e) = polled {
            self.events = events;
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        for event in events.iter() {
            match event.token() {
                WAKE => woken = true,
                Token(index) => self.drain_socket(index),
            }
        }
        self.events = events;
        Ok(woken)
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, index, task))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let late = now.saturating_duration_since(at);
            self.recent_lateness = self.recent_lateness.max(late);
            if self.measuring {
                self.window_lateness = self.window_lateness.max(late);
            }
            match task {
                Task::Audio => self.send_audio(index, at, now),
                Task::Video => self.send_video(index, at, now),
                Task::Rtcp => self.send_reports(index, now),
                Task::Check => self.on_check_timer(index, now),
                Task::Dtls => self.on_dtls_timer(index, at, now),
                Task::DtlsStart => self.start_dtls(index, now),
                Task::Deadline => self.on_deadline(index),
            }
        }
    }

    fn on_deadline(&mut self, index: usize) {
        let c = &self.clients[index];
        let reason = match c.state {
            State::Connected | State::Failed | State::Idle => return,
            State::Signaling => "signaling timed out",
            State::Checking => "no STUN binding response",
            State::Handshaking => "DTLS handshake timed out",
        };
        self.fail(index, reason.to_owned());
    }

    fn send_check(&mut self, index: usize) {
        let c = &mut self.clients[index];
        let Some(remote) = &c.remote else { return };
        c.transaction += 1;
        c.checks_sent += 1;
        let mut transaction_id = [0u8; 12];
        transaction_id[..4].copy_from_slice(b"LGEN");
        transaction_id[4..8].copy_from_slice(&(index as u32).to_be_bytes());
        transaction_id[8..].copy_from_slice(&c.transaction.to_be_bytes());
        let username = format!("{}:{}", remote.ice_ufrag, c.local.ice_ufrag);
        let request = sfu_testkit::binding_request(
            &transaction_id,
            &username,
            remote.ice_pwd.as_bytes(),
            true,
        );
        let _ = c.socket.send(&request);
    }

    fn on_check_timer(&mut self, index: usize, now: Instant) {
        match self.clients[index].state {
            State::Checking => {
                self.send_check(index);
                self.timers
                    .push(Reverse((now + CHECK_INTERVAL, index, Task::Check)));
            }
            State::Handshaking | State::Connected => {
                self.send_check(index);
                self.timers
                    .push(Reverse((now + CONSENT_INTERVAL, index, Task::Check)));
            }
            State::Idle | State::Signaling | State::Failed => {}
        }
    }

    fn on_dtls_timer(&mut self, index: usize, at: Instant, now: Instant) {
        let c = &mut self.clients[index];
        if c.dtls_timer != Some(at) || c.state == State::Failed {
            return; // Superseded by a later schedule.
        }
        c.dtls_timer = None;
        let outcome = match c.dtls.as_mut() {
            Some(dtls) => dtls.handle_timeout(now),
            None => return,
        };
        self.after_dtls(index, outcome, now);
    }

    /// Sends what DTLS queued, reschedules its timer and acts on the outcome.
    fn after_dtls(&mut self, index: usize, outcome: DtlsOutcome, now: Instant) {
        let c = &mut self.clients[index];
        let Some(dtls) = c.dtls.as_mut() else { return };
        while let Some(datagram) = dtls.poll_transmit() {
            let _ = c.socket.send(&datagram);
        }
        if let Some(at) = dtls.poll_timeout() {
            if c.dtls_timer != Some(at) {
                c.dtls_timer = Some(at);
                self.timers.push(Reverse((at, index, Task::Dtls)));
            }
        }
        match outcome {
            DtlsOutcome::Nothing => {}
            DtlsOutcome::Connected(keys) => self.on_connected(index, keys, now),
            DtlsOutcome::Closed => self.fail(index, "DTLS closed by the server".into()),
            DtlsOutcome::Failed(reason) => self.fail(index, format!("DTLS failed: {reason}")),
        }
    }

    fn on_connected(&mut self, index: usize, keys: sfu_core::dtls::SrtpKeys, now: Instant) {
        let c = &mut self.clients[index];
        let Some(profile) = SrtpProfile::from_dtls_id(keys.profile_id) else {
            return self.fail(
                index,
                format!("unknown SRTP profile {:#06x}", keys.profile_id),
            );
        };
        if keys.material.len() != srtp::keying_material_len(profile) {
            return self.fail(index, "bad DTLS-SRTP keying material length".into());
        }
        let (outbound, inbound) =
            srtp::contexts_from_keying_material(profile, &keys.material, keys.we_are_client);
        c.srtp_out = Some(outbound);
        c.srtp_in = Some(inbound);
        c.srtp_profile = Some(profile);
        c.state = State::Connected;
        c.connected_at = Some(now);
        if c.role == Role::Publisher {
            if c.ssrcs.audio.is_some() {
                c.send.next_audio = Some(now);
                self.timers.push(Reverse((now, index, Task::Audio)));
            }
            if c.ssrcs.video.is_some() {
                c.send.next_video = Some(now);
                self.timers.push(Reverse((now, index, Task::Video)));
            }
            self.timers
                .push(Reverse((now + RTCP_INTERVAL, index, Task::Rtcp)));
        }
    }

    /// The next tick of a periodic sender: `period` after the last one, so a late loop catches
    /// up and every server is offered the same packets; after a stall longer than
    /// `MAX_CATCH_UP` the schedule restarts from now instead of bursting.
    fn next_tick(scheduled: Instant, period: Duration, now: Instant) -> Instant {
        let next = scheduled + period;
        if next + MAX_CATCH_UP < now {
            now
        } else {
            next
        }
    }

    fn send_audio(&mut self, index: usize, scheduled: Instant, now: Instant) {
        let ptime = Duration::from_millis(self.profile.audio_ptime_ms);
        let sent_ns = now.saturating_duration_since(self.base).as_nanos() as u64;
        let c = &mut self.clients[index];
        let (Some(ssrc), State::Connected, Some(srtp_out)) =
            (c.ssrcs.audio, c.state, c.srtp_out.as_mut())
        else {
            return;
        };
        let s = &mut c.send;
        s.counter = s.counter.wrapping_add(1);
        let trailer = Trailer {
            video: false,
            keyframe: false,
            publisher: index as u32,
            counter: s.counter,
            sent_ns,
        };
        self.send_buf.clear();
        write_rtp_header(
            &mut self.send_buf,
            OPUS_PT,
            false,
            s.audio_seq,
            s.audio_ts,
            ssrc,
        );
        write_payload(
            &mut self.send_buf,
            self.profile.audio_payload_bytes,
            None,
            &trailer,
        );
        s.audio_seq = s.audio_seq.wrapping_add(1);
        s.audio_ts = s
            .audio_ts
            .wrapping_add(48 * self.profile.audio_ptime_ms as u32);
        s.audio_packets = s.audio_packets.wrapping_add(1);
        s.audio_octets = s
            .audio_octets
            .wrapping_add(self.profile.audio_payload_bytes as u32);
        send_protected(
            &c.socket,
            srtp_out,
            &mut self.send_buf,
            &mut self.counters,
            &mut c.tx_packets,
        );
        let next = Self::next_tick(scheduled, ptime, now);
        c.send.next_audio = Some(next);
        self.timers.push(Reverse((next, index, Task::Audio)));
    }

    fn send_video(&mut self, index: usize, scheduled: Instant, now: Instant) {
        let period = Duration::from_secs_f64(1.0 / self.profile.video_fps as f64);
        let frames_per_key = ((self.profile.keyframe_interval_s * self.profile.video_fps as f64)
            .round() as u32)
            .max(1);
        let sent_ns = now.saturating_duration_since(self.base).as_nanos() as u64;
        let c = &mut self.clients[index];
        let (Some((ssrc, _)), State::Connected, Some(srtp_out)) =
            (c.ssrcs.video, c.state, c.srtp_out.as_mut())
        else {
            return;
        };
        let s = &mut c.send;
        let requested = s.keyframe_requested
            && s.last_keyframe
                .is_none_or(|at| now >= at + MIN_KEYFRAME_SPACING);
        let scheduled_keyframe = s.frame.is_multiple_of(frames_per_key);
        let keyframe = scheduled_keyframe || requested;
        if keyframe {
            if requested && !scheduled_keyframe {
                s.keyframes_on_request += 1;
            }
            s.keyframe_requested = false;
            s.last_keyframe = Some(now);
        }
        let packets = if keyframe {
            self.profile.keyframe_packets
        } else {
            self.profile.video_packets_per_frame
        };
        let timestamp = s.frame.wrapping_mul(90_000 / self.profile.video_fps);
        for i in 0..packets {
            s.counter = s.counter.wrapping_add(1);
            let trailer = Trailer {
                video: true,
                keyframe,
                publisher: index as u32,
                counter: s.counter,
                sent_ns,
            };
            self.send_buf.clear();
            write_rtp_header(
                &mut self.send_buf,
                VP8_PT,
                i + 1 == packets,
                s.video_seq,
                timestamp,
                ssrc,
            );
            write_payload(
                &mut self.send_buf,
                self.profile.video_payload_bytes,
                Some((i == 0, keyframe, s.picture_id)),
                &trailer,
            );
            s.video_seq = s.video_seq.wrapping_add(1);
            s.video_packets = s.video_packets.wrapping_add(1);
            s.video_octets = s
                .video_octets
                .wrapping_add(self.profile.video_payload_bytes as u32);
            send_protected(
                &c.socket,
                srtp_out,
                &mut self.send_buf,
                &mut self.counters,
                &mut c.tx_packets,
            );
        }
        s.frame = s.frame.wrapping_add(1);
        s.picture_id = (s.picture_id + 1) & 0x7fff;
        let next = Self::next_tick(scheduled, period, now);
        c.send.next_video = Some(next);
        self.timers.push(Reverse((next, index, Task::Video)));
    }

    /// RFC 3550 sender reports with a CNAME, once a second per sending SSRC.
    fn send_reports(&mut self, index: usize, now: Instant) {
        let c = &mut self.clients[index];
        let (State::Connected, Some(srtp_out)) = (c.state, c.srtp_out.as_mut()) else {
            return;
        };
        let ntp = ntp_now();
        let elapsed_ms = c
            .connected_at
            .map(|at| now.saturating_duration_since(at).as_millis() as u32)
            .unwrap_or(0);
        let s = &c.send;
        let reports = [
            c.ssrcs
                .audio
                .map(|ssrc| (ssrc, s.audio_ts, s.audio_packets, s.audio_octets)),
            c.ssrcs.video.map(|(ssrc, _)| {
                (
                    ssrc,
                    elapsed_ms.wrapping_mul(90),
                    s.video_packets,
                    s.video_octets,
                )
            }),
        ];
        for (ssrc, rtp_ts, packets, octets) in reports.into_iter().flatten() {
            self.send_buf.clear();
            rtcp::write_sender_report(&mut self.send_buf, ssrc, ntp, rtp_ts, packets, octets, &[]);
            rtcp::write_sdes_cname(&mut self.send_buf, ssrc, "loadgen");
            if srtp_out.protect_rtcp(&mut self.send_buf).is_ok() {
                let _ = c.socket.send(&self.send_buf);
            }
        }
        self.timers
            .push(Reverse((now + RTCP_INTERVAL, index, Task::Rtcp)));
    }

    fn drain_socket(&mut self, index: usize) {
        loop {
            let received = self.clients[index].socket.recv(&mut self.recv_buf[..]);
            match received {
                Ok(len) => {
                    let now = Instant::now();
                    self.handle_datagram(index, len, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port unreachable after the server went away, and the like.
                Err(_) => return,
            }
        }
    }

    fn handle_datagram(&mut self, index: usize, len: usize, now: Instant) {
        let Some(&first) = self.recv_buf.first() else {
            return;
        };
        match first {
            0..=3 => self.handle_stun(index, len, now),
            20..=63 => {
                let c = &mut self.clients[index];
                if matches!(
                    c.state,
                    State::Checking | State::Handshaking | State::Connected
                ) {
                    if c.state == State::Checking {
                        // The server's ClientHello can beat our check's response.
                        c.state = State::Handshaking;
                    }
                    let outcome = match c.dtls.as_mut() {
                        Some(dtls) => dtls.handle_datagram(now, &self.recv_buf[..len]),
                        None => return,
                    };
                    self.after_dtls(index, outcome, now);
                }
            }
            128..=191 => self.handle_srtp(index, len, now),
            _ => {}
        }
    }

    fn handle_stun(&mut self, index: usize, len: usize, now: Instant) {
        let data = &self.recv_buf[..len];
        if let Ok(request) = stun::parse_binding_request(data) {
            // Janus's libnice checks back even in ICE-lite mode (a triggered check) and only
            // nominates the pair once we answer, as a full agent would.
            let c = &mut self.clients[index];
            let expected = c
                .remote
                .as_ref()
                .map(|r| format!("{}:{}", c.local.ice_ufrag, r.ice_ufrag));
            if expected.as_deref() != Some(request.username)
                || stun::verify_integrity(data, c.local.ice_pwd.as_bytes()).is_err()
            {
                return;
            }
            let Some(source) = c.remote.as_ref().map(|r| r.candidate) else {
                return;
            };
            stun::write_binding_success(
                &request.transaction_id,
                source,
                c.local.ice_pwd.as_bytes(),
                &mut self.send_buf,
            );
            let _ = c.socket.send(&self.send_buf);
            let first_answer = !c.check_answered;
            c.check_answered = true;
            if first_answer && c.check_succeeded {
                self.timers.push(Reverse((
                    now + DTLS_AFTER_SERVER_CHECK,
                    index,
                    Task::DtlsStart,
                )));
            }
            return;
        }
        // A Binding success response (0x0101) to one of our transactions.
        if len < 20 || data[0..2] != [0x01, 0x01] || &data[8..12] != b"LGEN" {
            return;
        }
        let c = &mut self.clients[index];
        if c.state != State::Checking {
            return;
        }
        c.state = State::Handshaking;
        c.check_succeeded = true;
        if c.server_checks_back {
            // Janus (libnice) nominates only once its own check is answered, and drops DTLS
            // before that; see DTLS_AFTER_SERVER_CHECK.
            let wait = if c.check_answered {
                DTLS_AFTER_SERVER_CHECK
            } else {
                DTLS_START_GRACE
            };
            self.timers
                .push(Reverse((now + wait, index, Task::DtlsStart)));
        } else {
            self.start_dtls(index, now);
        }
    }

    /// Sends the ClientHello if we are the DTLS client and have not yet.
    fn start_dtls(&mut self, index: usize, now: Instant) {
        let c = &mut self.clients[index];
        if c.dtls_started || c.state != State::Handshaking {
            return;
        }
        c.dtls_started = true;
        let outcome = match c.dtls.as_mut() {
            Some(dtls) if dtls.role() == DtlsRole::Client => dtls.start(now),
            _ => return,
        };
        self.after_dtls(index, outcome, now);
    }

    fn handle_srtp(&mut self, index: usize, len: usize, now: Instant) {
        let measuring = self.measuring;
        let now_us = now.saturating_duration_since(self.base).as_micros() as u64;
        let c = &mut self.clients[index];
        let Some(srtp_in) = c.srtp_in.as_mut() else {
            return;
        };
        let data = &mut self.recv_buf[..len];
        if len > 1 && (192..=223).contains(&data[1]) {
            let Ok(plain) = srtp_in.unprotect_rtcp(data) else {
                self.counters.srtp_errors += 1;
                return;
            };
            self.counters.rx_rtcp += 1;
            if let Some((video_ssrc, _)) = c.ssrcs.video {
                let asked = rtcp::packets(&data[..plain])
                    .flatten()
                    .any(|packet| match packet {
                        rtcp::RtcpPacket::Pli { media_ssrc, .. } => media_ssrc == video_ssrc,
                        rtcp::RtcpPacket::Fir(fir) => {
                            fir.entries().any(|(ssrc, _)| ssrc == video_ssrc)
                        }
                        _ => false,
                    });
                if asked {
                    c.send.keyframe_requested = true;
                    self.counters.plis_received += 1;
                }
            }
            return;
        }
        let Ok(plain) = srtp_in.unprotect_rtp(data) else {
            self.counters.srtp_errors += 1;
            return;
        };
        let packet = &data[..plain];
        let Ok(header) = rtp::parse_rtp(packet) else {
            return;
        };
        let Some(trailer) = Trailer::read(header.payload(packet)) else {
            c.rx_other += 1;
            return;
        };
        self.counters.rx_media += 1;
        self.counters.rx_bytes += len as u64;
        c.rx_media += 1;
        if c.first_media_at.is_none() {
            c.first_media_at = Some(now);
        }
        if trailer.keyframe && c.first_keyframe_at.is_none() {
            c.first_keyframe_at = Some(now);
        }
        let stream = match c.streams.iter().position(|s| s.ssrc == header.ssrc) {
            Some(i) => &mut c.streams[i],
            None => {
                let mut stream = StreamStats::new(header.ssrc, trailer.video, header.sequence);
                if measuring {
                    stream.open_window();
                }
                c.streams.push(stream);
                let last = c.streams.len() - 1;
                &mut c.streams[last]
            }
        };
        stream.on_packet(
            header.sequence,
            header.timestamp,
            header.marker,
            now_us,
            measuring,
        );
        if measuring {
            let sent_us = trailer.sent_ns / 1_000;
            let latency_us = now_us.saturating_sub(sent_us);
            self.latency.record(latency_us);
            c.latency_count += 1;
            c.latency_sum_us += latency_us;
            c.latency_max_us = c.latency_max_us.max(latency_us);
        }
    }

    /// Whether every client has finished joining, one way or the other, in `range`.
    pub fn settled(&self, range: std::ops::Range<usize>) -> bool {
        self.clients[range].iter().all(|c| match c.state {
            State::Failed => true,
            State::Connected => c.role == Role::Publisher || c.first_media_at.is_some(),
            _ => false,
        })
    }

    /// The worst timer lateness since the last call.
    pub fn take_lateness(&mut self) -> Duration {
        std::mem::take(&mut self.recent_lateness)
    }

    pub fn keyframes_on_request(&self) -> u32 {
        self.clients
            .iter()
            .map(|c| c.send.keyframes_on_request)
            .sum()
    }
}

fn write_rtp_header(
    out: &mut Vec<u8>,
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) {
    out.push(0x80);
    out.push(((marker as u8) << 7) | payload_type);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
}

fn send_protected(
    socket: &UdpSocket,
    srtp_out: &mut SrtpContext,
    buf: &mut Vec<u8>,
    counters: &mut Counters,
    tx: &mut u64,
) {
    if srtp_out.protect_rtp(buf).is_err() {
        counters.tx_errors += 1;
        return;
    }
    match socket.send(buf) {
        Ok(_) => {
            counters.tx_packets += 1;
            counters.tx_bytes += buf.len() as u64;
            *tx += 1;
        }
        Err(_) => counters.tx_errors += 1,
    }
}

/// Wall-clock time as a 64-bit NTP timestamp (RFC 5905), for sender reports.
fn ntp_now() -> u64 {
    const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET_S;
    let fraction = ((since_unix.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_survives_a_round_trip_at_the_end_of_any_payload() {
        let trailer = Trailer {
            video: true,
            keyframe: true,
            publisher: 7,
            counter: 99,
            sent_ns: 123_456_789,
        };
        let mut out = Vec::new();
        write_payload(&mut out, 1100, Some((true, true, 300)), &trailer);
        assert_eq!(out.len(), 1100);
        assert_eq!(Trailer::read(&out), Some(trailer));
        assert_eq!(Trailer::read(&out[..out.len() - 1]), None);
        assert_eq!(Trailer::read(&[0u8; 10]), None);
    }

    #[test]
    fn video_payloads_are_vp8_the_engine_recognises() {
        let trailer = Trailer {
            video: true,
            keyframe: true,
            publisher: 0,
            counter: 0,
            sent_ns: 0,
        };
        let mut key = Vec::new();
        write_payload(&mut key, 200, Some((true, true, 5)), &trailer);
        assert!(rtp::vp8_is_keyframe(&key));
        let mut delta = Vec::new();
        write_payload(
            &mut delta,
            200,
            Some((true, false, 6)),
            &Trailer {
                keyframe: false,
                ..trailer
            },
        );
        assert!(!rtp::vp8_is_keyframe(&delta));
        let mut middle = Vec::new();
        write_payload(&mut middle, 200, Some((false, true, 5)), &trailer);
        assert!(
            !rtp::vp8_is_keyframe(&middle),
            "only the first packet of a frame starts a keyframe"
        );
    }

    #[test]
    fn an_audio_payload_has_the_requested_size() {
        let trailer = Trailer {
            video: false,
            keyframe: false,
            publisher: 1,
            counter: 2,
            sent_ns: 3,
        };
        let mut out = vec![0xAA; 12];
        write_payload(&mut out, 100, None, &trailer);
        assert_eq!(out.len(), 112);
        assert_eq!(out[12], 0x78);
        assert_eq!(Trailer::read(&out[12..]), Some(trailer));
    }

    #[test]
    fn a_late_sender_catches_up_but_a_stalled_one_restarts() {
        let t0 = Instant::now();
        let period = Duration::from_millis(20);
        assert_eq!(
            Media::next_tick(t0, period, t0 + Duration::from_millis(5)),
            t0 + period
        );
        let a_little_late = t0 + Duration::from_millis(100);
        assert_eq!(
            Media::next_tick(t0, period, a_little_late),
            t0 + period,
            "catches up"
        );
        let stalled = t0 + Duration::from_millis(500);
        assert_eq!(Media::next_tick(t0, period, stalled), stalled, "restarts");
    }
}
