// Per-track recording mode: each track teed by the engine to its own ffmpeg, copied to a file.

export { processUsage, type ProcessUsage } from './process-usage.js'
export {
  type RecordingTrack,
  type RtpForwarder,
  type StartedForward,
  startTrackRecording,
  type TrackFile,
  TrackRecording,
  type TrackRecordingOptions,
  type TrackToRecord,
} from './track-recording.js'
export { type AudioContainer, containerFor, type ForwardedStream, type TrackContainer, trackSdp } from './track-sdp.js'
