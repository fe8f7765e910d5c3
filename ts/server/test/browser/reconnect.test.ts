// Real Chromium: a dropped signaling socket resumes the same session (media never stops), an ICE
// restart keeps media going, also when the network path changes under it (the impairment proxy
// gives the page's flow a new port at the SFU), and a participant away past the grace period is
// gone for everyone and refused with session_expired.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import type { ConclaveServer } from '../../src/server.js'
import { eventually } from '../support/eventually.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { expectMediaFlowing, inbound, launchBrowser, startServer } from './harness.js'
import { type FrameRecord, localAddress, startFrameRecorder, startServerBehindProxy, stopFrameRecorder } from './media-probes.js'

/**
 * Installed before the page's scripts: records every WebSocket the page opens (so the test can
 * drop one) and, while `offline` is set, points new ones at a closed port, as a lost network would.
 */
const SIGNALING_HOOK = `(() => {
  const Native = globalThis.WebSocket
  const hook = { sockets: [], offline: false }
  globalThis.__signaling = hook
  globalThis.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(hook.offline ? 'ws://127.0.0.1:9/' : url, protocols)
      hook.sockets.push(this)
    }
  }
})()`

/** Records what the page's meeting emits, with when, in globalThis.__events. */
const EVENT_LOG = `(() => {
  const meeting = globalThis.conclave.meeting
  const log = []
  globalThis.__events = log
  for (const type of ['reconnecting', 'reconnected', 'ended', 'closed', 'participant-updated', 'participant-left', 'chat']) {
    meeting.on(type, (event) => log.push({ type, at: performance.now(), event: JSON.parse(JSON.stringify(event ?? null)) }))
  }
})()`

interface Logged {
  type: string
  at: number
  event: Record<string, unknown> & { participantId?: string; state?: string; text?: string; afterMs?: number; reason?: string }
}

async function join(browser: Browser, server: ConclaveServer, room: string, name: string): Promise<Page> {
  const page = await browser.newPage()
  await page.evaluateOnNewDocument(SIGNALING_HOOK)
  await page.goto(server.url)
  await page.type('#room', room)
  await page.type('#name', name)
  await page.click('#join')
  await page.waitForFunction('globalThis.conclave.meeting !== undefined || document.querySelector("#status").textContent.startsWith("Could not")', {
    timeout: 30_000,
    polling: 50,
  })
  assert.ok(await page.evaluate('globalThis.conclave.meeting !== undefined'), `${name} joined`)
  await page.evaluate(EVENT_LOG)
  return page
}

const events = async (page: Page, type?: string): Promise<Logged[]> =>
  ((await page.evaluate('globalThis.__events')) as Logged[]).filter((entry) => type === undefined || entry.type === type)
const participantIdOf = async (page: Page): Promise<string> => String(await page.evaluate('globalThis.conclave.meeting.participantId'))
const setOffline = (page: Page, offline: boolean) => page.evaluate(`globalThis.__signaling.offline = ${offline}`)
/** Closes the page's live signaling socket from its side, as a dropped connection ends it. */
const dropSignaling = (page: Page) => page.evaluate('globalThis.__signaling.sockets.filter((s) => s.readyState === 1).forEach((s) => s.close())')
const remoteUfrag = async (page: Page): Promise<string> =>
  String(await page.evaluate(`globalThis.conclave.meeting.pc.currentRemoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1]`))

/** Waits until `page` decodes at least `more` frames beyond what it had decoded now. */
async function framesRise(page: Page, who: string, more = 10): Promise<void> {
  const start = (await inbound(page))?.videoFramesDecoded ?? 0
  await eventually(`${who} to decode ${more} more frames`, async () => ((await inbound(page))?.videoFramesDecoded ?? 0) >= start + more, { timeoutMs: 15_000 })
}

