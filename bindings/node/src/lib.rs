//! The `@conclave/media` Node.js addon: `MediaWorker` over one sfu-driver worker.
//! Converts JS values to commands and results and events back to JS; decides nothing.
//!
//! Every async method returns a promise settled through the worker's one ordered delivery queue
//! (see `delivery`), so a command's reply reaches JS before any event that command caused.
//! Nothing here blocks Node's event loop: commands are queued to the worker thread and answered
//! through that queue.

mod delivery;
mod error;
mod objects;

use crate::delivery::{promise, settle_now, Deliveries};
use crate::error::{ErrorCode, Failure};
use crate::objects::{
    LayerPreference, MediaEvent, PeerStats, RelayedTrack, RtpForwardDestination, RtpForwardInfo,
    SubscriptionInfo, WorkerOptions, WorkerStats,
};
use napi::bindgen_prelude::*;
use napi::JsValue;
use napi_derive::napi;
use sfu_core::{PeerId, RtpForwardId, TrackId};
use sfu_driver::{Command, Reply, Worker, WorkerConfig, WorkerEvent, WorkerHandle};
use std::net::{IpAddr, SocketAddr};

/// Set to "1" when a worker starts to give it `injectPanic()`.
const FAULT_INJECTION_ENV: &str = "CONCLAVE_FAULT_INJECTION";

/// One media worker: a UDP port and the thread that serves it.
#[napi]
pub struct MediaWorker {
    /// `None` once closed.
    handle: Option<WorkerHandle>,
    /// The JS side's share of the delivery queue; `None` once closed.
    deliveries: Option<Deliveries>,
    port: u32,
    /// The fingerprint when the worker was closed.
    closed_fingerprint: String,
}

