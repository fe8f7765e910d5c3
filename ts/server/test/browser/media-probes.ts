// Browser test support for adaptive media: pages opened with options (simulcast, element sizes),
// per-stream getStats() probes (layers sent, frame sizes, freezes) and a server behind the
// impairment proxy. Builds on harness.ts; pages expose globalThis.conclave.{meeting,session}.pc.

import type { Browser, Page } from 'puppeteer-core'
import { createLogger, type LogLevel } from '../../src/log.js'
import { type ConclaveServer, createServer } from '../../src/server.js'
import { ImpairmentProxy, type ImpairmentProxyOptions } from '../support/impairment-proxy.js'

export interface BehindProxy {
  server: ConclaveServer
  proxy: ImpairmentProxy
  close(): Promise<void>
}

/** A server whose answers announce the impairment proxy's port, and the proxy relaying to it. */
export async function startServerBehindProxy(options: ImpairmentProxyOptions = {}): Promise<BehindProxy> {
  const proxy = await ImpairmentProxy.start(options)
  try {
    const level = (process.env.CONCLAVE_LOG_LEVEL ?? 'error') as LogLevel
    const server = await createServer({
      httpPort: 0,
      httpHost: '127.0.0.1',
      udpPort: 0,
      udpBindAddress: '127.0.0.1',
      announcedAddress: '127.0.0.1',
      announcedPort: proxy.port,
      log: createLogger({ level }),
    })
    proxy.setTarget(server.udpPort)
    return {
      server,
      proxy,
      close: async () => {
        await server.close()
        await proxy.close()
      },
    }
  } catch (error) {
    await proxy.close()
    throw error
  }
}

export interface MeetingPageOptions {
  /** Publish the camera in three simulcast layers (`?simulcast=1`). */
  simulcast?: boolean
  /** Publish the camera as one SVC encoding of this codec (`?svc=`), in `L3T3_KEY`. */
  svc?: 'VP9' | 'AV1'
  /** Send the camera in this codec (`&codec=`). */
  codec?: 'H264'
  /** CSS size of every remote video element, applied before joining. */
  remoteVideoSize?: { width: number; height: number }
}

/** Opens the meeting page with `options` and joins `room` as `name` through the form. */
export async function joinMeetingWith(browser: Browser, server: ConclaveServer, room: string, name: string, options: MeetingPageOptions = {}): Promise<Page> {
  const page = await browser.newPage()
  const query = new URLSearchParams()
  if (options.simulcast === true) query.set('simulcast', '1')
  if (options.svc !== undefined) query.set('svc', options.svc)
  if (options.codec !== undefined) query.set('codec', options.codec)
  await page.goto(`${server.url}/${query.size > 0 ? `?${query}` : ''}`)
  if (options.remoteVideoSize !== undefined) await setRemoteVideoSize(page, options.remoteVideoSize)
  await page.type('#room', room)
  await page.type('#name', name)
  await page.click('#join')
  await page.waitForFunction(
    'globalThis.conclave.meeting !== undefined || document.querySelector("#status").textContent.startsWith("Could not")',
    { timeout: 15_000, polling: 50 },
  )
  if (!((await page.evaluate('globalThis.conclave.meeting !== undefined')) as boolean)) {
    const status = String(await page.$eval('#status', (node) => node.textContent))
    await page.close()
    throw new Error(`${name} could not join: ${status}`)
  }
  return page
}

/** Opens `/whip.html` publishing as `name`, in three simulcast layers if asked. */
export async function openWhipWith(
  browser: Browser,
  server: ConclaveServer,
  room: string,
  { name = 'WHIP', simulcast = false }: { name?: string; simulcast?: boolean } = {},
): Promise<Page> {
  const tab = await browser.newPage()
  const query = new URLSearchParams({ room, name })
  if (simulcast) query.set('simulcast', '1')
  await tab.goto(`${server.url}/whip.html?${query}`)
  await tab.waitForFunction('globalThis.conclave && (globalThis.conclave.session !== undefined || globalThis.conclave.error !== undefined)', {
    timeout: 15_000,
    polling: 50,
  })
  const error = (await tab.evaluate('globalThis.conclave.error')) as string | undefined
  if (error !== undefined) {
    await tab.close()
    throw new Error(`whip.html failed: ${error}`)
  }
  return tab
}

/**
 * Sets the CSS size of every remote video element of the meeting page, now and later. Brings the
 * page to the front first: a background page does no layout, so no ResizeObserver would fire.
 */
