// Breakout rooms with real Chromium: four members, the host splits them into two groups of two
// from the meeting page; each group hears and sees only itself, and everyone comes back, all
// without a single new offer/answer.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { nativeAddonProblem } from '../support/media-engines.js'
import { eventually } from '../support/eventually.js'
import { launchBrowser, median, startServer } from './harness.js'

/** One inbound stream of a page, by who sends it. */
interface Stream {
  key: string
  participantId: string
  kind: string
  packets: number
  frames: number
}

// Per inbound-rtp stream: who publishes it (the meeting's view of its m-line) and its counters.
const STREAM_PROBE = `(async () => {
  const meeting = globalThis.conclave.meeting
  const out = []
  let at = 0
  ;(await meeting.pc.getStats()).forEach((stat) => {
    if (stat.type !== 'inbound-rtp') return
    at = Math.max(at, stat.timestamp)
    const subscription = meeting.subscriptionOn(stat.mid)
    if (!subscription) return
    out.push({
      key: subscription.participantId + '/' + stat.kind,
      participantId: subscription.participantId,
      kind: stat.kind,
      packets: stat.packetsReceived || 0,
      frames: stat.framesDecoded || 0,
    })
  })
  return { at: at || Date.now(), list: out }
})()`

// Counts every offer the page makes from now on (setLocalDescription is only called with offers:
// the server always answers), and keeps both descriptions to compare later.
const COUNT_OFFERS = `(() => {
  const pc = globalThis.conclave.meeting.pc
  globalThis.breakoutsHeardAt = []
  globalThis.conclave.meeting.on('breakouts', () => globalThis.breakoutsHeardAt.push(Date.now()))
  globalThis.offersMade = 0
  const setLocal = pc.setLocalDescription.bind(pc)
  pc.setLocalDescription = (description) => {
    globalThis.offersMade++
    return setLocal(description)
  }
  return { local: pc.localDescription.sdp, remote: pc.remoteDescription.sdp }
})()`

const DESCRIPTIONS = `(() => {
  const pc = globalThis.conclave.meeting.pc
  return { offers: globalThis.offersMade, heard: globalThis.breakoutsHeardAt, local: pc.localDescription.sdp, remote: pc.remoteDescription.sdp }
})()`

interface Member {
  name: string
  page: Page
  id: string
}

/**
 * Joins through the meeting page form as `joinMeeting` does, with more patience: four pages
 * decoding three videos each on a shared, loaded machine can take tens of seconds to start.
 */
