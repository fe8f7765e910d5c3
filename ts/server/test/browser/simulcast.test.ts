// Simulcast with real Chromium: a meeting member publishes three layers and each subscriber gets
// the layer that fits the size it draws the video at, switching without a freeze when it grows.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import type { MediaEvent } from '../../src/media/media-engine.js'
import type { ConclaveServer } from '../../src/server.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { launchBrowser, startServer } from './harness.js'
import {
  joinMeetingWith,
  receivedVideo,
  sentLayers,
  setRemoteVideoSize,
  startFrameRecorder,
  stopFrameRecorder,
} from './media-probes.js'

describe('simulcast in Chromium', { skip: nativeAddonProblem, timeout: 120_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  /** The publisher's three layers, lowest first, once Chromium sends them all. */
  async function threeLayers(publisher: Page) {
    return eventually(
      'the publisher to send three layers',
      async () => {
        const layers = await sentLayers(publisher)
        const sending = layers.filter((layer) => layer.frameWidth > 0 && layer.framesPerSecond > 0)
        if (sending.length !== 3) throw new Error(`sent ${JSON.stringify(layers)}`)
        return sending
      },
      { timeoutMs: 15_000 },
    )
  }

  async function frameWidthFrom(page: Page, who: string, predicate: (width: number) => boolean, what: string, timeoutMs = 10_000) {
    return eventually(
      `${who} to receive ${what}`,
      async () => {
        const video = await receivedVideo(page, 'Caster')
        if (video === undefined || video.framesDecoded === 0 || !predicate(video.frameWidth)) throw new Error(JSON.stringify(video))
        return video
      },
      { timeoutMs },
    )
  }

  test('each subscriber gets the layer its video size needs; a grown video switches up without a freeze', { timeout: 60_000 }, async () => {
    const server: ConclaveServer = await startServer()
    const events: MediaEvent[] = []
    server.media.onEvents((batch) => events.push(...batch))
    try {
      const caster = await joinMeetingWith(browser, server, 'layers', 'Caster', { simulcast: true })
      const [low, mid, high] = await threeLayers(caster)
      assert.ok(low !== undefined && mid !== undefined && high !== undefined)
      assert.deepEqual([low.frameWidth, mid.frameWidth, high.frameWidth], [320, 640, 1280], 'quarter, half and full of 1280x720')

      const small = await joinMeetingWith(browser, server, 'layers', 'Small', { remoteVideoSize: { width: 160, height: 90 } })
      const large = await joinMeetingWith(browser, server, 'layers', 'Large', { remoteVideoSize: { width: 1280, height: 720 } })
      await frameWidthFrom(small, 'Small', (width) => width <= low.frameWidth, `the low layer (<= ${low.frameWidth} wide)`)
      await frameWidthFrom(large, 'Large', (width) => width >= 640, 'a high layer (>= 640 wide)')

      await startFrameRecorder(small, 'Caster')
      const grownAt = Date.now()
      await setRemoteVideoSize(small, { width: 1280, height: 720 })
      await frameWidthFrom(small, 'Small, grown,', (width) => width >= 640, 'a high layer', 8_000)
      const switchMs = Date.now() - grownAt
      // Keep watching a little after the switch: a freeze often shows right after the new layer starts.
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const record = await stopFrameRecorder(small)
      const line =
        `grown video: high layer after ${switchMs} ms (width changed ${record.widthChangedAtMs} ms into the record); ` +
        `longest decode stall ${record.longestStallMs.toFixed(0)} ms over ${record.durationMs.toFixed(0)} ms, widths ${record.widths.join(' -> ')}; ` +
        `${record.freezes} freezes, ${record.freezesMs.toFixed(0)} ms in all, longest ${record.longestFreezeMs.toFixed(0)} ms, at ${record.freezesAtMs.join(', ')} ms`
      console.log(line)
      // Decoding must not stop for a second. Chromium's render freezes are printed, not asserted:
      // on a loaded two-core machine its renderer alone can lag a 720p keyframe past a second.
      assert.ok(record.longestStallMs < 1000, line)
      assert.ok(
        events.some((event) => event.type === 'layer-switched'),
        'the engine reported its layer switches',
      )
      await Promise.all([caster.close(), small.close(), large.close()])
    } finally {
      await server.close()
    }
  })
})
