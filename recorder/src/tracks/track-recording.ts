// Per-track recording: the engine tees each track as plain RTP to a port of this machine where an
// ffmpeg copies it, never transcoding, into one file per track. One recorder process supervises
// the ffmpegs of many tracks; no browser is involved.

import { mkdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Child, type Exit, type LogLine, startChild } from '../child-process.js'
import { RecorderError } from '../errors.js'
import type { RecordingSink } from '../storage/recording-sink.js'
import { processUsage, type ProcessUsage } from './process-usage.js'
import { type AudioContainer, containerFor, type ForwardedStream, type TrackContainer, trackSdp } from './track-sdp.js'
import { findRtpPort, waitForUdpListener } from './udp-ports.js'

/** An RTP forward the engine started: `RtpForwardInfo` of `@conclave/server`. */
export interface StartedForward<ForwardId extends number = number> extends ForwardedStream {
  id: ForwardId
}

/**
 * The three media-engine commands a per-track recording needs; `MediaEngine` of
 * `@conclave/server` is one.
 */
export interface RtpForwarder<TrackId extends number = number, ForwardId extends number = number> {
  addRtpForward(trackId: TrackId, destination: { address: string; port: number }): Promise<StartedForward<ForwardId>>
  removeRtpForward(id: ForwardId): Promise<boolean>
  requestKeyframe(trackId: TrackId): Promise<void>
}

export interface TrackToRecord<TrackId extends number = number> {
  trackId: TrackId
  /** The file's name without extension. Default `track-<trackId>-<kind>`. */
  name?: string
}

export interface TrackRecordingOptions<TrackId extends number = number, ForwardId extends number = number> {
  recordingId: string
  /**
   * The media engine whose tracks are recorded, when it is in this process: then `addTrack` does
   * everything. A recorder in another process goes without and is driven in two steps instead
   * (`reservePort`, the engine's `addRtpForward`, `attachTrack`, the engine's `requestKeyframe`).
   */
  media?: RtpForwarder<TrackId, ForwardId>
  /** The folder ffmpeg writes the files into (created if missing). */
  dir: string
  /** Where finished files are copied, as `tracks/<file>`; without one they stay in `dir`. */
  sink?: RecordingSink
  /** Tracks to record from the start; more with `addTrack`. */
  tracks?: readonly TrackToRecord<TrackId>[]
  /** Opus goes to Ogg (default) or WebM. */
  audioContainer?: AudioContainer
  /** The address ffmpeg listens on and the engine sends to. Default 127.0.0.1. */
  address?: string
  /** Default `ffmpeg` on the PATH. */
  ffmpegPath?: string
  /** How long ffmpeg may take to bind its port (it starts slowly on a busy machine). Default 15000 ms. */
  listenTimeoutMs?: number
  /** An ffmpeg that exited while recording (its file ends there; `stop` reports it too). */
  onTrackFailed?: (trackId: TrackId, error: RecorderError) => void
  log?: LogLine
}

/** A track being recorded. */
export interface RecordingTrack<TrackId extends number = number, ForwardId extends number = number> {
  trackId: TrackId
  kind: 'audio' | 'video'
  codec: string
  /** Where the engine sends the track's RTP. */
  destination: { address: string; port: number }
  forwardId: ForwardId
  /** The file ffmpeg writes. */
  path: string
  pid: number | undefined
  startedAt: Date
}

/** A finished track file. */
export interface TrackFile<TrackId extends number = number> {
  trackId: TrackId
  kind: 'audio' | 'video'
  codec: string
  /** Its name in the sink (`tracks/<file>`), or the file name in `dir` without a sink. */
  name: string
  path: string
  contentType: string
  bytes: number
  startedAt: Date
  endedAt: Date
  /** Set when ffmpeg failed or the upload did: the file may be short or missing. */
  error?: RecorderError
}

interface Entry<TrackId extends number, ForwardId extends number> {
  track: RecordingTrack<TrackId, ForwardId>
  container: TrackContainer
  ffmpeg: Child
  stopping: boolean
  failure: RecorderError | undefined
}

/**
 * ffmpeg ends a track's file by itself, cleanly, when no packet came for this long (its
 * `-listen_timeout`): that is how the file of a track that ended gets finished, since a SIGINT is
 * only noticed when a read returns (a second one would abort the trailer). A pause that long
 * (a track muted by the server, a camera turned off without replaceTrack) ends the file too.
 */
const INPUT_TIMEOUT_SECONDS = 10

/** Starts recording `tracks` (if any) and resolves once every one of them is being written. */
export async function startTrackRecording<TrackId extends number, ForwardId extends number>(
  options: TrackRecordingOptions<TrackId, ForwardId>,
): Promise<TrackRecording<TrackId, ForwardId>> {
  await mkdir(options.dir, { recursive: true })
  const recording = new TrackRecording(options)
  try {
    await Promise.all((options.tracks ?? []).map((track) => recording.addTrack(track)))
  } catch (error) {
    await recording.stop()
    throw error
  }
  return recording
}

