// The meeting page with real Chromium peers through the real server and the real media addon.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'puppeteer-core'
import { accessToken } from '../support/control-plane.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { expectMediaFlowing, inbound, joinMeeting, launchBrowser, median, openSessionPage, startServer } from './harness.js'

describe('meeting page in Chromium', { skip: nativeAddonProblem, timeout: 240_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('two members of a room each decode the other one video and audio', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const ada = await joinMeeting(browser, server, 'pair', 'Ada')
      const bob = await joinMeeting(browser, server, 'pair', 'Bob')
      await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')])
      const captions = await ada.$$eval('#tiles figcaption', (nodes) => nodes.map((node) => node.textContent))
      assert.ok(captions.includes('Bob'), `Ada's tiles are labelled ${JSON.stringify(captions)}`)
      await Promise.all([ada.close(), bob.close()])
    } finally {
      await server.close()
    }
  })

  test('with a JWT secret, members join with a token for the room and not without one', { timeout: 60_000 }, async () => {
    const secret = 'browser-test-secret-browser-test-secret'
    const token = (room: string) => accessToken(secret, { room, identity: `id-${Math.random()}` })
    const server = await startServer({ jwtSecret: secret })
    try {
      await assert.rejects(joinMeeting(browser, server, 'secure', 'Nobody'), /could not join/)
      await assert.rejects(joinMeeting(browser, server, 'secure', 'Elsewhere', await token('other')), /forbidden|another room/)
      const ada = await joinMeeting(browser, server, 'secure', 'Ada', await token('secure'))
      const bob = await joinMeeting(browser, server, 'secure', 'Bob', await token('secure'))
      await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')])
      await Promise.all([ada.close(), bob.close()])
    } finally {
      await server.close()
    }
  })

  test('a late joiner receives a member who was already publishing', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const early = await joinMeeting(browser, server, 'late', 'Early')
      await eventually('Early is connected and publishing', async () => (await server.media.stats()).tracks >= 2, { timeoutMs: 20_000 })
      const late = await joinMeeting(browser, server, 'late', 'Late')
      await expectMediaFlowing(late, 'Late')
      await expectMediaFlowing(early, 'Early')
      await Promise.all([early.close(), late.close()])
    } finally {
      await server.close()
    }
  })

  test('a closed meeting page leaves no peer behind in the engine', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const stays = await joinMeeting(browser, server, 'close', 'Stays')
      const goes = await joinMeeting(browser, server, 'close', 'Goes')
      await expectMediaFlowing(stays, 'Stays')
      assert.equal((await server.media.stats()).peers, 2)
      await goes.close()
      await eventually('the engine to forget the closed page', async () => {
        const stats = await server.media.stats()
        return stats.peers === 1 && stats.tracks === 2 && stats.subscriptions === 0
      })
      await stays.close()
      await eventually('the engine to have no peer', async () => (await server.media.stats()).peers === 0)
    } finally {
      await server.close()
    }
  })

  test('join click to first decoded frame, 10 joins (median printed; every join must get video)', { timeout: 150_000 }, async (t) => {
    const server = await startServer()
    try {
      const publisher = await openSessionPage(browser, server, 'whip', 'timing')
      await eventually('the publisher to publish', async () => (await server.media.stats()).tracks >= 2, { timeoutMs: 20_000 })
      const page = await browser.newPage()
      await page.goto(`${server.url}/?room=timing&name=Timer`)
      const samples: number[] = []
      const failures: string[] = []
      for (let i = 0; i < 10; i++) {
        const clicked = performance.now()
        await page.click('#join')
        try {
          await eventually(`first decoded frame (join ${i + 1})`, async () => ((await inbound(page))?.videoFramesDecoded ?? 0) > 0, {
            timeoutMs: 10_000,
            intervalMs: 20,
          })
          samples.push(performance.now() - clicked)
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error))
        }
        await page.click('#leave')
        await page.waitForFunction('globalThis.conclave.meeting === undefined && !document.querySelector("#join").disabled', { polling: 50 })
        await eventually('the left peer to be closed', async () => (await server.media.stats()).peers === 1)
      }
      const line =
        `join -> first decoded frame: median ${median(samples).toFixed(0)} ms over ${samples.length} joins ` +
        `(${samples.map((ms) => ms.toFixed(0)).join(', ')}); ${failures.length} joins got no video`
      t.diagnostic(line)
      console.log(line)
      await Promise.all([page.close(), publisher.close()])
      assert.deepEqual(failures, [], 'every join decodes video')
    } finally {
      await server.close()
    }
  })
})
