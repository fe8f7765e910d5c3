// RFC 2198 RED audio in Chromium: a WHIP publisher sends RED, a WHEP viewer that negotiated RED gets
// it as is, one that left red out of its offer gets plain Opus; both play audio.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { launchBrowser, openSessionPage, startServer } from './harness.js'
import type { ConclaveServer } from '../../src/server.js'

/** One audio inbound-rtp stream's counters and the mime type of its codec. */
interface AudioInbound {
  mimeType: string
  packetsReceived: number
  bytesReceived: number
  totalSamplesReceived: number
  concealedSamples: number
}

// Plays `room` with one recvonly audio m-line over WHEP; without red, as a browser that never
// offered it. Exposes the connection as globalThis.conclave.session.pc, as the harness expects.
const PLAY_AUDIO = `async (room, withRed) => {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' })
  const transceiver = pc.addTransceiver('audio', { direction: 'recvonly' })
  const codecs = RTCRtpReceiver.getCapabilities('audio').codecs
  if (!withRed) transceiver.setCodecPreferences(codecs.filter((c) => c.mimeType.toLowerCase() !== 'audio/red'))
  const audio = new Audio()
  audio.srcObject = new MediaStream([transceiver.receiver.track])
  audio.play().catch(() => {})
  const offer = await pc.createOffer()
  await pc.setLocalDescription(offer)
  const response = await fetch('/whep/' + encodeURIComponent(room), { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer.sdp })
  if (response.status !== 201) throw new Error('whep ' + response.status + ': ' + (await response.text()))
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() })
  globalThis.conclave = { session: { pc }, offer: offer.sdp }
}`

const AUDIO_INBOUND = `(async () => {
  const pc = globalThis.conclave.session.pc
  const report = await pc.getStats()
  let found = null
  report.forEach((stat) => {
    if (stat.type !== 'inbound-rtp' || stat.kind !== 'audio') return
    const codec = stat.codecId ? report.get(stat.codecId) : undefined
    found = {
      mimeType: codec ? codec.mimeType : '',
      packetsReceived: stat.packetsReceived || 0,
      bytesReceived: stat.bytesReceived || 0,
      totalSamplesReceived: stat.totalSamplesReceived || 0,
      concealedSamples: stat.concealedSamples || 0,
    }
  })
  return found
})()`

async function playAudio(browser: Browser, server: ConclaveServer, room: string, withRed: boolean): Promise<Page> {
  const page = await browser.newPage()
  // Any page of the server's origin will do: the script below talks WHEP itself.
  await page.goto(`${server.url}/`)
  await page.evaluate(`(${PLAY_AUDIO})(${JSON.stringify(room)}, ${withRed})`)
  const offer = (await page.evaluate('globalThis.conclave.offer')) as string
  assert.equal(/a=rtpmap:\d+ red\/48000\/2/.test(offer), withRed, 'the offer has red only when wanted')
  return page
}

async function audioInbound(page: Page): Promise<AudioInbound | undefined> {
  return ((await page.evaluate(AUDIO_INBOUND)) as AudioInbound | null) ?? undefined
}

/** Counters over a window once audio plays: the ratio of concealed samples and bytes per packet. */
async function measureAudio(page: Page, who: string): Promise<{ concealment: number; bytesPerPacket: number; mimeType: string }> {
  const first = await eventually(
    `${who} to play audio`,
    async () => {
      const stats = await audioInbound(page)
      if (stats === undefined || stats.packetsReceived < 50 || stats.totalSamplesReceived === 0) throw new Error(`inbound ${JSON.stringify(stats)}`)
      return stats
    },
    { timeoutMs: 30_000 },
  )
  const last = await eventually(
    `${who} to receive 150 more audio packets`,
    async () => {
      const stats = await audioInbound(page)
      if (stats === undefined || stats.packetsReceived < first.packetsReceived + 150) throw new Error(`inbound ${JSON.stringify(stats)}`)
      return stats
    },
    { timeoutMs: 30_000 },
  )
  const samples = last.totalSamplesReceived - first.totalSamplesReceived
  return {
    concealment: samples > 0 ? (last.concealedSamples - first.concealedSamples) / samples : 1,
    bytesPerPacket: (last.bytesReceived - first.bytesReceived) / (last.packetsReceived - first.packetsReceived),
    mimeType: last.mimeType,
  }
}

describe('RED audio in Chromium', { skip: nativeAddonProblem, timeout: 240_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('a RED publisher is heard as RED by a RED viewer and as plain Opus by a viewer without RED', { timeout: 150_000 }, async () => {
    const server = await startServer()
    try {
      const publisher = await openSessionPage(browser, server, 'whip', 'red')
      const answer = (await publisher.evaluate('globalThis.conclave.session.pc.remoteDescription.sdp')) as string
      const audioLine = answer.split('\r\n').find((line) => line.startsWith('m=audio')) ?? ''
      const redPt = /a=rtpmap:(\d+) red\/48000\/2/.exec(answer)?.[1]
      assert.ok(redPt !== undefined, 'the publisher answer accepts red')
      assert.equal(audioLine.split(' ')[3], redPt, `red leads the audio m-line: ${audioLine}`)

      const withRed = await playAudio(browser, server, 'red', true)
      const withoutRed = await playAudio(browser, server, 'red', false)
      const [red, opus] = await Promise.all([measureAudio(withRed, 'the RED viewer'), measureAudio(withoutRed, 'the viewer without RED')])
      console.log(`red viewer: ${JSON.stringify(red)}; opus viewer: ${JSON.stringify(opus)}`)

      // RED carries the previous frame too, so its packets are markedly larger than the primary alone.
      assert.ok(red.bytesPerPacket > opus.bytesPerPacket * 1.5, `RED ${red.bytesPerPacket} B/packet vs Opus ${opus.bytesPerPacket}`)
      assert.equal(opus.mimeType.toLowerCase(), 'audio/opus')
      for (const [who, measured] of [
        ['RED viewer', red],
        ['viewer without RED', opus],
      ] as const) {
        assert.ok(measured.concealment < 0.25, `${who} conceals ${measured.concealment} of its samples`)
      }
      await Promise.all([publisher, withRed, withoutRed].map((page) => page.close()))
    } finally {
      await server.close()
    }
  })
})
