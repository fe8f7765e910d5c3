//! The scenario file (JSON), the same for every target: who publishes, who receives what, how
//! fast they join, how long the measurement runs, and the synthetic media.

use serde::Deserialize;
use std::time::Duration;

/// One benchmark scenario. Example (`bench/scenarios/1-to-10.json`):
///
/// ```json
/// { "name": "1-to-10", "publishers": 1, "subscribers": 10, "measure_s": 15 }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// File-name safe; results are written under it.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Peer connections that only send (WHIP / VideoRoom publishers).
    pub publishers: usize,
    /// Peer connections that only receive (WHEP viewers / VideoRoom subscribers).
    pub subscribers: usize,
    /// How many publishers each subscriber receives: the first N to join. Default: all of them.
    /// Fewer than all stands in for last-N with a fixed set of speakers.
    #[serde(default)]
    pub subscribe_to: Option<usize>,
    #[serde(default = "yes")]
    pub audio: bool,
    #[serde(default = "yes")]
    pub video: bool,
    /// New peer connections started per second (signaling is done by a few worker threads).
    #[serde(default = "default_joins_per_second")]
    pub joins_per_second: f64,
    /// Seconds between the last join and the measurement window (keyframes, rates settle).
    #[serde(default = "default_warmup_s")]
    pub warmup_s: f64,
    /// Length of the measurement window.
    pub measure_s: f64,
    /// A peer connection not up this long after its first HTTP request has failed.
    #[serde(default = "default_join_timeout_s")]
    pub join_timeout_s: f64,
    /// Hard limit for the whole run, teardown excluded. Default: 60 s more than the planned run.
    #[serde(default)]
    pub time_limit_s: Option<f64>,
    #[serde(default)]
    pub media: MediaProfile,
}

/// Synthetic media. Defaults: Opus 20 ms / 100 bytes; VP8 30 fps, 3 packets of 1100 bytes per
/// frame (about 800 kbit/s), a 12-packet keyframe every 2 s and on PLI/FIR.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaProfile {
    pub audio_ptime_ms: u64,
    pub audio_payload_bytes: usize,
    pub video_fps: u32,
    pub video_payload_bytes: usize,
    pub video_packets_per_frame: usize,
    pub keyframe_packets: usize,
    pub keyframe_interval_s: f64,
}

impl Default for MediaProfile {
    fn default() -> Self {
        MediaProfile {
            audio_ptime_ms: 20,
            audio_payload_bytes: 100,
            video_fps: 30,
            video_payload_bytes: 1100,
            video_packets_per_frame: 3,
            keyframe_packets: 12,
            keyframe_interval_s: 2.0,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_joins_per_second() -> f64 {
    50.0
}

fn default_warmup_s() -> f64 {
    3.0
}

fn default_join_timeout_s() -> f64 {
    20.0
}

/// The payload must hold the codec header and the embedded measurement trailer.
pub const MIN_PAYLOAD_BYTES: usize = 48;
/// Keeps SRTP-protected packets under a 1500-byte path MTU.
pub const MAX_PAYLOAD_BYTES: usize = 1200;

impl Scenario {
    pub fn from_json(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario =
            serde_json::from_str(text).map_err(|e| format!("scenario: {e}"))?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        let m = &self.media;
        let checks: [(bool, &str); 12] = [
            (
                !self.name.is_empty()
                    && self
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "name must be 1+ of A-Z a-z 0-9 - _ .",
            ),
            (self.publishers >= 1, "publishers must be at least 1"),
            (
                self.publishers + self.subscribers <= 4000,
                "at most 4000 peer connections",
            ),
            (self.audio || self.video, "audio, video or both"),
            (
                self.subscribe_to
                    .is_none_or(|n| n >= 1 && n <= self.publishers),
                "subscribe_to must be 1..=publishers",
            ),
            (
                self.joins_per_second > 0.0 && self.joins_per_second <= 1000.0,
                "joins_per_second must be in (0, 1000]",
            ),
            (
                self.measure_s > 0.0 && self.measure_s <= 3600.0,
                "measure_s must be in (0, 3600]",
            ),
            (
                self.warmup_s >= 0.0 && self.join_timeout_s > 0.0,
                "warmup_s >= 0 and join_timeout_s > 0",
            ),
            (
                (10..=120).contains(&m.audio_ptime_ms) && (1..=60).contains(&m.video_fps),
                "audio_ptime_ms 10..=120, video_fps 1..=60",
            ),
            (
                (MIN_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&m.audio_payload_bytes),
                "audio_payload_bytes 48..=1200",
            ),
            (
                (MIN_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&m.video_payload_bytes),
                "video_payload_bytes 48..=1200",
            ),
            (
                m.video_packets_per_frame >= 1
                    && m.keyframe_packets >= 1
                    && m.keyframe_interval_s > 0.0,
                "packets per frame >= 1, keyframe_interval_s > 0",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(format!("scenario {}: {message}", self.name)),
            None => Ok(()),
        }
    }

    pub fn subscribe_count(&self) -> usize {
        self.subscribe_to.unwrap_or(self.publishers)
    }

    pub fn peer_connections(&self) -> usize {
        self.publishers + self.subscribers
    }

    /// Seconds the joins take at `joins_per_second`.
    fn ramp_s(&self) -> f64 {
        self.peer_connections() as f64 / self.joins_per_second
    }

    pub fn time_limit(&self) -> Duration {
        let planned = self.ramp_s() + self.warmup_s + self.measure_s + 60.0;
        Duration::from_secs_f64(self.time_limit_s.unwrap_or(planned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_scenario_gets_the_documented_defaults() {
        let s = Scenario::from_json(
            r#"{ "name": "1-to-10", "publishers": 1, "subscribers": 10, "measure_s": 15 }"#,
        )
        .expect("valid");
        assert!(s.audio && s.video);
        assert_eq!(s.subscribe_count(), 1);
        assert_eq!(s.media.video_fps, 30);
        assert_eq!(s.media.audio_payload_bytes, 100);
        assert_eq!(
            s.time_limit(),
            Duration::from_secs_f64(11.0 / 50.0 + 3.0 + 15.0 + 60.0)
        );
    }

    #[test]
    fn unknown_fields_and_impossible_values_are_refused() {
        assert!(Scenario::from_json(
            r#"{ "name": "x", "publishers": 1, "subscribers": 1, "measure_s": 1, "typo": 1 }"#
        )
        .is_err());
        assert!(Scenario::from_json(r#"{ "name": "x", "publishers": 2, "subscribers": 1, "measure_s": 1, "subscribe_to": 3 }"#).is_err());
        assert!(Scenario::from_json(
            r#"{ "name": "x y", "publishers": 1, "subscribers": 1, "measure_s": 1 }"#
        )
        .is_err());
        assert!(Scenario::from_json(r#"{ "name": "x", "publishers": 1, "subscribers": 1, "measure_s": 1, "audio": false, "video": false }"#).is_err());
    }
}
