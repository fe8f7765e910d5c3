// Dynacast with real Chromium: simulcast encodings no subscriber needs stop at the publisher
// (its outbound-rtp for that rid stops growing) and start again when a subscriber needs them.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import type { MediaEvent } from '../../src/media/media-engine.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { type RedisServer, startRedisServer } from '../support/redis-server.js'
import { launchBrowser, startServer } from './harness.js'
import {
  joinMeetingWith,
  receivedVideo,
  sentKbps,
  sentLayers,
  setRemoteVideoSize,
  startFrameRecorder,
  stopFrameRecorder,
} from './media-probes.js'

/** Bytes the page has sent of each video encoding so far, by rid. */
async function bytesSentByRid(page: Page): Promise<Record<string, number>> {
  return (await page.evaluate(`(async () => {
    const sent = {}
    ;(await globalThis.conclave.meeting.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') sent[s.rid || ''] = s.bytesSent || 0
    })
    return sent
  })()`)) as Record<string, number>
}

/** The publisher's three simulcast encodings, once each sends frames. */
function threeLayers(caster: Page) {
  return eventually(
    'the publisher to send three layers',
    async () => {
      const sending = (await sentLayers(caster)).filter((layer) => layer.frameWidth > 0 && layer.framesPerSecond > 0)
      if (sending.length !== 3) throw new Error(JSON.stringify(sending))
      return sending
    },
    { timeoutMs: 20_000 },
  )
}

/** Resolves with the bytes sent by rid when, over 2 s, `high` sent nothing and `low` went on. */
async function highStoppedLowGoing(caster: Page, high: string, low: string): Promise<Record<string, number>> {
  const before = await bytesSentByRid(caster)
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const after = await bytesSentByRid(caster)
  if (after[high] !== before[high] || (after[low] ?? 0) <= (before[low] ?? 0)) {
    throw new Error(`sent ${JSON.stringify(before)} -> ${JSON.stringify(after)}`)
  }
  return after
}

function total(kbps: Record<string, number>): number {
  return Object.values(kbps).reduce((sum, value) => sum + value, 0)
}

