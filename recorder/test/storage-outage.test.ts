// Storage that is not there when recording starts: the recorder spools, retries with backoff and,
// once storage answers, stores everything; nothing recorded is lost.

import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import type { RecordingIndex } from '../src/recording-index.js'
import { sha256OfBytes } from '../src/recording-index.js'
import { AzureBlobSink } from '../src/storage/azure-blob-sink.js'
import {
  type Azurite,
  azuriteConnectionString,
  decodeAll,
  eventually,
  frameLumaVariance,
  freePort,
  joinAsPublisher,
  mediaDuration,
  recorderToken,
  spawnRecorder,
  startAzurite,
  setUpTestbed,
} from './harness.js'

const testbed = setUpTestbed({ storage: false })
// Started by the test itself, after the recorder: storage is down at first.
let azurite: Azurite | undefined

after(async () => {
  await azurite?.stop()
})

test('storage unreachable at first loses nothing once it comes back; a recorder that came first shows who joins later', { timeout: 300_000 }, async () => {
  const room = 'outage-room'
  const port = await freePort()
  const recorder = spawnRecorder({
    mode: 'composite',
    recordingId: 'rec-outage',
    room,
    serverUrl: testbed.server.url,
    token: await recorderToken(testbed.server, room),
    output: { kind: 'azure', connectionString: azuriteConnectionString(port), container: 'recordings' },
    spoolDir: await mkdtemp(join(tmpdir(), 'recorder-spool-')),
    width: 640,
    height: 360,
  })
  await recorder.next('started')
  // The recorder was first in the room; Ada comes after it.
  const ada = await joinAsPublisher(testbed.browser, testbed.server, room, 'Ada')
  // Storage is down: the recorder says so in its progress and keeps recording.
  await eventually('a progress line counting storage failures', async () => {
    assert.ok(recorder.lines.some((line) => line.type === 'progress' && Number(line.storageFailures) > 0), JSON.stringify(recorder.lines))
  }, 30_000)
  azurite = await startAzurite(port)
  const sink = new AzureBlobSink({ connectionString: azurite.connectionString, container: 'recordings', prefix: 'rec-outage' })
  await eventually('the backlog to reach storage', async () => {
    const mp4 = (await sink.list()).find((object) => object.name === 'recording.mp4')
    assert.ok(mp4 !== undefined && mp4.size > 0)
  }, 30_000)
  recorder.child.kill('SIGTERM')
  const finalized = await recorder.next('finalized', 90_000)
  assert.equal(await recorder.exited, 0, recorder.stderr().slice(-2000))
  assert.equal(finalized.partial, false)
  const index = finalized.index as RecordingIndex
  assert.deepEqual(index.participants.map((participant) => participant.name), ['Ada'])

  // Everything the recorder wrote is stored, byte for byte, and every segment the playlist names exists.
  const stored = new Set((await sink.list()).map((object) => object.name))
  for (const file of index.files) {
    assert.equal(sha256OfBytes((await sink.read(file.name)) ?? new Uint8Array()), file.sha256, file.name)
  }
  const playlist = Buffer.from((await sink.read('hls/playlist.m3u8')) ?? []).toString()
  const segments = playlist.split('\n').filter((line) => line.endsWith('.ts'))
  assert.ok(segments.length >= 2, playlist)
  for (const segment of segments) assert.ok(stored.has(`hls/${segment}`), `hls/${segment} is stored`)
  assert.match(playlist, /#EXT-X-ENDLIST/)
  const downloads = await mkdtemp(join(tmpdir(), 'recorder-download-'))
  const mp4 = join(downloads, 'recording.mp4')
  await writeFile(mp4, (await sink.read('recording.mp4')) ?? new Uint8Array())
  await decodeAll(mp4)
  const seconds = await mediaDuration(mp4)
  assert.ok(Math.abs(seconds - index.durationSeconds) <= 2, `MP4 ${seconds} s vs recording ${index.durationSeconds} s`)
  const variance = await frameLumaVariance(mp4, seconds - 2)
  assert.ok(variance > 100, `Ada's video is in the recording (luma variance ${variance})`)
  await ada.close()
})
