// A helper dying while recording: the recorder notices, commits what it has, marks it partial,
// reports the failure and exits 1.

import assert from 'node:assert/strict'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
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

/** The pid of the recorder's direct child whose command line starts with `program`. */
async function childOf(parent: number, program: string): Promise<number> {
  const children = (await readFile(`/proc/${parent}/task/${parent}/children`, 'utf8')).trim().split(' ').filter(Boolean).map(Number)
  for (const pid of children) {
    const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')[0] ?? ''
    if (command.endsWith(program)) return pid
  }
  throw new Error(`no ${program} under ${parent}`)
}

for (const [program, code] of [
  ['ffmpeg', 'ffmpeg_crashed'],
  ['chromium', 'browser_crashed'],
] as const) {
  test(`${program} killed while recording: the recording is committed, marked partial, and ${code} reported`, { timeout: 300_000 }, async () => {
    const room = `crash-${program}`
    const ada = await joinAsPublisher(testbed.browser, testbed.server, room, 'Ada')
    const recordingId = `rec-${program}-killed`
    const recorder = spawnRecorder({
      mode: 'composite',
      recordingId,
      room,
      serverUrl: testbed.server.url,
      token: await recorderToken(testbed.server, room),
      output: { kind: 'azure', connectionString: testbed.azurite.connectionString, container: 'recordings' },
      spoolDir: await mkdtemp(join(tmpdir(), 'recorder-spool-')),
      width: 640,
      height: 360,
    })
    await recorder.next('started')
    const sink = new AzureBlobSink({ connectionString: testbed.azurite.connectionString, container: 'recordings', prefix: recordingId })
    await eventually('a few seconds of MP4 in storage', async () => {
      const mp4 = (await sink.list()).find((object) => object.name === 'recording.mp4')
      assert.ok(mp4 !== undefined && mp4.size > 100_000, `stored ${mp4?.size ?? 0} bytes`)
    }, 60_000)
    process.kill(await childOf(recorder.child.pid as number, program), 'SIGKILL')

    const finalized = await recorder.next('finalized', 120_000)
    const failed = await recorder.next('failed', 10_000)
    assert.equal(await recorder.exited, 1)
    assert.equal(failed.code, code)
    assert.equal(finalized.partial, true)
    const index = JSON.parse(Buffer.from((await sink.read('recording.json')) ?? []).toString()) as RecordingIndex
    assert.deepEqual(index, finalized.index)
    assert.equal(index.status, 'partial')
    assert.equal(index.error?.code, code)
    for (const file of index.files) assert.equal(sha256OfBytes((await sink.read(file.name)) ?? new Uint8Array()), file.sha256, file.name)
    const mp4 = join(await mkdtemp(join(tmpdir(), 'recorder-download-')), 'recording.mp4')
    await writeFile(mp4, (await sink.read('recording.mp4')) ?? new Uint8Array())
    await decodeAll(mp4)
    assert.ok((await mediaDuration(mp4)) >= 1)
    await ada.close()
  })
}