#[napi]
impl MediaWorker {
    /// Binds the socket and starts the worker thread. `onEvents` gets batches (arrays) of events.
    ///
    /// Throws with code `invalid_argument` (bad options), `bind_failed` or `crypto_failure`.
    #[napi(
        factory,
        ts_args_type = "options: WorkerOptions, onEvents: (err: Error | null, events: MediaEvent[]) => void"
    )]
    pub fn start(
        env: &Env,
        options: WorkerOptions,
        on_events: Function<'_>,
    ) -> Result<Self, ErrorCode> {
        let config = worker_config(&options).map_err(Failure::into_napi)?;
        let deliveries =
            Deliveries::new(env, on_events.raw()).map_err(|e| Failure::from(e).into_napi())?;
        let events = deliveries.clone();
        let on_worker_events = move |batch: Vec<WorkerEvent>| {
            events.events(batch.into_iter().map(MediaEvent::from).collect())
        };
        let handle =
            Worker::start(config, on_worker_events).map_err(|e| Failure::from(e).into_napi())?;
        Ok(MediaWorker {
            port: u32::from(handle.local_addr().port()),
            handle: Some(handle),
            deliveries: Some(deliveries),
            closed_fingerprint: String::new(),
        })
    }

    /// The bound UDP port.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The DTLS certificate fingerprint put in answers, "sha-256 AB:CD:...".
    #[napi(getter)]
    pub fn fingerprint(&self) -> String {
        match &self.handle {
            Some(handle) => handle.fingerprint(),
            None => self.closed_fingerprint.clone(),
        }
    }

    /// Resolves with the new peer's id.
    #[napi]
    pub fn create_peer<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, u32>> {
        self.command(
            env,
            Ok(|reply| Command::CreatePeer { reply }),
            |peer: PeerId| peer.0,
        )
    }

    /// Resolves with the answer SDP.
    #[napi]
    pub fn apply_offer<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        sdp: String,
    ) -> Result<PromiseRaw<'env, String>> {
        let command =
            peer(peer_id).map(|peer| move |reply| Command::ApplyOffer { peer, sdp, reply });
        self.command(env, command, |answer| answer)
    }

    /// Resolves with an offer of one new m-line we send on per entry of `kinds` (`audio`, `video`).
    #[napi]
    pub fn create_offer<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        kinds: Vec<String>,
    ) -> Result<PromiseRaw<'env, String>> {
        let command = peer(peer_id).and_then(|peer| {
            let kinds = kinds
                .iter()
                .map(|kind| media_kind(kind))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(move |reply| Command::CreateOffer { peer, kinds, reply })
        });
        self.command(env, command, |offer| offer)
    }

    /// Applies the peer's answer to the offer `createOffer` made.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn apply_answer<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        sdp: String,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command =
            peer(peer_id).map(|peer| move |reply| Command::ApplyAnswer { peer, sdp, reply });
        self.command(env, command, |()| ())
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close_peer<'env>(&self, env: &'env Env, peer_id: f64) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(peer_id).map(|peer| move |reply| Command::ClosePeer { peer, reply });
        self.command(env, command, |()| ())
    }

    #[napi]
    pub fn subscribe<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        track_id: f64,
    ) -> Result<PromiseRaw<'env, SubscriptionInfo>> {
        let command = peer(peer_id)
            .and_then(|peer| Ok((peer, track(track_id)?)))
            .map(|(peer, track)| move |reply| Command::Subscribe { peer, track, reply });
        self.command(env, command, SubscriptionInfo::from)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn unsubscribe<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        track_id: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(peer_id)
            .and_then(|peer| Ok((peer, track(track_id)?)))
            .map(|(peer, track)| move |reply| Command::Unsubscribe { peer, track, reply });
        self.command(env, command, |()| ())
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn request_keyframe<'env>(
        &self,
        env: &'env Env,
        track_id: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command =
            track(track_id).map(|track| move |reply| Command::RequestKeyframe { track, reply });
        self.command(env, command, |()| ())
    }

    /// Limits what `peerId` receives of the simulcast track `trackId` it is subscribed to; the
    /// engine switches at the chosen layer's next keyframe (a `layer-switched` event says when
    /// the target changes). Rejects with `not_subscribed`, `peer_not_found` or `invalid_argument`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_layer_preference<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        track_id: f64,
        preference: LayerPreference,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(peer_id)
            .and_then(|peer| Ok((peer, track(track_id)?)))
            .and_then(|(peer, track)| {
                let max_spatial_layer = preference
                    .max_spatial_layer
                    .map(|value| integer(value, "maxSpatialLayer", u8::MAX.into()))
                    .transpose()?
                    .map(|value| value as u8);
                let max_height = preference
                    .max_height
                    .map(|value| integer(value, "maxHeight", u16::MAX.into()))
                    .transpose()?
                    .map(|value| value as u16);
                Ok(move |reply| Command::SetLayerPreference {
                    peer,
                    track,
                    max_spatial_layer,
                    max_height,
                    reply,
                })
            });
        self.command(env, command, |()| ())
    }

    /// How `peerId`'s downlink favours the track `trackId` over its other video subscriptions:
    /// higher first (default 1; 0..=255). Screen shares and the active speaker's camera get
    /// more; when the estimate runs short the lowest drop to their low layer, or pause. Rejects
    /// with `not_subscribed`, `peer_not_found` or `invalid_argument`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_priority<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        track_id: f64,
        priority: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(peer_id)
            .and_then(|peer| Ok((peer, track(track_id)?)))
            .and_then(|(peer, track)| {
                let priority = integer(priority, "priority", u8::MAX.into())? as u8;
                Ok(move |reply| Command::SetPriority {
                    peer,
                    track,
                    priority,
                    reply,
                })
            });
        self.command(env, command, |()| ())
    }

    /// Moves `peerId` into media partition `partition` (0 is the main room; breakout rooms):
    /// it then hears and is heard only by peers of that partition, without renegotiation; video
    /// it starts receiving again resumes at a keyframe the engine asks for. Rejects with
    /// `peer_not_found` or `invalid_argument`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_partition<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
        partition: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(peer_id).and_then(|peer| {
            let partition = integer(partition, "partition", u32::MAX.into())? as u32;
            Ok(move |reply| Command::SetPartition {
                peer,
                partition,
                reply,
            })
        });
        self.command(env, command, |()| ())
    }

    /// Tees track `trackId`'s RTP, decrypted, as plain RTP to `destination` (a recorder on this
    /// machine) from the worker's UDP port. Video starts at a keyframe the engine asks for. The
    /// forward ends with the track or with `removeRtpForward`. Rejects with `track_not_found` or
    /// `invalid_argument`; which destinations are allowed is the caller's policy.
    #[napi]
    pub fn add_rtp_forward<'env>(
        &self,
        env: &'env Env,
        track_id: f64,
        destination: RtpForwardDestination,
    ) -> Result<PromiseRaw<'env, RtpForwardInfo>> {
        let command = track(track_id).and_then(|track| {
            let ip = parse_ip(&destination.address, "address")?;
            let port = port(destination.port, "port")?;
            if port == 0 || ip.is_unspecified() {
                return Err(Failure::invalid_argument(format!(
                    "an RTP forward needs a concrete address and port, got {}:{port}",
                    destination.address
                )));
            }
            let destination = SocketAddr::new(ip, port);
            Ok(move |reply| Command::AddRtpForward {
                track,
                destination,
                reply,
            })
        });
        self.command(env, command, RtpForwardInfo::from)
    }

    /// Stops an RTP forward; resolves with false if it had already ended (with its track).
    #[napi]
    pub fn remove_rtp_forward<'env>(
        &self,
        env: &'env Env,
        forward_id: f64,
    ) -> Result<PromiseRaw<'env, bool>> {
        let command = integer(forward_id, "forwardId", u32::MAX.into()).map(|id| {
            let id = RtpForwardId(id as u32);
            move |reply| Command::RemoveRtpForward { id, reply }
        });
        self.command(env, command, |existed| existed)
    }

    /// Opens a relay link (cascading) to the engine of another node at `remote`, keyed with
    /// `keyingMaterial` (56 random bytes both ends share); `initiator` is true at exactly one
    /// end. Resolves with the link's peer id; `closePeer` closes it. Rejects with
    /// `invalid_argument` (key length, an unspecified address, a link to it already open).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn create_relay_peer<'env>(
        &self,
        env: &'env Env,
        remote: RtpForwardDestination,
        keying_material: Buffer,
        initiator: bool,
    ) -> Result<PromiseRaw<'env, u32>> {
        let command = parse_ip(&remote.address, "address").and_then(|ip| {
            let remote = SocketAddr::new(ip, port(remote.port, "port")?);
            let keying_material = keying_material.to_vec();
            Ok(move |reply| Command::CreateRelayPeer {
                remote,
                keying_material,
                initiator,
                reply,
            })
        });
        self.command(env, command, |peer: PeerId| peer.0)
    }

    /// Starts sending track `trackId` (published here) over the link `relayId`; resolves with
    /// what the other end's `relayImport` takes.
    #[napi]
    pub fn relay_export<'env>(
        &self,
        env: &'env Env,
        relay_id: f64,
        track_id: f64,
    ) -> Result<PromiseRaw<'env, RelayedTrack>> {
        let command = peer(relay_id).and_then(|relay| {
            let track = track(track_id)?;
            Ok(move |reply| Command::RelayExport {
                relay,
                track,
                reply,
            })
        });
        self.command(env, command, RelayedTrack::from)
    }

    /// Stops sending `trackId` over the link.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn relay_unexport<'env>(
        &self,
        env: &'env Env,
        relay_id: f64,
        track_id: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(relay_id).and_then(|relay| {
            let track = track(track_id)?;
            Ok(move |reply| Command::RelayUnexport {
                relay,
                track,
                reply,
            })
        });
        self.command(env, command, |()| ())
    }

    /// Takes what the other end's `relayExport` answered as a track of this engine (which peers
    /// here can subscribe to) in media partition `partition`; resolves with its track id.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn relay_import<'env>(
        &self,
        env: &'env Env,
        relay_id: f64,
        relayed: RelayedTrack,
        stream_id: String,
        partition: f64,
    ) -> Result<PromiseRaw<'env, u32>> {
        let command = peer(relay_id).and_then(|relay| {
            let relayed = relayed_track(&relayed)?;
            let partition = integer(partition, "partition", u32::MAX.into())? as u32;
            Ok(move |reply| Command::RelayImport {
                relay,
                relayed,
                stream_id,
                partition,
                reply,
            })
        });
        self.command(env, command, |track: TrackId| track.0)
    }

    /// Ends a track `relayImport` made; its subscribers' m-lines are freed.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn relay_end_import<'env>(
        &self,
        env: &'env Env,
        relay_id: f64,
        track_id: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(relay_id).and_then(|relay| {
            let track = track(track_id)?;
            Ok(move |reply| Command::RelayEndImport {
                relay,
                track,
                reply,
            })
        });
        self.command(env, command, |()| ())
    }

    /// Dynacast across a link: which simulcast layers of `trackId` (exported on `relayId`) the
    /// other end's viewers need, in layer order (its `layers-needed` for the imported track).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn relay_set_wanted_layers<'env>(
        &self,
        env: &'env Env,
        relay_id: f64,
        track_id: f64,
        wanted: Vec<bool>,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = peer(relay_id).and_then(|relay| {
            let track = track(track_id)?;
            Ok(move |reply| Command::RelaySetWantedLayers {
                relay,
                track,
                wanted,
                reply,
            })
        });
        self.command(env, command, |()| ())
    }

    /// Moves an imported track into media partition `partition` (its publisher changed
    /// breakout room on its node).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_track_partition<'env>(
        &self,
        env: &'env Env,
        track_id: f64,
        partition: f64,
    ) -> Result<PromiseRaw<'env, ()>> {
        let command = track(track_id).and_then(|track| {
            let partition = integer(partition, "partition", u32::MAX.into())? as u32;
            Ok(move |reply| Command::SetTrackPartition {
                track,
                partition,
                reply,
            })
        });
        self.command(env, command, |()| ())
    }

    #[napi]
    pub fn peer_stats<'env>(
        &self,
        env: &'env Env,
        peer_id: f64,
    ) -> Result<PromiseRaw<'env, PeerStats>> {
        let peer = peer(peer_id);
        let command = peer
            .clone()
            .map(|peer| move |reply| Command::PeerStats { peer, reply });
        let peer_id = peer.map(|peer| peer.0).unwrap_or_default();
        self.command(env, command, move |stats| PeerStats::new(peer_id, stats))
    }

    #[napi]
    pub fn stats<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, WorkerStats>> {
        self.command(env, Ok(|reply| Command::Stats { reply }), WorkerStats::from)
    }

    /// Tests only: panics the worker thread, which restarts (a `worker-restarted` event, then
    /// `peer-disconnected` for every peer). Rejects with `worker_restarted`, or with
    /// `invalid_state` unless `CONCLAVE_FAULT_INJECTION=1` was set when the worker started.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn inject_panic<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        self.command(env, Ok(|reply| Command::InjectPanic { reply }), |()| ())
    }

    /// Stops the thread and closes the socket; pending calls reject with code "worker_closed".
    /// Resolves once the socket is closed. Closing again resolves at once.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let (deferred, promise) = promise(env)?;
        match (self.handle.take(), self.deliveries.take()) {
            (Some(handle), Some(deliveries)) => {
                self.closed_fingerprint = handle.fingerprint();
                handle.close(Reply::new(move |result| {
                    deliveries.settle(deferred, result.map_err(Failure::from))
                }));
            }
            _ => settle_now(env, deferred, Ok(())),
        }
        Ok(promise)
    }
}

