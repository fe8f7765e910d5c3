// Per-track recording end to end: Chromium publishers through a real Conclave server, the engine
// teeing each track as plain RTP to real ffmpegs, and ffprobe on the files they leave.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import type { ConclaveServer, EngineTrackId, MediaEvent } from '@conclave/server'
import type { Browser, Page } from 'puppeteer-core'
import { findExecutable } from '../src/binaries.js'
import { LocalFolderSink } from '../src/storage/local-folder-sink.js'
import { startTrackRecording, type TrackFile } from '../src/tracks/index.js'
import { eventually, joinAsPublisher, launchPublisherBrowser, mintToken, startConclave } from './harness.js'

const run = promisify(execFile)

const missing = (await Promise.all(['ffmpeg', 'ffprobe', process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'].map(async (bin) => ((await findExecutable(bin)) === undefined ? bin : undefined)))).filter(
  (bin) => bin !== undefined,
)
const skip = missing.length > 0 ? `needs ${missing.join(', ')}` : false

interface PublishedTrack {
  trackId: EngineTrackId
  kind: 'audio' | 'video'
}

interface Probe {
  codec: string
  durationSeconds: number
  width: number | undefined
  frames: number | undefined
}

async function probe(path: string): Promise<Probe> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,nb_read_frames:format=duration', '-of', 'json', path])
  const parsed = JSON.parse(stdout) as { streams: { codec_name: string; width?: number; nb_read_frames?: string }[]; format: { duration?: string } }
  const stream = parsed.streams[0]
  assert.ok(stream !== undefined, `${path} has a stream`)
  return {
    codec: stream.codec_name,
    durationSeconds: Number(parsed.format.duration),
    width: stream.width,
    frames: stream.nb_read_frames === undefined ? undefined : Number(stream.nb_read_frames),
  }
}

/** The loudest sample of an audio file in dBFS (ffmpeg's volumedetect); -91 is digital silence. */
async function maxVolumeDb(path: string): Promise<number> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostats', '-i', path, '-af', 'volumedetect', '-f', 'null', '-'])
  const match = /max_volume: (-?[\d.]+) dB/.exec(stderr)
  assert.ok(match !== null, `volumedetect read ${path}: ${stderr}`)
  return Number(match[1])
}

/** The width Chromium encodes the page's camera at now (outbound-rtp frameWidth). */
async function sentWidth(page: Page): Promise<number> {
  return eventually('the publisher to report its encoded width', async () => {
    const width = (await page.evaluate(`(async () => {
      let width = 0
      const report = await globalThis.conclave.meeting.pc.getStats()
      report.forEach((stat) => { if (stat.type === 'outbound-rtp' && stat.kind === 'video' && stat.frameWidth) width = Math.max(width, stat.frameWidth) })
      return width
    })()`)) as number
    if (width === 0) throw new Error('no outbound video yet')
    return width
  })
}

