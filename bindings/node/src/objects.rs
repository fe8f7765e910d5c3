//! The plain objects JS passes in and gets back, and their conversions from the driver's types.

use napi_derive::napi;
use sfu_core::{EngineStats, Event, PeerStats as CorePeerStats, Subscription};
use sfu_driver::{WorkerEvent, WorkerStats as DriverWorkerStats};

#[napi(object)]
pub struct WorkerOptions {
    /// UDP port to bind; 0 picks a free one.
    pub port: f64,
    /// Address to bind, default "0.0.0.0".
    pub bind_address: Option<String>,
    /// IP put in answers' ICE candidate, e.g. "127.0.0.1".
    pub announced_address: String,
    /// Port put in answers, default the bound port.
    pub announced_port: Option<f64>,
    /// Audio last-N: each subscriber is sent only this many of its loudest audio tracks.
    /// Default 0: all of them.
    pub audio_last_n: Option<f64>,
}

/// What a subscriber wants of a simulcast track; an absent field lifts that limit.
#[napi(object, object_to_js = false)]
pub struct LayerPreference {
    /// The highest spatial layer to receive, 0 being the lowest quality.
    pub max_spatial_layer: Option<f64>,
    /// The tallest picture worth receiving, in pixels (e.g. the rendered height of the video).
    pub max_height: Option<f64>,
}

/// One flat object per event; `type` tells which fields are set.
#[napi(object, object_from_js = false)]
pub struct MediaEvent {
    #[napi(
        js_name = "type",
        ts_type = "'peer-connected' | 'peer-disconnected' | 'track-published' | 'track-ended' | 'keyframe-requested' | 'layer-switched' | 'speaking-changed' | 'layers-needed' | 'worker-restarted'"
    )]
    pub kind_of_event: String,
    pub peer_id: Option<u32>,
    pub track_id: Option<u32>,
    #[napi(ts_type = "'audio' | 'video'")]
    pub kind: Option<String>,
    pub mid: Option<String>,
    pub stream_id: Option<String>,
    /// "ip:port"
    pub remote: Option<String>,
    pub reason: Option<String>,
    pub by: Option<u32>,
    /// `layer-switched`: the new target layer's quality rank (0 = lowest), the scale of
    /// `maxSpatialLayer`; it takes over at its next keyframe.
    pub layer: Option<u32>,
    /// `speaking-changed`: whether the audio track's publisher now speaks.
    pub speaking: Option<bool>,
    /// `layers-needed`: per encoding of the publisher's simulcast track (in its offer's RID
    /// order), whether it should send (dynacast).
    pub active: Option<Vec<bool>>,
}

impl MediaEvent {
    fn new(kind_of_event: &str) -> Self {
        MediaEvent {
            kind_of_event: kind_of_event.to_owned(),
            peer_id: None,
            track_id: None,
            kind: None,
            mid: None,
            stream_id: None,
            remote: None,
            reason: None,
            by: None,
            layer: None,
            speaking: None,
            active: None,
        }
    }
}