describe('reconnect and ICE restart in Chromium', { skip: nativeAddonProblem, timeout: 240_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('a dropped socket resumes the same session while media flows; ICE restarts keep media going, on a new path too', { timeout: 120_000 }, async () => {
    const { server, proxy, close } = await startServerBehindProxy({ seed: 3 })
    const pages: Page[] = []
    try {
      const ada = await join(browser, server, 'resume', 'Ada')
      const bob = await join(browser, server, 'resume', 'Bob')
      pages.push(ada, bob)
      await expectMediaFlowing(ada, 'Ada')
      await expectMediaFlowing(bob, 'Bob')
      const adaId = await participantIdOf(ada)

      // Away: the socket drops and reconnecting fails until the network is back.
      await setOffline(ada, true)
      await dropSignaling(ada)
      await eventually('Bob to see Ada reconnecting', async () =>
        (await events(bob, 'participant-updated')).some(({ event }) => event.participantId === adaId && event.state === 'reconnecting'),
      )
      assert.equal(await ada.evaluate('document.getElementById("reconnecting").hidden'), false, 'Ada sees the Reconnecting… banner')
      await Promise.all([framesRise(bob, 'Bob, while Ada is away,'), framesRise(ada, 'Ada, while her signaling is down,')])
      assert.equal((await events(ada, 'reconnected')).length, 0, 'that was measured while Ada was away')

      await setOffline(ada, false)
      const [back] = await eventually('Ada to resume', async () => {
        const resumed = await events(ada, 'reconnected')
        return resumed.length > 0 ? resumed : undefined
      })
      assert.equal(await participantIdOf(ada), adaId, 'the same participant')
      assert.equal(await ada.evaluate('document.getElementById("reconnecting").hidden'), true, 'the banner is gone')
      await eventually('Bob to see Ada back', async () => {
        const updates = (await events(bob, 'participant-updated')).filter(({ event }) => event.participantId === adaId)
        return updates.at(-1)?.event.state === 'active'
      })
      assert.equal((await events(bob, 'participant-left')).length, 0, 'Ada never left')

      // A plain drop, resumed at once: the resume time.
      await dropSignaling(ada)
      const quick = await eventually('Ada to resume again', async () => (await events(ada, 'reconnected'))[1])
      console.log('# resume: drop -> resumed %d ms (%d attempts) with the network away for a while; %d ms (%d attempt) for a plain drop', back?.event.afterMs, back?.event.attempts, quick.event.afterMs, quick.event.attempts)

      await ada.evaluate('globalThis.conclave.meeting.chat("back again")')
      await eventually('Bob to get Ada’s chat', async () => (await events(bob, 'chat')).some(({ event }) => event.text === 'back again'))
      await bob.evaluate('globalThis.conclave.meeting.chat("welcome back")')
      await eventually('Ada to get Bob’s chat on her new socket', async () => (await events(ada, 'chat')).some(({ event }) => event.text === 'welcome back'))

      // The same window without a restart, for comparison: stalls this machine has anyway.
      await startFrameRecorder(bob, 'Ada')
      await startFrameRecorder(ada, 'Bob')
      await Promise.all([framesRise(bob, 'Bob (baseline)', 30), framesRise(ada, 'Ada (baseline)', 30)])
      const baseline = [await stopFrameRecorder(bob), await stopFrameRecorder(ada)]

      // ICE restart on the same path: new credentials, media goes on.
      const before = await remoteUfrag(ada)
      await startFrameRecorder(bob, 'Ada')
      await startFrameRecorder(ada, 'Bob')
      await ada.evaluate('globalThis.conclave.meeting.restartIce()')
      assert.notEqual(await remoteUfrag(ada), before, 'the answer carries new server credentials')
      await Promise.all([framesRise(bob, 'Bob after the restart', 30), framesRise(ada, 'Ada after the restart', 30)])
      const samePathBob = await stopFrameRecorder(bob)
      const samePathAda = await stopFrameRecorder(ada)

      // The network changes under Ada: the SFU sees her at a new port only once ICE restarts.
      const adaAddress = await localAddress(ada)
      assert.ok(adaAddress !== undefined)
      const oldUpstream = proxy.flow(adaAddress)?.upstream
      assert.ok(oldUpstream !== undefined, 'Ada’s media crosses the proxy')
      await startFrameRecorder(bob, 'Ada')
      await startFrameRecorder(ada, 'Bob')
      proxy.rebind(adaAddress)
      await ada.evaluate('globalThis.conclave.meeting.restartIce()')
      // Chromium may gather new local ports for the restart: find her flow again by its address.
      const newUpstream = await eventually('Ada’s media to come from a new port at the SFU', async () => {
        const address = await localAddress(ada)
        const upstream = address === undefined ? undefined : proxy.flow(address)?.upstream
        return upstream !== undefined && upstream !== oldUpstream ? upstream : undefined
      })
      await Promise.all([framesRise(bob, 'Bob, Ada on her new path', 30), framesRise(ada, 'Ada on her new path', 30)])
      const newPathBob = await stopFrameRecorder(bob)
      const newPathAda = await stopFrameRecorder(ada)
      await expectMediaFlowing(ada, 'Ada at the end')
      await expectMediaFlowing(bob, 'Bob at the end')
      console.log('# network change: the SFU saw Ada at %s, now at %s', oldUpstream, newUpstream)
      const stalls = ([toBob, toAda]: FrameRecord[]) =>
        `Ada->Bob ${Math.round(toBob?.longestStallMs ?? 0)} ms (${toBob?.framesDecoded} frames in ${Math.round(toBob?.durationMs ?? 0)} ms), ` +
        `Bob->Ada ${Math.round(toAda?.longestStallMs ?? 0)} ms (${toAda?.framesDecoded} frames in ${Math.round(toAda?.durationMs ?? 0)} ms)`
      console.log('# longest stall without a restart: %s', stalls(baseline))
      console.log('# longest stall across an ICE restart on the same path: %s', stalls([samePathBob, samePathAda]))
      console.log('# longest stall across a path change + ICE restart: %s', stalls([newPathBob, newPathAda]))
    } finally {
      await Promise.all(pages.map((page) => page.close()))
      await close()
    }
  })

  test('away past the grace period: the others get participant-left and the resume is refused with session_expired', { timeout: 90_000 }, async () => {
    const server = await startServer({ resumeGraceMs: 2_000 })
    const pages: Page[] = []
    try {
      const ada = await join(browser, server, 'expiry', 'Ada')
      const bob = await join(browser, server, 'expiry', 'Bob')
      pages.push(ada, bob)
      await expectMediaFlowing(bob, 'Bob')
      const adaId = await participantIdOf(ada)

      await setOffline(ada, true)
      await dropSignaling(ada)
      await eventually('Bob to see Ada reconnecting', async () =>
        (await events(bob, 'participant-updated')).some(({ event }) => event.participantId === adaId && event.state === 'reconnecting'),
      )
      await eventually('Bob to see Ada leave after the grace period', async () =>
        (await events(bob, 'participant-left')).some(({ event }) => event.participantId === adaId),
      )
      assert.equal(await bob.$(`figure[data-participant-id="${adaId}"]`), null, 'her tile is gone')

      await setOffline(ada, false)
      const [ended] = await eventually('Ada’s resume to be refused', async () => {
        const found = await events(ada, 'ended')
        return found.length > 0 ? found : undefined
      })
      assert.deepEqual(ended?.event, { reason: 'session-expired', code: 'session_expired' })
      await eventually('Ada’s page to say so', async () => /could not be restored/.test(String(await ada.$eval('#status', (node) => node.textContent))))
      assert.equal(await ada.evaluate('document.getElementById("reconnecting").hidden'), true)
    } finally {
      await Promise.all(pages.map((page) => page.close()))
      await server.close()
    }
  })
})
