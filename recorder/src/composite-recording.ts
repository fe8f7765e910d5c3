// One composite recording: Xvfb + PulseAudio + Chromium on the recorder page + ffmpeg, with the
// uploader storing the files as they grow. Stopped by `stop()`, or ended by a crash of any of them;
// either way it finalizes: the rest is uploaded, thumbnails made, `recording.json` written.

import { EventEmitter } from 'node:events'
import { mkdir, open, rm, stat, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type RecorderBinaries, binariesFromEnv, resolveBinaries } from './binaries.js'
import type { LogLine } from './child-process.js'
import { type CompositeConfig, type CompositeConfigInput, parseCompositeConfig } from './config.js'
import { RecorderError, toRecorderError } from './errors.js'
import { type RecorderBrowser, type RecorderReport, openRecorderBrowser } from './recorder-browser.js'
import { type IndexedParticipant, type IndexedTrack, type RecordingIndex, indexLocalFiles } from './recording-index.js'
import { RECORDING_FILES, type ScreenCapture, startScreenCapture } from './screen-capture.js'
import { type SoundServer, startSoundServer } from './sound-server.js'
import { createRecordingSink } from './storage/create-sink.js'
import { completeBoxesEnd } from './storage/mp4-boxes.js'
import { CONTENT_TYPES, type RecordingSink } from './storage/recording-sink.js'
import { RecordingUploader } from './storage/recording-uploader.js'
import { type OrphanGuard, startOrphanGuard } from './orphan-guard.js'
import { makeThumbnails } from './thumbnails.js'
import { type VirtualDisplay, startVirtualDisplay } from './virtual-display.js'

const FRAMES_PER_SECOND = 25

export interface CompositeRecordingOptions {
  /** Default: from the environment (`CONCLAVE_FFMPEG`…), see `binariesFromEnv`. */
  binaries?: RecorderBinaries
  /** Diagnostics, one line each. Default none. */
  log?: LogLine
  /** Where the sink is, instead of `config.output` (tests). */
  sink?: RecordingSink
  /** How often `progress` fires and the provisional index is refreshed, in ms. Default 5000. */
  progressIntervalMs?: number
  /** How long the final upload may keep retrying, in ms. Default 120 000. */
  flushDeadlineMs?: number
}

export interface RecordingProgress {
  /** Bytes of MP4 written so far. */
  bytes: number
  /** HLS segments stored so far. */
  segments: number
  uploadedBytes: number
  /** Storage calls that failed (and were retried). */
  storageFailures: number
}

export interface FinalizedRecording {
  recordingId: string
  partial: boolean
  index: RecordingIndex
  /** What ended it, when it was not `stop()`, or why the upload could not finish. */
  error?: RecorderError
}

type CompositeRecordingEvents = {
  progress: [RecordingProgress]
  participant: [{ type: 'joined' | 'left'; participant: IndexedParticipant }]
  /** Something died while recording; finalizing follows. */
  crashed: [RecorderError]
  /** Storage failed; the uploader retries with backoff, the files wait in the spool. */
  'storage-retrying': [{ message: string; delayMs: number; failures: number }]
  finalized: [FinalizedRecording]
}

/** The running recording. */
export interface CompositeRecording extends EventEmitter<CompositeRecordingEvents> {
  readonly recordingId: string
  readonly startedAt: Date
  readonly sink: RecordingSink
  /** The local spool of this recording (deleted once everything is stored). */
  readonly workDir: string
  /** Pids of Chromium, ffmpeg, Xvfb and PulseAudio, for accounting. */
  readonly pids: { chromium?: number; ffmpeg?: number; xvfb?: number; pulseaudio?: number }
  /** Stops capture and finalizes; idempotent. Resolves with what `finalized` carries. */
  stop(): Promise<FinalizedRecording>
  /** Resolves once finalized, however it ended. */
  readonly finished: Promise<FinalizedRecording>
}

/**
 * Starts recording. Rejects with a `RecorderError` (`invalid_config`, `missing_dependency`,
 * `environment_failed`, `join_failed`…) after undoing whatever had started.
 */