export class TrackRecording<TrackId extends number = number, ForwardId extends number = number> {
  readonly recordingId: string
  readonly #options: TrackRecordingOptions<TrackId, ForwardId>
  readonly #address: string
  readonly #entries = new Map<TrackId, Entry<TrackId, ForwardId>>()
  /** Tracks whose `addTrack` is under way, so a second call for one waits for the first. */
  readonly #adding = new Map<TrackId, Promise<RecordingTrack<TrackId, ForwardId>>>()

  constructor(options: TrackRecordingOptions<TrackId, ForwardId>) {
    this.recordingId = options.recordingId
    this.#options = options
    this.#address = options.address ?? '127.0.0.1'
  }

  /** The tracks being recorded. */
  get tracks(): RecordingTrack<TrackId, ForwardId>[] {
    return [...this.#entries.values()].map((entry) => entry.track)
  }

  /**
   * Starts recording one track with `media`: port, forward, ffmpeg, keyframe; resolves once
   * ffmpeg listens and the engine forwards to it. A track already recorded resolves with what it
   * is. Rejects with the engine's error (`track_not_found`, ...) or `ffmpeg_crashed` if ffmpeg
   * does not come up (the forward is removed again).
   */
  addTrack(track: TrackToRecord<TrackId>): Promise<RecordingTrack<TrackId, ForwardId>> {
    const known = this.#entries.get(track.trackId)
    if (known !== undefined) return Promise.resolve(known.track)
    const pending = this.#adding.get(track.trackId)
    if (pending !== undefined) return pending
    const adding = this.#add(track).finally(() => this.#adding.delete(track.trackId))
    this.#adding.set(track.trackId, adding)
    return adding
  }

  async #add(track: TrackToRecord<TrackId>): Promise<RecordingTrack<TrackId, ForwardId>> {
    const { media, log } = this.#options
    if (media === undefined) throw new RecorderError('internal', 'addTrack needs the media engine; use reservePort and attachTrack without one')
    const destination = await this.reservePort()
    // The forward starts before ffmpeg: the SDP needs the codec and payload type it answers with.
    const forward = await media.addRtpForward(track.trackId, destination)
    let recording: RecordingTrack<TrackId, ForwardId>
    try {
      recording = await this.attachTrack(track, destination, forward)
    } catch (error) {
      await media.removeRtpForward(forward.id).catch(() => false)
      throw error
    }
    if (forward.kind === 'video') {
      // What reached the port before ffmpeg bound it is lost, the first keyframe with it.
      await media.requestKeyframe(track.trackId).catch((error: unknown) => log?.(`keyframe request for track ${track.trackId} failed: ${String(error)}`))
    }
    return recording
  }

