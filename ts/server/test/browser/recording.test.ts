// Recording from the meeting page, end to end with the REAL recorder (recorder/dist/src/cli.js:
// Chromium under Xvfb and PulseAudio, ffmpeg): a host presses Record, everyone sees the indicator,
// the recorder never shows up as a person, Stop finalizes an MP4 that the REST API links to.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { type RecordingDetails, RecordingList, type RoomId } from '@conclave/protocol'
import { DEFAULT_RECORDER_SCRIPT } from '../../src/recording/recording-service.js'
import type { ConclaveServer } from '../../src/server.js'
import { eventually } from '../support/eventually.js'
import { joinMeeting, launchBrowser, startServer } from './harness.js'

const MISSING = [
  existsSync(DEFAULT_RECORDER_SCRIPT) ? undefined : `the recorder is not built (${DEFAULT_RECORDER_SCRIPT}; npm run build)`,
  ...['/usr/bin/Xvfb', '/usr/bin/pulseaudio', '/usr/bin/ffmpeg'].map((path) => (existsSync(path) ? undefined : `${path} is missing (scripts/setup.sh --for-tests)`)),
].filter((problem) => problem !== undefined)

/** A real click on the host's Record/Stop button; the tab is brought to the front, as a person's would be. */
async function clickRecord(page: Page): Promise<void> {
  await page.bringToFront()
  await page.click('#record')
}

const indicatorShown = (page: Page) => page.evaluate('!document.querySelector("#recording-indicator").hidden') as Promise<boolean>

