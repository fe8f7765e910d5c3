// @conclave/client: the browser SDK.

export { Meeting, type MeetingOptions, type RemoteTrack } from './meeting.js'
export { SignalingClient, SignalingError } from './signaling-client.js'
export { playWhep, publishWhip, WhipError, type HttpMediaSession, type PlayOptions, type SessionOptions } from './whip.js'