export async function setRemoteVideoSize(page: Page, { width, height }: { width: number; height: number }): Promise<void> {
  await page.bringToFront()
  const css = `#tiles figure:not([data-participant-id="local"]) video { width: ${width}px; height: ${height}px; }`
  await page.evaluate(`(() => {
    let style = document.getElementById('remote-video-size')
    if (style === null) {
      style = document.createElement('style')
      style.id = 'remote-video-size'
      document.head.append(style)
    }
    style.textContent = ${JSON.stringify(css)}
  })()`)
}

/** One simulcast encoding as the publisher's outbound-rtp reports it. */
export interface SentLayer {
  rid: string
  frameWidth: number
  frameHeight: number
  framesPerSecond: number
  targetBitrate: number
  qualityLimitationReason: string
}

/** The video encodings the page sends, by rid ('' without simulcast). */
export async function sentLayers(page: Page): Promise<SentLayer[]> {
  return (await page.evaluate(`(async () => {
    const c = globalThis.conclave
    const pc = (c.meeting && c.meeting.pc) || (c.session && c.session.pc)
    const layers = []
    ;(await pc.getStats()).forEach((s) => {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') return
      layers.push({
        rid: s.rid || '',
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        framesPerSecond: s.framesPerSecond || 0,
        targetBitrate: s.targetBitrate || 0,
        qualityLimitationReason: s.qualityLimitationReason || '',
      })
    })
    return layers.sort((a, b) => a.frameWidth - b.frameWidth)
  })()`)) as SentLayer[]
}

/** What the page sends of each video encoding over `ms`, in kbit/s by rid ('' without simulcast). */
export async function sentKbps(page: Page, ms = 2000): Promise<Record<string, number>> {
  const bytes = async () =>
    (await page.evaluate(`(async () => {
      const c = globalThis.conclave
      const pc = (c.meeting && c.meeting.pc) || (c.session && c.session.pc)
      const sent = {}
      ;(await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') sent[s.rid || ''] = s.bytesSent || 0
      })
      return sent
    })()`)) as Record<string, number>
  const before = await bytes()
  const start = Date.now()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const after = await bytes()
  const elapsed = Date.now() - start
  return Object.fromEntries(Object.entries(after).map(([rid, total]) => [rid, Math.round(((total - (before[rid] ?? 0)) * 8) / elapsed)]))
}

/** One received video stream as inbound-rtp reports it. */
export interface ReceivedVideo {
  mid: string
  /** Who publishes it, by display name (meeting page only). */
  from: string | undefined
  frameWidth: number
  frameHeight: number
  /** e.g. `video/H264`; '' until the codec is known. */
  mimeType: string
  framesDecoded: number
  freezeCount: number
  totalFreezesDuration: number
  nackCount: number
  pliCount: number
  packetsLost: number
  packetsReceived: number
}

/** Every video stream the page receives. */
export async function receivedVideos(page: Page): Promise<ReceivedVideo[]> {
  return (await page.evaluate(`(async () => {
    const c = globalThis.conclave
    const pc = (c.meeting && c.meeting.pc) || (c.session && c.session.pc)
    const videos = []
    const stats = await pc.getStats()
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return
      const codec = s.codecId && stats.get(s.codecId)
      const subscription = c.meeting && c.meeting.subscriptionOn(s.mid)
      const participant = subscription && c.meeting.participants.get(subscription.participantId)
      videos.push({
        mid: s.mid,
        from: participant ? participant.name : undefined,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        mimeType: (codec && codec.mimeType) || '',
        framesDecoded: s.framesDecoded || 0,
        freezeCount: s.freezeCount || 0,
        totalFreezesDuration: s.totalFreezesDuration || 0,
        nackCount: s.nackCount || 0,
        pliCount: s.pliCount || 0,
        packetsLost: s.packetsLost || 0,
        packetsReceived: s.packetsReceived || 0,
      })
    })
    return videos
  })()`)) as ReceivedVideo[]
}

/** The video `page` receives from the participant named `from` (meeting page), or its only video. */
export async function receivedVideo(page: Page, from?: string): Promise<ReceivedVideo | undefined> {
  const videos = await receivedVideos(page)
  return from === undefined ? videos.find((video) => video.framesDecoded > 0) : videos.find((video) => video.from === from)
}

