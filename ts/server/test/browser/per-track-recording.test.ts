// Per-track recording end to end: real Chromium participants, the server's engine teeing each track
// to a real ffmpeg (recorder/dist/src/tracks), started and stopped over REST with the API key. The
// files are checked with ffprobe; timings and CPU/memory are printed, never asserted.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { RecordingDetails, RecordingList, type RecordingId, type RoomId } from '@conclave/protocol'
import type { ConclaveServer } from '../../src/server.js'
import type { TracksRecordingIndex } from '../../src/recording/tracks-recording.js'
import { eventually } from '../support/eventually.js'
import { joinMeeting, launchBrowser, startServer } from './harness.js'

const run = promisify(execFile)
const RECORDER_TRACKS = fileURLToPath(new URL('../../../../../recorder/dist/src/tracks/index.js', import.meta.url))
const MISSING = [
  existsSync(RECORDER_TRACKS) ? undefined : `the recorder is not built (${RECORDER_TRACKS}; npm run build)`,
  ...['/usr/bin/ffmpeg', '/usr/bin/ffprobe'].map((path) => (existsSync(path) ? undefined : `${path} is missing (scripts/setup.sh --for-tests)`)),
].filter((problem) => problem !== undefined)

const apiKey = 'per-track-recording-test-key'
const withKey = { Authorization: `Bearer ${apiKey}` }
/** How long the room is recorded before and after the third participant joins (content, not a wait for a condition). */
const RECORD_FOR_MS = 4_000

const CODECS: Record<string, string> = { opus: 'opus', vp8: 'vp8', h264: 'h264', vp9: 'vp9', av1: 'av1' }

async function probe(path: string, kind: 'audio' | 'video'): Promise<{ codec: string; durationSeconds: number; frames: number }> {
  const args = ['-v', 'error', '-show_entries', 'stream=codec_name,codec_type,nb_read_frames:format=duration', '-of', 'json']
  if (kind === 'video') args.push('-count_frames', '-select_streams', 'v:0')
  const { stdout } = await run('ffprobe', [...args, path])
  const parsed = JSON.parse(stdout) as { streams: { codec_name: string; codec_type: string; nb_read_frames?: string }[]; format: { duration?: string } }
  const stream = parsed.streams.find((candidate) => candidate.codec_type === kind)
  assert.ok(stream !== undefined, `${path} has no ${kind} stream: ${stdout}`)
  return { codec: stream.codec_name, durationSeconds: Number(parsed.format.duration ?? 0), frames: Number(stream.nb_read_frames ?? 0) }
}