export async function startCompositeRecording(input: CompositeConfigInput, options: CompositeRecordingOptions = {}): Promise<CompositeRecording> {
  const config = parseCompositeConfig(input)
  const binaries = await resolveBinaries(options.binaries ?? binariesFromEnv())
  const recording = new CompositeRecordingSession(config, binaries, options)
  await recording.start()
  return recording
}

class CompositeRecordingSession extends EventEmitter<CompositeRecordingEvents> implements CompositeRecording {
  readonly recordingId: string
  readonly sink: RecordingSink
  readonly workDir: string
  readonly finished: Promise<FinalizedRecording>
  startedAt = new Date()
  readonly #config: CompositeConfig
  readonly #binaries: RecorderBinaries
  readonly #log: LogLine
  readonly #options: CompositeRecordingOptions
  readonly #uploader: RecordingUploader
  readonly #participants = new Map<string, IndexedParticipant>()
  readonly #tracks = new Map<string, IndexedTrack>()
  #display: VirtualDisplay | undefined
  #sound: SoundServer | undefined
  #browser: RecorderBrowser | undefined
  #capture: ScreenCapture | undefined
  #progressTimer: NodeJS.Timeout | undefined
  readonly #orphanGuards: OrphanGuard[] = []
  #finalizing: Promise<FinalizedRecording> | undefined
  #resolveFinished!: (result: FinalizedRecording) => void

