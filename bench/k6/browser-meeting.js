// Media through a real browser: one Chromium page publishes a fake camera with WHIP
// (`/whip.html`), VIEWERS pages play it with WHEP (`/whep.html`), and each viewer asserts on its
// own RTCPeerConnection's getStats(): video frames were decoded, and still rise 3 s later. k6's
// HTTP scripts cannot see media at all; this one checks what a user would see.
//
//   bench/k6/run-browser.sh          # starts a server, runs this, stops the server
//   K6_BROWSER_EXECUTABLE_PATH=/usr/bin/chromium K6_BROWSER_ARGS=... \
//     k6 run -e BASE_URL=http://127.0.0.1:8080 bench/k6/browser-meeting.js
//
// Env: BASE_URL (http://127.0.0.1:8080), ROOM (k6), VIEWERS (3), HOLD_S (publisher stays this
// long, 30). Chromium needs the fake-media flags of run-browser.sh.
import { browser } from 'k6/browser'
import { check } from 'k6'
import { Trend } from 'k6/metrics'

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080'
const ROOM = __ENV.ROOM || 'k6'
const VIEWERS = Number(__ENV.VIEWERS || 3)
const HOLD_S = Number(__ENV.HOLD_S || 30)
// A viewer that has decoded nothing by then has failed; kept inside the publisher's hold.
const FIRST_FRAME_TIMEOUT_MS = 15000

const chromium = { browser: { type: 'chromium' } }

export const options = {
  scenarios: {
    publisher: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: 1,
      exec: 'publish',
      maxDuration: `${HOLD_S + 15}s`,
      options: chromium,
    },
    // Viewers join once the publisher's tracks exist, so time to first frame is a viewer's
    // join, not the publisher's camera start-up.
    viewers: {
      executor: 'per-vu-iterations',
      vus: VIEWERS,
      iterations: 1,
      exec: 'view',
      startTime: '3s',
      maxDuration: `${HOLD_S + 10}s`,
      options: chromium,
    },
  },
  thresholds: {
    checks: ['rate==1'],
    time_to_first_frame_ms: ['max<' + FIRST_FRAME_TIMEOUT_MS],
  },
}

const timeToFirstFrame = new Trend('time_to_first_frame_ms', true)
// Frames decoded in the 3 s after the first one: about 3 x the publisher's frame rate when smooth.
const framesIn3s = new Trend('frames_decoded_in_3s')

export async function publish() {
  const page = await browser.newPage()
  try {
    await page.goto(`${BASE_URL}/whip.html?room=${ROOM}`)
    const published = await page.waitForFunction(
      () => globalThis.conclave.session !== undefined || globalThis.conclave.error !== undefined,
      { polling: 100, timeout: 10000 },
    ).then(() => page.evaluate(() => globalThis.conclave.error === undefined), () => false)
    check(published, { 'publisher: WHIP session up': (ok) => ok })
    // Holding the page open keeps the track in the room while the viewers measure.
    await page.waitForTimeout(HOLD_S * 1000)
  } finally {
    await page.close()
  }
}

/** Inbound video framesDecoded of the viewer page's peer connection; -1 before the session exists. */
async function framesDecoded(page) {
  return page.evaluate(async () => {
    const session = globalThis.conclave && globalThis.conclave.session
    if (!session) return -1
    let frames = 0
    ;(await session.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0
    })
    return frames
  })
}

export async function view() {
  const page = await browser.newPage()
  try {
    const started = Date.now()
    await page.goto(`${BASE_URL}/whep.html?room=${ROOM}`)
    let first = 0
    while (Date.now() - started < FIRST_FRAME_TIMEOUT_MS) {
      first = await framesDecoded(page)
      if (first > 0) break
      await page.waitForTimeout(100)
    }
    const decoded = first > 0
    if (decoded) timeToFirstFrame.add(Date.now() - started)
    check(first, { 'viewer: video frames decoded': () => decoded })
    if (!decoded) {
      console.error(`viewer ${__VU}: nothing decoded; page error: ${await page.evaluate(() => globalThis.conclave.error)}`)
      return
    }
    await page.waitForTimeout(3000)
    const later = await framesDecoded(page)
    framesIn3s.add(later - first)
    // Fake camera at ~24 fps: 3 s should add dozens; more than a handful rules out a stall.
    check(later - first, { 'viewer: frames keep rising over 3 s': (added) => added > 10 })
  } finally {
    await page.close()
  }
}