describe('recording from the meeting page', { skip: MISSING.length > 0 ? MISSING.join('; ') : false }, () => {
  let browser: Browser
  let server: ConclaveServer
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conclave-browser-recordings-'))
    browser = await launchBrowser()
    server = await startServer({ recording: { output: { kind: 'local', dir }, spoolDir: join(dir, 'spool') } })
  })

  after(async () => {
    await server?.close()
    await browser?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('a host records: everyone sees the indicator, the recorder is never listed, Stop finalizes a linked MP4', async () => {
    const room = 'recorded'
    const host = await joinMeeting(browser, server, room, 'Hana')
    const guest = await joinMeeting(browser, server, room, 'Gus', undefined, { role: 'guest' })
    assert.equal(await guest.evaluate('document.querySelector("#record").hidden'), true, 'guests have no Record button')
    assert.equal(await indicatorShown(guest), false)

    const clickedAt = Date.now()
    await clickRecord(host)
    await eventually('the guest to see the recording indicator', () => indicatorShown(guest))
    await eventually('the host to see the recording indicator', () => indicatorShown(host))
    const recording = await eventually('the recorder to start recording', async () => {
      const [current] = await server.recordings.list(room as RoomId)
      if (current?.state === 'failed') throw new Error(`the recording failed: ${JSON.stringify(current.error)}`)
      return current?.state === 'recording' ? current : undefined
    }, { timeoutMs: 60_000 })
    const startMs = Date.now() - clickedAt

    // The recorder is in the room, receiving, but no one sees it as a person.
    const recorder = await eventually('the recorder to be in the room', async () =>
      (await server.store.listParticipants(room as RoomId)).find((participant) => participant.grants.recorder),
    )
    const late = await joinMeeting(browser, server, room, 'Lea', undefined, { role: 'guest' })
    assert.equal(await indicatorShown(late), true, 'a late joiner sees the indicator at once')
    for (const [who, page, others] of [['host', host, 2], ['guest', guest, 2], ['late joiner', late, 2]] as const) {
      const listed = await eventually(`${who} to list everyone`, async () => {
        const names = (await page.$$eval('#participants li', (items) => items.map((item) => item.textContent ?? ''))) as string[]
        if (names.length !== others + 1) throw new Error(`${who} lists ${JSON.stringify(names)}`)
        return names
      })
      assert.ok(!listed.some((text) => text.includes('Recorder')), `${who} lists the recorder: ${JSON.stringify(listed)}`)
      const known = (await page.evaluate(`[...globalThis.conclave.meeting.participants.keys()]`)) as string[]
      assert.ok(!known.includes(recorder.participantId), `${who}'s meeting knows the recorder`)
    }

    await eventually('the recorder to write media', async () => ((await server.recordings.get(recording.recordingId)).bytes ?? 0) > 0, { timeoutMs: 30_000 })
    const stopClickedAt = Date.now()
    await clickRecord(host)
    await eventually('the indicator to go away for the guest', async () => !(await indicatorShown(guest)), { timeoutMs: 30_000 })
    const finalized: RecordingDetails = await eventually('the recording to be finalized', async () => {
      const current = await server.recordings.get(recording.recordingId)
      if (current.state === 'failed') throw new Error(`the recording failed: ${JSON.stringify(current.error)}`)
      return current.state === 'finalized' ? current : undefined
    }, { timeoutMs: 60_000 })
    const stopMs = Date.now() - stopClickedAt
    assert.equal(await indicatorShown(late), false)
    assert.equal(finalized.partial, false)
    await eventually('the recorder to leave the room', async () => !(await server.store.listParticipants(room as RoomId)).some((participant) => participant.grants.recorder), {
      timeoutMs: 30_000,
    })

    // The REST API lists it with links that serve the files.
    const listed = RecordingList.parse(await (await fetch(`${server.url}/v1/recordings`)).json())
    const mp4 = listed.recordings.find((entry) => entry.recordingId === recording.recordingId)?.files.find((file) => file.name.endsWith('.mp4'))
    assert.ok(mp4 !== undefined && (mp4.bytes ?? 0) > 0, `an MP4 is listed: ${JSON.stringify(listed)}`)
    const download = await fetch(`${server.url}${mp4.url}`)
    assert.equal(download.status, 200)
    assert.equal(download.headers.get('content-type'), 'video/mp4')
    assert.equal((await download.arrayBuffer()).byteLength, mp4.bytes)
    console.log(`recording: click to recording ${startMs} ms, stop click to finalized ${stopMs} ms, ${mp4.bytes} bytes of MP4`)
    await Promise.all([host.close(), guest.close(), late.close()])
  })

  test('a recorder killed mid-recording is detected: failed and partial for everyone, its MP4 committed and the index marked partial', async () => {
    const room = 'crashed'
    const host = await joinMeeting(browser, server, room, 'Hana')
    const guest = await joinMeeting(browser, server, room, 'Gus', undefined, { role: 'guest' })
    // Started through the REST API this time (open dev server: no key needed).
    const response = await fetch(`${server.url}/v1/rooms/${room}/recordings`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
    assert.equal(response.status, 201)
    const { recordingId } = (await response.json()) as RecordingDetails
    await eventually('the guest to see the recording indicator', () => indicatorShown(guest))
    // A few seconds in (two HLS segments), so that whole fragments exist to be kept.
    await eventually('the recorder to write two segments', async () => ((await server.recordings.get(recordingId)).segments ?? 0) >= 2, { timeoutMs: 60_000 })

    const pid = server.recordings.pidOf(recordingId)
    assert.ok(pid !== undefined)
    const killedAt = Date.now()
    process.kill(pid, 'SIGKILL')
    const failed = await eventually('the crash to be detected', async () => {
      const current = await server.recordings.get(recordingId)
      return current.state === 'failed' ? current : undefined
    }, { timeoutMs: 30_000 })
    const detectMs = Date.now() - killedAt
    assert.equal(failed.partial, true)
    assert.equal(failed.error?.code, 'recorder_crashed')
    assert.match(failed.error?.message ?? '', /ended by SIGKILL without finalizing/)
    assert.deepEqual([failed.index?.status, failed.index?.partial], ['partial', true])
    // What was recorded is committed: the HLS segments written so far (media, not just headers) and the MP4.
    const segmentBytes = failed.files.filter((file) => file.name.endsWith('.ts')).reduce((sum, file) => sum + (file.bytes ?? 0), 0)
    assert.ok(segmentBytes > 10_000, `HLS segments are committed: ${JSON.stringify(failed.files)}`)
    const mp4 = failed.files.find((file) => file.name.endsWith('.mp4'))
    assert.ok(mp4 !== undefined, `the MP4 is committed: ${JSON.stringify(failed.files)}`)
    await eventually('the indicator to go away for the guest', async () => !(await indicatorShown(guest)))
    const status = (await guest.$eval('#status', (node) => node.textContent)) ?? ''
    assert.match(status, /recording failed; what was recorded is kept/)
    // Its helpers (Xvfb, PulseAudio, ffmpeg) went with it, and so did its Chromium: it leaves the room.
    await eventually('the recorder group to be gone', () => {
      try {
        process.kill(-pid, 0)
        return false
      } catch {
        return true
      }
    }, { timeoutMs: 30_000 })
    await eventually('the recorder to leave the room', async () => !(await server.store.listParticipants(room as RoomId)).some((participant) => participant.grants.recorder), {
      timeoutMs: 60_000,
    })
    console.log(`recording: SIGKILL to failed+partial (partial finalized) ${detectMs} ms; kept ${segmentBytes} bytes of HLS segments, ${mp4.bytes} bytes of MP4`)
    await Promise.all([host.close(), guest.close()])
  })
})
