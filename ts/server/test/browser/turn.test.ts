// TURN: a Chromium page forced to relay-only ICE reaches the SFU through a real coturn, over UDP, TCP and
// TLS, with the time-limited credentials the join response hands out.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, test, type TestContext } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { type Coturn, OPENSSL, TURNSERVER, startCoturn } from '../support/coturn.js'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { expectMediaFlowing, inbound, joinMeeting, launchBrowser, startServer } from './harness.js'

const coturnMissing =
  spawnSync(TURNSERVER, ['--version'], { stdio: 'ignore' }).error === undefined
    ? false
    : `${TURNSERVER} is not installed (Debian's coturn: scripts/setup.sh --for-tests)`

const opensslMissing =
  spawnSync(OPENSSL, ['version'], { stdio: 'ignore' }).error === undefined
    ? false
    : `${OPENSSL} is not installed: the TURN-over-TLS test makes its certificate with it`

interface SelectedPair {
  local: string
  remote: string
  /** How the local relay candidate reaches the TURN server ('udp', 'tcp', 'tls'); absent when not relayed. */
  relayProtocol?: string
}

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
  const local = report.get(pair.localCandidateId)
  const selected = { local: local?.candidateType, remote: report.get(pair.remoteCandidateId)?.candidateType }
  return local?.relayProtocol === undefined ? selected : { ...selected, relayProtocol: local.relayProtocol }
})()`

async function selectedPair(page: Page): Promise<SelectedPair> {
  return eventually('a selected ICE candidate pair', async () => {
    const pair = (await page.evaluate(SELECTED_PAIR_PROBE)) as SelectedPair | null
    if (pair === null) throw new Error('no selected pair yet')
    return pair
  })
}

/** Milliseconds from `since` until `page` has decoded its first video frame. */
async function firstDecodedFrame(page: Page, who: string, since: number): Promise<number> {
  await eventually(`${who}'s first decoded video frame`, async () => ((await inbound(page))?.videoFramesDecoded ?? 0) > 0, {
    timeoutMs: 20_000,
    intervalMs: 20,
  })
  return Date.now() - since
}

/**
 * A relay-only page told of `turnUrl` alone and a direct page join one room and decode each other; the
 * relay page's selected pair must be a relay candidate reached over `relayProtocol`.
 */
async function relayedRoundTrip(t: TestContext, browser: Browser, coturn: Coturn, turnUrl: string, relayProtocol: 'udp' | 'tcp' | 'tls') {
  const server = await startServer({ turn: { urls: [turnUrl], secret: coturn.secret, ttlSeconds: 600 } })
  const room = `turn-${relayProtocol}`
  try {
    const joining = Date.now()
    const relayed = await joinMeeting(browser, server, room, 'Relayed', undefined, { relay: '1' })
    const relayedJoined = Date.now() - joining
    const direct = await joinMeeting(browser, server, room, 'Direct')
    try {
      const [relayedFirstFrame, directFirstFrame] = await Promise.all([
        firstDecodedFrame(relayed, 'Relayed', joining),
        firstDecodedFrame(direct, 'Direct', joining),
      ])
      t.diagnostic(
        `TURN/${relayProtocol}, ms since the relayed page began joining: joined ${relayedJoined}, ` +
          `first decoded frame ${relayedFirstFrame} (relayed page), ${directFirstFrame} (direct page)`,
      )
      await Promise.all([expectMediaFlowing(relayed, 'Relayed'), expectMediaFlowing(direct, 'Direct')])
    } catch (error) {
      throw new Error(`${String(error)}\ncoturn log:\n${(await coturn.log()).slice(-3000)}`)
    }
    const configured = (await relayed.evaluate('globalThis.conclave.meeting.pc.getConfiguration()')) as {
      iceTransportPolicy?: string
      iceServers?: { urls: string[]; username?: string }[]
    }
    assert.equal(configured.iceTransportPolicy, 'relay')
    const [server0] = configured.iceServers ?? []
    assert.deepEqual(server0?.urls, [turnUrl])
    const expiry = Number(String(server0?.username).split(':')[0])
    const now = Date.now() / 1000
    assert.ok(expiry > now + 590 && expiry <= now + 601, `the username ${server0?.username} expires in about ten minutes`)
    assert.deepEqual(await selectedPair(relayed), { local: 'relay', remote: 'host', relayProtocol })
    assert.equal((await selectedPair(direct)).local, 'host')
    assert.match(await coturn.log(), /ALLOCATE processed, success/)
    await Promise.all([relayed.close(), direct.close()])
  } finally {
    await server.close()
  }
}

describe('TURN with a real coturn', { skip: nativeAddonProblem || coturnMissing, timeout: 180_000 }, () => {
  let browser: Browser
  let coturn: Coturn

  before(async () => {
    coturn = await startCoturn({ tls: opensslMissing === false })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await coturn?.stop()
  })

  test('a relay-only page and a direct page decode each other, the relay page through coturn over UDP', { timeout: 60_000 }, async (t) => {
    await relayedRoundTrip(t, browser, coturn, coturn.url, 'udp')
  })

  test('the same with only a TURN-over-TCP URL: the relay page reaches coturn over TCP', { timeout: 60_000 }, async (t) => {
    await relayedRoundTrip(t, browser, coturn, coturn.tcpUrl, 'tcp')
  })

  test('the same with only a turns: URL: the relay page reaches coturn over TLS', { skip: opensslMissing, timeout: 60_000 }, async (t) => {
    const { tlsUrl, tlsSpkiSha256 } = coturn
    assert.ok(tlsUrl !== undefined && tlsSpkiSha256 !== undefined, 'coturn was started with TLS')
    // Chromium verifies a TURN server's TLS certificate like a web server's and refuses this self-signed
    // one; this switch trusts exactly its key, and only in this test's browser.
    const trusting = await launchBrowser([`--ignore-certificate-errors-spki-list=${tlsSpkiSha256}`])
    try {
      await relayedRoundTrip(t, trusting, coturn, tlsUrl, 'tls')
    } finally {
      await trusting.close()
    }
  })
})
