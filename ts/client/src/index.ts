// @conclave/client: the browser SDK.

export { Meeting, type MeetingOptions, type RemoteTrack } from './meeting.js'
export { DEPENDENCY_DESCRIPTOR_URI, SIMULCAST_ENCODINGS, type SvcPublishing, type VideoCodec } from './simulcast.js'
export { SignalingClient, SignalingError } from './signaling-client.js'
export { drawnSize, VideoSizeReporter, type Size, type SizeSink, type VideoSizeReporterOptions } from './video-size.js'
export { playWhep, publishWhip, WhipError, type HttpMediaSession, type PlayOptions, type PublishOptions, type SessionOptions } from './whip.js'
