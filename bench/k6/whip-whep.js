// WHIP/WHEP signaling load: each iteration publishes (WHIP offer -> 201 + answer), views the
// same room (WHEP offer -> 201), then DELETEs both resources. HTTP only: k6 has no WebRTC, so no
// ICE or media follow; the server creates and closes real engine peers for every request.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 bench/k6/whip-whep.js
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=50 -e DURATION=60s bench/k6/whip-whep.js
//
// Env: BASE_URL (http://127.0.0.1:8080), VUS (20), DURATION (30s), ROOMS (10), TOKEN (bearer,
// when the server has CONCLAVE_JWT_SECRET).
import http from 'k6/http'
import { check } from 'k6'
import { Trend } from 'k6/metrics'

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080'
const ROOMS = Number(__ENV.ROOMS || 10)

export const options = {
  scenarios: {
    signaling: {
      executor: 'ramping-vus',
      startVUs: 1,
      stages: [
        { duration: '5s', target: Number(__ENV.VUS || 20) },
        { duration: __ENV.DURATION || '30s', target: Number(__ENV.VUS || 20) },
        { duration: '5s', target: 0 },
      ],
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'whip_ms': ['p(95)<250'],
    'whep_ms': ['p(95)<250'],
  },
}

const whipMs = new Trend('whip_ms', true)
const whepMs = new Trend('whep_ms', true)

// A browser-shaped offer; the fingerprint only has to be well formed (no DTLS follows).
const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0')).join(':')

function session(ufrag, mids) {
  return (
    'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' +
    `a=group:BUNDLE ${mids.join(' ')}\r\na=msid-semantic: WMS\r\n` +
    `a=ice-ufrag:${ufrag}\r\na=ice-pwd:k6passwordk6passwordk6pw\r\na=fingerprint:sha-256 ${FINGERPRINT}\r\na=setup:actpass\r\n`
  )
}

function audio(mid, direction, ssrc) {
  let s =
    'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n' +
    `a=mid:${mid}\r\na=${direction}\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n`
  if (ssrc) s += `a=msid:k6 k6-audio\r\na=ssrc:${ssrc} cname:k6\r\n`
  return s
}

function video(mid, direction, ssrc) {
  let s =
    'm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n' +
    `a=mid:${mid}\r\na=${direction}\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\n` +
    'a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n'
  if (ssrc) s += `a=msid:k6 k6-video\r\na=ssrc-group:FID ${ssrc} ${ssrc + 1}\r\na=ssrc:${ssrc} cname:k6\r\na=ssrc:${ssrc + 1} cname:k6\r\n`
  return s
}

function headers() {
  const h = { 'Content-Type': 'application/sdp' }
  if (__ENV.TOKEN) h.Authorization = `Bearer ${__ENV.TOKEN}`
  return h
}

export default function () {
  const room = `k6-${__VU % ROOMS}`
  const ufrag = `k6${__VU}x${__ITER}`.slice(0, 32)
  const ssrc = 1000 + ((__VU * 1000 + __ITER) % 100000) * 4

  const publish = http.post(
    `${BASE_URL}/whip/${room}`,
    session(ufrag, ['0', '1']) + audio('0', 'sendonly', ssrc) + video('1', 'sendonly', ssrc + 2),
    { headers: headers(), tags: { name: 'whip' } },
  )
  whipMs.add(publish.timings.duration)
  check(publish, { 'whip 201': (r) => r.status === 201, 'whip answer': (r) => String(r.body).startsWith('v=0') })

  const view = http.post(
    `${BASE_URL}/whep/${room}`,
    session(`${ufrag}v`, ['a0', 'v0']) + audio('a0', 'recvonly') + video('v0', 'recvonly'),
    { headers: headers(), tags: { name: 'whep' } },
  )
  whepMs.add(view.timings.duration)
  check(view, { 'whep 201': (r) => r.status === 201 })

  for (const response of [view, publish]) {
    const location = response.headers.Location
    if (location) {
      const deleted = http.del(`${BASE_URL}${location}`, null, { headers: headers(), tags: { name: 'delete' } })
      check(deleted, { 'delete 200': (r) => r.status === 200 })
    }
  }
}
