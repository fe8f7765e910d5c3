// Meeting control with real Chromium pages through the real server and media addon: the waiting
// room, removal, muting, and two server instances sharing one real Redis.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import WebSocket from 'ws'
import { ParticipantList, type Role } from '@conclave/protocol'
import type { ConclaveServer } from '../../src/server.js'
import { accessToken } from '../support/control-plane.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { type RedisServer, startRedisServer } from '../support/redis-server.js'
import { expectMediaFlowing, joinMeeting, launchBrowser, startServer } from './harness.js'

const secret = 'control-plane-browser-secret-0123456789'
const apiKey = 'control-plane-browser-api-key'
const api = { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' }

function token(room: string, identity: string, role: Role = 'guest') {
  return accessToken(secret, { room, identity, name: identity, role })
}

/** Opens the meeting page and clicks Join; resolves once the page says it waits or is in. */
async function openAndJoin(browser: Browser, server: ConclaveServer, room: string, name: string, jwt: string): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${server.url}/?token=${encodeURIComponent(jwt)}`)
  await page.type('#room', room)
  await page.type('#name', name)
  await page.click('#join')
  return page
}

/** Clicks the element `selector` finds, in one evaluation: the panel re-renders often, so a handle could go stale. */
async function click(page: Page, selector: string): Promise<void> {
  const script = `(() => { const node = document.querySelector(${JSON.stringify(selector)}); if (node) node.click(); return node !== null })()`
  await eventually(`${selector} to be clicked`, () => page.evaluate(script) as Promise<boolean>)
}

function participantIdOf(page: Page): Promise<string> {
  return page.evaluate('globalThis.conclave.meeting.participantId') as Promise<string>
}

/** Inbound packets by receive mid. */
async function packetsByMid(page: Page): Promise<Record<string, number>> {
  return (await page.evaluate(`(async () => {
    const out = {}
    const report = await globalThis.conclave.meeting.pc.getStats()
    report.forEach((stat) => { if (stat.type === 'inbound-rtp' && stat.mid !== undefined) out[stat.mid] = stat.packetsReceived || 0 })
    return out
  })()`)) as Record<string, number>
}

/** The receive mids on `page` that carry `participantId`'s tracks. */
async function midsOf(page: Page, participantId: string): Promise<string[]> {
  return (await page.evaluate(`globalThis.conclave.meeting.pc.getTransceivers()
    .filter((t) => t.mid !== null && globalThis.conclave.meeting.subscriptionOn(t.mid)?.participantId === ${JSON.stringify(participantId)})
    .map((t) => t.mid)`)) as string[]
}

const sum = (byMid: Record<string, number>, mids: string[]) => mids.reduce((total, mid) => total + (byMid[mid] ?? 0), 0)

/** Resolves once the packets on `mids` have not moved for a whole second. */
async function expectStopped(page: Page, mids: string[], what: string): Promise<void> {
  let last = { at: Date.now(), packets: sum(await packetsByMid(page), mids) }
  await eventually(
    what,
    async () => {
      const packets = sum(await packetsByMid(page), mids)
      if (packets !== last.packets) last = { at: Date.now(), packets }
      return Date.now() - last.at >= 1000
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  )
}

/** Resolves once the packets on `mids` went up. */
async function expectRising(page: Page, mids: string[], what: string): Promise<void> {
  const first = sum(await packetsByMid(page), mids)
  await eventually(what, async () => sum(await packetsByMid(page), mids) > first + 20, { timeoutMs: 10_000 })
}

function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.on('open', () => {
      socket.close()
      resolve(101)
    })
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      socket.terminate()
    })
    socket.on('error', reject)
  })
}

describe('meeting control in Chromium', { skip: nativeAddonProblem, timeout: 300_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('a guest admitted from the waiting room sees the meeting without reloading', { timeout: 60_000 }, async () => {
    const server = await startServer({ jwtSecret: secret, apiKey })
    try {
      const created = await fetch(`${server.url}/v1/rooms`, { method: 'POST', headers: api, body: JSON.stringify({ room: 'lobby', waitingRoom: true }) })
      assert.equal(created.status, 201)
      const host = await joinMeeting(browser, server, 'lobby', 'Host', await token('lobby', 'host', 'host'))
      const guest = await openAndJoin(browser, server, 'lobby', 'Guest', await token('lobby', 'guest'))
      await guest.waitForFunction('document.querySelector("#status").textContent.startsWith("Waiting")', { polling: 50, timeout: 10_000 })
      const url = guest.url()
      await click(host, '#waiting-list li .admit')
      await guest.waitForFunction('globalThis.conclave.meeting !== undefined', { polling: 50, timeout: 15_000 })
      assert.equal(guest.url(), url, 'the page was not reloaded')
      await Promise.all([expectMediaFlowing(guest, 'the admitted guest'), expectMediaFlowing(host, 'the host')])
      const names = await host.$$eval('#participants li .name', (nodes) => nodes.map((node) => node.textContent))
      assert.ok(names.some((name) => name?.startsWith('guest')), `the host lists ${JSON.stringify(names)}`)
      await Promise.all([host.close(), guest.close()])
    } finally {
      await server.close()
    }
  })

  test('a removed guest is disconnected and cannot rejoin with the same token', { timeout: 60_000 }, async () => {
    const server = await startServer({ jwtSecret: secret, apiKey })
    try {
      const guestToken = await token('remove', 'eve')
      const host = await joinMeeting(browser, server, 'remove', 'Host', await token('remove', 'host', 'host'))
      const guest = await joinMeeting(browser, server, 'remove', 'Eve', guestToken)
      const eveId = await participantIdOf(guest)
      await click(host, `#participants li[data-participant-id="${eveId}"] .remove`)
      await guest.waitForFunction('document.querySelector("#status").textContent.includes("removed you")', { polling: 50, timeout: 10_000 })
      assert.equal(await guest.evaluate('globalThis.conclave.meeting'), undefined)
      await eventually('Eve to be gone from the engine', async () => (await server.media.stats()).peers === 1)

      await guest.click('#join')
      await guest.waitForFunction('document.querySelector("#status").textContent.startsWith("Could not join")', { polling: 50, timeout: 10_000 })
      assert.equal(await upgradeStatus(`${server.url.replace('http', 'ws')}/ws?token=${guestToken}`), 403)
      const list = ParticipantList.parse(await (await fetch(`${server.url}/v1/rooms/remove/participants`, { headers: api })).json())
      assert.deepEqual(list.participants.map((participant) => participant.identity), ['host'])
      await Promise.all([host.close(), guest.close()])
    } finally {
      await server.close()
    }
  })

  test("a muted participant's tracks stop arriving at the others while everyone else keeps flowing, until it unmutes", { timeout: 90_000 }, async () => {
    const server = await startServer({ jwtSecret: secret, apiKey })
    try {
      const host = await joinMeeting(browser, server, 'mute', 'Host', await token('mute', 'host', 'host'))
      const loud = await joinMeeting(browser, server, 'mute', 'Loud', await token('mute', 'loud'))
      const calm = await joinMeeting(browser, server, 'mute', 'Calm', await token('mute', 'calm'))
      await expectMediaFlowing(host, 'the host', { videoStreams: 2 })
      const loudId = await participantIdOf(loud)
      const calmId = await participantIdOf(calm)
      const loudMids = await eventually('the host to receive Loud', async () => ((await midsOf(host, loudId)).length === 2 ? midsOf(host, loudId) : undefined))
      const calmMids = await midsOf(host, calmId)
      await expectRising(host, loudMids, "Loud's packets at the host")

      await click(host, `#participants li[data-participant-id="${loudId}"] .mute`)
      await loud.waitForFunction('document.querySelector("#status").textContent.includes("muted")', { polling: 50, timeout: 10_000 })
      await expectStopped(host, loudMids, "Loud's packets at the host to stop rising")
      await expectRising(host, calmMids, "Calm's packets at the host, still")

      // Its owner unmutes: the host's next answer carries it again.
      await click(loud, '#unmute')
      const backMids = await eventually('the host to receive Loud again', async () => ((await midsOf(host, loudId)).length === 2 ? midsOf(host, loudId) : undefined))
      await expectRising(host, backMids, "Loud's packets at the host after the unmute")
      await Promise.all([host.close(), loud.close(), calm.close()])
    } finally {
      await server.close()
    }
  })

  describe('two server instances on one real Redis', () => {
    let redis: RedisServer

    before(async () => {
      redis = await startRedisServer()
    })

    after(async () => {
      await redis?.stop()
    })

    test('a WebSocket meeting on instance 1 is seen and controlled through instance 2, and events fan out', { timeout: 90_000 }, async () => {
      const options = { jwtSecret: secret, apiKey, redisUrl: redis.url }
      const one = await startServer({ ...options, nodeId: 'node-one' })
      const two = await startServer({ ...options, nodeId: 'node-two' })
      try {
        const ada = await joinMeeting(browser, one, 'shared', 'Ada', await token('shared', 'ada', 'host'))
        const bob = await joinMeeting(browser, one, 'shared', 'Bob', await token('shared', 'bob'))
        await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')])

        const listed = await eventually('instance 2 to list both', async () => {
          const response = await fetch(`${two.url}/v1/rooms/shared/participants`, { headers: api })
          const list = ParticipantList.parse(await response.json())
          return list.participants.length === 2 ? list : undefined
        })
        assert.deepEqual(
          listed.participants.map(({ identity, nodeId }) => ({ identity, nodeId })),
          [
            { identity: 'ada', nodeId: 'node-one' },
            { identity: 'bob', nodeId: 'node-one' },
          ],
        )

        // A member on instance 2 appears on instance 1's pages through pub/sub.
        const carol = await joinMeeting(browser, two, 'shared', 'Carol', await token('shared', 'carol'))
        const carolId = await participantIdOf(carol)
        await ada.waitForSelector(`#participants li[data-participant-id="${carolId}"]`, { timeout: 10_000 })
        const carolSees = (await carol.evaluate('[...globalThis.conclave.meeting.participants.values()].map((p) => p.name)')) as string[]
        assert.deepEqual(carolSees.sort(), ['ada', 'bob'], 'the late joiner on instance 2 gets the snapshot from Redis')

        // A mute through instance 2's REST API stops forwarding on instance 1.
        const bobId = listed.participants.find((participant) => participant.identity === 'bob')?.participantId ?? ''
        const bobMids = await midsOf(ada, bobId)
        assert.equal(bobMids.length, 2)
        const muted = await fetch(`${two.url}/v1/rooms/shared/participants/${bobId}/mute`, { method: 'POST', headers: api, body: '{}' })
        assert.deepEqual(await muted.json(), { count: 2 })
        await expectStopped(ada, bobMids, "Bob's packets at Ada to stop after a mute through instance 2")

        // A removal through instance 2 disconnects Bob on instance 1 (its other peers: Ada, the relay link to instance 2).
        const peersBefore = (await one.media.stats()).peers
        assert.equal((await fetch(`${two.url}/v1/rooms/shared/participants/${bobId}`, { method: 'DELETE', headers: api })).status, 204)
        await bob.waitForFunction('document.querySelector("#status").textContent.includes("removed you")', { polling: 50, timeout: 10_000 })
        await eventually('instance 1 to close Bob', async () => (await one.media.stats()).peers === peersBefore - 1)
        await Promise.all([ada.close(), bob.close(), carol.close()])
      } finally {
        await Promise.all([one.close(), two.close()])
      }
    })

    test('members on two instances see and hear each other through a relay link, in and out of breakouts', { timeout: 120_000 }, async () => {
      const options = { jwtSecret: secret, apiKey, redisUrl: redis.url }
      const one = await startServer({ ...options, nodeId: 'relay-one' })
      const two = await startServer({ ...options, nodeId: 'relay-two' })
      try {
        const started = Date.now()
        const ada = await joinMeeting(browser, one, 'cascade', 'Ada', await token('cascade', 'ada', 'host'))
        const carol = await joinMeeting(browser, two, 'cascade', 'Carol', await token('cascade', 'carol'))
        const [adaSees, carolSees] = await Promise.all([expectMediaFlowing(ada, 'Ada (instance 1) from Carol'), expectMediaFlowing(carol, 'Carol (instance 2) from Ada')])
        console.log(`media across instances: both decoding ${Date.now() - started} ms after the first join; Ada ${JSON.stringify(adaSees)} Carol ${JSON.stringify(carolSees)}`)
        // One link each way, one peer per member: the media really crossed between the engines.
        for (const [server, name] of [[one, 'instance 1'], [two, 'instance 2']] as const) {
          const stats = await server.media.stats()
          assert.equal(stats.peers, 2, `${name}: its member and the relay link`)
          assert.equal(stats.tracks, 4, `${name}: its member's two tracks and the two imported`)
        }
        const adaId = await participantIdOf(ada)
        const carolId = await participantIdOf(carol)
        const adaMidsAtCarol = await midsOf(carol, adaId)
        assert.equal(adaMidsAtCarol.length, 2, "Carol receives Ada's audio and video")

        // Ada's audio levels cross with her audio: instance 2 hears her speak (Carol's mic is off).
        await carol.evaluate(`globalThis.conclave.meeting.pc.getSenders().forEach((s) => { if (s.track && s.track.kind === 'audio') s.track.enabled = false })`)
        await eventually('Carol (instance 2) to see Ada (instance 1) as the active speaker', async () => (await carol.evaluate('globalThis.conclave.meeting.activeSpeaker')) === adaId, {
          timeoutMs: 15_000,
        })

        // A third member on instance 1 and breakouts: Carol (instance 2) goes with Bob, Ada stays out.
        const bob = await joinMeeting(browser, one, 'cascade', 'Bob', await token('cascade', 'bob'))
        const bobId = await participantIdOf(bob)
        await expectMediaFlowing(carol, "Carol from Ada and Bob", { videoStreams: 2 })
        const bobMidsAtCarol = await eventually("Carol's m-lines for Bob", async () => {
          const mids = await midsOf(carol, bobId)
          return mids.length === 2 ? mids : undefined
        })
        const breakouts = await fetch(`${two.url}/v1/rooms/cascade/breakouts`, {
          method: 'POST',
          headers: api,
          body: JSON.stringify({ groups: [{ name: 'Pair', participantIds: [carolId, bobId] }] }),
        })
        assert.equal(breakouts.status, 201, await breakouts.clone().text())
        await expectStopped(carol, adaMidsAtCarol, "Ada's packets at Carol to stop: Ada is in the main room")
        await expectRising(carol, bobMidsAtCarol, "Bob's packets to keep reaching Carol in their breakout")
        assert.equal((await fetch(`${two.url}/v1/rooms/cascade/breakouts`, { method: 'DELETE', headers: api })).status, 204)
        await expectRising(carol, adaMidsAtCarol, "Ada's packets at Carol again after the breakouts end")

        // A mute on instance 1 stops Ada's media at Carol on instance 2.
        const muted = await fetch(`${one.url}/v1/rooms/cascade/participants/${adaId}/mute`, { method: 'POST', headers: api, body: '{}' })
        assert.deepEqual(await muted.json(), { count: 2 })
        await expectStopped(carol, adaMidsAtCarol, "Ada's packets at Carol to stop after a mute on instance 1")

        // The last member on instance 2 leaves: instance 1 stops sending over the link.
        await carol.close()
        await eventually('instance 2 to end its imports', async () => (await two.media.stats()).tracks === 0)
        await eventually('instance 1 to stop exporting', async () => (await one.media.stats()).subscriptions === 2, { timeoutMs: 10_000 })
        await Promise.all([ada.close(), bob.close()])
      } finally {
        await Promise.all([one.close(), two.close()])
      }
    })
  })
})
