// The uploader against a local folder and a sink that fails on demand: growing MP4s are stored as
// whole boxes, segments before playlists, and nothing is lost across failures.

import assert from 'node:assert/strict'
import { appendFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { LocalFolderSink } from '../src/storage/local-folder-sink.js'
import type { RecordingSink } from '../src/storage/recording-sink.js'
import { RecordingUploader } from '../src/storage/recording-uploader.js'
import { eventually } from './eventually.js'

/** An ISO BMFF box of `size` bytes. */
function box(type: string, size: number, fill: number): Buffer {
  const bytes = Buffer.alloc(size, fill)
  bytes.writeUInt32BE(size, 0)
  bytes.write(type, 4, 'latin1')
  return bytes
}

/** Wraps a sink; while `down` is true every call fails as an unreachable server would. */
function flaky(inner: RecordingSink): RecordingSink & { down: boolean; calls: number; stored: string[] } {
  const sink = {
    down: false,
    calls: 0,
    /** Names of the objects stored, in order. */
    stored: [] as string[],
    location: inner.location,
    gate<T>(call: () => Promise<T>): Promise<T> {
      sink.calls++
      return sink.down ? Promise.reject(new Error('connect ECONNREFUSED')) : call()
    },
    put: (name: string, body: Uint8Array, type: string) => sink.gate(() => inner.put(name, body, type)).then(() => void sink.stored.push(name)),
    putFile: (name: string, path: string, type: string, length?: number) => sink.gate(() => inner.putFile(name, path, type, length)).then(() => void sink.stored.push(name)),
    stageBlock: (name: string, index: number, chunk: Uint8Array) => sink.gate(() => inner.stageBlock(name, index, chunk)),
    commitBlocks: (name: string, count: number, type: string) => sink.gate(() => inner.commitBlocks(name, count, type)),
    read: (name: string) => inner.read(name),
    list: () => inner.list(),
  }
  return sink
}

test('a growing MP4 is stored box by box, and whole at finish', async () => {
  const work = await mkdtemp(join(tmpdir(), 'uploader-'))
  const sink = new LocalFolderSink(join(work, 'out'))
  const uploader = new RecordingUploader({ sink, intervalMs: 20, commitIntervalMs: 0 })
  const mp4 = join(work, 'recording.mp4')
  uploader.followGrowingFile('recording.mp4', mp4)
  uploader.start()
  const first = Buffer.concat([box('ftyp', 24, 1), box('moov', 100, 2)])
  await writeFile(mp4, first)
  // Half a fragment: only the whole boxes before it are stored.
  await appendFile(mp4, box('moof', 64, 3).subarray(0, 30))
  await eventually('the whole boxes to be stored', async () => assert.deepEqual(await sink.read('recording.mp4'), first), 5000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal((await sink.read('recording.mp4'))?.length, first.length)
  await appendFile(mp4, box('moof', 64, 3).subarray(30))
  await appendFile(mp4, Buffer.from('tail-without-a-box'))
  await uploader.finish({ deadlineMs: 5000 })
  assert.deepEqual(await sink.read('recording.mp4'), await readFile(mp4))
})

test('while storage is down nothing is dropped; segments are stored before the playlist that names them', async () => {
  const work = await mkdtemp(join(tmpdir(), 'uploader-'))
  const sink = flaky(new LocalFolderSink(join(work, 'out')))
  const uploader = new RecordingUploader({ sink, intervalMs: 20, commitIntervalMs: 0, initialBackoffMs: 10, maxBackoffMs: 40 })
  let retries = 0
  uploader.on('retrying', () => retries++)
  const mp4 = join(work, 'recording.mp4')
  const hls = join(work, 'hls')
  await mkdir(hls)
  uploader.followGrowingFile('recording.mp4', mp4)
  uploader.followPlaylist('hls/playlist.m3u8', join(hls, 'playlist.m3u8'))
  sink.down = true
  uploader.start()
  await writeFile(mp4, Buffer.concat([box('ftyp', 24, 1), box('moov', 100, 2), box('moof', 50, 3), box('mdat', 5000, 4)]))
  await writeFile(join(hls, 'segment_00000.ts'), Buffer.alloc(1000, 7))
  await writeFile(join(hls, 'segment_00001.ts'), Buffer.alloc(900, 8))
  await writeFile(join(hls, 'playlist.m3u8'), '#EXTM3U\n#EXTINF:2.0,\nsegment_00000.ts\n#EXTINF:2.0,\nsegment_00001.ts\n')
  uploader.put('recording.json', Buffer.from('{"v":1}'), 'application/json')
  uploader.put('recording.json', Buffer.from('{"v":2}'), 'application/json')
  await eventually('a few failed attempts', async () => assert.ok(retries >= 3), 5000)
  assert.deepEqual(await sink.list(), [])
  sink.down = false
  await appendFile(join(hls, 'playlist.m3u8'), '#EXT-X-ENDLIST\n')
  await uploader.finish({ deadlineMs: 5000 })
  assert.deepEqual(await sink.read('recording.mp4'), await readFile(mp4))
  assert.deepEqual(await sink.read('hls/segment_00000.ts'), await readFile(join(hls, 'segment_00000.ts')))
  assert.deepEqual(await sink.read('hls/segment_00001.ts'), await readFile(join(hls, 'segment_00001.ts')))
  assert.match(Buffer.from((await sink.read('hls/playlist.m3u8')) ?? []).toString(), /ENDLIST/)
  assert.equal(Buffer.from((await sink.read('recording.json')) ?? []).toString(), '{"v":2}')
  assert.ok(uploader.stats.failures >= 3)
  assert.ok(sink.stored.indexOf('hls/playlist.m3u8') > sink.stored.indexOf('hls/segment_00001.ts'), sink.stored.join(', '))
})

test('finish gives up at its deadline when storage never comes back', async () => {
  const work = await mkdtemp(join(tmpdir(), 'uploader-'))
  const sink = flaky(new LocalFolderSink(join(work, 'out')))
  sink.down = true
  const uploader = new RecordingUploader({ sink, intervalMs: 20, initialBackoffMs: 10, maxBackoffMs: 40 })
  uploader.put('recording.json', Buffer.from('{}'), 'application/json')
  await assert.rejects(uploader.finish({ deadlineMs: 300 }), /storage still failing/)
})
