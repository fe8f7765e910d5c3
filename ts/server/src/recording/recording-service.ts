// Recordings on this node: mints the recorder's token, starts the recorder process, follows what it
// says, stops it (asked to, when its room closes or empties, when the server shuts down) and notices
// when it dies. Per-track recordings run in this process instead (`TracksRecording`: the engine tees
// each track to an ffmpeg). Who may start or stop one is the MeetingService's decision, not this one's.

import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type RecordingDetails,
  RecordingId,
  type RecordingMode,
  type RoomId,
  TOKEN_TTL_LIMITS,
} from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { TokenIssuer } from '../auth/authenticator.js'
import type { ClusterEvent, EventBus } from '../cluster/event-bus.js'
import type { Logger } from '../log.js'
import type { MediaEngine } from '../media/media-engine.js'
import type { PublishedTrack } from '../rooms/participant.js'
import type { Room } from '../rooms/room.js'
import type { RoomStore } from '../state/room-store.js'
import { type RecorderExit, type RecorderMessage, RecorderProcess } from './recorder-process.js'
import { RecordingLeases, stopElsewhere, unendedRecordingOf } from './recording-cluster.js'
import { type RecordingOutput, listRecordingFiles, localRecordingDir, recorderOutputFor } from './recording-output.js'
import { MemoryRecordingStore, type RecordingRecord, type RecordingStore } from './recording-store.js'
import { TracksRecording, type TracksRecordingUsage } from './tracks-recording.js'

/** What the meeting asks of recordings, once it has decided the actor may. */
export interface RecordingControl {
  start(roomId: RoomId, mode: RecordingMode): Promise<RecordingDetails>
  /** Stops the room's active recording (or `recordingId`); answers at once, finalizing goes on. */
  stop(roomId: RoomId, recordingId?: RecordingId): Promise<RecordingDetails>
}

/** What the recorder package offers to finish the output of a recorder that died. */
export type FinalizePartial = (
  config: Record<string, unknown>,
  error: { code: string; message: string },
) => Promise<{ partial: boolean; index?: Record<string, unknown> } | undefined>

/** The built recorder of this repository: `recorder/dist/src/cli.js`. */
export const DEFAULT_RECORDER_SCRIPT = fileURLToPath(new URL('../../../../../recorder/dist/src/cli.js', import.meta.url))
const RECORDER_PACKAGE = new URL('../../../../../recorder/dist/src/index.js', import.meta.url)

let recorderPackage: Promise<RecorderPackage | undefined> | undefined

/** The part of the recorder package (`@conclave/recorder`) that finishes a dead recorder's output. */
interface RecorderPackage {
  createRecordingSink(output: unknown, recordingId: string): unknown
  finalizePartial(options: { recordingId: string; sink: unknown; spoolDir?: string; error?: { code: string; message: string } }): Promise<{ partial: boolean }>
}

/**
 * The recorder package's own `finalizePartial`, loaded from this repository's `recorder/dist` when
 * it is built (a runtime import: the recorder depends on the server for its tests, not the reverse).
 * It stores what the dead recorder's spool still holds and rewrites `recording.json` as partial.
 */
export const recorderFinalizePartial: FinalizePartial = async (config, error) => {
  recorderPackage ??= import(RECORDER_PACKAGE.href).then(
    (module) => module as RecorderPackage,
    () => undefined,
  )
  const recorder = await recorderPackage
  if (recorder === undefined) return undefined
  const recordingId = String(config.recordingId)
  const sink = recorder.createRecordingSink(config.output, recordingId)
  const spoolDir = typeof config.spoolDir === 'string' ? config.spoolDir : undefined
  const index = await recorder.finalizePartial({ recordingId, sink, error, ...(spoolDir ? { spoolDir } : {}) })
  return { partial: index.partial, index: index as unknown as Record<string, unknown> }
}

/** Recording as the server is configured for it; every field has a default. */
export interface RecordingOptions {
  /** Where recordings go. Default the local folder `./recordings`. */
  output?: RecordingOutput
  /** The recorder program and its arguments. Default `node recorder/dist/src/cli.js` of this repository. */
  command?: readonly string[]
  stopTimeoutMs?: number
  startTimeoutMs?: number
  /** Default the recorder package's own (`recorderFinalizePartial`). */
  finalizePartial?: FinalizePartial
  /** Where the recorder keeps files until they are stored. Default `<tmpdir>/conclave-recorder`. */
  spoolDir?: string
}

