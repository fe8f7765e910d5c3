// SVC with real Chromium: a member publishes one VP9 (then AV1) encoding in L3T3_KEY with the
// Dependency Descriptor, and each subscriber decodes the spatial layer that fits the size it
// draws the video at, while frames keep coming.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import type { MediaEvent } from '../../src/media/media-engine.js'
import type { ConclaveServer } from '../../src/server.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { launchBrowser, startServer } from './harness.js'
import { joinMeetingWith, receivedVideo } from './media-probes.js'

/** What the publisher's one video encoding reports. */
interface SentSvc {
  codec: string
  scalabilityMode: string
  frameWidth: number
  framesPerSecond: number
}

async function sentSvc(page: Page): Promise<SentSvc | undefined> {
  return (await page.evaluate(`(async () => {
    const pc = globalThis.conclave.meeting.pc
    const report = await pc.getStats()
    let sent
    report.forEach((s) => {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') return
      const codec = s.codecId && report.get(s.codecId)
      sent = {
        codec: codec ? codec.mimeType : '',
        scalabilityMode: s.scalabilityMode || '',
        frameWidth: s.frameWidth || 0,
        framesPerSecond: s.framesPerSecond || 0,
      }
    })
    return sent
  })()`)) as SentSvc | undefined
}

describe('SVC in Chromium', { skip: nativeAddonProblem, timeout: 360_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  async function decodedFrom(page: Page, who: string, predicate: (width: number) => boolean, what: string, timeoutMs = 30_000) {
    return eventually(
      `${who} to decode ${what}`,
      async () => {
        const video = await receivedVideo(page, 'Caster')
        if (video === undefined || video.framesDecoded === 0 || !predicate(video.frameWidth)) throw new Error(JSON.stringify(video))
        return video
      },
      { timeoutMs },
    )
  }

  async function subscribersGetTheirLayer(codec: 'VP9' | 'AV1') {
    const server: ConclaveServer = await startServer()
    const events: MediaEvent[] = []
    server.media.onEvents((batch) => events.push(...batch))
    try {
      const caster = await joinMeetingWith(browser, server, `svc-${codec}`, 'Caster', { svc: codec })
      // Chromium turns spatial layers on as its bandwidth estimate grows; wait for the top one.
      const sent = await eventually(
        `the publisher to send ${codec} in L3T3_KEY up to 1280 wide`,
        async () => {
          const svc = await sentSvc(caster)
          if (svc === undefined || svc.frameWidth < 1280 || svc.framesPerSecond === 0) throw new Error(JSON.stringify(svc))
          return svc
        },
        { timeoutMs: 60_000 },
      )
      assert.equal(sent.codec, `video/${codec}`)
      assert.equal(sent.scalabilityMode, 'L3T3_KEY')

      const small = await joinMeetingWith(browser, server, `svc-${codec}`, 'Small', { remoteVideoSize: { width: 160, height: 90 } })
      const large = await joinMeetingWith(browser, server, `svc-${codec}`, 'Large', { remoteVideoSize: { width: 1280, height: 720 } })
      const startedAt = Date.now()
      // L3: the spatial layers are a quarter, half and all of the sent width.
      const fullWidth = sent.frameWidth
      const smallVideo = await decodedFrom(small, 'Small', (width) => width > 0 && width <= fullWidth / 4, `the lowest layer (<= ${fullWidth / 4} wide)`)
      const largeVideo = await decodedFrom(large, 'Large', (width) => width >= fullWidth / 2, `a high layer (>= ${fullWidth / 2} wide)`)
      const firstFramesMs = Date.now() - startedAt
      // Frames keep decoding on both, at their sizes.
      await new Promise((resolve) => setTimeout(resolve, 2000))
      const smallLater = await receivedVideo(small, 'Caster')
      const largeLater = await receivedVideo(large, 'Caster')
      assert.ok(smallLater !== undefined && largeLater !== undefined)
      const smallFps = ((smallLater.framesDecoded - smallVideo.framesDecoded) * 1000) / 2000
      const largeFps = ((largeLater.framesDecoded - largeVideo.framesDecoded) * 1000) / 2000
      console.log(
        `${codec} L3T3_KEY sent ${fullWidth} wide at ${sent.framesPerSecond} fps; small decodes ${smallLater.frameWidth} wide at ~${smallFps} fps, ` +
          `large ${largeLater.frameWidth} wide at ~${largeFps} fps; both decoding ${firstFramesMs} ms after joining`,
      )
      assert.ok(smallLater.framesDecoded > smallVideo.framesDecoded, 'the small subscriber keeps decoding')
      assert.ok(largeLater.framesDecoded > largeVideo.framesDecoded, 'the large subscriber keeps decoding')
      assert.ok(smallLater.frameWidth <= fullWidth / 4, `still the lowest layer: ${smallLater.frameWidth}`)
      assert.ok(
        events.some((event) => event.type === 'layer-switched'),
        'the engine chose decode targets',
      )
      await Promise.all([caster.close(), small.close(), large.close()])
    } finally {
      await server.close()
    }
  }

  test('VP9 L3T3_KEY: a small subscriber decodes the lowest spatial layer, a large one a high layer', { timeout: 170_000 }, async () => {
    await subscribersGetTheirLayer('VP9')
  })

  test('AV1 L3T3_KEY: the same by the Dependency Descriptor', { timeout: 170_000 }, async () => {
    await subscribersGetTheirLayer('AV1')
  })
})
