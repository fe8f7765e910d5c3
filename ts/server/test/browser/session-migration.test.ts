// Real Chromium, two server instances on one real Redis: a member on instance 1 whose WebSocket
// drops reconnects through instance 2 (as a load balancer without affinity would send it), its
// session moves there, the page makes a new peer connection without reloading, and it and a
// member on instance 1 decode each other's video again, across the relay link.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { ParticipantList, type Role } from '@conclave/protocol'
import type { ConclaveServer } from '../../src/server.js'
import { accessToken } from '../support/control-plane.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { type RedisServer, startRedisServer } from '../support/redis-server.js'
import { expectMediaFlowing, joinMeeting, launchBrowser, startServer } from './harness.js'

const secret = 'session-migration-browser-secret-0123456789'
const apiKey = 'session-migration-browser-api-key'

/**
 * Installed before the page's scripts: records every WebSocket the page opens (so the test can
 * drop one) and, once `redirect` is set to a server URL, opens new ones to that server instead:
 * the load balancer sending the reconnect to the other instance.
 */
const SIGNALING_HOOK = `(() => {
  const Native = globalThis.WebSocket
  const hook = { sockets: [], redirect: undefined }
  globalThis.__signaling = hook
  globalThis.WebSocket = class extends Native {
    constructor(url, protocols) {
      const target = new URL(url)
      if (hook.redirect !== undefined) target.host = new URL(hook.redirect).host
      super(target.href, protocols)
      hook.sockets.push(this)
    }
  }
})()`

/** Records what the page's meeting emits, with when (Date.now(), comparable with the test's clock). */
const EVENT_LOG = `(() => {
  const meeting = globalThis.conclave.meeting
  const log = []
  globalThis.__events = log
  for (const type of ['reconnecting', 'reconnected', 'ended', 'closed', 'participant-updated', 'participant-left', 'track-ended']) {
    meeting.on(type, (event) => log.push({ type, at: Date.now(), event: JSON.parse(JSON.stringify(event ?? null)) }))
  }
})()`

interface Logged {
  type: string
  at: number
  event: Record<string, unknown> & { participantId?: string; trackId?: string; state?: string; afterMs?: number; mediaRestarted?: boolean }
}

const events = async (page: Page, type: string): Promise<Logged[]> => ((await page.evaluate('globalThis.__events')) as Logged[]).filter((entry) => entry.type === type)
const participantIdOf = async (page: Page): Promise<string> => String(await page.evaluate('globalThis.conclave.meeting.participantId'))
const dropSignaling = (page: Page) => page.evaluate('globalThis.__signaling.sockets.filter((s) => s.readyState === 1).forEach((s) => s.close())')

/** Video frames `page` decoded from `participantId`'s tracks other than `except` (of `source` only, if given), by the m-lines that carry them now. */
async function framesFrom(page: Page, participantId: string, except: readonly string[] = [], source?: string): Promise<number> {
  return (await page.evaluate(`(async () => {
    const meeting = globalThis.conclave.meeting
    let frames = 0
    ;(await meeting.pc.getStats()).forEach((stat) => {
      if (stat.type !== 'inbound-rtp' || stat.kind !== 'video' || !stat.mid) return
      const carried = meeting.subscriptionOn(stat.mid)
      if (!carried || carried.participantId !== ${JSON.stringify(participantId)} || ${JSON.stringify(except)}.includes(carried.trackId)) return
      if (${JSON.stringify(source ?? null)} === null || meeting.tracks.get(carried.trackId)?.source === ${JSON.stringify(source ?? null)}) frames += stat.framesDecoded || 0
    })
    return frames
  })()`)) as number
}

/** Waits until `page` decodes video from `participantId` (tracks other than `except`) and keeps decoding it; resolves when it first did. */
async function decodesVideoOf(page: Page, participantId: string, who: string, except: readonly string[] = [], source?: string): Promise<number> {
  const first = await eventually(`${who} to decode`, async () => ((await framesFrom(page, participantId, except, source)) > 0 ? Date.now() : undefined), { timeoutMs: 30_000, intervalMs: 25 })
  const start = await framesFrom(page, participantId, except, source)
  await eventually(`${who} to keep decoding`, async () => (await framesFrom(page, participantId, except, source)) >= start + 5, { timeoutMs: 15_000 })
  return first
}

/** Shares a canvas that keeps changing as Ada's screen. */
const SHARE_CANVAS = `(async () => {
  const canvas = Object.assign(document.createElement('canvas'), { width: 640, height: 360 })
  const context = canvas.getContext('2d')
  let frame = 0
  setInterval(() => {
    context.fillStyle = frame++ % 2 === 0 ? '#204080' : '#802040'
    context.fillRect(0, 0, canvas.width, canvas.height)
    context.fillStyle = '#ffffff'
    context.fillText(String(frame), 20 + (frame % 500), 180)
  }, 50)
  await globalThis.conclave.meeting.startScreenShare({ stream: canvas.captureStream(20) })
})()`