  constructor(config: CompositeConfig, binaries: RecorderBinaries, options: CompositeRecordingOptions) {
    super()
    this.#config = config
    this.#binaries = binaries
    this.#options = options
    this.#log = options.log ?? (() => undefined)
    this.recordingId = config.recordingId
    this.sink = options.sink ?? createRecordingSink(config.output, config.recordingId)
    this.workDir = join(config.spoolDir ?? join(tmpdir(), 'conclave-recorder'), config.recordingId)
    this.#uploader = new RecordingUploader({ sink: this.sink })
    this.#uploader.on('retrying', ({ error, delayMs, failures }) => {
      this.#log(`storage failed (${failures} in a row), retrying in ${delayMs} ms: ${error.message}`)
      this.emit('storage-retrying', { message: error.message, delayMs, failures })
    })
    this.#uploader.on('recovered', ({ failures }) => this.#log(`storage answers again after ${failures} failures`))
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve))
  }

  get pids(): CompositeRecording['pids'] {
    const pids: CompositeRecording['pids'] = {}
    if (this.#browser?.pid !== undefined) pids.chromium = this.#browser.pid
    if (this.#capture?.child.process.pid !== undefined) pids.ffmpeg = this.#capture.child.process.pid
    if (this.#display?.child.process.pid !== undefined) pids.xvfb = this.#display.child.process.pid
    if (this.#sound?.child.process.pid !== undefined) pids.pulseaudio = this.#sound.child.process.pid
    return pids
  }

  async start(): Promise<void> {
    const { width, height } = this.#config
    const log = this.#log
    try {
      await rm(this.workDir, { recursive: true, force: true })
      await mkdir(this.workDir, { recursive: true })
      // Each helper is guarded as soon as it runs: a recorder killed while starting leaves nothing behind.
      this.#display = await startVirtualDisplay({ xvfb: this.#binaries.xvfb, width, height, log })
      this.#guard(this.#display.child.process.pid)
      this.#sound = await startSoundServer({ pulseaudio: this.#binaries.pulseaudio, log })
      this.#guard(this.#sound.child.process.pid)
      this.#browser = await openRecorderBrowser({
        chromium: this.#binaries.chromium,
        display: this.#display.display,
        pulseServer: this.#sound.server,
        pulseSink: this.#sound.sink,
        width,
        height,
        serverUrl: this.#config.serverUrl,
        room: this.#config.room,
        token: this.#config.token,
        onReport: (report, at) => this.#handleReport(report, at),
        log,
      })
      this.#guard(this.#browser.pid)
      this.#capture = await startScreenCapture({
        ffmpeg: this.#binaries.ffmpeg,
        display: this.#display.display,
        pulseServer: this.#sound.server,
        audioSource: this.#sound.monitor,
        width,
        height,
        framesPerSecond: FRAMES_PER_SECOND,
        segmentSeconds: this.#config.segmentSeconds,
        workDir: this.workDir,
        log,
      })
      this.#guard(this.#capture.child.process.pid)
    } catch (error) {
      await this.#teardown()
      throw toRecorderError(error)
    }
    this.startedAt = this.#capture.startedAt
    // Participants the page found on joining were there from the start.
    for (const participant of this.#participants.values()) participant.joinedAt = this.startedAt.toISOString()
    this.#uploader.followGrowingFile(RECORDING_FILES.mp4, join(this.workDir, RECORDING_FILES.mp4))
    this.#uploader.followPlaylist(RECORDING_FILES.playlist, join(this.workDir, RECORDING_FILES.playlist))
    this.#putIndex(this.#index('recording', []))
    this.#uploader.start()
    this.#watchForCrashes()
    this.#progressTimer = setInterval(() => void this.#reportProgress(), this.#options.progressIntervalMs ?? 5000)
    log(`recording ${this.recordingId} of ${this.#config.room} to ${this.sink.location}`)
  }

  stop(): Promise<FinalizedRecording> {
    return this.#finalize(undefined)
  }

  #watchForCrashes(): void {
    const crash = (error: RecorderError) => {
      if (this.#finalizing !== undefined) return
      this.emit('crashed', error)
      void this.#finalize(error)
    }
    const capture = this.#capture
    void capture?.child.exited.then(({ code, signal }) =>
      crash(new RecorderError('ffmpeg_crashed', `ffmpeg exited (${signal ?? code}) while recording: ${capture.child.stderrTail()}`)),
    )
    this.#browser?.browser.on('disconnected', () => crash(new RecorderError('browser_crashed', 'Chromium exited while recording')))
    this.#browser?.page.on('error', (error) => crash(new RecorderError('browser_crashed', `the recorder page crashed: ${error.message}`)))
    void this.#display?.child.exited.then(() => crash(new RecorderError('environment_crashed', 'Xvfb exited while recording')))
    void this.#sound?.child.exited.then(() => crash(new RecorderError('environment_crashed', 'pulseaudio exited while recording')))
  }

  #handleReport(report: RecorderReport, at: Date): void {
    const time = at.toISOString()
    switch (report.type) {
      case 'joined':
        for (const { participantId, name } of report.participants) this.#participants.set(participantId, { participantId, name, joinedAt: time })
        return
      case 'participant-joined': {
        const participant: IndexedParticipant = { participantId: report.participantId, name: report.name, joinedAt: time }
        this.#participants.set(report.participantId, participant)
        this.emit('participant', { type: 'joined', participant })
        break
      }
      case 'participant-left': {
        const participant = this.#participants.get(report.participantId) ?? { participantId: report.participantId, name: report.name, joinedAt: time }
        participant.leftAt = time
        this.#participants.set(report.participantId, participant)
        for (const track of this.#tracks.values()) if (track.participantId === report.participantId) track.endedAt ??= time
        this.emit('participant', { type: 'left', participant })
        break
      }
      case 'track':
        if (!this.#tracks.has(report.trackId)) this.#tracks.set(report.trackId, { trackId: report.trackId, participantId: report.participantId, kind: report.kind, startedAt: time })
        return
      case 'track-ended': {
        const track = this.#tracks.get(report.trackId)
        if (track !== undefined) track.endedAt ??= time
        return
      }
      case 'failed':
      case 'closed':
        this.#log(`recorder page: ${report.type} ${'message' in report ? report.message : report.reason}`)
        return
    }
    if (this.#capture !== undefined && this.#finalizing === undefined) this.#putIndex(this.#index('recording', []))
  }

  async #reportProgress(): Promise<void> {
    const stats = this.#uploader.stats
    let bytes = 0
    try {
      bytes = (await stat(join(this.workDir, RECORDING_FILES.mp4))).size
    } catch {
      // not there yet
    }
    if (this.#finalizing !== undefined) return
    this.emit('progress', { bytes, segments: stats.segments, uploadedBytes: stats.uploadedBytes, storageFailures: stats.failures })
    this.#putIndex(this.#index('recording', []))
  }

  #finalize(error: RecorderError | undefined): Promise<FinalizedRecording> {
    this.#finalizing ??= this.#finalizeOnce(error).then((result) => {
      this.emit('finalized', result)
      this.#resolveFinished(result)
      return result
    })
    return this.#finalizing
  }

  async #finalizeOnce(crash: RecorderError | undefined): Promise<FinalizedRecording> {
    clearInterval(this.#progressTimer)
    const endedAt = new Date()
    const exit = await this.#capture?.stop({ drainUntilSeconds: (endedAt.getTime() - this.startedAt.getTime()) / 1000 })
    // An ffmpeg that did not finish cleanly may have left half a fragment at the end.
    const writerCrashed = crash?.code === 'ffmpeg_crashed' || (exit !== undefined && exit.code !== 0)
    if (exit !== undefined && exit.code !== 0 && crash === undefined) this.#log(`ffmpeg ended with ${exit.signal ?? exit.code}: ${this.#capture?.child.stderrTail() ?? ''}`)
    await this.#teardown()
    const mp4 = join(this.workDir, RECORDING_FILES.mp4)
    if (writerCrashed) await trimToCompleteBoxes(mp4)
    let thumbnails: string[] = []
    try {
      thumbnails = await makeThumbnails({ ffmpeg: this.#binaries.ffmpeg, mp4, workDir: this.workDir, everySeconds: this.#config.thumbnailEverySeconds })
    } catch (error) {
      this.#log(error instanceof Error ? error.message : String(error))
    }
    for (const name of thumbnails) this.#uploader.putFile(name, join(this.workDir, name), CONTENT_TYPES.jpeg)
    const files = await indexLocalFiles(this.workDir)
    const partial = crash !== undefined
    const index = this.#index(partial ? 'partial' : 'finalized', files, endedAt, crash)
    this.#putIndex(index)
    try {
      await this.#uploader.finish({ deadlineMs: this.#options.flushDeadlineMs ?? 120_000, wholeFiles: !writerCrashed })
    } catch (error) {
      const failure = new RecorderError('storage_unreachable', `could not store everything; the rest waits in ${this.workDir}: ${error instanceof Error ? error.message : String(error)}`)
      return { recordingId: this.recordingId, partial: true, index: { ...index, partial: true, status: 'partial' }, error: failure }
    }
    await rm(this.workDir, { recursive: true, force: true })
    return { recordingId: this.recordingId, partial, index, ...(crash ? { error: crash } : {}) }
  }

  #index(status: RecordingIndex['status'], files: RecordingIndex['files'], endedAt = new Date(), error?: RecorderError): RecordingIndex {
    const { recordingId, room, width, height, thumbnailEverySeconds } = this.#config
    return {
      version: 1,
      recordingId,
      room,
      mode: 'composite',
      status,
      partial: status !== 'finalized',
      startedAt: this.startedAt.toISOString(),
      endedAt: endedAt.toISOString(),
      durationSeconds: Math.max(0, (endedAt.getTime() - this.startedAt.getTime()) / 1000),
      participants: [...this.#participants.values()].map((participant) => ({ ...participant })),
      tracks: [...this.#tracks.values()].map((track) => ({ ...track })),
      media: { width, height, framesPerSecond: FRAMES_PER_SECOND, video: 'h264', audio: 'aac' },
      files,
      thumbnailEverySeconds,
      ...(error ? { error: { code: error.code, message: error.message } } : {}),
    }
  }

  #putIndex(index: RecordingIndex): void {
    this.#uploader.put(RECORDING_FILES.index, Buffer.from(`${JSON.stringify(index, null, 2)}\n`), CONTENT_TYPES.json)
  }

  /** Stops whatever runs, in reverse order of start; never throws. */
  async #teardown(): Promise<void> {
    await this.#capture?.stop().catch(() => undefined)
    await this.#browser?.close().catch(() => undefined)
    await this.#sound?.stop().catch(() => undefined)
    await this.#display?.stop().catch(() => undefined)
    for (const guard of this.#orphanGuards.splice(0)) guard.stop()
  }

  #guard(pid: number | undefined): void {
    if (pid !== undefined) this.#orphanGuards.push(startOrphanGuard([pid]))
  }
}

/** Cuts a fragmented MP4 back to its last whole top-level box. */
export async function trimToCompleteBoxes(path: string): Promise<number> {
  let file
  try {
    file = await open(path, 'r')
  } catch {
    return 0
  }
  let end: number
  try {
    end = await completeBoxesEnd(file, 0, (await file.stat()).size)
  } finally {
    await file.close()
  }
  await truncate(path, end)
  return end
}
