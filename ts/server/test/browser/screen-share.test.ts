// Screen share with real Chromium pages through the real server and media addon: a second video
// track published by renegotiation with source `screen`, stopped the same way, and refused
// without the `screen` grant. The display source is Chromium's own fake screen
// (--use-fake-device-for-media-stream makes getDisplayMedia return an 800x450 capture headless).

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import type { GrantsInput, Role } from '@conclave/protocol'
import { accessToken } from '../support/control-plane.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { expectMediaFlowing, joinMeeting, launchBrowser, startServer } from './harness.js'

const secret = 'screen-share-browser-secret-0123456789'

function token(room: string, identity: string, role: Role = 'guest', grants: GrantsInput = {}) {
  return accessToken(secret, { room, identity, name: identity, role, grants })
}

/** What a page records about remote tracks, from the moment `recordTracks` ran. */
interface TrackLog {
  added: { trackId: string; participantId: string; source?: string; mid: string }[]
  ended: { trackId: string; participantId: string; source?: string }[]
  /** Date.now() when the first frame of a screen track was decoded, by mid. */
  firstScreenFrameAt: Record<string, number>
}

/** Starts recording track events and, in the page itself (no round trips), when screen frames first decode. */
async function recordTracks(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const meeting = globalThis.conclave.meeting
    const log = { added: [], ended: [], firstScreenFrameAt: {} }
    globalThis.trackLog = log
    meeting.on('track', ({ trackId, participantId, source, mid }) => log.added.push({ trackId, participantId, source, mid }))
    meeting.on('track-ended', (ended) => log.ended.push(ended))
    setInterval(async () => {
      const screenMids = log.added.filter((t) => t.source === 'screen').map((t) => t.mid)
      if (screenMids.every((mid) => log.firstScreenFrameAt[mid] !== undefined)) return
      const report = await meeting.pc.getStats()
      report.forEach((stat) => {
        if (stat.type !== 'inbound-rtp' || !screenMids.includes(stat.mid) || log.firstScreenFrameAt[stat.mid] !== undefined) return
        if ((stat.framesDecoded || 0) > 0) log.firstScreenFrameAt[stat.mid] = Date.now()
      })
    }, 10)
  })()`)
}

function trackLog(page: Page): Promise<TrackLog> {
  return page.evaluate('globalThis.trackLog') as Promise<TrackLog>
}

interface VideoInbound {
  framesDecoded: number
  frameWidth: number
  frameHeight: number
}

/** Inbound video by receive mid. */
async function videoByMid(page: Page): Promise<Record<string, VideoInbound>> {
  return (await page.evaluate(`(async () => {
    const out = {}
    const report = await globalThis.conclave.meeting.pc.getStats()
    report.forEach((stat) => {
      if (stat.type === 'inbound-rtp' && stat.kind === 'video' && stat.mid !== undefined) {
        out[stat.mid] = { framesDecoded: stat.framesDecoded || 0, frameWidth: stat.frameWidth || 0, frameHeight: stat.frameHeight || 0 }
      }
    })
    return out
  })()`)) as Record<string, VideoInbound>
}

function participantIdOf(page: Page): Promise<string> {
  return page.evaluate('globalThis.conclave.meeting.participantId') as Promise<string>
}

/** Starts sharing on `page`; resolves with Date.now() in the page just before the call. */
async function startScreenShare(page: Page): Promise<{ startedAt: number; trackId: string }> {
  return (await page.evaluate(`(async () => {
    const startedAt = Date.now()
    const track = await globalThis.conclave.meeting.startScreenShare()
    return { startedAt, trackId: track.id }
  })()`)) as { startedAt: number; trackId: string }
}

/** Waits until `viewer` has a screen track from `presenterId` other than `except`, decoding the fake screen's 800x450. */
async function expectScreenDecoded(viewer: Page, presenterId: string, except: string[] = []) {
  const screen = await eventually(
    'a screen track to be added',
    async () => {
      const log = await trackLog(viewer)
      return log.added.find((track) => track.source === 'screen' && track.participantId === presenterId && !except.includes(track.trackId))
    },
    { timeoutMs: 20_000 },
  )
  const first = await eventually(
    'the screen to decode at its own resolution',
    async () => {
      const video = (await videoByMid(viewer))[screen.mid]
      return video !== undefined && video.framesDecoded > 0 && video.frameWidth === 800 && video.frameHeight === 450 ? video : undefined
    },
    { timeoutMs: 20_000 },
  )
  await eventually(
    'the screen to keep decoding',
    async () => {
      const now = await videoByMid(viewer)
      if ((now[screen.mid]?.framesDecoded ?? 0) > first.framesDecoded + 5) return true
      throw new Error(`inbound video by mid ${JSON.stringify(now)}, the screen on ${screen.mid}`)
    },
    { timeoutMs: 15_000 },
  )
  return screen
}

/** Resolves once the frames decoded on `mid` have not moved for a whole second. */
async function expectStopped(page: Page, mid: string, what: string): Promise<void> {
  const frames = async () => (await videoByMid(page))[mid]?.framesDecoded ?? 0
  let last = { at: Date.now(), frames: await frames() }
  await eventually(
    what,
    async () => {
      const now = await frames()
      if (now !== last.frames) last = { at: Date.now(), frames: now }
      return Date.now() - last.at >= 1000
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  )
}

/** Resolves once the frames decoded on `mid` went up. */
async function expectRising(page: Page, mid: string, what: string): Promise<void> {
  const first = (await videoByMid(page))[mid]?.framesDecoded ?? 0
  await eventually(what, async () => ((await videoByMid(page))[mid]?.framesDecoded ?? 0) > first + 10, { timeoutMs: 10_000 })
}

describe('screen share in Chromium', { skip: nativeAddonProblem, timeout: 420_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('a screen share appears for the others as its own track and tile, and disappears when stopped', { timeout: 180_000 }, async (t) => {
    const server = await startServer({ jwtSecret: secret })
    try {
      const ada = await joinMeeting(browser, server, 'share', 'Ada', await token('share', 'ada', 'host'))
      const bob = await joinMeeting(browser, server, 'share', 'Bob', await token('share', 'bob'))
      await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')])
      await recordTracks(bob)
      const adaId = await participantIdOf(ada)
      const cameraMid = await bobCameraMid(bob, adaId)
      assert.ok(cameraMid !== undefined, "Bob receives Ada's camera")

      const { startedAt } = await startScreenShare(ada)
      const screen = await expectScreenDecoded(bob, adaId)
      assert.notEqual(screen.mid, cameraMid, 'the screen comes on an m-line of its own')
      const firstFrameAt = (await eventually('the first screen frame time', async () => (await trackLog(bob)).firstScreenFrameAt[screen.mid]))
      t.diagnostic(`startScreenShare() to the first decoded frame at the other page: ${firstFrameAt - startedAt} ms`)
      assert.equal(await bob.evaluate('globalThis.conclave.meeting.presenter'), adaId, 'Ada is the presenter')
      await bob.waitForSelector(`figure.screen[data-track-id="${screen.trackId}"]`, { timeout: 5_000 })

      await ada.evaluate('globalThis.conclave.meeting.stopScreenShare()')
      await eventually(
        'Bob to hear that the screen ended',
        async () => (await trackLog(bob)).ended.some((ended) => ended.trackId === screen.trackId && ended.source === 'screen'),
        { timeoutMs: 20_000 },
      )
      await expectStopped(bob, screen.mid, 'the screen to stop arriving')
      await expectRising(bob, cameraMid, "Ada's camera to keep arriving")
      assert.equal(await bob.$(`figure.screen[data-track-id="${screen.trackId}"]`), null, 'the screen tile is gone')
      assert.equal(await bob.evaluate('globalThis.conclave.meeting.presenter'), undefined, 'no one presents')

      // Sharing again reuses the stopped m-line in Ada's offer (a new mid on the same index).
      await startScreenShare(ada)
      const again = await expectScreenDecoded(bob, adaId, [screen.trackId])
      // The browser's "stop sharing" ends the track (simulated here: headless Chromium has no such button).
      await ada.evaluate('globalThis.conclave.meeting.screenShare.dispatchEvent(new Event("ended"))')
      await eventually('Bob to hear that the second screen ended', async () => (await trackLog(bob)).ended.some((ended) => ended.trackId === again.trackId), {
        timeoutMs: 20_000,
      })
      await expectStopped(bob, again.mid, 'the second screen to stop arriving')
      assert.equal(await ada.evaluate('globalThis.conclave.meeting.screenShare'), undefined)
      await Promise.all([ada.close(), bob.close()])
    } finally {
      await server.close()
    }
  })

  test('a guest without the screen grant is refused with forbidden and nothing is forwarded', { timeout: 90_000 }, async () => {
    const server = await startServer({ jwtSecret: secret })
    try {
      const host = await joinMeeting(browser, server, 'no-screen', 'Host', await token('no-screen', 'host', 'host'))
      const guest = await joinMeeting(browser, server, 'no-screen', 'Guest', await token('no-screen', 'guest', 'guest', { canPublishSources: ['camera', 'microphone'] }))
      await Promise.all([expectMediaFlowing(host, 'the host'), expectMediaFlowing(guest, 'the guest')])
      await recordTracks(host)
      assert.equal(await guest.evaluate('document.querySelector("#share-screen").hidden'), true, 'the page offers no screen share')

      const code = await guest.evaluate('globalThis.conclave.meeting.startScreenShare().then(() => "shared", (error) => error.code)')
      assert.equal(code, 'forbidden')
      assert.equal(await guest.evaluate('globalThis.conclave.meeting.screenShare'), undefined)
      const sending = await guest.evaluate(`globalThis.conclave.meeting.pc.getTransceivers()
        .filter((t) => !t.stopped && t.currentDirection !== 'stopped' && t.sender.track !== null && t.sender.track.kind === 'video').length`)
      assert.equal(sending, 1, 'only the camera is sent')

      // The guest still negotiates: it receives the host's screen share.
      await recordTracks(guest)
      await startScreenShare(host)
      await expectScreenDecoded(guest, await participantIdOf(host))
      const engineTracks = (await server.media.stats()).tracks
      assert.equal(engineTracks, 5, 'two cameras, two microphones and one screen')
      const hostLog = await trackLog(host)
      assert.ok(!hostLog.added.some((track) => track.source === 'screen'), `the host received no screen: ${JSON.stringify(hostLog.added)}`)
      await Promise.all([host.close(), guest.close()])
    } finally {
      await server.close()
    }
  })

  test('glare: a screen share offered while a server offer is held is refused, rolled back and offered again', { timeout: 180_000 }, async (t) => {
    const server = await startServer({ jwtSecret: secret })
    const serverOffers = { serverOffers: '1' }
    try {
      const ada = await joinMeeting(browser, server, 'glare', 'Ada', await token('glare', 'ada', 'host'), serverOffers)
      const bob = await joinMeeting(browser, server, 'glare', 'Bob', await token('glare', 'bob'), serverOffers)
      // Each receives the other on m-lines the server offered: no recvonly transceivers of their own.
      await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')])
      const adaId = await participantIdOf(ada)
      assert.ok((await negotiationLog(bob)).some((entry) => entry.step === 'answer-sent'), 'Bob answered a server offer')
      await recordTracks(ada)
      await recordTracks(bob)
      await recordFirstFrames(ada)

      // Cy's tracks need new m-lines at Ada: the server offers them, and Ada holds that offer.
      await ada.evaluate('void (globalThis.conclave.meeting.serverOfferHold = new Promise((release) => { globalThis.releaseServerOffers = release }))')
      const cy = await joinMeeting(browser, server, 'glare', 'Cy', await token('glare', 'cy'), serverOffers)
      await recordTracks(cy)
      const cyId = await participantIdOf(cy)
      await eventually('the server offer to reach Ada', async () => (await negotiationLog(ada)).some((entry) => entry.step === 'server-offer'), { timeoutMs: 20_000 })

      // Ada's own offer crosses the held one: the server, impolite, refuses it with glare.
      await ada.evaluate('void globalThis.conclave.meeting.startScreenShare().then(() => "shared", (error) => error.code ?? String(error)).then((outcome) => { globalThis.sharing = outcome })')
      await eventually('glare at Ada', async () => (await negotiationLog(ada)).some((entry) => entry.step === 'glare'), { timeoutMs: 20_000 })
      const releasedAt = (await ada.evaluate('(() => { const at = Date.now(); globalThis.releaseServerOffers(); return at })()')) as number

      const shared = await eventually(
        'the screen share to be negotiated',
        async () => {
          const outcome = await ada.evaluate('globalThis.sharing')
          if (outcome === undefined) throw new Error(`Ada: ${(await negotiationLog(ada)).map((entry) => entry.step).join(' ')}`)
          return outcome
        },
        { timeoutMs: 20_000 },
      )
      assert.equal(shared, 'shared')
      const steps = (await negotiationLog(ada)).map((entry) => entry.step)
      const glare = steps.indexOf('glare')
      const rollback = steps.indexOf('rollback')
      assert.ok(glare >= 0 && rollback > glare, `Ada rolled back her offer after glare: ${steps.join(' ')}`)
      assert.ok(steps.indexOf('answer-sent', rollback) > rollback, `Ada answered the server offer: ${steps.join(' ')}`)
      assert.ok(steps.lastIndexOf('offer-sent') > rollback, `Ada offered again: ${steps.join(' ')}`)

      const cyVideo = await eventually(
        "Cy's video to reach Ada",
        async () => (await trackLog(ada)).added.find((track) => track.participantId === cyId && track.mid !== undefined && track.source === 'camera'),
        { timeoutMs: 20_000 },
      )
      await expectRising(ada, cyVideo.mid, "Ada to decode Cy's video")
      const [bobScreen, cyScreen] = await Promise.all([expectScreenDecoded(bob, adaId), expectScreenDecoded(cy, adaId)])
      const firstFrames = await Promise.all([
        eventually('Ada to time Cy', async () => (await firstFramesAt(ada))[cyVideo.mid]),
        eventually('Bob to time the screen', async () => (await trackLog(bob)).firstScreenFrameAt[bobScreen.mid]),
        eventually('Cy to time the screen', async () => (await trackLog(cy)).firstScreenFrameAt[cyScreen.mid]),
      ])
      t.diagnostic(`hold release to first decoded frame: Ada (Cy's camera) ${firstFrames[0] - releasedAt} ms, Bob (screen) ${firstFrames[1] - releasedAt} ms, Cy (screen) ${firstFrames[2] - releasedAt} ms; Ada: ${steps.join(' ')}`)
      await Promise.all([ada.close(), bob.close(), cy.close()])
    } finally {
      await server.close()
    }
  })
})

