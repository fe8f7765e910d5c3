// Firefox (Debian's firefox-esr, headless through puppeteer-core) publishing to and playing from
// Chromium through the server: a different DTLS stack (it offers DTLS 1.3), SDP dialect and
// SRTP profile order than Chromium.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { expectMediaFlowing, launchBrowser, openSessionPage, startServer } from './harness.js'

const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr'

function launchFirefox(): Promise<Browser> {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    protocolTimeout: 60_000,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'permissions.default.camera': 1,
      'permissions.default.microphone': 1,
      'media.peerconnection.ice.loopback': true,
      'media.autoplay.default': 0,
    },
  })
}

/** The SRTP cipher the page's transport negotiated, as getStats names it. */
async function srtpCipher(page: Page): Promise<string | undefined> {
  return page.evaluate(`(async () => {
    const c = globalThis.conclave
    const pc = c && ((c.meeting && c.meeting.pc) || (c.session && c.session.pc))
    if (!pc) return undefined
    let cipher
    ;(await pc.getStats()).forEach((s) => { if (s.type === 'transport' && s.srtpCipher) cipher = s.srtpCipher })
    return cipher
  })()`) as Promise<string | undefined>
}

const firefoxMissing = existsSync(FIREFOX) ? false : `${FIREFOX} is not installed (scripts/setup.sh --for-tests installs firefox-esr)`

describe('Firefox with Chromium', { skip: nativeAddonProblem || firefoxMissing, timeout: 180_000 }, () => {
  let chromium: Browser
  let firefox: Browser

  before(async () => {
    ;[chromium, firefox] = await Promise.all([launchBrowser(), launchFirefox()])
  })

  after(async () => {
    await Promise.all([chromium?.close(), firefox?.close()])
  })

  test('a Firefox WHEP viewer decodes a Chromium WHIP publisher, over AES-GCM', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      await openSessionPage(chromium, server, 'whip', 'mixed')
      await eventually('the publisher to publish', async () => (await server.media.stats()).tracks >= 2, { timeoutMs: 20_000 })
      const viewer = await openSessionPage(firefox, server, 'whep', 'mixed')
      await expectMediaFlowing(viewer, 'the Firefox viewer')
      assert.equal(await srtpCipher(viewer), 'SRTP_AEAD_AES_128_GCM')
    } finally {
      await server.close()
    }
  })

  test('a Chromium WHEP viewer decodes a Firefox WHIP publisher, over AES-GCM', { timeout: 60_000 }, async () => {
    const server = await startServer()
    try {
      const publisher = await openSessionPage(firefox, server, 'whip', 'mixed')
      await eventually('the publisher to publish', async () => (await server.media.stats()).tracks >= 2, { timeoutMs: 20_000 })
      const viewer = await openSessionPage(chromium, server, 'whep', 'mixed')
      await expectMediaFlowing(viewer, 'the Chromium viewer')
      assert.equal(await srtpCipher(viewer), 'SRTP_AEAD_AES_128_GCM', 'Chromium lists AES-CM first; the server still picks GCM')
      assert.equal(await srtpCipher(publisher), 'SRTP_AEAD_AES_128_GCM')
    } finally {
      await server.close()
    }
  })
})
