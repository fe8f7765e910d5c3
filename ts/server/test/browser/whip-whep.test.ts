// WHIP publishing and WHEP playing with real Chromium through the real server and media addon.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'puppeteer-core'
import { ErrorBody } from '@conclave/protocol'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { GARBAGE_SDP } from '../support/sdp-fixtures.js'
import { expectMediaFlowing, inbound, launchBrowser, openSessionPage, sendGarbage, startServer } from './harness.js'

describe('WHIP and WHEP in Chromium', { skip: nativeAddonProblem, timeout: 240_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('one WHIP publisher is decoded by three WHEP viewers, video and audio', { timeout: 90_000 }, async () => {
    const server = await startServer()
    try {
      const publisher = await openSessionPage(browser, server, 'whip', 'broadcast')
      const viewers = await Promise.all([1, 2, 3].map(() => openSessionPage(browser, server, 'whep', 'broadcast')))
      await Promise.all(viewers.map((viewer, i) => expectMediaFlowing(viewer, `viewer ${i + 1}`)))
      const stats = await server.media.stats()
      assert.equal(stats.peers, 4)
      assert.equal(stats.subscriptions, 6)
      await Promise.all([publisher, ...viewers].map((page) => page.close()))
    } finally {
      await server.close()
    }
  })

  test('a viewer who came first gets the publisher who comes later', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const viewer = await openSessionPage(browser, server, 'whep', 'later')
      const publisher = await openSessionPage(browser, server, 'whip', 'later')
      await expectMediaFlowing(viewer, 'the early viewer')
      await Promise.all([publisher.close(), viewer.close()])
    } finally {
      await server.close()
    }
  })

  test('WHIP DELETE closes the publisher peer and unsubscribes its viewers', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const publisher = await openSessionPage(browser, server, 'whip', 'delete')
      const viewer = await openSessionPage(browser, server, 'whep', 'delete')
      await expectMediaFlowing(viewer, 'the viewer')
      assert.equal((await server.media.stats()).peers, 2)
      await publisher.evaluate('globalThis.conclave.session.stop()')
      await eventually('the publisher peer and its tracks to be gone', async () => {
        const stats = await server.media.stats()
        return stats.peers === 1 && stats.tracks === 0 && stats.subscriptions === 0
      })
      await Promise.all([publisher.close(), viewer.close()])
    } finally {
      await server.close()
    }
  })

  test('a malformed offer to WHIP is refused with 400 and a reason', async () => {
    const server = await startServer()
    try {
      const response = await fetch(`${server.url}/whip/bad`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: GARBAGE_SDP })
      assert.equal(response.status, 400)
      const body = ErrorBody.parse(await response.json())
      assert.equal(body.code, 'invalid_sdp')
      assert.ok(body.message.length > 0)
      assert.equal((await server.media.stats()).peers, 0)
    } finally {
      await server.close()
    }
  })

  test('garbage datagrams on the media port are dropped and counted while media keeps flowing', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const publisher = await openSessionPage(browser, server, 'whip', 'noise')
      const viewer = await openSessionPage(browser, server, 'whep', 'noise')
      await expectMediaFlowing(viewer, 'the viewer')
      const before = await server.media.stats()
      const framesBefore = (await inbound(viewer))?.videoFramesDecoded ?? 0
      await sendGarbage(server.udpPort, 2000)
      await eventually('the garbage to be counted as dropped', async () => {
        const stats = await server.media.stats()
        const dropped = stats.droppedMalformed + stats.droppedUnknownSource + stats.stunRejected
        return dropped >= before.droppedMalformed + before.droppedUnknownSource + before.stunRejected + 1000
      })
      await expectMediaFlowing(viewer, 'the viewer after the garbage')
      assert.ok(((await inbound(viewer))?.videoFramesDecoded ?? 0) > framesBefore)
      await Promise.all([publisher.close(), viewer.close()])
    } finally {
      await server.close()
    }
  })
})
