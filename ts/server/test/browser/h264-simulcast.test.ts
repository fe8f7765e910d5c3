// H.264 simulcast with real Chromium: a member publishes three H.264 layers and each subscriber
// gets the one that fits the size it draws the video at, as with VP8.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import type { ConclaveServer } from '../../src/server.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { launchBrowser, startServer } from './harness.js'
import { joinMeetingWith, receivedVideo, sentLayers } from './media-probes.js'

/** The codec of each video encoding `page` sends, e.g. `video/H264`. */
async function sentMimeTypes(page: Page): Promise<string[]> {
  return (await page.evaluate(`(async () => {
    const stats = await globalThis.conclave.meeting.pc.getStats()
    const types = []
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.codecId) types.push(stats.get(s.codecId).mimeType)
    })
    return types
  })()`)) as string[]
}

describe('H.264 simulcast in Chromium', { skip: nativeAddonProblem, timeout: 120_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('a small video gets the low H.264 layer and a large one a high layer, both decoding', { timeout: 60_000 }, async () => {
    const server: ConclaveServer = await startServer()
    try {
      const caster = await joinMeetingWith(browser, server, 'h264', 'Caster', { simulcast: true, codec: 'H264' })
      const layers = await eventually(
        'the publisher to send at least two H.264 layers, the top one >= 640 wide',
        async () => {
          const sending = (await sentLayers(caster)).filter((layer) => layer.frameWidth > 0 && layer.framesPerSecond > 0)
          const mimeTypes = await sentMimeTypes(caster)
          // A publisher whose uplink estimate is still low pauses its top encoding: two layers
          // already tell a small video from a large one.
          const widest = Math.max(0, ...sending.map((layer) => layer.frameWidth))
          if (sending.length < 2 || widest < 640 || !mimeTypes.every((type) => type === 'video/H264')) throw new Error(`sent ${JSON.stringify({ sending, mimeTypes })}`)
          return [...sending].sort((a, b) => a.frameWidth - b.frameWidth)
        },
        { timeoutMs: 20_000 },
      )
      const [low] = layers
      assert.ok(low !== undefined)

      const joinedAt = Date.now()
      const small = await joinMeetingWith(browser, server, 'h264', 'Small', { remoteVideoSize: { width: 160, height: 90 } })
      const large = await joinMeetingWith(browser, server, 'h264', 'Large', { remoteVideoSize: { width: 1280, height: 720 } })
      const firstFrame = async (page: Page, who: string, fits: (width: number) => boolean, what: string) =>
        eventually(
          `${who} to decode ${what} in H.264`,
          async () => {
            const video = await receivedVideo(page, 'Caster')
            if (video === undefined || video.framesDecoded === 0 || video.mimeType !== 'video/H264' || !fits(video.frameWidth)) throw new Error(JSON.stringify(video))
            return { video, afterMs: Date.now() - joinedAt }
          },
          { timeoutMs: 15_000 },
        )
      const [smallFirst, largeFirst] = await Promise.all([
        firstFrame(small, 'Small', (width) => width > 0 && width <= low.frameWidth, `the low layer (<= ${low.frameWidth} wide)`),
        firstFrame(large, 'Large', (width) => width >= 640, 'a high layer (>= 640 wide)'),
      ])

      // Frames keep coming on both: decoded counts grow well past the first frame's. The layer may
      // change meanwhile (a loaded publisher pauses its top encoding), so widths are only printed.
      const [smallLater, largeLater] = await Promise.all(
        [
          [small, 'Small', smallFirst.video.framesDecoded],
          [large, 'Large', largeFirst.video.framesDecoded],
        ].map(([page, who, first]) =>
          eventually(
            `${who as string} to keep decoding`,
            async () => {
              const video = await receivedVideo(page as Page, 'Caster')
              if (video === undefined || video.framesDecoded < (first as number) + 30) throw new Error(JSON.stringify({ video, sent: await sentLayers(caster) }))
              return video
            },
            { timeoutMs: 10_000 },
          ),
        ),
      )
      console.log(
        `H.264 simulcast: sent ${layers.map((layer) => `${layer.frameWidth}x${layer.frameHeight}`).join(', ')}; ` +
          `small got ${smallFirst.video.frameWidth}x${smallFirst.video.frameHeight} (first frame ${smallFirst.afterMs} ms after joining began), ` +
          `large got ${largeFirst.video.frameWidth}x${largeFirst.video.frameHeight} (${largeFirst.afterMs} ms); ` +
          `30+ frames later small ${smallLater?.frameWidth} wide, large ${largeLater?.frameWidth} wide`,
      )
      await Promise.all([caster.close(), small.close(), large.close()])
    } finally {
      await server.close()
    }
  })
})
