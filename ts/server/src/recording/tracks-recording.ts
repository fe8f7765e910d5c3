// A per-track recording of one room, run inside the server because the server owns the engine:
// every published track of a visible participant is teed by the engine to its own ffmpeg (the
// recorder package's TrackRecording), files go to the configured output as `tracks/<file>`, and
// stopping writes `recording.json` and thumbnails of the video tracks. Not a process supervisor.

import { mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { RecordingId, RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { Logger } from '../log.js'
import type { EngineTrackId, MediaEngine } from '../media/media-engine.js'
import type { PublishedTrack } from '../rooms/participant.js'
import type { Room } from '../rooms/room.js'
import type { ParticipantRecord, RoomStore } from '../state/room-store.js'
import { type RecordingOutput, recorderOutputFor } from './recording-output.js'

const RECORDER_DIST = new URL('../../../../../recorder/dist/src/', import.meta.url)

/** The recorder's `TrackFile`, as far as this module reads it. */
interface TrackFile {
  trackId: EngineTrackId
  kind: 'audio' | 'video'
  codec: string
  name: string
  path: string
  contentType: string
  bytes: number
  startedAt: Date
  endedAt: Date
  error?: { code: string; message: string }
}

interface TrackRecordingHandle {
  addTrack(track: { trackId: EngineTrackId }): Promise<{ pid: number | undefined }>
  removeTrack(trackId: EngineTrackId): Promise<TrackFile | undefined>
  stop(): Promise<TrackFile[]>
  readonly tracks: { trackId: EngineTrackId; pid: number | undefined }[]
}

interface SinkHandle {
  readonly location: string
  put(name: string, body: Uint8Array, contentType: string): Promise<void>
  putFile(name: string, path: string, contentType: string): Promise<void>
}

interface ProcessUsage {
  pid: number
  cpuSeconds: number
  rssBytes: number
  pssBytes: number
}

/** The parts of the recorder package (`recorder/dist`) a per-track recording uses. */
interface TracksPackage {
  startTrackRecording(options: {
    recordingId: string
    dir: string
    media: Pick<MediaEngine, 'addRtpForward' | 'removeRtpForward' | 'requestKeyframe'>
    sink?: SinkHandle
    ffmpegPath?: string
    onTrackFailed?: (trackId: EngineTrackId, error: { code: string; message: string }) => void
    log?: (line: string) => void
  }): Promise<TrackRecordingHandle>
  processUsage(pid: number): Promise<ProcessUsage | undefined>
  createRecordingSink(output: unknown, recordingId: string): SinkHandle
  makeThumbnails(options: { ffmpeg: string; mp4: string; workDir: string; everySeconds: number }): Promise<string[]>
  sha256OfFile(path: string): Promise<string>
}

let tracksPackage: Promise<TracksPackage | undefined> | undefined

/**
 * The recorder package's per-track recorder, loaded at runtime from this repository's
 * `recorder/dist` (the recorder depends on the server, not the reverse); undefined when not built.
 */
function loadTracksPackage(): Promise<TracksPackage | undefined> {
  const load = (path: string) => import(new URL(path, RECORDER_DIST).href) as Promise<Record<string, unknown>>
  tracksPackage ??= Promise.all([load('tracks/index.js'), load('storage/create-sink.js'), load('thumbnails.js'), load('recording-index.js')]).then(
    (modules) => Object.assign({}, ...modules) as TracksPackage,
    () => undefined,
  )
  return tracksPackage
}

/** `recording.json` of a per-track recording: the composite index's shape where it applies. */
export interface TracksRecordingIndex {
  version: 1
  recordingId: string
  room: string
  mode: 'tracks'
  status: 'finalized' | 'partial'
  partial: boolean
  startedAt: string
  endedAt: string
  durationSeconds: number
  participants: { participantId: string; name: string; joinedAt: string; leftAt?: string }[]
  tracks: {
    trackId: string
    participantId: string
    kind: 'audio' | 'video'
    source?: string
    codec: string
    startedAt: string
    endedAt: string
    /** Its file in the recording: `tracks/<file>`. */
    file: string
    contentType: string
    size: number
    sha256: string
    thumbnails: string[]
    error?: { code: string; message: string }
  }[]
  files: { name: string; kind: 'track' | 'thumbnail'; contentType: string; size: number; sha256: string }[]
  thumbnailEverySeconds: number
  error?: { code: string; message: string }
}

/** What a stopped per-track recording left. */
export interface TracksRecordingResult {
  index: TracksRecordingIndex
  partial: boolean
  bytes: number
  error?: { code: string; message: string }
}

/** CPU and memory of a per-track recording: the server process (the engine included) and each ffmpeg. */
export interface TracksRecordingUsage {
  server: ProcessUsage | undefined
  ffmpegs: (ProcessUsage & { trackId: EngineTrackId })[]
}

export interface TracksRecordingOptions {
  recordingId: RecordingId
  roomId: RoomId
  output: RecordingOutput
  media: Pick<MediaEngine, 'addRtpForward' | 'removeRtpForward' | 'requestKeyframe'>
  /** The rooms of this node: the tracks published when the recording starts. */
  rooms: { room(roomId: RoomId): Room | undefined }
  /** Participant records: names, join times and who is hidden. */
  store: Pick<RoomStore, 'listParticipants'>
  /** ffmpeg writes here (`<spoolDir>/<recordingId>/`) before files are stored. */
  spoolDir: string
  log: Logger
  /** Default `CONCLAVE_FFMPEG` or `ffmpeg` on the PATH, as the recorder. */
  ffmpegPath?: string
  /** One thumbnail per this many seconds of each video track. Default 5. */
  thumbnailEverySeconds?: number
  now?: () => number
}

interface RecordedTrack {
  track: PublishedTrack
  file?: TrackFile
}

export class TracksRecording {
  readonly recordingId: RecordingId
  readonly roomId: RoomId
  readonly startedAt: number
  readonly #options: TracksRecordingOptions
  readonly #recorder: TracksPackage
  readonly #recording: TrackRecordingHandle
  readonly #sink: SinkHandle
  readonly #spool: string
  readonly #ffmpeg: string
  readonly #now: () => number
  readonly #tracks = new Map<EngineTrackId, RecordedTrack>()
  readonly #participants = new Map<string, TracksRecordingIndex['participants'][number]>()
  /** Adds and removes under way: `stop` waits for them. */
  readonly #pending = new Set<Promise<unknown>>()
  #failure: { code: string; message: string } | undefined
  #stopping: Promise<TracksRecordingResult> | undefined

  private constructor(options: TracksRecordingOptions, recorder: TracksPackage, recording: TrackRecordingHandle, sink: SinkHandle, spool: string, ffmpeg: string) {
    this.recordingId = options.recordingId
    this.roomId = options.roomId
    this.#options = options
    this.#recorder = recorder
    this.#recording = recording
    this.#sink = sink
    this.#spool = spool
    this.#ffmpeg = ffmpeg
    this.#now = options.now ?? Date.now
    this.startedAt = this.#now()
  }

  /** Starts recording every track the room publishes now; rejects with `recorder_unavailable` when the recorder is not built. */
  static async start(options: TracksRecordingOptions): Promise<TracksRecording> {
    const recorder = await loadTracksPackage()
    if (recorder === undefined) {
      throw new AppError('recorder_unavailable', 'the recorder is not built (recorder/dist is missing); run `npm run build -w @conclave/recorder`')
    }
    const { recordingId, output, media, spoolDir, log } = options
    const ffmpeg = options.ffmpegPath ?? process.env.CONCLAVE_FFMPEG ?? 'ffmpeg'
    const spool = join(spoolDir, recordingId)
    await mkdir(spool, { recursive: true })
    const sink = recorder.createRecordingSink(recorderOutputFor(output), recordingId)
    const trackLog = log.child({ recordingId, roomId: options.roomId })
    let self: TracksRecording | undefined
    const recording = await recorder.startTrackRecording({
      recordingId,
      dir: join(spool, 'tracks'),
      media,
      sink,
      ffmpegPath: ffmpeg,
      log: (line) => trackLog.debug(line),
      onTrackFailed: (trackId, error) => {
        trackLog.warn('a track stopped being recorded', { engineTrackId: trackId, code: error.code, reason: error.message })
        if (self !== undefined) self.#failure ??= { code: error.code, message: error.message }
      },
    })
    self = new TracksRecording(options, recorder, recording, sink, spool, ffmpeg)
    for (const participant of await options.store.listParticipants(options.roomId)) self.participantJoined(participant)
    for (const track of options.rooms.room(options.roomId)?.tracks.values() ?? []) self.trackChanged(track, 'published')
    await self.#settled()
    return self
  }

  /** A track of the room was published or ended: recording it starts or its file is finished. */
  trackChanged(track: PublishedTrack, change: 'published' | 'ended'): void {
    if (track.owner.room.id !== this.roomId || this.#stopping !== undefined) return
    if (change === 'published') this.#track(this.#add(track))
    else if (this.#tracks.has(track.engineId)) this.#track(this.#finish(track.engineId))
  }

  /** A participant joined: listed in the index, and its tracks recorded unless it is hidden. */
  participantJoined(participant: ParticipantRecord): void {
    if (participant.state !== 'active' || participant.grants.hidden || participant.grants.recorder) return
    if (this.#participants.has(participant.participantId)) return
    this.#participants.set(participant.participantId, {
      participantId: participant.participantId,
      name: participant.name,
      // Those already there when it started joined, as far as the recording goes, at its start.
      joinedAt: new Date(Number.isFinite(participant.joinedAt) ? Math.max(participant.joinedAt, this.startedAt) : this.startedAt).toISOString(),
    })
  }

  participantLeft(participantId: string): void {
    const entry = this.#participants.get(participantId)
    if (entry !== undefined && entry.leftAt === undefined) entry.leftAt = new Date(this.#now()).toISOString()
  }

  /** CPU and memory so far of the server process and of each track's ffmpeg. */
  async usage(): Promise<TracksRecordingUsage> {
    const ffmpegs = await Promise.all(
      this.#recording.tracks.map(async ({ trackId, pid }) => {
        const usage = pid === undefined ? undefined : await this.#recorder.processUsage(pid)
        return usage === undefined ? undefined : { ...usage, trackId }
      }),
    )
    return { server: await this.#recorder.processUsage(process.pid), ffmpegs: ffmpegs.filter((usage) => usage !== undefined) }
  }

  /** Finishes every file, stores thumbnails and `recording.json`; the same promise for every call. */
  stop(): Promise<TracksRecordingResult> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<TracksRecordingResult> {
    const endedAt = this.#now()
    await this.#settled()
    for (const file of await this.#recording.stop()) {
      const recorded = this.#tracks.get(file.trackId)
      if (recorded !== undefined) recorded.file = file
    }
    const index = await this.#writeIndex(endedAt)
    if (!index.partial) await rm(this.#spool, { recursive: true, force: true }).catch(() => undefined)
    const bytes = index.files.reduce((sum, file) => sum + file.size, 0)
    return { index, partial: index.partial, bytes, ...(index.error ? { error: index.error } : {}) }
  }

  async #add(track: PublishedTrack): Promise<void> {
    const hidden = (await this.#options.store.listParticipants(this.roomId)).some(
      (participant) => participant.participantId === track.owner.id && (participant.grants.hidden || participant.grants.recorder),
    )
    if (hidden || this.#tracks.has(track.engineId) || this.#stopping !== undefined) return
    this.#tracks.set(track.engineId, { track })
    try {
      await this.#recording.addTrack({ trackId: track.engineId })
      this.#options.log.info('recording a track', { recordingId: this.recordingId, roomId: this.roomId, trackId: track.id, kind: track.kind, participantId: track.owner.id })
    } catch (error) {
      // A track that ended while its ffmpeg started is simply not recorded.
      this.#tracks.delete(track.engineId)
      if (track.owner.room.tracks.get(track.engineId) !== track) return
      this.#failure ??= { code: 'track_not_recorded', message: `track ${track.id} could not be recorded: ${error instanceof Error ? error.message : String(error)}` }
      this.#options.log.warn('a track could not be recorded', { recordingId: this.recordingId, trackId: track.id, err: error })
    }
  }

  async #finish(trackId: EngineTrackId): Promise<void> {
    const file = await this.#recording.removeTrack(trackId)
    const recorded = this.#tracks.get(trackId)
    if (recorded !== undefined && file !== undefined) recorded.file = file
  }

  #track(work: Promise<void>): void {
    const pending = work.catch((error: unknown) => this.#options.log.warn('following a track failed', { recordingId: this.recordingId, err: error }))
    this.#pending.add(pending)
    void pending.finally(() => this.#pending.delete(pending))
  }

  async #settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending])
  }

  async #writeIndex(endedAt: number): Promise<TracksRecordingIndex> {
    const everySeconds = this.#options.thumbnailEverySeconds ?? 5
    const tracks: TracksRecordingIndex['tracks'] = []
    const files: TracksRecordingIndex['files'] = []
    let error = this.#failure
    for (const { track, file } of [...this.#tracks.values()].sort((a, b) => a.track.engineId - b.track.engineId)) {
      if (file === undefined) continue
      if (file.error !== undefined) error ??= { code: file.error.code, message: file.error.message }
      const sha256 = file.bytes > 0 ? await this.#recorder.sha256OfFile(file.path) : ''
      const thumbnails = file.kind === 'video' && file.bytes > 0 ? await this.#thumbnails(track, file.path, everySeconds, files) : []
      tracks.push({
        trackId: track.id,
        participantId: track.owner.id,
        kind: file.kind,
        ...(track.source ? { source: track.source } : {}),
        codec: file.codec,
        startedAt: file.startedAt.toISOString(),
        endedAt: file.endedAt.toISOString(),
        file: file.name,
        contentType: file.contentType,
        size: file.bytes,
        sha256,
        thumbnails,
        ...(file.error ? { error: { code: file.error.code, message: file.error.message } } : {}),
      })
      if (file.bytes > 0) files.push({ name: file.name, kind: 'track', contentType: file.contentType, size: file.bytes, sha256 })
    }
    const partial = error !== undefined
    const index: TracksRecordingIndex = {
      version: 1,
      recordingId: this.recordingId,
      room: this.roomId,
      mode: 'tracks',
      status: partial ? 'partial' : 'finalized',
      partial,
      startedAt: new Date(this.startedAt).toISOString(),
      endedAt: new Date(endedAt).toISOString(),
      durationSeconds: Math.round((endedAt - this.startedAt) / 100) / 10,
      participants: [...this.#participants.values()],
      tracks,
      files: files.sort((a, b) => a.name.localeCompare(b.name)),
      thumbnailEverySeconds: everySeconds,
      ...(error ? { error } : {}),
    }
    await this.#sink.put('recording.json', new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`), 'application/json')
    return index
  }

  /** Thumbnails of one video track's file, stored as `thumbnails/<trackId>/0001.jpg`…; none when ffmpeg cannot decode it. */
  async #thumbnails(track: PublishedTrack, path: string, everySeconds: number, files: TracksRecordingIndex['files']): Promise<string[]> {
    const workDir = join(this.#spool, 'thumbnails', track.id)
    try {
      const made = await this.#recorder.makeThumbnails({ ffmpeg: this.#ffmpeg, mp4: path, workDir, everySeconds })
      const names: string[] = []
      for (const relative of made) {
        const local = join(workDir, relative)
        const name = `thumbnails/${track.id}/${relative.slice(relative.lastIndexOf('/') + 1)}`
        await this.#sink.putFile(name, local, 'image/jpeg')
        const { size } = await stat(local)
        files.push({ name, kind: 'thumbnail', contentType: 'image/jpeg', size, sha256: await this.#recorder.sha256OfFile(local) })
        names.push(name)
      }
      return names
    } catch (error) {
      this.#options.log.warn('no thumbnails for a track', { recordingId: this.recordingId, trackId: track.id, err: error })
      return []
    }
  }
}