export interface RecordingServiceOptions {
  bus: EventBus
  /** Room participants, to notice a room with no one left to record. */
  store: Pick<RoomStore, 'listParticipants'>
  /**
   * The engine and rooms of this process, for per-track recordings (`mode: 'tracks'`), which run
   * here and tee each track's RTP to an ffmpeg; without them that mode is `recorder_unavailable`.
   * The server also passes every track change to `trackChanged`.
   */
  tracks?: {
    media: Pick<MediaEngine, 'addRtpForward' | 'removeRtpForward' | 'requestKeyframe'>
    rooms: { room(roomId: RoomId): Room | undefined }
  }
  /** Mints the recorder's token; without it nothing can be recorded (`recorder_unavailable`). */
  issuer: TokenIssuer | undefined
  output: RecordingOutput
  /** The recorder program and its arguments. Default `node recorder/dist/src/cli.js` of this repository. */
  command?: readonly string[]
  /** The server's own URL as the recorder reaches it (`http://127.0.0.1:PORT`); known once it listens. */
  serverUrl: () => string
  log: Logger
  records?: RecordingStore
  /** How long a stopping recorder may take to finalize before it is killed, in ms. Default 30 000. */
  stopTimeoutMs?: number
  /** How long a recorder may take to say `started` before it is stopped as failed, in ms. Default 60 000. */
  startTimeoutMs?: number
  /** Finishes a dead recorder's output; default none (the recording is marked failed and partial). */
  finalizePartial?: FinalizePartial
  /** The recorder's `spoolDir`, so that a dead recorder's spool can be stored. Default `<tmpdir>/conclave-recorder`. */
  spoolDir?: string
  /**
   * This node's name, written in every record it starts. With a shared (Redis) store, other nodes
   * send stop requests for its recordings to it, and end its records if it stops renewing them.
   */
  nodeId?: string
  /** How often this node renews its leases on its recordings and sweeps lapsed ones, in ms. Default 10 000. */
  leaseRenewMs?: number
  /** How long a stop of another node's recording waits for that node to say `stopping`, in ms. Default 5 000. */
  remoteStopTimeoutMs?: number
  now?: () => number
}

interface Supervised {
  record: RecordingRecord
  process: RecorderProcess
  config: Record<string, unknown>
  /** The recorder said `finalized`. */
  finalized: boolean
  /** What the recorder said in `failed`, or why we stopped it. */
  failure: { code: string; message: string } | undefined
  /** We asked it to stop; an exit without finalizing is still a failure. */
  stopReason: string | undefined
  startTimer: NodeJS.Timeout | undefined
  announcedStop: boolean
  /** Settles once its exit is handled (a dead recorder's output finalized too). */
  settled: Promise<void>
  /** It said `started`: it handles SIGTERM from now on. */
  started: boolean
  /** Asked to stop before it started: SIGTERM goes out once it has. */
  stopWhenStarted: boolean
}

/** A per-track recording this node runs in its own process. */
interface TracksLive {
  record: RecordingRecord
  /** Resolves once its files are being written; rejects when it could not start. */
  recording: Promise<TracksRecording>
  /** Settles once it is finalized and its record saved. */
  settled: Promise<void> | undefined
}

export class RecordingService implements RecordingControl {
  readonly #bus: EventBus
  readonly #store: Pick<RoomStore, 'listParticipants'>
  readonly #issuer: TokenIssuer | undefined
  readonly #output: RecordingOutput
  readonly #command: readonly string[]
  readonly #serverUrl: () => string
  readonly #log: Logger
  readonly #records: RecordingStore
  readonly #stopTimeoutMs: number
  readonly #startTimeoutMs: number
  readonly #finalizePartial: FinalizePartial | undefined
  readonly #spoolDir: string
  readonly #now: () => number
  /** Recorders this node runs, by recording. */
  readonly #live = new Map<RecordingId, Supervised>()
  /** Rooms with a live composite recording (reserved before any await, so two starts cannot both pass). */
  readonly #compositeByRoom = new Map<RoomId, RecordingId>()
  readonly #tracks: RecordingServiceOptions['tracks']
  /** Per-track recordings this node runs, by recording. */
  readonly #tracksLive = new Map<RecordingId, TracksLive>()
  /** Rooms with a live per-track recording (reserved before any await, like `#compositeByRoom`). */
  readonly #tracksByRoom = new Map<RoomId, RecordingId>()
  readonly #unsubscribe: () => void
  readonly #nodeId: string | undefined
  readonly #leases: RecordingLeases
  readonly #remoteStopTimeoutMs: number
  #closed = false

