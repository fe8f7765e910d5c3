import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sendingSections } from './offer-sections.js'

test('sendonly and sendrecv m-lines send; recvonly, inactive, rejected and non-media ones do not', () => {
  const sdp = [
    'v=0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111',
    'a=mid:0',
    'a=sendonly',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=mid:1',
    'a=sendrecv',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=mid:2',
    'a=recvonly',
    'm=audio 0 UDP/TLS/RTP/SAVPF 111',
    'a=mid:3',
    'a=sendonly',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=mid:4',
    'a=inactive',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'a=mid:5',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=mid:6',
  ].join('\r\n')
  assert.deepEqual(sendingSections(sdp), [
    { mid: '0', kind: 'audio' },
    { mid: '1', kind: 'video' },
    { mid: '6', kind: 'video' },
  ])
})

test('text that is not SDP has no sending sections', () => {
  assert.deepEqual(sendingSections('garbage\nm=\na=mid:'), [])
})
