// A 20 s meeting of two publishers, recorded in composite mode by the CLI into Azurite: MP4 and HLS
// play, are as long as the recording, show video and carry sound; index and thumbnails are stored.

import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { AzureBlobSink } from '../src/storage/azure-blob-sink.js'
import type { RecordingIndex } from '../src/recording-index.js'
import { sha256OfBytes } from '../src/recording-index.js'
import {
  decodeAll,
  frameLumaVariance,
  joinAsPublisher,
  mediaDuration,
  meanVolume,
  processTreeUsage,
  recorderToken,
  spawnRecorder,
  setUpTestbed,
} from './harness.js'

const testbed = setUpTestbed({ storage: true })

test('a 20 s composite recording lands in blob storage as MP4, HLS, thumbnails and an index', { timeout: 300_000 }, async () => {
  const room = 'composite-room'
  const ada = await joinAsPublisher(testbed.browser, testbed.server, room, 'Ada')
  const bob = await joinAsPublisher(testbed.browser, testbed.server, room, 'Bob')
  const spoolDir = await mkdtemp(join(tmpdir(), 'recorder-spool-'))
  const recorder = spawnRecorder({
    mode: 'composite',
    recordingId: 'rec-composite',
    room,
    serverUrl: testbed.server.url,
    token: await recorderToken(testbed.server, room),
    output: { kind: 'azure', connectionString: testbed.azurite.connectionString, container: 'recordings', prefix: 'tests' },
    spoolDir,
  })
  const started = await recorder.next('started')
  assert.equal(started.recordingId, 'rec-composite')
  const startedAt = Date.now()

  // The recorder is hidden: the publishers never hear of it.
  const seenByAda = (await ada.evaluate('[...globalThis.conclave.meeting.participants.values()].map((p) => p.name)')) as string[]
  assert.deepEqual(seenByAda, ['Bob'])

  // Sample CPU and memory of the whole recorder (node, Chromium, ffmpeg, Xvfb, PulseAudio) while it runs.
  const pid = recorder.child.pid as number
  const first = await processTreeUsage(pid)
  let peakMemoryBytes = first.memoryBytes
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      peakMemoryBytes = Math.max(peakMemoryBytes, (await processTreeUsage(pid)).memoryBytes)
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 12_000))
  await bob.click('#leave') // Bob leaves part-way: the index says when.
  await new Promise((resolve) => setTimeout(resolve, 20_000 - (Date.now() - startedAt)))
  const last = await processTreeUsage(pid)
  sampling = false
  await sampler
  const measuredSeconds = (Date.now() - startedAt) / 1000
  recorder.child.kill('SIGTERM')
  // What the recording should last, by the test's own clock: from the started line to the stop.
  const recordedSeconds = (Date.now() - startedAt) / 1000
  const finalized = await recorder.next('finalized', 90_000)
  assert.equal(await recorder.exited, 0, recorder.stderr().slice(-2000))
  assert.equal(finalized.partial, false)
  const cpuPerMinute = ((last.cpuSeconds - first.cpuSeconds) / measuredSeconds) * 60
  const perMinute = Object.entries(last.cpuSecondsByCommand).map(([command, seconds]) => `${command} ${(((seconds - (first.cpuSecondsByCommand[command] ?? 0)) / measuredSeconds) * 60).toFixed(1)}`)
  console.log(`CPU s per minute recorded, by program: ${perMinute.join(', ')}`)
  console.log(`recorder usage: ${cpuPerMinute.toFixed(1)} CPU s per minute recorded, peak memory ${(peakMemoryBytes / 2 ** 20).toFixed(0)} MiB (sum of PSS)`)
  assert.ok(recorder.lines.some((line) => line.type === 'progress'), 'progress lines while recording')

  const sink = new AzureBlobSink({ connectionString: testbed.azurite.connectionString, container: 'recordings', prefix: 'tests/rec-composite' })
  const index = JSON.parse(Buffer.from((await sink.read('recording.json')) ?? []).toString()) as RecordingIndex
  assert.deepEqual(index, finalized.index)
  assert.equal(index.status, 'finalized')
  assert.equal(index.partial, false)
  assert.ok(index.durationSeconds >= 19, `recorded ${index.durationSeconds} s`)
  const names = index.participants.map((participant) => participant.name).sort()
  assert.deepEqual(names, ['Ada', 'Bob'])
  const bobInIndex = index.participants.find((participant) => participant.name === 'Bob')
  assert.ok(bobInIndex?.leftAt !== undefined, `Bob left during the recording: ${JSON.stringify(index.participants)}`)
  assert.equal(index.participants.find((participant) => participant.name === 'Ada')?.leftAt, undefined)
  assert.ok(index.tracks.filter((track) => track.kind === 'video').length >= 2)

  // Every indexed file is in storage with the indexed size and checksum.
  const stored = new Map((await sink.list()).map((object) => [object.name, object.size]))
  for (const file of index.files) {
    const bytes = await sink.read(file.name)
    assert.ok(bytes !== undefined, `${file.name} is stored`)
    assert.equal(bytes.length, file.size, file.name)
    assert.equal(sha256OfBytes(bytes), file.sha256, file.name)
  }
  assert.ok(stored.has('recording.mp4') && stored.has('hls/playlist.m3u8'))
  const thumbnails = index.files.filter((file) => file.kind === 'thumbnail')
  assert.ok(thumbnails.length >= 3, `${thumbnails.length} thumbnails`)

  // Download and probe what storage holds, as a player would get it.
  const downloads = await mkdtemp(join(tmpdir(), 'recorder-download-'))
  for (const file of index.files) {
    const path = join(downloads, file.name)
    await mkdir(join(path, '..'), { recursive: true })
    await writeFile(path, (await sink.read(file.name)) ?? new Uint8Array())
  }
  const mp4 = join(downloads, 'recording.mp4')
  const playlist = join(downloads, 'hls/playlist.m3u8')
  await decodeAll(mp4)
  const mp4Seconds = await mediaDuration(mp4)
  const hlsSeconds = await mediaDuration(playlist)
  console.log(`durations: between started and SIGTERM ${recordedSeconds.toFixed(2)} s, index ${index.durationSeconds.toFixed(2)} s, MP4 ${mp4Seconds.toFixed(2)} s, HLS ${hlsSeconds.toFixed(2)} s`)
  // The recording starts at the first captured frame, before the started line reaches us (by however
  // long ffmpeg took to write its first output), and ends at the stop.
  assert.ok(index.durationSeconds >= recordedSeconds - 1 && index.durationSeconds <= recordedSeconds + 10, `index ${index.durationSeconds} s, started line to stop ${recordedSeconds} s`)
  for (const [what, seconds] of [['MP4', mp4Seconds], ['HLS', hlsSeconds]] as const) {
    assert.ok(Math.abs(seconds - index.durationSeconds) <= 2, `${what}: ${seconds} s, recording ${index.durationSeconds} s`)
  }
  const variance = await frameLumaVariance(mp4, 5)
  const volume = await meanVolume(mp4)
  console.log(`frame luma variance at 5 s: ${variance.toFixed(0)}, mean volume ${volume} dB`)
  assert.ok(variance > 100, `the video is not blank (luma variance ${variance})`)
  assert.ok(volume > -60, `the audio is not silent (mean volume ${volume} dB)`)
  assert.deepEqual(await readdir(spoolDir), [], 'the spool is emptied once everything is stored')
  await ada.close()
})
