// The recorder when things go wrong: a missing program or an unknown mode is refused at start with
// a typed error; a recorder killed mid-way leaves a playable recording marked partial.

import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { finalizePartial } from '../src/finalize-partial.js'
import type { RecordingIndex } from '../src/recording-index.js'
import { sha256OfBytes } from '../src/recording-index.js'
import { AzureBlobSink } from '../src/storage/azure-blob-sink.js'
import {
  decodeAll,
  eventually,
  joinAsPublisher,
  mediaDuration,
  recorderToken,
  spawnRecorder,
  setUpTestbed,
} from './harness.js'

const testbed = setUpTestbed({ storage: true })

function config(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    mode: 'composite',
    recordingId: 'rec-failure',
    room: 'failure-room',
    serverUrl: testbed.server.url,
    token: '',
    output: { kind: 'azure', connectionString: testbed.azurite.connectionString, container: 'recordings' },
    width: 640,
    height: 360,
    ...overrides,
  }
}

test('a missing ffmpeg is refused at start with missing_dependency and exit code 2', async () => {
  const recorder = spawnRecorder(config(), { CONCLAVE_FFMPEG: '/nonexistent/ffmpeg' })
  const failed = await recorder.next('failed', 20_000)
  assert.equal(failed.code, 'missing_dependency')
  assert.match(String(failed.message), /ffmpeg \(\/nonexistent\/ffmpeg: not found/)
  assert.equal(await recorder.exited, 2)
  assert.equal(recorder.lines.some((line) => line.type === 'started'), false)
})

test('an unknown mode is refused with unsupported_mode', async () => {
  const recorder = spawnRecorder(config({ mode: 'audio-only' }))
  const failed = await recorder.next('failed', 20_000)
  assert.equal(failed.code, 'unsupported_mode')
  assert.equal(await recorder.exited, 2)
})

test('a recorder killed mid-way leaves a playable MP4 and an index marked partial', { timeout: 300_000 }, async () => {
  const room = 'crash-room'
  const ada = await joinAsPublisher(testbed.browser, testbed.server, room, 'Ada')
  const spoolDir = await mkdtemp(join(tmpdir(), 'recorder-spool-'))
  const recorder = spawnRecorder(
    config({ recordingId: 'rec-crash', room, token: await recorderToken(testbed.server, room), spoolDir }),
  )
  await recorder.next('started')
  const sink = new AzureBlobSink({ connectionString: testbed.azurite.connectionString, container: 'recordings', prefix: 'rec-crash' })
  // Killed once storage holds a few seconds of committed MP4.
  await eventually('a few seconds of MP4 in storage', async () => {
    const mp4 = (await sink.list()).find((object) => object.name === 'recording.mp4')
    assert.ok(mp4 !== undefined && mp4.size > 150_000, `stored ${mp4?.size ?? 0} bytes`)
  }, 60_000)
  recorder.child.kill('SIGKILL')
  await recorder.exited
  await ada.close()

  // What storage holds right after the kill, before anyone cleans up, plays.
  const downloads = await mkdtemp(join(tmpdir(), 'recorder-download-'))
  const killedMp4 = join(downloads, 'killed.mp4')
  await writeFile(killedMp4, (await sink.read('recording.mp4')) ?? new Uint8Array())
  await decodeAll(killedMp4)
  const killedSeconds = await mediaDuration(killedMp4)
  assert.ok(killedSeconds >= 1, `the committed MP4 plays ${killedSeconds} s`)
  const provisional = JSON.parse(Buffer.from((await sink.read('recording.json')) ?? []).toString()) as RecordingIndex
  assert.equal(provisional.partial, true)
  assert.equal(provisional.status, 'recording')
  assert.deepEqual(provisional.participants.map((participant) => participant.name), ['Ada'])

  // The orchestrator's recovery: the spool's rest is stored, the index lists every file, partial.
  const index = await finalizePartial({ recordingId: 'rec-crash', sink, spoolDir, ffmpeg: 'ffmpeg' })
  assert.equal(index.partial, true)
  assert.equal(index.status, 'partial')
  assert.equal(index.error?.code, 'recorder_lost')
  const stored = JSON.parse(Buffer.from((await sink.read('recording.json')) ?? []).toString()) as RecordingIndex
  assert.deepEqual(stored, index)
  const mp4 = index.files.find((file) => file.name === 'recording.mp4')
  assert.ok(mp4 !== undefined && mp4.size >= 150_000)
  assert.ok(index.files.some((file) => file.kind === 'hls-playlist'))
  assert.ok(index.files.some((file) => file.kind === 'thumbnail'))
  for (const file of index.files) assert.equal(sha256OfBytes((await sink.read(file.name)) ?? new Uint8Array()), file.sha256, file.name)
  const recovered = join(downloads, 'recovered.mp4')
  await writeFile(recovered, (await sink.read('recording.mp4')) ?? new Uint8Array())
  await decodeAll(recovered)
  assert.ok((await mediaDuration(recovered)) >= killedSeconds)
})