describe('per-track recording', { skip: MISSING.length > 0 ? MISSING.join('; ') : false }, () => {
  let browser: Browser
  let server: ConclaveServer
  let dir: string
  const pages: Page[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conclave-per-track-recordings-'))
    browser = await launchBrowser()
    server = await startServer({ apiKey, recording: { output: { kind: 'local', dir }, spoolDir: join(dir, 'spool') } })
  })

  after(async () => {
    await Promise.all(pages.map((page) => page.close().catch(() => undefined)))
    await server?.close()
    await browser?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('the API records each track of a meeting to its own playable file, those of a late joiner and of a leaver included, with an index and thumbnails', { timeout: 180_000 }, async () => {
    const room = 'per-track' as RoomId
    const tracksOfRoom = () => server.rooms.room(room)?.tracks.size ?? 0
    pages.push(await joinMeeting(browser, server, room, 'Ada'), await joinMeeting(browser, server, room, 'Ben'))
    await eventually('both participants to publish camera and microphone', async () => tracksOfRoom() >= 4, { timeoutMs: 30_000 })

    const startedAt = Date.now()
    const created = await fetch(`${server.url}/v1/rooms/${room}/recordings`, {
      method: 'POST',
      headers: { ...withKey, 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'tracks' }),
    })
    assert.equal(created.status, 201, await created.clone().text())
    const recording = RecordingDetails.parse(await created.json())
    assert.deepEqual([recording.mode, recording.state], ['tracks', 'recording'])
    const recordingId = recording.recordingId as RecordingId
    const startMs = Date.now() - startedAt
    const twice = await fetch(`${server.url}/v1/rooms/${room}/recordings`, { method: 'POST', headers: { ...withKey, 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'tracks' }) })
    assert.equal(twice.status, 409)

    const ffmpegsRunning = async (count: number) => ((await server.recordings.tracksUsage(recordingId))?.ffmpegs.length ?? 0) >= count
    await eventually('an ffmpeg for each of the 4 tracks', () => ffmpegsRunning(4), { timeoutMs: 30_000 })
    await delay(RECORD_FOR_MS)
    const lateJoinedAt = Date.now()
    pages.push(await joinMeeting(browser, server, room, 'Cleo'))
    await eventually('the late joiner publishes', async () => tracksOfRoom() >= 6, { timeoutMs: 30_000 })
    await eventually('its tracks to be recorded too', () => ffmpegsRunning(6), { timeoutMs: 30_000 })
    await delay(RECORD_FOR_MS)
    const usage = await server.recordings.tracksUsage(recordingId)
    // Ben leaves: his tracks end, their files are finished while the others go on.
    await pages[1]?.close()
    await eventually('Ben\'s tracks to end', async () => tracksOfRoom() === 4, { timeoutMs: 30_000 })

    const stopAt = Date.now()
    const stopped = await fetch(`${server.url}/v1/rooms/${room}/recordings/${recordingId}`, { method: 'DELETE', headers: withKey })
    assert.equal(stopped.status, 202)
    const finalized = await eventually('the recording to be finalized', async () => {
      const current = await server.recordings.get(recordingId)
      if (current.state === 'failed') throw new Error(`the recording failed: ${JSON.stringify(current.error)}`)
      return current.state === 'finalized' ? current : undefined
    }, { timeoutMs: 60_000 })
    const stopMs = Date.now() - stopAt
    assert.equal(finalized.partial, false, JSON.stringify(finalized.error))

    // recording.json: every track with its file, the three participants, the late one joining late.
    const folder = join(dir, recordingId)
    const index = JSON.parse(await readFile(join(folder, 'recording.json'), 'utf8')) as TracksRecordingIndex
    assert.deepEqual([index.mode, index.status, index.room, index.recordingId], ['tracks', 'finalized', room, recordingId])
    assert.ok(index.tracks.length >= 6, `6 tracks in the index: ${JSON.stringify(index.tracks)}`)
    assert.deepEqual(index.participants.map((participant) => participant.name).sort(), ['Ada', 'Ben', 'Cleo'])
    const cleo = index.participants.find((participant) => participant.name === 'Cleo')
    assert.ok(cleo !== undefined && Date.parse(cleo.joinedAt) >= lateJoinedAt - 1_000, `Cleo joined late: ${JSON.stringify(cleo)}`)
    assert.equal(index.tracks.filter((track) => track.participantId === cleo.participantId).length, 2, 'the late joiner\'s camera and microphone')
    const ben = index.participants.find((participant) => participant.name === 'Ben')
    assert.ok(ben?.leftAt !== undefined, `Ben's leaving is in the index: ${JSON.stringify(ben)}`)
    assert.equal(index.tracks.filter((track) => track.participantId === ben.participantId).length, 2, 'the camera and microphone of Ben, who left')

    for (const track of index.tracks) {
      assert.match(track.file, /^tracks\//)
      assert.ok(track.size > 0 && track.sha256.length === 64, JSON.stringify(track))
      const media = await probe(join(folder, track.file), track.kind)
      assert.equal(media.codec, CODECS[track.codec.toLowerCase()], `${track.file}: ${track.codec} recorded as ${media.codec}`)
      assert.ok(media.durationSeconds > 0, `${track.file} has a duration: ${JSON.stringify(media)}`)
      if (track.kind === 'video') assert.ok(media.frames > 0, `${track.file} has frames: ${JSON.stringify(media)}`)
      console.log(`per-track recording: ${track.file} ${track.codec} ${media.durationSeconds.toFixed(1)} s ${track.size} bytes${track.kind === 'video' ? ` ${media.frames} frames` : ''}`)
    }

    const thumbnails = index.files.filter((file) => file.kind === 'thumbnail')
    assert.ok(thumbnails.length > 0, `thumbnails: ${JSON.stringify(index.files)}`)
    const jpeg = await readFile(join(folder, thumbnails[0]?.name ?? ''))
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG')

    // The REST API lists it with links that serve the files.
    const listed = RecordingList.parse(await (await fetch(`${server.url}/v1/recordings`, { headers: withKey })).json())
    const entry = listed.recordings.find((candidate) => candidate.recordingId === recordingId)
    assert.ok(entry !== undefined, JSON.stringify(listed))
    assert.ok(entry.files.some((file) => file.name === 'recording.json'))
    const first = index.tracks[0]
    const link = entry.files.find((file) => file.name === first?.file)
    assert.ok(link !== undefined, `${first?.file} is linked: ${JSON.stringify(entry.files)}`)
    const download = await fetch(`${server.url}${link.url}`, { headers: withKey })
    assert.equal(download.status, 200)
    assert.equal((await download.arrayBuffer()).byteLength, first?.size)

    const ffmpegCpu = usage?.ffmpegs.reduce((sum, process) => sum + process.cpuSeconds, 0) ?? 0
    const ffmpegPss = usage?.ffmpegs.reduce((sum, process) => sum + process.pssBytes, 0) ?? 0
    console.log(
      `per-track recording: start ${startMs} ms, stop to finalized ${stopMs} ms, ${index.tracks.length} tracks, ${thumbnails.length} thumbnails; ` +
        `server ${((usage?.server?.rssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB RSS, ${usage?.ffmpegs.length} ffmpegs ${ffmpegCpu.toFixed(2)} CPU s, ${(ffmpegPss / 2 ** 20).toFixed(1)} MiB PSS together`,
    )
  })
})