impl MediaWorker {
    /// Sends a command whose reply settles the returned promise (through the ordered queue);
    /// a bad argument or a closed worker rejects it without reaching the worker.
    fn command<'env, T, J>(
        &self,
        env: &'env Env,
        command: std::result::Result<impl FnOnce(Reply<T>) -> Command, Failure>,
        to_js: impl FnOnce(T) -> J + Send + 'static,
    ) -> Result<PromiseRaw<'env, J>>
    where
        T: Send + 'static,
        J: ToNapiValue + Send + 'static,
    {
        let (deferred, promise) = promise(env)?;
        match (command, &self.handle, &self.deliveries) {
            (Ok(command), Some(handle), Some(deliveries)) => {
                let deliveries = deliveries.clone();
                let reply = Reply::new(move |result: std::result::Result<T, _>| {
                    deliveries.settle(deferred, result.map(to_js).map_err(Failure::from))
                });
                handle.send(command(reply));
            }
            (Err(failure), _, _) => settle_now::<J>(env, deferred, Err(failure)),
            (Ok(_), _, _) => settle_now::<J>(env, deferred, Err(Failure::worker_closed())),
        }
        Ok(promise)
    }
}

fn worker_config(options: &WorkerOptions) -> std::result::Result<WorkerConfig, Failure> {
    let bind_ip = parse_ip(
        options.bind_address.as_deref().unwrap_or("0.0.0.0"),
        "bindAddress",
    )?;
    let announced_ip = parse_ip(&options.announced_address, "announcedAddress")?;
    let port = port(options.port, "port")?;
    let mut config = WorkerConfig::new(SocketAddr::new(bind_ip, port), announced_ip);
    if let Some(announced_port) = options.announced_port {
        // Port 0 keeps the default: the bound port.
        config
            .engine
            .announced_addr
            .set_port(self::port(announced_port, "announcedPort")?);
    }
    if let Some(last_n) = options.audio_last_n {
        config.engine.audio_last_n = integer(last_n, "audioLastN", 1024.0)? as usize;
    }
    config.fault_injection = std::env::var(FAULT_INJECTION_ENV).is_ok_and(|value| value == "1");
    Ok(config)
}