impl From<WorkerEvent> for MediaEvent {
    fn from(event: WorkerEvent) -> Self {
        match event {
            WorkerEvent::Engine(Event::PeerConnected { peer, remote }) => MediaEvent {
                peer_id: Some(peer.0),
                remote: Some(remote.to_string()),
                ..MediaEvent::new("peer-connected")
            },
            WorkerEvent::Engine(Event::PeerDisconnected { peer, reason }) => MediaEvent {
                peer_id: Some(peer.0),
                reason: Some(reason.to_owned()),
                ..MediaEvent::new("peer-disconnected")
            },
            WorkerEvent::Engine(Event::TrackPublished {
                peer,
                track,
                kind,
                mid,
                stream_id,
            }) => MediaEvent {
                peer_id: Some(peer.0),
                track_id: Some(track.0),
                kind: Some(kind.as_str().to_owned()),
                mid: Some(mid),
                stream_id: Some(stream_id),
                ..MediaEvent::new("track-published")
            },
            WorkerEvent::Engine(Event::TrackEnded { peer, track }) => MediaEvent {
                peer_id: Some(peer.0),
                track_id: Some(track.0),
                ..MediaEvent::new("track-ended")
            },
            WorkerEvent::Engine(Event::KeyframeRequested { track, by }) => MediaEvent {
                track_id: Some(track.0),
                by: by.map(|peer| peer.0),
                ..MediaEvent::new("keyframe-requested")
            },
            WorkerEvent::Engine(Event::LayerSwitched { peer, track, layer }) => MediaEvent {
                peer_id: Some(peer.0),
                track_id: Some(track.0),
                layer: Some(u32::from(layer)),
                ..MediaEvent::new("layer-switched")
            },
            WorkerEvent::Engine(Event::SpeakingChanged {
                peer,
                track,
                speaking,
            }) => MediaEvent {
                peer_id: Some(peer.0),
                track_id: Some(track.0),
                speaking: Some(speaking),
                ..MediaEvent::new("speaking-changed")
            },
            WorkerEvent::Engine(Event::LayersNeeded {
                peer,
                track,
                active,
            }) => MediaEvent {
                peer_id: Some(peer.0),
                track_id: Some(track.0),
                active: Some(active),
                ..MediaEvent::new("layers-needed")
            },
            WorkerEvent::Restarted { reason } => MediaEvent {
                reason: Some(reason),
                ..MediaEvent::new("worker-restarted")
            },
        }
    }
}

#[napi(object, object_from_js = false)]
pub struct SubscriptionInfo {
    pub mid: String,
    pub ssrc: u32,
}

impl From<Subscription> for SubscriptionInfo {
    fn from(subscription: Subscription) -> Self {
        SubscriptionInfo {
            mid: subscription.mid,
            ssrc: subscription.ssrc,
        }
    }
}

/// Where an RTP forward sends a track's plain RTP.
#[napi(object, object_to_js = false)]
pub struct RtpForwardDestination {
    /// An IP address, e.g. "127.0.0.1".
    pub address: String,
    pub port: f64,
}

/// A started RTP forward: what a receiver's SDP needs to describe the stream.
#[napi(object, object_from_js = false)]
pub struct RtpForwardInfo {
    pub id: u32,
    pub track_id: u32,
    #[napi(ts_type = "'audio' | 'video'")]
    pub kind: String,
    /// "ip:port"
    pub destination: String,
    pub ssrc: u32,
    pub payload_type: u32,
    /// The codec's rtpmap name: "opus", "VP8", "H264", "VP9" or "AV1".
    pub codec: String,
    pub clock_rate: u32,
    /// 2 for Opus; absent for video.
    pub channels: Option<u32>,
}

impl From<sfu_core::RtpForwardInfo> for RtpForwardInfo {
    fn from(info: sfu_core::RtpForwardInfo) -> Self {
        RtpForwardInfo {
            id: info.id.0,
            track_id: info.track.0,
            kind: info.kind.as_str().to_owned(),
            destination: info.destination.to_string(),
            ssrc: info.ssrc,
            payload_type: u32::from(info.payload_type),
            codec: info.codec.to_owned(),
            clock_rate: info.clock_rate,
            channels: info.channels.map(u32::from),
        }
    }
}

// Counters are u64 in Rust and plain numbers in JS: exact up to 2^53, far beyond any real count.

#[napi(object, object_from_js = false)]
pub struct PeerStats {
    pub peer_id: u32,
    pub connected: bool,
    pub packets_received: f64,
    pub bytes_received: f64,
    pub packets_sent: f64,
    pub bytes_sent: f64,
    pub nacks_received: f64,
    pub retransmissions_sent: f64,
    pub keyframe_requests_sent: f64,
    pub published_tracks: u32,
    pub subscriptions: u32,
    /// The engine's bandwidth estimate towards the peer (from its transport-wide feedback), in
    /// bit/s; 0 before any feedback.
    pub available_outgoing_bitrate_bps: f64,
}

