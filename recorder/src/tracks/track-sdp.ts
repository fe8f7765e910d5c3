// The SDP that tells ffmpeg what plain RTP arrives on a port, and the container each codec goes to
// without transcoding (Opus -> Ogg or WebM, VP8/VP9/AV1 -> WebM, H.264 -> MP4).

import { RecorderError } from '../errors.js'

/** What the engine says about a forwarded stream (`RtpForwardInfo` of `@conclave/server`). */
export interface ForwardedStream {
  kind: 'audio' | 'video'
  payloadType: number
  /** The rtpmap name: "opus", "VP8", "H264", "VP9" or "AV1". */
  codec: string
  clockRate: number
  channels?: number
}

export interface TrackContainer {
  /** ffmpeg's muxer name. */
  format: 'ogg' | 'webm' | 'mp4'
  extension: 'ogg' | 'webm' | 'mp4'
  contentType: string
  /** Muxer options after `-c copy`. */
  muxerArgs: string[]
}

export type AudioContainer = 'ogg' | 'webm'

const OGG: TrackContainer = { format: 'ogg', extension: 'ogg', contentType: 'audio/ogg', muxerArgs: [] }
const WEBM_AUDIO: TrackContainer = { format: 'webm', extension: 'webm', contentType: 'audio/webm', muxerArgs: [] }
const WEBM_VIDEO: TrackContainer = { format: 'webm', extension: 'webm', contentType: 'video/webm', muxerArgs: [] }
// Fragmented: a recording cut short by a crash stays playable up to its last fragment.
const MP4: TrackContainer = {
  format: 'mp4',
  extension: 'mp4',
  contentType: 'video/mp4',
  muxerArgs: ['-movflags', '+frag_keyframe+empty_moov+default_base_moof'],
}

/** The container `stream` is copied into; throws `internal` for a codec the engine never forwards. */
export function containerFor(stream: ForwardedStream, audio: AudioContainer = 'ogg'): TrackContainer {
  switch (stream.codec.toLowerCase()) {
    case 'opus':
      return audio === 'ogg' ? OGG : WEBM_AUDIO
    case 'vp8':
    case 'vp9':
    // AV1 over RTP needs ffmpeg 7 or later to depacketize.
    case 'av1':
      return WEBM_VIDEO
    case 'h264':
      return MP4
    default:
      throw new RecorderError('internal', `no container for codec ${stream.codec}`)
  }
}

/** A receive-only SDP for one stream of plain RTP to `address`:`port`. */
export function trackSdp(stream: ForwardedStream, address: string, port: number, name: string): string {
  const family = address.includes(':') ? 'IP6' : 'IP4'
  const pt = stream.payloadType
  const channels = stream.channels === undefined ? '' : `/${stream.channels}`
  const lines = [
    'v=0',
    `o=- 0 0 IN ${family} ${address}`,
    `s=${name}`,
    `c=IN ${family} ${address}`,
    't=0 0',
    `m=${stream.kind} ${port} RTP/AVP ${pt}`,
    `a=rtpmap:${pt} ${stream.codec}/${stream.clockRate}${channels}`,
  ]
  // Browsers send H.264 in FU-A/STAP-A (RFC 6184 mode 1); parameter sets come in band.
  if (stream.codec.toLowerCase() === 'h264') lines.push(`a=fmtp:${pt} packetization-mode=1`)
  lines.push('a=recvonly')
  return `${lines.join('\r\n')}\r\n`
}