fn parse_ip(text: &str, what: &str) -> std::result::Result<IpAddr, Failure> {
    text.parse().map_err(|_| {
        Failure::invalid_argument(format!("{what} must be an IP address, got {text:?}"))
    })
}

fn port(value: f64, what: &str) -> std::result::Result<u16, Failure> {
    integer(value, what, u16::MAX.into()).map(|port| port as u16)
}

fn peer(value: f64) -> std::result::Result<PeerId, Failure> {
    integer(value, "peerId", u32::MAX.into()).map(|id| PeerId(id as u32))
}

fn media_kind(value: &str) -> std::result::Result<sfu_core::MediaKind, Failure> {
    match value {
        "audio" => Ok(sfu_core::MediaKind::Audio),
        "video" => Ok(sfu_core::MediaKind::Video),
        other => Err(Failure::invalid_argument(format!(
            "a kind is audio or video, got {other:?}"
        ))),
    }
}

fn relayed_track(
    relayed: &RelayedTrack,
) -> std::result::Result<sfu_core::engine::RelayedTrack, Failure> {
    let payload_types = relayed
        .payload_types
        .iter()
        .map(|p| {
            let codec = sfu_core::peer::CodecKind::from_name(&p.codec)
                .ok_or_else(|| Failure::invalid_argument(format!("unknown codec {:?}", p.codec)))?;
            let pt = |value: u32, what: &str| {
                u8::try_from(value)
                    .ok()
                    .filter(|pt| *pt < 128)
                    .ok_or_else(|| {
                        Failure::invalid_argument(format!("{what} must be 0..=127, got {value}"))
                    })
            };
            Ok(sfu_core::peer::PayloadTypes {
                codec,
                pt: pt(p.payload_type, "payloadType")?,
                rtx_pt: p
                    .rtx_payload_type
                    .map(|rtx| pt(rtx, "rtxPayloadType"))
                    .transpose()?,
            })
        })
        .collect::<std::result::Result<Vec<_>, Failure>>()?;
    Ok(sfu_core::engine::RelayedTrack {
        kind: media_kind(&relayed.kind)?,
        layers: relayed
            .layers
            .iter()
            .map(|layer| sfu_core::engine::RelayedLayer {
                ssrc: layer.ssrc,
                rtx_ssrc: layer.rtx_ssrc,
            })
            .collect(),
        payload_types,
    })
}

fn track(value: f64) -> std::result::Result<TrackId, Failure> {
    integer(value, "trackId", u32::MAX.into()).map(|id| TrackId(id as u32))
}

/// JS numbers are doubles: take only whole numbers in `0..=max`.
fn integer(value: f64, what: &str, max: f64) -> std::result::Result<f64, Failure> {
    if value.fract() == 0.0 && (0.0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Failure::invalid_argument(format!(
            "{what} must be a whole number from 0 to {max}, got {value}"
        )))
    }
}