describe('dynacast in Chromium', { skip: nativeAddonProblem, timeout: 150_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('encodings a small subscriber does not need stop at the publisher and resume when it grows', { timeout: 120_000 }, async () => {
    const server = await startServer()
    const events: { at: number; event: MediaEvent }[] = []
    server.media.onEvents((batch) => events.push(...batch.map((event) => ({ at: Date.now(), event }))))
    try {
      const caster = await joinMeetingWith(browser, server, 'dynacast', 'Caster', { simulcast: true })
      const layers = await threeLayers(caster)
      const [low, , high] = layers
      assert.ok(low !== undefined && high !== undefined)
      // Nobody subscribes yet, so nothing is paused: this is the uplink without dynacast.
      const withoutDynacast = await sentKbps(caster, 3000)

      const small = await joinMeetingWith(browser, server, 'dynacast', 'Small', { remoteVideoSize: { width: 160, height: 90 } })
      await eventually(
        'Small to receive the low layer',
        async () => {
          const video = await receivedVideo(small, 'Caster')
          return video !== undefined && video.framesDecoded > 0 && video.frameWidth <= low.frameWidth
        },
        { timeoutMs: 15_000 },
      )

      // The high encoding's bytesSent stays flat over 2 s: Chromium stopped encoding it.
      const paused = await eventually(
        `the publisher's ${high.rid} encoding to stop`,
        () => highStoppedLowGoing(caster, high.rid, low.rid),
        { timeoutMs: 20_000, intervalMs: 0 },
      )
      assert.ok(paused[low.rid] !== undefined)
      const pausedAt = events.find(({ event }) => event.type === 'layers-needed' && event.active.filter(Boolean).length === 1)
      assert.ok(pausedAt !== undefined, 'the engine said only one layer is needed')
      const withDynacast = await sentKbps(caster, 3000)

      // Small grows its tile: a high layer is needed again, resumes, and reaches Small.
      await startFrameRecorder(small, 'Caster')
      const grownAt = Date.now()
      await setRemoteVideoSize(small, { width: 1280, height: 720 })
      const grown = await eventually(
        'Small to receive a high layer again',
        async () => {
          const video = await receivedVideo(small, 'Caster')
          return video !== undefined && video.frameWidth > low.frameWidth ? video : undefined
        },
        { timeoutMs: 20_000 },
      )
      const resumeMs = Date.now() - grownAt
      const record = await stopFrameRecorder(small)
      const resumedEvent = events.find(({ at, event }) => at >= grownAt && event.type === 'layers-needed' && event.active.filter(Boolean).length > 1)
      assert.ok(resumedEvent !== undefined, 'the engine said a high layer is needed again')
      const afterResume = await bytesSentByRid(caster)
      const timeline = events
        .filter(({ at, event }) => at >= grownAt && (event.type === 'layers-needed' || event.type === 'layer-switched'))
        .map(({ at, event }) => `+${at - grownAt} ms ${event.type} ${event.type === 'layers-needed' ? JSON.stringify(event.active) : event.type === 'layer-switched' ? event.layer : ''}`)
      console.log(
        `dynacast: uplink ${total(withoutDynacast)} kbit/s with every layer (${JSON.stringify(withoutDynacast)}), ` +
          `${total(withDynacast)} kbit/s with only what a 160x90 subscriber needs (${JSON.stringify(withDynacast)}); ` +
          `grown tile: layers-needed after ${resumedEvent.at - grownAt} ms, ${grown.frameWidth}x${grown.frameHeight} decoded ${resumeMs} ms after the resize; ` +
          `bytes sent by rid after resuming ${JSON.stringify(afterResume)}; after the resize: ${timeline.join(', ')}; ` +
          `longest decode stall meanwhile ${record.longestStallMs.toFixed(0)} ms, widths ${record.widths.join(' -> ')}`,
      )
      assert.ok(total(withDynacast) < total(withoutDynacast), 'pausing encodings saves uplink')
      await Promise.all([caster.close(), small.close()])
    } finally {
      await server.close()
    }
  })

  describe('across two instances on one real Redis', () => {
    let redis: RedisServer

    before(async () => {
      redis = await startRedisServer()
    })

    after(async () => {
      await redis?.stop()
    })

    test("a small viewer on the other instance gets the low layer, the publisher's unneeded encodings stop, and a larger tile brings a high layer back", { timeout: 120_000 }, async () => {
      const one = await startServer({ redisUrl: redis.url, nodeId: 'dynacast-one' })
      const two = await startServer({ redisUrl: redis.url, nodeId: 'dynacast-two' })
      try {
        const caster = await joinMeetingWith(browser, one, 'dynacast-cluster', 'Caster', { simulcast: true })
        const layers = await threeLayers(caster)
        const [low, , high] = layers
        assert.ok(low !== undefined && high !== undefined)
        const small = await joinMeetingWith(browser, two, 'dynacast-cluster', 'Small', { remoteVideoSize: { width: 160, height: 90 } })
        const smallStarted = Date.now()
        await eventually(
          'Small (instance 2) to receive the low layer',
          async () => {
            const video = await receivedVideo(small, 'Caster')
            if (video === undefined || video.framesDecoded === 0 || video.frameWidth > low.frameWidth) throw new Error(JSON.stringify(video))
            return video
          },
          { timeoutMs: 20_000 },
        )
        const firstFrameMs = Date.now() - smallStarted
        const stopped = await eventually(
          `the publisher's ${high.rid} encoding to stop (only instance 2's small viewer watches)`,
          () => highStoppedLowGoing(caster, high.rid, low.rid),
          { timeoutMs: 30_000, intervalMs: 0 },
        )
        const stoppedMs = Date.now() - smallStarted
        const withDynacast = await sentKbps(caster, 3000)

        const grownAt = Date.now()
        await setRemoteVideoSize(small, { width: 1280, height: 720 })
        const grown = await eventually(
          'Small to receive a high layer again across the link',
          async () => {
            const video = await receivedVideo(small, 'Caster')
            return video !== undefined && video.frameWidth > low.frameWidth ? video : undefined
          },
          { timeoutMs: 30_000 },
        )
        console.log(
          `dynacast across instances: Small's first frame ${firstFrameMs} ms after joining instance 2; ${high.rid} stopped ${stoppedMs} ms after (${JSON.stringify(stopped)}); ` +
            `uplink then ${total(withDynacast)} kbit/s (${JSON.stringify(withDynacast)}); ${grown.frameWidth}x${grown.frameHeight} decoded ${Date.now() - grownAt} ms after the resize`,
        )
        await Promise.all([caster.close(), small.close()])
      } finally {
        await Promise.all([one.close(), two.close()])
      }
    })
  })
})