describe('a session moves to the instance its reconnect reaches', { skip: nativeAddonProblem, timeout: 180_000 }, () => {
  let browser: Browser
  let redis: RedisServer

  before(async () => {
    ;[browser, redis] = await Promise.all([launchBrowser(), startRedisServer()])
  })

  after(async () => {
    await browser?.close()
    await redis?.stop()
  })

  test('a member of instance 1 resumes through instance 2 and media flows both ways again', { timeout: 150_000 }, async () => {
    const options = { jwtSecret: secret, apiKey, redisUrl: redis.url }
    const one: ConclaveServer = await startServer({ ...options, nodeId: 'move-one' })
    const two: ConclaveServer = await startServer({ ...options, nodeId: 'move-two' })
    const token = (identity: string, role: Role) => accessToken(secret, { room: 'moving', identity, name: identity, role })
    try {
      const ada = await browser.newPage()
      await ada.evaluateOnNewDocument(SIGNALING_HOOK)
      await ada.goto(`${one.url}/?token=${encodeURIComponent(await token('ada', 'host'))}`)
      await ada.type('#room', 'moving')
      await ada.type('#name', 'Ada')
      await ada.click('#join')
      await ada.waitForFunction('globalThis.conclave.meeting !== undefined', { timeout: 30_000, polling: 50 })
      const bob = await joinMeeting(browser, one, 'moving', 'Bob', await token('bob', 'guest'))
      await Promise.all([ada.evaluate(EVENT_LOG), bob.evaluate(EVENT_LOG)])
      const adaId = await participantIdOf(ada)
      const bobId = await participantIdOf(bob)
      await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')])
      // Ada shares her screen and turns her microphone off (the track, not a host's mute).
      await ada.evaluate(SHARE_CANVAS)
      await ada.evaluate('globalThis.conclave.meeting.pc.getSenders().find((sender) => sender.track?.kind === "audio").track.enabled = false')
      await decodesVideoOf(bob, adaId, "Bob to decode Ada's screen", [], 'screen')
      const adaOldTracks = (await bob.evaluate(`[...globalThis.conclave.meeting.tracks.values()].filter((t) => t.participantId === ${JSON.stringify(adaId)}).map((t) => t.trackId)`)) as string[]
      assert.equal(adaOldTracks.length, 3, 'her microphone, camera and screen')
      // Marks this document: after the move it must be the same one (no reload).
      await ada.evaluate('globalThis.__sameDocument = true')

      // The load balancer now sends Ada's reconnect to instance 2.
      await ada.evaluate(`globalThis.__signaling.redirect = ${JSON.stringify(two.url)}`)
      const droppedAt = Date.now()
      await dropSignaling(ada)
      const [back] = await eventually('Ada to resume', async () => {
        const resumed = await events(ada, 'reconnected')
        return resumed.length > 0 ? resumed : undefined
      }, { timeoutMs: 20_000 })
      assert.equal(back?.event.mediaRestarted, true, 'she resumed with a new media session')
      assert.equal(await participantIdOf(ada), adaId, 'the same participant')
      assert.equal(await ada.evaluate('globalThis.__sameDocument === true && document.getElementById("join-form").hidden'), true, 'the page kept its meeting UI')

      const listed = ParticipantList.parse(await (await fetch(`${one.url}/v1/rooms/moving/participants`, { headers: { Authorization: `Bearer ${apiKey}` } })).json())
      assert.deepEqual(
        listed.participants.map(({ participantId, nodeId }) => ({ participantId, nodeId })).sort((a, b) => a.participantId.localeCompare(b.participantId)),
        [
          { participantId: adaId, nodeId: 'move-two' },
          { participantId: bobId, nodeId: 'move-one' },
        ].sort((a, b) => a.participantId.localeCompare(b.participantId)),
      )

      // Both decode each other's video again: Ada on her new connection, Bob from Ada's new tracks.
      const [adaDecodes, bobDecodes, screenDecodes] = await Promise.all([
        decodesVideoOf(ada, bobId, "Ada (now on instance 2) to decode Bob's video"),
        decodesVideoOf(bob, adaId, "Bob (instance 1) to decode Ada's new camera", adaOldTracks, 'camera'),
        decodesVideoOf(bob, adaId, "Bob (instance 1) to decode Ada's new screen share", adaOldTracks, 'screen'),
      ])
      assert.equal(
        await ada.evaluate('globalThis.conclave.meeting.pc.getSenders().find((sender) => sender.track?.kind === "audio").track.enabled'),
        false,
        'her new connection sends the same microphone track, still off',
      )
      await Promise.all([expectMediaFlowing(ada, 'Ada after the move'), expectMediaFlowing(bob, 'Bob after the move')])
      const oldEnded = (await events(bob, 'track-ended')).filter(({ event }) => adaOldTracks.includes(String(event.trackId)))
      assert.equal(oldEnded.length, 3, "Ada's old tracks ended for Bob")
      assert.equal((await events(bob, 'participant-left')).length, 0, 'Bob never saw Ada leave')
      await eventually('Bob to see Ada active', async () => (await events(bob, 'participant-updated')).filter(({ event }) => event.participantId === adaId).at(-1)?.event.state === 'active')
      // Instance 1 closed her old peer: Bob and the relay link are left there; instance 2 has her and the link.
      await eventually('instance 1 to hold Bob and the link', async () => (await one.media.stats()).peers === 2)
      assert.equal((await two.media.stats()).peers, 2)
      console.log(
        '# session migration: drop -> resumed on instance 2 %d ms; drop -> Ada decodes Bob %d ms; drop -> Bob decodes Ada\'s camera %d ms, her screen %d ms; old tracks ended at Bob %d ms after the drop',
        back?.event.afterMs,
        adaDecodes - droppedAt,
        bobDecodes - droppedAt,
        screenDecodes - droppedAt,
        Math.max(...oldEnded.map(({ at }) => at)) - droppedAt,
      )
      await Promise.all([ada.close(), bob.close()])
    } finally {
      await Promise.all([one.close(), two.close()])
    }
  })
})
