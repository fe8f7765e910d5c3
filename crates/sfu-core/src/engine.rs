//! The engine: owns every peer, track and subscription of one UDP port.

use crate::api::{EngineConfig, EngineStats, Event, Input, Output, PeerStats, Subscription, Transmit};
use crate::error::SfuError;
use crate::ids::{PeerId, TrackId};
use std::collections::VecDeque;
use std::time::Instant;

pub struct Engine {
    config: EngineConfig,
    now: Instant,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    free_buffers: Vec<Vec<u8>>,
    stats: EngineStats,
}

impl Engine {
    pub fn new(config: EngineConfig, now: Instant) -> Result<Self, SfuError> {
        Ok(Engine {
            config,
            now,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            free_buffers: Vec::new(),
            stats: EngineStats::default(),
        })
    }

    /// The DTLS certificate fingerprint put in every answer, as `sha-256 AB:CD:...`.
    pub fn fingerprint(&self) -> String {
        String::new()
    }

    pub fn create_peer(&mut self, _now: Instant) -> PeerId {
        PeerId(0)
    }

    /// Applies a remote offer (initial or renegotiation) and returns the answer.
    pub fn apply_offer(&mut self, peer: PeerId, _offer: &str, _now: Instant) -> Result<String, SfuError> {
        Err(SfuError::UnknownPeer(peer))
    }

    pub fn close_peer(&mut self, peer: PeerId) -> Result<(), SfuError> {
        Err(SfuError::UnknownPeer(peer))
    }

    pub fn subscribe(&mut self, subscriber: PeerId, _track: TrackId, _now: Instant) -> Result<Subscription, SfuError> {
        Err(SfuError::UnknownPeer(subscriber))
    }

    pub fn unsubscribe(&mut self, subscriber: PeerId, _track: TrackId) -> Result<(), SfuError> {
        Err(SfuError::UnknownPeer(subscriber))
    }

    pub fn request_keyframe(&mut self, track: TrackId, _now: Instant) -> Result<(), SfuError> {
        Err(SfuError::UnknownTrack(track))
    }

    pub fn peer_stats(&self, peer: PeerId) -> Result<PeerStats, SfuError> {
        Err(SfuError::UnknownPeer(peer))
    }

    pub fn stats(&self) -> EngineStats {
        self.stats.clone()
    }

    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Datagram { at, .. } | Input::Tick(at) => self.now = at,
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(t) = self.transmits.pop_front() {
            return Output::Transmit(t);
        }
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        Output::Timeout(self.now + std::time::Duration::from_millis(100))
    }

    /// Returns a sent datagram's buffer to the pool.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        self.free_buffers.push(buffer);
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}