impl PeerStats {
    pub fn new(peer_id: u32, stats: CorePeerStats) -> Self {
        PeerStats {
            peer_id,
            connected: stats.connected,
            packets_received: stats.packets_received as f64,
            bytes_received: stats.bytes_received as f64,
            packets_sent: stats.packets_sent as f64,
            bytes_sent: stats.bytes_sent as f64,
            nacks_received: stats.nacks_received as f64,
            retransmissions_sent: stats.retransmissions_sent as f64,
            keyframe_requests_sent: stats.keyframe_requests_sent as f64,
            published_tracks: stats.published_tracks,
            subscriptions: stats.subscriptions,
            available_outgoing_bitrate_bps: stats.available_outgoing_bitrate_bps as f64,
        }
    }
}

#[napi(object, object_from_js = false)]
pub struct WorkerStats {
    pub peers: u32,
    pub connected_peers: u32,
    pub tracks: u32,
    pub subscriptions: u32,
    pub packets_received: f64,
    pub packets_forwarded: f64,
    pub dropped_unknown_source: f64,
    pub dropped_malformed: f64,
    pub dropped_srtp_auth: f64,
    pub dropped_replay: f64,
    pub stun_requests: f64,
    pub stun_rejected: f64,
    pub worker_restarts: f64,
}

impl From<DriverWorkerStats> for WorkerStats {
    fn from(stats: DriverWorkerStats) -> Self {
        let EngineStats {
            peers,
            connected_peers,
            tracks,
            subscriptions,
            packets_received,
            packets_forwarded,
            dropped_unknown_source,
            dropped_malformed,
            dropped_srtp_auth,
            dropped_replay,
            stun_requests,
            stun_rejected,
        } = stats.engine;
        WorkerStats {
            peers,
            connected_peers,
            tracks,
            subscriptions,
            packets_received: packets_received as f64,
            packets_forwarded: packets_forwarded as f64,
            dropped_unknown_source: dropped_unknown_source as f64,
            dropped_malformed: dropped_malformed as f64,
            dropped_srtp_auth: dropped_srtp_auth as f64,
            dropped_replay: dropped_replay as f64,
            stun_requests: stun_requests as f64,
            stun_rejected: stun_rejected as f64,
            worker_restarts: stats.worker_restarts as f64,
        }
    }
}

/// One codec of a relayed stream: its payload type on the link, and its RTX payload type.
#[napi(object)]
pub struct RelayPayloadType {
    /// The rtpmap name: "opus", "red", "VP8", "H264", "VP9" or "AV1".
    pub codec: String,
    pub payload_type: u32,
    pub rtx_payload_type: Option<u32>,
}

/// One stream of a relayed track: a simulcast layer, or the only one.
#[napi(object)]
pub struct RelayedLayer {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
}

/// What one engine exports on a relay link and the other imports: opaque to the control plane,
/// which carries it from node to node as JSON.
#[napi(object)]
pub struct RelayedTrack {
    #[napi(ts_type = "'audio' | 'video'")]
    pub kind: String,
    /// One stream per simulcast layer, in the publisher's layer order.
    pub layers: Vec<RelayedLayer>,
    pub payload_types: Vec<RelayPayloadType>,
}

impl From<sfu_core::engine::RelayedTrack> for RelayedTrack {
    fn from(relayed: sfu_core::engine::RelayedTrack) -> Self {
        RelayedTrack {
            kind: relayed.kind.as_str().to_owned(),
            layers: relayed
                .layers
                .iter()
                .map(|layer| RelayedLayer {
                    ssrc: layer.ssrc,
                    rtx_ssrc: layer.rtx_ssrc,
                })
                .collect(),
            payload_types: relayed
                .payload_types
                .iter()
                .map(|p| RelayPayloadType {
                    codec: p.codec.rtp_name().to_owned(),
                    payload_type: u32::from(p.pt),
                    rtx_payload_type: p.rtx_pt.map(u32::from),
                })
                .collect(),
        }
    }
}