async function joinPatiently(browser: Browser, url: string, room: string, name: string, role: 'host' | 'guest'): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${url}/?role=${role}`, { timeout: 90_000 })
  await page.type('#room', room)
  await page.type('#name', name)
  await page.click('#join')
  await page.waitForFunction('globalThis.conclave.meeting !== undefined && globalThis.conclave.meeting.participantId !== undefined', {
    timeout: 90_000,
    polling: 100,
  })
  return page
}

/** Clicks a button of a background tab (puppeteer's click waits for a frame that never comes there). */
async function clickInBackground(page: Page, selector: string): Promise<void> {
  const clicked = await page.evaluate(`(() => { const node = document.querySelector(${JSON.stringify(selector)}); if (!node || node.hidden) return false; node.click(); return true })()`)
  assert.ok(clicked, `${selector} is there to click`)
}

async function streams(page: Page): Promise<Map<string, Stream>> {
  return (await read(page)).streams
}

/** One page's streams and when (wall clock, ms: the stats' own timestamp) they were gathered. */
interface Reading {
  at: number
  streams: Map<string, Stream>
}

async function read(page: Page): Promise<Reading> {
  const { at, list } = (await page.evaluate(STREAM_PROBE)) as { at: number; list: Stream[] }
  return { at, streams: new Map(list.map((stream) => [stream.key, stream])) }
}

/** Every page's streams, read at about the same time. */
type Sample = Map<string, Reading>

async function sampleAll(members: Member[]): Promise<Sample> {
  const readings = await Promise.all(members.map((member) => read(member.page)))
  return new Map(members.map((member, i) => [member.name, readings[i] as Reading]))
}

/** One member's readings over the timeline, oldest first. */
function readingsOf(timeline: Sample[], member: string): Reading[] {
  return timeline.flatMap((sample) => sample.get(member) ?? []).sort((a, b) => a.at - b.at)
}

/**
 * When (ms after `since`) `member` first saw the stream's `field` above everything it had read
 * before; undefined if never. Counters only grow, so comparing with the running maximum keeps
 * overlapping reads from looking like rises.
 */
function firstRise(timeline: Sample[], since: number, member: string, key: string, field: 'packets' | 'frames'): number | undefined {
  let highest = 0
  for (const reading of readingsOf(timeline, member)) {
    const value = reading.streams.get(key)?.[field] ?? 0
    if (reading.at >= since && value > highest && highest > 0) return reading.at - since
    highest = Math.max(highest, value)
  }
  return undefined
}

/**
 * When (ms after `since`) the stream's packets last rose for `member`: the midpoint between the
 * reading that saw a new maximum and the one before it (0 if they never rose after `since`).
 */
function lastRise(timeline: Sample[], since: number, member: string, key: string): number {
  let highest = 0
  let previousAt = since
  let last = 0
  for (const reading of readingsOf(timeline, member)) {
    const value = reading.streams.get(key)?.packets ?? 0
    if (reading.at >= since && value > highest) last = (Math.max(previousAt, since) + reading.at) / 2 - since
    highest = Math.max(highest, value)
    previousAt = reading.at
  }
  return last
}

describe('breakout rooms in Chromium', { skip: nativeAddonProblem, timeout: 420_000 }, () => {
  let browser: Browser

  before(async () => {
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
  })

  test('two groups of two hear only themselves and come back without a new offer/answer', { timeout: 400_000 }, async (t) => {
    const server = await startServer()
    const members: Member[] = []
    try {
      for (const [name, role] of [['Host', 'host'], ['Ada', 'guest'], ['Bob', 'guest'], ['Cy', 'guest']] as const) {
        const page = await joinPatiently(browser, server.url, 'breakouts', name, role)
        members.push({ name, page, id: String(await page.evaluate('globalThis.conclave.meeting.participantId')) })
      }
      const [host] = members
      assert.ok(host)
      // Everyone receives the three others, audio and video, and decodes the video.
      await eventually(
        'every page to receive and decode the three others',
        async () => {
          const missing: string[] = []
          for (const member of members) {
            const received = await streams(member.page)
            for (const other of members) {
              if (other === member) continue
              if ((received.get(`${other.id}/audio`)?.packets ?? 0) === 0) missing.push(`${member.name} <- ${other.name} audio`)
              if ((received.get(`${other.id}/video`)?.frames ?? 0) === 0) missing.push(`${member.name} <- ${other.name} video`)
            }
          }
          if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}`)
          return true
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      )
      const before = new Map<string, { local: string; remote: string }>()
      for (const member of members) before.set(member.name, (await member.page.evaluate(COUNT_OFFERS)) as { local: string; remote: string })

      // Split from the host's panel: round-robin over Host, Ada, Bob, Cy gives two groups of two.
      const timeline: Sample[] = [await sampleAll(members)]
      const splitAt = Date.now()
      await clickInBackground(host.page, '#split-breakouts')
      await eventually('everyone to know their group', async () => {
        for (const member of members) if (!(await member.page.evaluate('globalThis.conclave.meeting.breakouts !== undefined'))) return false
        return true
      }, { timeoutMs: 30_000 })
      const groups = (await host.page.evaluate('globalThis.conclave.meeting.breakouts.groups')) as { name: string; participantIds: string[] }[]
      assert.equal(groups.length, 2)
      assert.deepEqual(groups.map((group) => group.participantIds.length), [2, 2])
      const groupOf = (id: string) => groups.findIndex((group) => group.participantIds.includes(id))
      const together = (a: Member, b: Member) => groupOf(a.id) === groupOf(b.id)

      for (const member of members) {
        const status = String(await member.page.$eval('#breakout-status', (node) => node.textContent))
        assert.equal(status, `You are in ${groups[groupOf(member.id)]?.name}`)
      }

      // Apart: over a whole second, packets from the other group do not rise, and our group's do
      // (audio and video).
      const apart = async () => {
        const start = await sampleAll(members)
        timeline.push(start)
        await new Promise((resolve) => setTimeout(resolve, 1000))
        const end = await sampleAll(members)
        timeline.push(end)
        const problems: string[] = []
        for (const member of members) {
          for (const other of members) {
            if (other === member) continue
            for (const kind of ['audio', 'video']) {
              const key = `${other.id}/${kind}`
              const rose = (end.get(member.name)?.streams.get(key)?.packets ?? 0) - (start.get(member.name)?.streams.get(key)?.packets ?? 0)
              if (together(member, other) && rose <= 0) problems.push(`${member.name} gets no ${kind} from ${other.name}`)
              if (!together(member, other) && rose !== 0) problems.push(`${member.name} still gets ${rose} ${kind} packets from ${other.name}`)
            }
          }
        }
        if (problems.length > 0) throw new Error(problems.join('; '))
        return true
      }
      // Sample densely while waiting, so the timeline says when each stream went quiet.
      const sampling = setInterval(() => void sampleAll(members).then((sample) => timeline.push(sample)), 100)
      try {
        await eventually('each group to hear only itself', apart, { timeoutMs: 30_000, intervalMs: 50 })
      } finally {
        clearInterval(sampling)
      }
      const stopMs: number[] = []
      let slowestStop: { ms: number; what: string } | undefined
      for (const member of members) {
        for (const other of members) {
          if (other === member || together(member, other)) continue
          for (const kind of ['audio', 'video']) {
            const ms = lastRise(timeline, splitAt, member.name, `${other.id}/${kind}`)
            stopMs.push(ms)
            if (ms > (slowestStop?.ms ?? -1)) slowestStop = { ms, what: `${member.name} <- ${other.name} ${kind}` }
          }
        }
        // The other group's tiles are hidden, our group's shown.
        for (const other of members) {
          if (other === member) continue
          const hidden = await member.page.$$eval(`#tiles [data-participant-id="${other.id}"]`, (nodes) => nodes.every((node) => (node as unknown as { hidden: boolean }).hidden))
          assert.equal(hidden, !together(member, other), `${member.name} sees ${other.name}'s tile: ${!hidden}`)
        }
      }

      // Back together from the host's panel: every stream rises again and video decodes again.
      const backTimeline: Sample[] = [await sampleAll(members)]
      const endAt = Date.now()
      await clickInBackground(host.page, '#end-breakouts')
      const backSampling = setInterval(() => void sampleAll(members).then((sample) => backTimeline.push(sample)), 100)
      try {
        await eventually(
          'every stream to flow and decode again',
          async () => {
            const missing: string[] = []
            for (const member of members) {
              for (const other of members) {
                if (other === member) continue
                if (firstRise(backTimeline, endAt, member.name, `${other.id}/audio`, 'packets') === undefined) missing.push(`${member.name} <- ${other.name} audio`)
                if (firstRise(backTimeline, endAt, member.name, `${other.id}/video`, 'frames') === undefined) missing.push(`${member.name} <- ${other.name} video frames`)
              }
            }
            if (missing.length > 0) throw new Error(`not yet: ${missing.join(', ')}`)
            return true
          },
          { timeoutMs: 45_000, intervalMs: 100 },
        )
      } finally {
        clearInterval(backSampling)
      }
      const resumeAudioMs: number[] = []
      const resumeVideoMs: number[] = []
      for (const member of members) {
        for (const other of members) {
          if (other === member || together(member, other)) continue
          resumeAudioMs.push(firstRise(backTimeline, endAt, member.name, `${other.id}/audio`, 'packets') ?? Number.NaN)
          resumeVideoMs.push(firstRise(backTimeline, endAt, member.name, `${other.id}/video`, 'frames') ?? Number.NaN)
        }
      }
      for (const member of members) {
        assert.equal(await member.page.evaluate('globalThis.conclave.meeting.breakouts'), undefined)
        assert.equal(await member.page.$eval('#breakout-status', (node) => (node as unknown as { hidden: boolean }).hidden), true)
      }

      // Not one offer/answer on any page, and the descriptions are the ones from before the split.
      const heardSplitMs: number[] = []
      const heardEndMs: number[] = []
      for (const member of members) {
        const now = (await member.page.evaluate(DESCRIPTIONS)) as { offers: number; heard: number[]; local: string; remote: string }
        assert.equal(now.heard.length, 2, `${member.name} heard the split and the end`)
        heardSplitMs.push((now.heard[0] ?? Number.NaN) - splitAt)
        heardEndMs.push((now.heard[1] ?? Number.NaN) - endAt)
        assert.equal(now.offers, 0, `${member.name} made no offer`)
        assert.equal(now.local, before.get(member.name)?.local, `${member.name}'s local description is unchanged`)
        assert.equal(now.remote, before.get(member.name)?.remote, `${member.name}'s remote description is unchanged`)
      }

      const line =
        `breakouts: breakouts-updated reached the pages ${median(heardSplitMs).toFixed(0)} ms after the split click (max ${Math.max(...heardSplitMs).toFixed(0)}), ` +
        `${median(heardEndMs).toFixed(0)} ms after the end click (max ${Math.max(...heardEndMs).toFixed(0)}); other group's packets last seen ${median(stopMs).toFixed(0)} ms (median; max ${Math.max(...stopMs).toFixed(0)}, ${slowestStop?.what}) after the split click; ` +
        `after ending, audio back in ${median(resumeAudioMs).toFixed(0)} ms (max ${Math.max(...resumeAudioMs).toFixed(0)}), ` +
        `video decoding in ${median(resumeVideoMs).toFixed(0)} ms (max ${Math.max(...resumeVideoMs).toFixed(0)}); about 100 ms sampling, 0 offers`
      t.diagnostic(line)
      console.log(line)
    } finally {
      await Promise.all(members.map((member) => member.page.close().catch(() => undefined)))
      await server.close()
    }
  })
})