/**
 * Samples the decoded-frame count of the video from `from` every 50 ms inside the page (no
 * round trip per sample), so stalls are measured to the sample, not to the test's polling.
 */
export async function startFrameRecorder(page: Page, from?: string): Promise<void> {
  await page.evaluate(`(() => {
    const c = globalThis.conclave
    const pc = (c.meeting && c.meeting.pc) || (c.session && c.session.pc)
    const from = ${JSON.stringify(from ?? null)}
    const samples = []
    const timer = setInterval(async () => {
      const report = await pc.getStats()
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return
        if (from !== null) {
          const subscription = c.meeting && c.meeting.subscriptionOn(s.mid)
          const participant = subscription && c.meeting.participants.get(subscription.participantId)
          if (!participant || participant.name !== from) return
        } else if (!s.framesDecoded) return
        samples.push([performance.now(), s.framesDecoded || 0, s.frameWidth || 0, s.freezeCount || 0, s.totalFreezesDuration || 0])
      })
    }, 50)
    globalThis.__frameRecorder = { samples, timer }
  })()`)
}

export interface FrameRecord {
  /** The longest time with no new decoded frame, in ms. */
  longestStallMs: number
  /** Freezes Chromium counted (inbound-rtp `freezeCount`) while recording, and their total length in ms. */
  freezes: number
  freezesMs: number
  /** The longest freeze Chromium reported, in ms, to the resolution of one sample (when freezes came one per sample). */
  longestFreezeMs: number
  /** When (ms after the start) each freeze was reported, and when the frame width first changed. */
  freezesAtMs: number[]
  widthChangedAtMs: number | undefined
  framesDecoded: number
  /** Every frame width seen, in order of first appearance. */
  widths: number[]
  durationMs: number
}

/** Stops the recorder and summarizes what it saw. */
export async function stopFrameRecorder(page: Page): Promise<FrameRecord> {
  const samples = (await page.evaluate(`(() => {
    const recorder = globalThis.__frameRecorder
    clearInterval(recorder.timer)
    return recorder.samples
  })()`)) as [number, number, number, number, number][]
  let longestStallMs = 0
  let lastChange = samples[0]?.[0] ?? 0
  let lastCount = samples[0]?.[1] ?? 0
  const widths: number[] = []
  let longestFreezeMs = 0
  const freezesAtMs: number[] = []
  let widthChangedAtMs: number | undefined
  const start = samples[0]?.[0] ?? 0
  for (let i = 1; i < samples.length; i++) {
    const [at, , width, freezes, freezeSeconds] = samples[i]!
    const [, , widthBefore, freezesBefore, freezeSecondsBefore] = samples[i - 1]!
    if (freezes > freezesBefore) {
      longestFreezeMs = Math.max(longestFreezeMs, ((freezeSeconds - freezeSecondsBefore) * 1000) / (freezes - freezesBefore))
      freezesAtMs.push(Math.round(at - start))
    }
    if (widthChangedAtMs === undefined && width !== widthBefore) widthChangedAtMs = Math.round(at - start)
  }
  for (const [at, count, width] of samples) {
    if (count !== lastCount) {
      lastChange = at
      lastCount = count
    }
    longestStallMs = Math.max(longestStallMs, at - lastChange)
    if (width > 0 && !widths.includes(width)) widths.push(width)
  }
  const first = samples[0]
  const last = samples.at(-1)
  return {
    longestStallMs,
    freezes: first !== undefined && last !== undefined ? last[3] - first[3] : 0,
    freezesMs: first !== undefined && last !== undefined ? (last[4] - first[4]) * 1000 : 0,
    longestFreezeMs,
    freezesAtMs,
    widthChangedAtMs,
    framesDecoded: first !== undefined && last !== undefined ? last[1] - first[1] : 0,
    widths,
    durationMs: first !== undefined && last !== undefined ? last[0] - first[0] : 0,
  }
}

/** The page's side of its selected ICE candidate pair, `ip:port`: its flow at the proxy. */
export async function localAddress(page: Page): Promise<string | undefined> {
  return ((await page.evaluate(`(async () => {
    const c = globalThis.conclave
    const pc = (c.meeting && c.meeting.pc) || (c.session && c.session.pc)
    const report = await pc.getStats()
    let pair
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId)
    })
    const local = pair && report.get(pair.localCandidateId)
    return local ? local.address + ':' + local.port : null
  })()`)) as string | null) ?? undefined
}