/** CPU seconds of this process's engine thread ("conclave-media"), from /proc. */
async function engineThreadCpuSeconds(): Promise<number> {
  let total = 0
  for (const tid of await readdir('/proc/self/task')) {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '')
    if (!stat.includes('(conclave-media)')) continue
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    total += (Number(fields[11]) + Number(fields[12])) / 100
  }
  return total
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('per-track recording', { skip, timeout: 300_000 }, () => {
  let server: ConclaveServer
  let browser: Browser
  const published: PublishedTrack[] = []
  const pages: Page[] = []

  before(async () => {
    server = await startConclave()
    server.media.onEvents((events: readonly MediaEvent[]) => {
      for (const event of events) if (event.type === 'track-published') published.push({ trackId: event.trackId, kind: event.kind })
    })
    browser = await launchPublisherBrowser()
    pages.push(await joinAsPublisher(browser, server, 'tracks', 'Ada'), await joinAsPublisher(browser, server, 'tracks', 'Bob'))
    await eventually('both publishers to send media', async () => {
      const stats = await server.media.stats()
      if (published.length < 4 || stats.connectedPeers < 2 || stats.packetsReceived < 200) throw new Error(`${published.length} tracks, ${JSON.stringify(stats)}`)
    })
  })

  after(async () => {
    await browser?.close()
    await server?.close()
  })

  test('each camera and microphone of two publishers becomes its own playable file, copied not transcoded', { timeout: 120_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'tracks-'))
    const sinkDir = await mkdtemp(join(tmpdir(), 'tracks-sink-'))
    const widths = await Promise.all(pages.map(sentWidth))
    const recording = await startTrackRecording({
      recordingId: 'two-publishers',
      media: server.media,
      dir,
      sink: new LocalFolderSink(sinkDir),
      tracks: published.map(({ trackId }) => ({ trackId })),
    })
    assert.equal(recording.tracks.length, 4)
    assert.equal(new Set(recording.tracks.map((t) => t.destination.port)).size, 4, 'one port per track')
    await wait(9_000) // the length of the recording, not a wait for something to happen
    const stopping = Date.now()
    const files = await recording.stop()
    t.diagnostic(`stop() took ${Date.now() - stopping} ms for ${files.length} tracks`)

    assert.equal(files.length, 4)
    const byKind = (kind: 'audio' | 'video') => files.filter((file) => file.kind === kind)
    assert.equal(byKind('audio').length, 2)
    assert.equal(byKind('video').length, 2)
    for (const file of files) {
      assert.equal(file.error, undefined, `track ${file.trackId}: ${file.error?.message}`)
      assert.ok(file.bytes > 0, `track ${file.trackId} wrote bytes`)
      assert.match(file.name, /^tracks\/track-\d+-(audio|video)\.(ogg|webm)$/)
      const stored = join(sinkDir, file.name)
      const probed = await probe(stored)
      // Each track records from the moment its ffmpeg listened until stop() was called, or a bit
      // longer: ffmpeg takes its packets until it has handled the signal.
      const shortest = (stopping - file.startedAt.getTime()) / 1000
      const longest = (file.endedAt.getTime() - file.startedAt.getTime()) / 1000
      t.diagnostic(`${file.name}: ${JSON.stringify(probed)} of ${shortest}-${longest} s recorded`)
      assert.ok(
        probed.durationSeconds > shortest - 2 && probed.durationSeconds < longest + 2,
        `${file.name} lasts ${probed.durationSeconds} s of ${shortest}-${longest} s recorded`,
      )
      if (file.kind === 'video') {
        assert.equal(probed.codec, 'vp8')
        assert.match(file.name, /\.webm$/)
        assert.ok((probed.frames ?? 0) > 0, `${file.name} has ${probed.frames} frames`)
        assert.ok(widths.includes(probed.width ?? 0), `${file.name} is ${probed.width} wide; the publishers send ${widths.join(', ')}`)
      } else {
        assert.equal(probed.codec, 'opus')
        assert.match(file.name, /\.ogg$/)
        const loudest = await maxVolumeDb(stored)
        assert.ok(loudest > -40, `${file.name} is not silent: loudest ${loudest} dB`)
      }
    }
    assert.deepEqual(await recording.stop(), [], 'stopping again has nothing left to stop')
  })

  test('recording a track that does not exist fails with track_not_found and leaves no ffmpeg behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tracks-'))
    await assert.rejects(
      startTrackRecording({ recordingId: 'missing', media: server.media, dir, tracks: [{ trackId: 999_999 as EngineTrackId }] }),
      (error: Error & { code?: string }) => error.code === 'track_not_found',
    )
    const { stdout } = await run('ps', ['-o', 'args=', '--ppid', String(process.pid)])
    assert.ok(!stdout.includes(dir), `no ffmpeg writes into ${dir}: ${stdout}`)
  })

  test('ten tracks recorded at once: every file playable, CPU and memory reported', { timeout: 120_000 }, async (t) => {
    // Five recordings of the two publishers' four tracks, ten forwards and ten ffmpegs in all.
    const choice = Array.from({ length: 10 }, (_, i) => published[i % published.length] as PublishedTrack)
    const idleBefore = await engineThreadCpuSeconds()
    await wait(5_000)
    const idleEngineCpu = ((await engineThreadCpuSeconds()) - idleBefore) / 5
    const recordings = await Promise.all(
      [0, 1, 2, 3, 4].map(async (r) =>
        startTrackRecording({
          recordingId: `ten-${r}`,
          media: server.media,
          dir: await mkdtemp(join(tmpdir(), `tracks-ten-${r}-`)),
          tracks: choice.slice(r * 2, r * 2 + 2).map(({ trackId }) => ({ trackId })),
        }),
      ),
    )
    assert.equal(recordings.reduce((sum, r) => sum + r.tracks.length, 0), 10)
    await wait(2_000) // ffmpeg's start-up (probing) is not the steady state
    const usageOf = async () => (await Promise.all(recordings.map((r) => r.usage()))).flat()
    const first = await usageOf()
    const engineBefore = await engineThreadCpuSeconds()
    const windowStart = Date.now()
    await wait(10_000) // the measurement window
    const seconds = (Date.now() - windowStart) / 1000
    const last = await usageOf()
    const engineCpu = ((await engineThreadCpuSeconds()) - engineBefore) / seconds
    const files: TrackFile[] = (await Promise.all(recordings.map((r) => r.stop()))).flat()

    assert.equal(last.length, 10, 'ten ffmpegs ran to the end')
    const ffmpegCpu = last.reduce((sum, u) => sum + u.cpuSeconds - (first.find((f) => f.pid === u.pid)?.cpuSeconds ?? 0), 0) / seconds
    const rss = last.reduce((sum, u) => sum + u.rssBytes, 0)
    const pss = last.reduce((sum, u) => sum + u.pssBytes, 0)
    const report = {
      tracks: 10,
      ffmpegCpuPercentOfOneCore: Math.round(ffmpegCpu * 1000) / 10,
      ffmpegRssMiBTotal: Math.round(rss / 2 ** 20),
      ffmpegRssMiBEach: Math.round(rss / 10 / 2 ** 20),
      ffmpegPssMiBTotal: Math.round(pss / 2 ** 20),
      engineThreadCpuPercentWithTen: Math.round(engineCpu * 1000) / 10,
      engineThreadCpuPercentBefore: Math.round(idleEngineCpu * 1000) / 10,
    }
    t.diagnostic(JSON.stringify(report))
    console.log('per-track recording of 10 tracks:', JSON.stringify(report))

    assert.equal(files.length, 10)
    for (const file of files) {
      assert.equal(file.error, undefined, `track ${file.trackId}: ${file.error?.message}`)
      const probed = await probe(file.path)
      assert.equal(probed.codec, file.kind === 'video' ? 'vp8' : 'opus')
      if (file.kind === 'video') assert.ok((probed.frames ?? 0) > 0, `${file.path} has video frames`)
    }
  })

  test('an H.264 camera becomes a fragmented MP4 with its frames copied', { timeout: 120_000 }, async (t) => {
    const before = published.length
    const page = await browser.newPage()
    pages.push(page)
    // Any page of the server's origin will do (same-origin fetch, localhost is a secure context).
    await page.goto(`${server.url}/healthz`, { waitUntil: 'domcontentloaded', timeout: 60_000 })
    const token = await mintToken(server, { room: 'tracks-h264', identity: 'h264', name: 'H264', role: 'host' })
    // WHIP from the page, with H.264 the only video codec offered.
    await page.evaluate(`(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false })
      const pc = new RTCPeerConnection()
      const transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', streams: [stream] })
      transceiver.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine ?? '')))
      await pc.setLocalDescription(await pc.createOffer())
      await new Promise((resolve) => { if (pc.iceGatheringState === 'complete') resolve(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve() })
      const response = await fetch('/whip/tracks-h264', { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: 'Bearer ${token}' }, body: pc.localDescription.sdp })
      if (!response.ok) throw new Error('WHIP ' + response.status + ' ' + await response.text())
      await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() })
      globalThis.h264 = pc
    })()`)
    const track = await eventually('the H.264 track to be published and sending', async () => {
      const found = published.slice(before).find((p) => p.kind === 'video')
      const sending = (await page.evaluate(`(async () => { let bytes = 0; (await globalThis.h264.getStats()).forEach((s) => { if (s.type === 'outbound-rtp') bytes += s.bytesSent }); return bytes })()`)) as number
      if (found === undefined || sending < 50_000) throw new Error(`track ${JSON.stringify(found)}, ${sending} bytes sent`)
      return found
    })
    const dir = await mkdtemp(join(tmpdir(), 'tracks-h264-'))
    const recording = await startTrackRecording({ recordingId: 'h264', media: server.media, dir, tracks: [{ trackId: track.trackId }] })
    assert.equal(recording.tracks[0]?.codec, 'H264')
    await wait(8_000) // the length of the recording
    const stopping = Date.now()
    const [file] = await recording.stop()
    assert.ok(file !== undefined)
    assert.equal(file.error, undefined, file.error?.message)
    assert.match(file.path, /\.mp4$/)
    assert.equal(file.contentType, 'video/mp4')
    const probed = await probe(file.path)
    const shortest = (stopping - file.startedAt.getTime()) / 1000
    const longest = (file.endedAt.getTime() - file.startedAt.getTime()) / 1000
    t.diagnostic(`${file.path}: ${JSON.stringify(probed)} of ${shortest}-${longest} s recorded`)
    assert.equal(probed.codec, 'h264')
    assert.equal(probed.width, 640)
    assert.ok((probed.frames ?? 0) > 0, `${probed.frames} frames`)
    assert.ok(probed.durationSeconds > shortest - 2 && probed.durationSeconds < longest + 2, `lasts ${probed.durationSeconds} s of ${shortest}-${longest} s recorded`)
  })
})
