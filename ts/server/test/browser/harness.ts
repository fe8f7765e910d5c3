// Browser test support: one headless Chromium per file, a real server (real addon) per test, and
// getStats() probes. Pages expose their RTCPeerConnection as globalThis.conclave.{meeting,session}.pc.

import { createSocket } from 'node:dgram'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { createLogger, type LogLevel } from '../../src/log.js'
import { type ConclaveServer, createServer, type ServerOptions } from '../../src/server.js'
import { eventually } from '../support/eventually.js'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  // Several pages decode at once; none of them may be throttled as a background tab.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
]

/** One headless Chromium; `extraArgs` add switches for one test's browser (e.g. trusting a test certificate). */
export function launchBrowser(extraArgs: readonly string[] = []): Promise<Browser> {
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], protocolTimeout: 60_000 })
}

/** A server on free ports of 127.0.0.1 with the native media engine. */
export function startServer(options: Partial<ServerOptions> = {}): Promise<ConclaveServer> {
  const level = (process.env.CONCLAVE_LOG_LEVEL ?? 'error') as LogLevel
  return createServer({
    httpPort: 0,
    httpHost: '127.0.0.1',
    udpPort: 0,
    udpBindAddress: '127.0.0.1',
    announcedAddress: '127.0.0.1',
    log: createLogger({ level }),
    ...options,
  })
}

/** Totals over every inbound-rtp stream of the page's peer connection. */
export interface InboundTotals {
  videoFramesDecoded: number
  audioPacketsReceived: number
  audioSamplesReceived: number
  videoStreams: number
  audioStreams: number
}

const INBOUND_PROBE = `(async () => {
  const c = globalThis.conclave
  const pc = c && ((c.meeting && c.meeting.pc) || (c.session && c.session.pc))
  if (!pc) return null
  const totals = { videoFramesDecoded: 0, audioPacketsReceived: 0, audioSamplesReceived: 0, videoStreams: 0, audioStreams: 0 }
  const report = await pc.getStats()
  report.forEach((stat) => {
    if (stat.type !== 'inbound-rtp') return
    if (stat.kind === 'video') {
      totals.videoStreams++
      totals.videoFramesDecoded += stat.framesDecoded || 0
    } else if (stat.kind === 'audio') {
      totals.audioStreams++
      totals.audioPacketsReceived += stat.packetsReceived || 0
      totals.audioSamplesReceived += stat.totalSamplesReceived || 0
    }
  })
  return totals
})()`

/** The page's inbound totals, or undefined before it has a peer connection. */
export async function inbound(page: Page): Promise<InboundTotals | undefined> {
  return ((await page.evaluate(INBOUND_PROBE)) as InboundTotals | null) ?? undefined
}

/** Waits until `page` decodes video and plays audio, and both keep going up. */
export async function expectMediaFlowing(page: Page, who: string, { videoStreams = 1, timeoutMs = 20_000 } = {}): Promise<InboundTotals> {
  const first = await eventually(
    `${who} to decode video and play audio`,
    async () => {
      const totals = await inbound(page)
      const started =
        totals !== undefined &&
        totals.videoFramesDecoded > 0 &&
        totals.audioSamplesReceived > 0 &&
        totals.videoStreams >= videoStreams
      if (!started) throw new Error(`inbound ${JSON.stringify(totals)}`)
      return totals
    },
    { timeoutMs },
  )
  return eventually(
    `${who}'s video and audio to keep rising`,
    async () => {
      const now = await inbound(page)
      const rising =
        now !== undefined &&
        now.videoFramesDecoded > first.videoFramesDecoded + 5 &&
        now.audioPacketsReceived > first.audioPacketsReceived + 10 &&
        now.audioSamplesReceived > first.audioSamplesReceived
      if (!rising) throw new Error(`inbound ${JSON.stringify(now)}, first ${JSON.stringify(first)}`)
      return now
    },
    { timeoutMs },
  )
}

/** Opens the meeting page (with extra `query` parameters, e.g. `relay=1`) and joins `room` as `name` through the form, as a person would. */
export async function joinMeeting(
  browser: Browser,
  server: ConclaveServer,
  room: string,
  name: string,
  token?: string,
  query: Record<string, string> = {},
): Promise<Page> {
  const page = await browser.newPage()
  const params = new URLSearchParams(query)
  if (token !== undefined) params.set('token', token)
  const search = params.toString()
  await page.goto(`${server.url}/${search === '' ? '' : `?${search}`}`)
  await page.type('#room', room)
  await page.type('#name', name)
  await page.click('#join')
  await page.waitForFunction(
    'globalThis.conclave.meeting !== undefined || document.querySelector("#status").textContent.startsWith("Could not")',
    { timeout: 15_000, polling: 50 },
  )
  const joined = (await page.evaluate('globalThis.conclave.meeting !== undefined')) as boolean
  if (!joined) {
    const status = String(await page.$eval('#status', (node) => node.textContent))
    await page.close()
    throw new Error(`${name} could not join: ${status}`)
  }
  return page
}

/** Opens `/whip.html` (publishes fake camera and microphone) or `/whep.html` (plays the room). */
export async function openSessionPage(browser: Browser, server: ConclaveServer, page: 'whip' | 'whep', room: string): Promise<Page> {
  const tab = await browser.newPage()
  await tab.goto(`${server.url}/${page}.html?room=${encodeURIComponent(room)}`)
  await tab.waitForFunction('globalThis.conclave && (globalThis.conclave.session !== undefined || globalThis.conclave.error !== undefined)', {
    // rAF polling (the default) never fires in a background tab.
    timeout: 15_000,
    polling: 50,
  })
  const error = (await tab.evaluate('globalThis.conclave.error')) as string | undefined
  if (error !== undefined) {
    await tab.close()
    throw new Error(`${page}.html failed: ${error}`)
  }
  return tab
}

/** Sends `count` datagrams of seeded random bytes (1-1200 long) to the server's UDP port. */
export async function sendGarbage(port: number, count: number, seed = 7): Promise<void> {
  const socket = createSocket('udp4')
  let state = seed >>> 0
  const next = () => {
    // xorshift32: reproducible garbage.
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state
  }
  try {
    for (let i = 0; i < count; i++) {
      const bytes = Buffer.alloc(1 + (next() % 1200))
      for (let j = 0; j < bytes.length; j++) bytes[j] = next() & 0xff
      // Some look like STUN, RTP or DTLS at first glance, to reach the deeper parsers.
      const first = [0x00, 0x01, 0x80, 0x90, 0x16, 0x17][i % 6]
      if (first !== undefined) bytes[0] = first
      await new Promise<void>((resolve, reject) => socket.send(bytes, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())))
    }
  } finally {
    socket.close()
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}