  constructor({
    bus,
    store,
    tracks,
    issuer,
    output,
    command = [process.execPath, DEFAULT_RECORDER_SCRIPT],
    serverUrl,
    log,
    records = new MemoryRecordingStore(),
    stopTimeoutMs = 30_000,
    startTimeoutMs = 60_000,
    finalizePartial,
    spoolDir = join(tmpdir(), 'conclave-recorder'),
    nodeId,
    leaseRenewMs = 10_000,
    remoteStopTimeoutMs = 5_000,
    now = Date.now,
  }: RecordingServiceOptions) {
    this.#nodeId = nodeId
    this.#remoteStopTimeoutMs = remoteStopTimeoutMs
    this.#leases = new RecordingLeases({
      records,
      bus,
      nodeId,
      liveRecord: (id) => this.#live.get(id)?.record ?? this.#tracksLive.get(id)?.record,
      liveIds: () => [...this.#live.keys(), ...this.#tracksLive.keys()],
      intervalMs: leaseRenewMs,
      log,
      now,
    })
    this.#spoolDir = spoolDir
    this.#tracks = tracks
    this.#bus = bus
    this.#store = store
    this.#issuer = issuer
    this.#output = output
    this.#command = command
    this.#serverUrl = serverUrl
    this.#log = log
    this.#records = records
    this.#stopTimeoutMs = stopTimeoutMs
    this.#startTimeoutMs = startTimeoutMs
    this.#finalizePartial = finalizePartial
    this.#now = now
    this.#unsubscribe = bus.subscribe((event) => {
      this.#onRoomEvent(event).catch((error: unknown) => this.#log.warn('following a room event failed', { type: event.type, err: error }))
    })
  }

  async start(roomId: RoomId, mode: RecordingMode): Promise<RecordingDetails> {
    if (this.#closed) throw new AppError('recorder_unavailable', 'the server is shutting down')
    if (mode === 'tracks') return this.#startTracks(roomId)
    if (this.#issuer === undefined) throw new AppError('recorder_unavailable', 'this server mints no tokens (JWKS only), so a recorder cannot join')
    this.#checkCommand()
    const active = this.#compositeByRoom.get(roomId)
    if (active !== undefined) throw new AppError('recording_already_active', `room ${roomId} is already being recorded (${active})`)
    const recordingId = RecordingId.parse(`rec-${randomBytes(9).toString('base64url')}`)
    this.#compositeByRoom.set(roomId, recordingId)
    let record: RecordingRecord
    try {
      await this.#refuseIfRecordedElsewhere(roomId, mode)
      const { token } = await this.#issuer.mint({
        room: roomId,
        identity: `recorder-${recordingId}`,
        name: 'Recorder',
        role: 'guest',
        grants: { hidden: true, recorder: true, canPublish: false, canSubscribe: true, canChat: false },
        ttlSeconds: TOKEN_TTL_LIMITS.max,
      })
      if (this.#output.kind === 'local') await mkdir(localRecordingDir(this.#output, recordingId), { recursive: true })
      const config = {
        mode,
        recordingId,
        room: roomId,
        serverUrl: this.#serverUrl(),
        token,
        output: recorderOutputFor(this.#output),
        spoolDir: this.#spoolDir,
      }
      record = { recordingId, room: roomId, mode, state: 'starting', partial: false, startedAt: this.#now(), ...this.#nodeField() }
      this.#spawn(record, config)
    } catch (error) {
      this.#compositeByRoom.delete(roomId)
      if (error instanceof AppError) throw error
      throw new AppError('recorder_unavailable', `the recorder could not be started: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    // Messages may already have moved it on.
    record = this.#live.get(recordingId)?.record ?? record
    await this.#records.put(record)
    this.#log.info('recording started', { roomId, recordingId, pid: this.#live.get(recordingId)?.process.pid })
    await this.#bus.publish({ type: 'recording-started', roomId, recording: { recordingId, mode, startedAt: record.startedAt } })
    return this.#details(record)
  }

  async stop(roomId: RoomId, recordingId?: RecordingId): Promise<RecordingDetails> {
    const id = recordingId ?? this.#compositeByRoom.get(roomId) ?? this.#tracksByRoom.get(roomId) ?? (await unendedRecordingOf(this.#records, roomId))
    const record = id === undefined ? undefined : await this.#records.get(id)
    if (id === undefined || record === undefined || record.room !== roomId) {
      throw new AppError('recording_not_found', recordingId === undefined ? `room ${roomId} is not being recorded` : `there is no recording ${recordingId} in room ${roomId}`)
    }
    if (this.#runsElsewhere(record)) {
      const sweep = () => this.#leases.tick()
      return this.#details(await stopElsewhere(record, { records: this.#records, bus: this.#bus, fromNode: this.#nodeId, timeoutMs: this.#remoteStopTimeoutMs, sweep }))
    }
    const live = this.#live.get(id)
    if (live !== undefined) await this.#requestStop(live, 'stopped')
    const tracksLive = this.#tracksLive.get(id)
    if (tracksLive !== undefined) void this.#stopTracks(tracksLive, 'stopped')
    return this.get(id)
  }

  async get(recordingId: RecordingId): Promise<RecordingDetails> {
    const record = this.#live.get(recordingId)?.record ?? this.#tracksLive.get(recordingId)?.record ?? (await this.#records.get(recordingId))
    if (record === undefined) throw new AppError('recording_not_found', `there is no recording ${recordingId}`)
    return this.#details(record)
  }

  /** Every recording this node knows (of `roomId` when given), oldest first. */
  async list(roomId?: RoomId): Promise<RecordingDetails[]> {
    return Promise.all(
      (await this.#records.list(roomId)).map((record) => this.#details(this.#live.get(record.recordingId)?.record ?? this.#tracksLive.get(record.recordingId)?.record ?? record)),
    )
  }

  /** A track of a room on this node was published or ended: per-track recordings of its room follow. */
  trackChanged(track: PublishedTrack, change: 'published' | 'ended'): void {
    for (const live of this.#tracksLive.values()) {
      if (live.record.room !== track.owner.room.id || live.settled !== undefined) continue
      // After the recording started, in call order: it lists the room's tracks as it starts.
      live.recording.then((recording) => recording.trackChanged(track, change)).catch(() => undefined)
    }
  }

  /** CPU and memory of a live per-track recording: the server process and each track's ffmpeg. */
  async tracksUsage(recordingId: RecordingId): Promise<TracksRecordingUsage | undefined> {
    const live = this.#tracksLive.get(recordingId)
    return live === undefined ? undefined : (await live.recording).usage()
  }

  /** The recorder process of a live recording on this node, for operators and tests. */
  pidOf(recordingId: RecordingId): number | undefined {
    return this.#live.get(recordingId)?.process.pid
  }

  get output(): RecordingOutput {
    return this.#output
  }

  /** Stops every recorder and waits for them to finalize (or be killed); no new one starts. */
  async close(): Promise<void> {
    this.#closed = true
    this.#unsubscribe()
    this.#leases.close()
    await Promise.all([
      ...[...this.#live.values()].map(async (live) => {
        await this.#requestStop(live, 'server_closing', true)
        await live.process.exited
        await live.settled
      }),
      ...[...this.#tracksLive.values()].map((live) => this.#stopTracks(live, 'server_closing')),
    ])
  }

  // Internals.

  async #startTracks(roomId: RoomId): Promise<RecordingDetails> {
    if (this.#tracks === undefined) throw new AppError('recorder_unavailable', 'per-track recording needs the media engine in this process, which this server was not given')
    const active = this.#tracksByRoom.get(roomId)
    if (active !== undefined) throw new AppError('recording_already_active', `room ${roomId} is already being recorded per track (${active})`)
    const recordingId = RecordingId.parse(`rec-${randomBytes(9).toString('base64url')}`)
    this.#tracksByRoom.set(roomId, recordingId)
    try {
      await this.#refuseIfRecordedElsewhere(roomId, 'tracks')
    } catch (error) {
      this.#tracksByRoom.delete(roomId)
      throw error
    }
    const live: TracksLive = {
      record: { recordingId, room: roomId, mode: 'tracks', state: 'starting', partial: false, startedAt: this.#now(), ...this.#nodeField() },
      recording: TracksRecording.start({
        recordingId,
        roomId,
        output: this.#output,
        media: this.#tracks.media,
        rooms: this.#tracks.rooms,
        store: this.#store,
        spoolDir: this.#spoolDir,
        log: this.#log,
        now: this.#now,
      }),
      settled: undefined,
    }
    this.#tracksLive.set(recordingId, live)
    await this.#records.put(live.record)
    try {
      await live.recording
    } catch (cause) {
      this.#tracksLive.delete(recordingId)
      this.#tracksByRoom.delete(roomId)
      const error =
        cause instanceof AppError
          ? cause
          : new AppError('recorder_unavailable', `the per-track recording could not be started: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
      await this.#records.put({ ...live.record, state: 'failed', endedAt: this.#now(), error: { code: error.code, message: error.message } })
      throw error
    }
    if (live.record.state === 'starting') live.record = { ...live.record, state: 'recording' }
    await this.#records.put(live.record)
    this.#log.info('recording started', { roomId, recordingId, mode: 'tracks' })
    await this.#bus.publish({ type: 'recording-started', roomId, recording: { recordingId, mode: 'tracks', startedAt: live.record.startedAt } })
    return this.#details(live.record)
  }

  /** Finishes the per-track recording's files and index; settles once its record says so. */
  #stopTracks(live: TracksLive, reason: string): Promise<void> {
    if (live.settled !== undefined) return live.settled
    const { recordingId, room } = live.record
    this.#log.info('stopping recording', { recordingId, roomId: room, reason, mode: 'tracks' })
    // Stopping from now on for everyone who asks, while the files are finished.
    live.record = { ...live.record, state: 'stopping' }
    live.settled = (async () => {
      await this.#records.put(live.record)
      let failed = false
      try {
        const result = await (await live.recording).stop()
        live.record = {
          ...live.record,
          state: 'finalized',
          partial: result.partial,
          bytes: result.bytes,
          index: result.index as unknown as Record<string, unknown>,
          ...(result.error ? { error: result.error } : {}),
        }
      } catch (error) {
        failed = true
        const message = error instanceof Error ? error.message : String(error)
        live.record = { ...live.record, state: 'failed', partial: true, error: { code: 'recorder_crashed', message: `finalizing the per-track recording failed: ${message}` } }
        this.#log.error('finalizing a per-track recording failed', { recordingId, roomId: room, err: error })
      }
      live.record = { ...live.record, endedAt: this.#now() }
      this.#tracksLive.delete(recordingId)
      if (this.#tracksByRoom.get(room) === recordingId) this.#tracksByRoom.delete(room)
      await this.#records.put(live.record)
      await this.#bus.publish({ type: 'recording-stopped', roomId: room, recordingId, partial: live.record.partial, failed })
    })().catch((error: unknown) => this.#log.error('stopping a per-track recording failed', { recordingId: live.record.recordingId, err: error }))
    return live.settled
  }

  #checkCommand(): void {
    const script = this.#command[1]
    if (this.#command[0] === process.execPath && script !== undefined && !existsSync(script)) {
      throw new AppError('recorder_unavailable', `the recorder is not built (${script} is missing); run \`npm run build -w @conclave/recorder\``)
    }
  }

  #spawn(record: RecordingRecord, config: Record<string, unknown>): void {
    const log = this.#log.child({ recordingId: record.recordingId, roomId: record.room })
    const live: Supervised = {
      record,
      config,
      finalized: false,
      failure: undefined,
      stopReason: undefined,
      startTimer: undefined,
      announcedStop: false,
      settled: Promise.resolve(),
      started: false,
      stopWhenStarted: false,
      process: undefined as unknown as RecorderProcess,
    }
    live.process = new RecorderProcess({
      command: this.#command,
      config,
      log,
      onMessage: (message) => this.#onMessage(live, message),
      onExit: (exit) => {
        live.settled = this.#onExit(live, exit).catch((error: unknown) => log.error('recording the recorder exit failed', { err: error }))
      },
    })
    this.#live.set(record.recordingId, live)
    live.startTimer = setTimeout(() => {
      if (live.record.state !== 'starting') return
      live.failure = { code: 'start_timeout', message: `the recorder did not start recording within ${this.#startTimeoutMs} ms` }
      void this.#requestStop(live, 'start_timeout', true)
    }, this.#startTimeoutMs)
    live.startTimer.unref()
  }

  #onMessage(live: Supervised, message: RecorderMessage): void {
    const record = live.record
    switch (message.type) {
      case 'started':
        clearTimeout(live.startTimer)
        live.started = true
        if (record.state === 'starting') this.#update(live, { state: 'recording' })
        if (live.stopWhenStarted) void live.process.stop(this.#stopTimeoutMs)
        return
      case 'progress':
        this.#update(live, { bytes: message.bytes, segments: message.segments })
        return
      case 'finalized':
        live.finalized = true
        this.#update(live, { state: 'finalized', partial: message.partial, ...(message.index ? { index: message.index } : {}) })
        void this.#announceStop(live, false)
        return
      case 'failed':
        live.failure = { code: message.code, message: message.message }
        // After `finalized`: the output is stored but something went wrong (partial); say what.
        if (live.finalized) this.#update(live, { error: live.failure })
        return
      default:
        assertNever(message)
    }
  }

  async #onExit(live: Supervised, exit: RecorderExit): Promise<void> {
    clearTimeout(live.startTimer)
    const { record } = live
    const endedAt = this.#now()
    if (live.finalized) {
      this.#update(live, { endedAt })
    } else {
      const how = exit.spawnError
        ? `could not run: ${exit.spawnError.message}`
        : exit.signal !== null
          ? `was ended by ${exit.signal}`
          : `exited with code ${exit.code}`
      const tail = exit.stderrTail.slice(-3).join(' | ')
      const error = live.failure ?? {
        code: exit.spawnError ? 'recorder_unavailable' : 'recorder_crashed',
        message: `the recorder ${how} without finalizing${tail ? `: ${tail}` : ''}`,
      }
      // Nothing is recorded any more: the room hears it now; what was written is finalized next.
      let partial = (record.bytes ?? 0) > 0 || (record.segments ?? 0) > 0
      let index = record.index
      this.#update(live, { state: 'stopping', partial, endedAt, error })
      const level = live.stopReason === undefined ? 'error' : 'warn'
      this.#log[level]('the recorder ended without finalizing', { recordingId: record.recordingId, roomId: record.room, code: exit.code, signal: exit.signal, reason: error.message, partial })
      await this.#announceStop(live, true)
      if (this.#finalizePartial !== undefined && !exit.spawnError) {
        try {
          const finished = await this.#finalizePartial(live.config, error)
          if (finished !== undefined) {
            partial = finished.partial || partial
            index = finished.index ?? index
          }
        } catch (finalizeError) {
          this.#log.warn('finalizing a partial recording failed', { recordingId: record.recordingId, err: finalizeError })
        }
      }
      this.#update(live, { state: 'failed', partial, ...(index ? { index } : {}) })
    }
    this.#live.delete(record.recordingId)
    if (this.#compositeByRoom.get(record.room) === record.recordingId) this.#compositeByRoom.delete(record.room)
    await this.#records.put(live.record)
    await this.#announceStop(live, !live.finalized)
  }

  /**
   * Stops the recorder: SIGTERM, then SIGKILL after the stop timeout. One that has not said
   * `started` may not handle SIGTERM yet, so it gets it once it does (or `now`, at the start timeout).
   */
  async #requestStop(live: Supervised, reason: string, now = false): Promise<void> {
    if (!live.process.running) return
    if (live.stopReason === undefined) {
      live.stopReason = reason
      this.#log.info('stopping recording', { recordingId: live.record.recordingId, roomId: live.record.room, reason })
      if (live.record.state === 'starting' || live.record.state === 'recording') this.#update(live, { state: 'stopping' })
      await this.#records.put(live.record)
    }
    if (live.started || now) void live.process.stop(this.#stopTimeoutMs)
    else live.stopWhenStarted = true
  }

  #update(live: Supervised, patch: Partial<RecordingRecord>): void {
    live.record = { ...live.record, ...patch }
    this.#records.put(live.record).catch((error: unknown) => this.#log.warn('saving a recording failed', { err: error }))
  }

  async #announceStop(live: Supervised, failed: boolean): Promise<void> {
    if (live.announcedStop) return
    live.announcedStop = true
    const { recordingId, room, partial } = live.record
    // Once finalized, the room may start another one while this process exits.
    if (this.#compositeByRoom.get(room) === recordingId) this.#compositeByRoom.delete(room)
    await this.#bus.publish({ type: 'recording-stopped', roomId: room, recordingId, partial, failed })
  }

  async #onRoomEvent(event: ClusterEvent): Promise<void> {
    if (event.type === 'recording-stop-requested') {
      // Only the node that runs it acts; the asking node reads the outcome from the store.
      if (!this.#live.has(event.recordingId) && !this.#tracksLive.has(event.recordingId)) return
      this.#log.info('stop requested by another node', { recordingId: event.recordingId, roomId: event.roomId, fromNode: event.fromNode })
      await this.stop(event.roomId, event.recordingId)
      return
    }
    const perTrack = [...this.#tracksLive.values()].filter((live) => live.record.room === event.roomId && live.settled === undefined)
    for (const live of perTrack) {
      if (event.type === 'participant-joined') void live.recording.then((recording) => recording.participantJoined(event.participant), () => undefined)
      if (event.type === 'participant-left' || event.type === 'participant-removed') {
        void live.recording.then((recording) => recording.participantLeft(event.participant.participantId), () => undefined)
      }
    }
    if (event.type !== 'room-closed' && event.type !== 'participant-left' && event.type !== 'participant-removed') return
    const recordings = [...this.#live.values()].filter((live) => live.record.room === event.roomId)
    if (recordings.length === 0 && perTrack.length === 0) return
    if (event.type === 'room-closed') {
      for (const live of recordings) await this.#requestStop(live, 'room_closed')
      for (const live of perTrack) void this.#stopTracks(live, 'room_closed')
      return
    }
    // No one left to record: hidden participants (the recorder itself) do not count.
    const people = (await this.#store.listParticipants(event.roomId)).filter(
      (participant) => participant.state === 'active' && !participant.grants.hidden && !participant.grants.recorder,
    )
    if (people.length > 0) return
    for (const live of recordings) await this.#requestStop(live, 'room_empty')
    for (const live of perTrack) void this.#stopTracks(live, 'room_empty')
  }

  async #details(record: RecordingRecord): Promise<RecordingDetails> {
    const files = await listRecordingFiles(this.#output, record.recordingId, record.index)
    // Another node's local folder: this node sees the files only if the folder is shared.
    if (this.#output.kind !== 'local' || record.nodeId === undefined || record.nodeId === this.#nodeId || files.length > 0) return { ...record, files }
    const filesNotice = `the files are in the local recordings folder of node ${record.nodeId}: that node lists and serves them`
    return { ...record, files, filesNotice }
  }

  /** One recording per room and mode in the cluster too (two nodes starting at the same instant may both pass). */
  async #refuseIfRecordedElsewhere(roomId: RoomId, mode: RecordingMode): Promise<void> {
    const other = (await this.#records.list(roomId)).find((record) => record.mode === mode && this.#runsElsewhere(record))
    if (other !== undefined) throw new AppError('recording_already_active', `room ${roomId} is already being recorded (${other.recordingId}, on node ${other.nodeId})`)
  }

  #nodeField(): { nodeId?: string } {
    return this.#nodeId === undefined ? {} : { nodeId: this.#nodeId }
  }

  /** Its record says another node runs it, and it has not ended. */
  #runsElsewhere(record: RecordingRecord): boolean {
    return record.endedAt === undefined && record.nodeId !== undefined && record.nodeId !== this.#nodeId && !this.#live.has(record.recordingId) && !this.#tracksLive.has(record.recordingId)
  }
}

function assertNever(value: never): never {
  throw new Error(`unhandled recorder message ${JSON.stringify(value)}`)
}
