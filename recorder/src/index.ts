// @conclave/recorder: records a meeting as a silent participant. The CLI (`cli.ts`) wraps this for
// the orchestrator; tests and embedders call it directly.

export { binariesFromEnv, findExecutable, resolveBinaries, type RecorderBinaries } from './binaries.js'
export {
  startCompositeRecording,
  trimToCompleteBoxes,
  type CompositeRecording,
  type CompositeRecordingOptions,
  type FinalizedRecording,
  type RecordingProgress,
} from './composite-recording.js'
export { CompositeConfig, OutputConfig, parseCompositeConfig, RECORDING_MODES, type CompositeConfigInput } from './config.js'
export { RECORDER_ERROR_CODES, RecorderError, toRecorderError, type RecorderErrorCode } from './errors.js'
export { finalizePartial, type FinalizePartialOptions } from './finalize-partial.js'
export type { IndexedFile, IndexedParticipant, IndexedTrack, RecordingIndex } from './recording-index.js'
export { RECORDING_FILES } from './screen-capture.js'
export { AzureBlobSink, type AzureBlobSinkOptions } from './storage/azure-blob-sink.js'
export { createRecordingSink } from './storage/create-sink.js'
export { LocalFolderSink } from './storage/local-folder-sink.js'
export { completeBoxesEnd } from './storage/mp4-boxes.js'
export { CONTENT_TYPES, type RecordingSink, type StoredObject } from './storage/recording-sink.js'
export { RecordingUploader, type RecordingUploaderOptions, type UploaderStats } from './storage/recording-uploader.js'
export { startTrackRecording, TrackRecording, type RecordingTrack, type RtpForwarder, type TrackFile, type TrackRecordingOptions, type TrackToRecord } from './tracks/index.js'