/** The receive mid that carries `participantId`'s camera on `page`. */
async function bobCameraMid(page: Page, participantId: string): Promise<string | undefined> {
  return (await page.evaluate(`globalThis.conclave.meeting.pc.getTransceivers()
    .filter((t) => t.mid !== null && t.receiver.track.kind === 'video')
    .map((t) => ({ mid: t.mid, sub: globalThis.conclave.meeting.subscriptionOn(t.mid) }))
    .find((entry) => entry.sub !== undefined && entry.sub.participantId === ${JSON.stringify(participantId)})?.mid`)) as string | undefined
}

/** What the page's meeting logged of its offer/answer exchanges. */
function negotiationLog(page: Page): Promise<{ step: string; at: number }[]> {
  return page.evaluate('globalThis.conclave.meeting.negotiationLog') as Promise<{ step: string; at: number }[]>
}

/** Starts recording, in the page, Date.now() when each inbound video mid first decodes a frame. */
async function recordFirstFrames(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const firstAt = {}
    globalThis.firstFramesAt = firstAt
    setInterval(async () => {
      const report = await globalThis.conclave.meeting.pc.getStats()
      report.forEach((stat) => {
        if (stat.type === 'inbound-rtp' && stat.kind === 'video' && stat.mid !== undefined && firstAt[stat.mid] === undefined && (stat.framesDecoded || 0) > 0) {
          firstAt[stat.mid] = Date.now()
        }
      })
    }, 10)
  })()`)
}

function firstFramesAt(page: Page): Promise<Record<string, number>> {
  return page.evaluate('globalThis.firstFramesAt') as Promise<Record<string, number>>
}
