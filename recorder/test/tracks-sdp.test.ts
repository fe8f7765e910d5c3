// The SDP and container a forwarded track gets: what ffmpeg is told and where it copies to.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { containerFor, trackSdp } from '../src/tracks/index.js'

const OPUS = { kind: 'audio', payloadType: 111, codec: 'opus', clockRate: 48_000, channels: 2 } as const
const VP8 = { kind: 'video', payloadType: 96, codec: 'VP8', clockRate: 90_000 } as const
const H264 = { kind: 'video', payloadType: 102, codec: 'H264', clockRate: 90_000 } as const

describe('per-track SDP and containers', () => {
  test('an Opus forward is described with its payload type, clock and two channels', () => {
    const sdp = trackSdp(OPUS, '127.0.0.1', 50_000, 'rec track-1')
    assert.equal(
      sdp,
      'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rec track-1\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=recvonly\r\n',
    )
  })

  test('H.264 is announced in packetization mode 1, VP8 without fmtp, IPv6 as IP6', () => {
    assert.match(trackSdp(H264, '127.0.0.1', 50_002, 'h'), /a=rtpmap:102 H264\/90000\r\na=fmtp:102 packetization-mode=1\r\n/)
    const vp8 = trackSdp(VP8, '::1', 50_004, 'v')
    assert.match(vp8, /c=IN IP6 ::1\r\nt=0 0\r\nm=video 50004 RTP\/AVP 96\r\na=rtpmap:96 VP8\/90000\r\na=recvonly\r\n$/)
    assert.doesNotMatch(vp8, /fmtp/)
  })

  test('each codec is copied into its container: Opus to Ogg (or WebM), VP8 to WebM, H.264 to fragmented MP4', () => {
    assert.equal(containerFor(OPUS).format, 'ogg')
    assert.equal(containerFor(OPUS, 'webm').contentType, 'audio/webm')
    assert.equal(containerFor(VP8).format, 'webm')
    const mp4 = containerFor(H264)
    assert.equal(mp4.format, 'mp4')
    assert.deepEqual(mp4.muxerArgs, ['-movflags', '+frag_keyframe+empty_moov+default_base_moof'])
    assert.throws(() => containerFor({ ...VP8, codec: 'theora' }), (error: Error & { code?: string }) => error.code === 'internal')
  })
})