  /**
   * Step 1 without a media engine in this process: a free UDP port on `address` (default
   * 127.0.0.1) for the engine's `addRtpForward(trackId, destination)`.
   */
  async reservePort(): Promise<{ address: string; port: number }> {
    return { address: this.#address, port: await findRtpPort(this.#address) }
  }

  /**
   * Step 2: starts ffmpeg on `destination` for the stream `forward` describes (the engine's
   * reply to `addRtpForward`); resolves once ffmpeg listens. The caller then asks the engine for a
   * keyframe of a video track (`requestKeyframe`): the one the forward started with may have come
   * before ffmpeg listened. Rejects with `ffmpeg_crashed` if ffmpeg does not come up.
   */
  async attachTrack(
    { trackId, name }: TrackToRecord<TrackId>,
    destination: { address: string; port: number },
    forward: StartedForward<ForwardId>,
  ): Promise<RecordingTrack<TrackId, ForwardId>> {
    const { dir, ffmpegPath = 'ffmpeg', listenTimeoutMs = 15_000, log } = this.#options
    const { address, port } = destination
    const known = this.#entries.get(trackId)
    if (known !== undefined) throw new RecorderError('internal', `track ${trackId} is already recorded on port ${known.track.destination.port}`)
    await mkdir(dir, { recursive: true })
    const container = containerFor(forward, this.#options.audioContainer)
    const base = name ?? `track-${trackId}-${forward.kind}`
    const path = join(dir, `${base}.${container.extension}`)
    const sdpPath = join(dir, `${base}.sdp`)
    await writeFile(sdpPath, trackSdp(forward, address, port, `${this.recordingId} ${base}`))
    const args = [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'warning',
      '-protocol_whitelist',
      'file,udp,rtp',
      '-localaddr',
      address,
      '-listen_timeout',
      String(INPUT_TIMEOUT_SECONDS),
      // A keyframe is a burst of ~100 packets: room for it in the socket's buffer.
      '-buffer_size',
      String(4 * 1024 * 1024),
      '-i',
      sdpPath,
      '-map',
      '0',
      '-c',
      'copy',
      '-f',
      container.format,
      ...container.muxerArgs,
      '-y',
      path,
    ]
    const ffmpeg = startChild(`ffmpeg ${base}`, ffmpegPath, args, log === undefined ? {} : { log })
    const listening = await waitForUdpListener(port, listenTimeoutMs, ffmpeg.hasExited)
    if (!listening) {
      await ffmpeg.stop('SIGKILL')
      throw new RecorderError('ffmpeg_crashed', `ffmpeg for track ${trackId} did not listen on ${address}:${port}: ${ffmpeg.stderrTail()}`)
    }
    const track: RecordingTrack<TrackId, ForwardId> = {
      trackId,
      kind: forward.kind,
      codec: forward.codec,
      destination: { address, port },
      forwardId: forward.id,
      path,
      pid: ffmpeg.process.pid,
      startedAt: new Date(),
    }
    const entry: Entry<TrackId, ForwardId> = { track, container, ffmpeg, stopping: false, failure: undefined }
    this.#entries.set(trackId, entry)
    void ffmpeg.exited.then((exit) => this.#exited(entry, exit))
    log?.(`recording track ${trackId} (${forward.codec}) from ${address}:${port} to ${path}`)
    return track
  }

  #exited(entry: Entry<TrackId, ForwardId>, exit: Exit): void {
    if (entry.stopping) return
    if (exit.code === 0) {
      // No packet for INPUT_TIMEOUT_SECONDS: the track ended (or paused that long); the file is whole.
      this.#options.log?.(`track ${entry.track.trackId} sent nothing for ${INPUT_TIMEOUT_SECONDS} s; its file is finished`)
      return
    }
    entry.failure = new RecorderError(
      'ffmpeg_crashed',
      `ffmpeg for track ${entry.track.trackId} exited (code ${exit.code}, signal ${exit.signal}): ${entry.ffmpeg.stderrTail()}`,
    )
    this.#options.log?.(entry.failure.message)
    this.#options.onTrackFailed?.(entry.track.trackId, entry.failure)
  }

  /**
   * Stops recording one track (call it on `track-ended` too: the engine's forward ends with the
   * track, ffmpeg does not): lets ffmpeg finish the file, removes the forward (with `media`),
   * copies the file to the sink. Resolves undefined for a track not being recorded.
   */
  async removeTrack(trackId: TrackId): Promise<TrackFile<TrackId> | undefined> {
    await this.#adding.get(trackId)?.catch(() => undefined)
    const entry = this.#entries.get(trackId)
    if (entry === undefined) return undefined
    this.#entries.delete(trackId)
    entry.stopping = true
    const { media, sink, log } = this.#options
    // SIGINT makes ffmpeg write the container's trailer (cues, duration) and exit once its read
    // returns: at the next packet, which is why the forward goes only after; or, for a track that
    // ended, at ffmpeg's input timeout. SIGKILL only if neither came.
    await entry.ffmpeg.stop('SIGINT', (INPUT_TIMEOUT_SECONDS + 5) * 1000)
    // False when the track already ended: nothing to stop then. Without the engine in this
    // process the caller removes the forward (`forwardId` of the track).
    await media?.removeRtpForward(entry.track.forwardId).catch((error: unknown) => log?.(`removing the forward of track ${trackId} failed: ${String(error)}`))
    const endedAt = new Date()
    const fileName = entry.track.path.slice(entry.track.path.lastIndexOf('/') + 1)
    const bytes = await stat(entry.track.path).then(
      (info) => info.size,
      () => 0,
    )
    const file: TrackFile<TrackId> = {
      trackId,
      kind: entry.track.kind,
      codec: entry.track.codec,
      name: fileName,
      path: entry.track.path,
      contentType: entry.container.contentType,
      bytes,
      startedAt: entry.track.startedAt,
      endedAt,
    }
    if (entry.failure !== undefined) file.error = entry.failure
    if (sink !== undefined && bytes > 0) {
      file.name = `tracks/${fileName}`
      try {
        await sink.putFile(file.name, file.path, file.contentType)
      } catch (error) {
        file.error = new RecorderError('storage_unreachable', `track ${trackId} stays in ${file.path}: ${String(error)}`, { cause: error })
      }
    }
    return file
  }

  /** Stops every track; resolves with their files once all are finished. */
  async stop(): Promise<TrackFile<TrackId>[]> {
    await Promise.all([...this.#adding.values()].map((adding) => adding.catch(() => undefined)))
    const files = await Promise.all([...this.#entries.keys()].map((trackId) => this.removeTrack(trackId)))
    return files.filter((file): file is TrackFile<TrackId> => file !== undefined)
  }

  /** CPU and memory of each track's ffmpeg so far. */
  async usage(): Promise<(ProcessUsage & { trackId: TrackId })[]> {
    const usages = await Promise.all(
      [...this.#entries.values()].map(async (entry) => {
        const pid = entry.track.pid
        const usage = pid === undefined ? undefined : await processUsage(pid)
        return usage === undefined ? undefined : { ...usage, trackId: entry.track.trackId }
      }),
    )
    return usages.filter((usage) => usage !== undefined)
  }
}
