// Per-track recording driven in two steps, as a recorder in another process is (the engine's
// side played here by plain RTP from this process): the port, then ffmpeg, then packets; and a
// track whose packets stopped (it ended) still ends in a finished file.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { findExecutable } from '../src/binaries.js'
import { startTrackRecording } from '../src/tracks/index.js'

const run = promisify(execFile)
const skip = (await findExecutable('ffmpeg')) === undefined || (await findExecutable('ffprobe')) === undefined ? 'needs ffmpeg and ffprobe' : false

/** One 20 ms Opus frame (CELT, full band, silence) in RTP with payload type 111. */
function opusPacket(sequence: number, ssrc: number): Buffer {
  const packet = Buffer.alloc(15)
  packet[0] = 0x80
  packet[1] = 111
  packet.writeUInt16BE(sequence & 0xffff, 2)
  packet.writeUInt32BE((sequence * 960) >>> 0, 4)
  packet.writeUInt32BE(ssrc, 8)
  packet.set([0xf8, 0xff, 0xfe], 12)
  return packet
}

test('a track recorded in two steps whose packets stopped still ends in a finished Ogg file', { skip, timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tracks-two-step-'))
  const recording = await startTrackRecording({ recordingId: 'two-step', dir })
  const destination = await recording.reservePort()
  assert.equal(destination.address, '127.0.0.1')
  const forward = { id: 1, kind: 'audio', payloadType: 111, codec: 'opus', clockRate: 48_000, channels: 2 } as const
  const track = await recording.attachTrack({ trackId: 7 }, destination, forward)
  assert.equal(track.forwardId, 1)
  assert.match(track.path, /track-7-audio\.ogg$/)
  await assert.rejects(recording.attachTrack({ trackId: 7 }, destination, forward), /already recorded/)

  const socket = createSocket('udp4')
  try {
    for (let sequence = 0; sequence < 150; sequence++) {
      await new Promise<void>((resolve, reject) => socket.send(opusPacket(sequence, 0x1234), destination.port, destination.address, (error) => (error ? reject(error) : resolve())))
      if (sequence % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } finally {
    socket.close()
  }
  // No packet comes any more, as after track-ended: stopping must still finish the file.
  const [file] = await recording.stop()
  assert.ok(file !== undefined)
  assert.equal(file.error, undefined, file.error?.message)
  assert.ok(file.bytes > 0)
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name:format=duration', '-of', 'json', file.path])
  const probed = JSON.parse(stdout) as { streams: { codec_name: string }[]; format: { duration: string } }
  assert.equal(probed.streams[0]?.codec_name, 'opus')
  // 150 frames of 20 ms by their RTP timestamps, whatever their arrival.
  assert.ok(Math.abs(Number(probed.format.duration) - 3) < 0.2, `lasts ${probed.format.duration} s`)
})
