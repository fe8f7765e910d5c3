// TURN: a Chromium page forced to relay-only ICE reaches the SFU through a real coturn, with the
// time-limited credentials the join response hands out.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { type Coturn, TURNSERVER, startCoturn } from '../support/coturn.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { expectMediaFlowing, joinMeeting, launchBrowser, startServer } from './harness.js'

const coturnMissing =
  spawnSync(TURNSERVER, ['--version'], { stdio: 'ignore' }).error === undefined
    ? false
    : `${TURNSERVER} is not installed (Debian's coturn: scripts/setup.sh --for-tests)`

/** The candidate types of the page's selected ICE pair, once it has one. */
const SELECTED_PAIR_PROBE = `(async () => {
  const report = await globalThis.conclave.meeting.pc.getStats()
  let pair
  report.forEach((stat) => {
    if (stat.type === 'transport' && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId)
  })
  if (!pair) report.forEach((stat) => {
    if (stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') pair = stat
  })
  if (!pair) return null
  return { local: report.get(pair.localCandidateId)?.candidateType, remote: report.get(pair.remoteCandidateId)?.candidateType }
})()`

async function selectedPair(page: Page): Promise<{ local: string; remote: string }> {
  return eventually('a selected ICE candidate pair', async () => {
    const pair = (await page.evaluate(SELECTED_PAIR_PROBE)) as { local: string; remote: string } | null
    if (pair === null) throw new Error('no selected pair yet')
    return pair
  })
}

describe('TURN with a real coturn', { skip: nativeAddonProblem || coturnMissing, timeout: 120_000 }, () => {
  let browser: Browser
  let coturn: Coturn

  before(async () => {
    coturn = await startCoturn()
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await coturn?.stop()
  })

  test('a relay-only page and a direct page decode each other, the relay page through coturn', { timeout: 60_000 }, async () => {
    const server = await startServer({ turn: { urls: [coturn.url], secret: coturn.secret, ttlSeconds: 600 } })
    try {
      const relayed = await joinMeeting(browser, server, 'turn', 'Relayed', undefined, { relay: '1' })
      const direct = await joinMeeting(browser, server, 'turn', 'Direct')
      try {
        await Promise.all([expectMediaFlowing(relayed, 'Relayed'), expectMediaFlowing(direct, 'Direct')])
      } catch (error) {
        throw new Error(`${String(error)}\ncoturn log:\n${(await coturn.log()).slice(-3000)}`)
      }
      const configured = (await relayed.evaluate('globalThis.conclave.meeting.pc.getConfiguration()')) as { iceTransportPolicy?: string; iceServers?: { urls: string[]; username?: string }[] }
      assert.equal(configured.iceTransportPolicy, 'relay')
      const [server0] = configured.iceServers ?? []
      assert.deepEqual(server0?.urls, [coturn.url])
      const expiry = Number(String(server0?.username).split(':')[0])
      const now = Date.now() / 1000
      assert.ok(expiry > now + 590 && expiry <= now + 601, `the username ${server0?.username} expires in about ten minutes`)
      assert.deepEqual(await selectedPair(relayed), { local: 'relay', remote: 'host' })
      assert.equal((await selectedPair(direct)).local, 'host')
      assert.match(await coturn.log(), /ALLOCATE processed, success/)
      await Promise.all([relayed.close(), direct.close()])
    } finally {
      await server.close()
    }
  })
})
