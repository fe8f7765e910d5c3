// Uploads a recording while it is produced: a growing MP4 as staged and periodically committed
// blocks, HLS segments then their playlist, and whole files (thumbnails, the index). One serial
// loop; on failure it backs off exponentially and tries again, while the files wait on the local
// disk (the spool), so nothing is lost while storage is away.

import { EventEmitter } from 'node:events'
import { open, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { completeBoxesEnd } from './mp4-boxes.js'
import { CONTENT_TYPES, type RecordingSink } from './recording-sink.js'

export interface RecordingUploaderOptions {
  sink: RecordingSink
  /** How often the spool is looked at, in ms. Default 1000. */
  intervalMs?: number
  /** How often a growing file's staged blocks are committed, in ms. Default 2000. */
  commitIntervalMs?: number
  /** First wait after a failure, in ms; doubles up to `maxBackoffMs`. Default 250. */
  initialBackoffMs?: number
  /** Default 8000. */
  maxBackoffMs?: number
  /** Largest staged block, in bytes. Default 4 MiB. */
  maxBlockBytes?: number
}

export interface UploaderStats {
  /** Bytes stored so far (blocks staged plus whole objects). */
  uploadedBytes: number
  /** HLS segments stored. */
  segments: number
  /** Failed storage calls so far. */
  failures: number
  /** The last failure, while the uploader is still backing off from it. */
  lastError: string | undefined
}

type UploaderEvents = {
  /** A storage call failed; the uploader waits `delayMs` and tries again. */
  retrying: [{ error: Error; delayMs: number; failures: number }]
  /** Storage answered again after failures. */
  recovered: [{ failures: number }]
}

interface GrowingFile {
  name: string
  path: string
  contentType: string
  /** Bytes of the local file already staged. */
  stagedEnd: number
  stagedBlocks: number
  committedBlocks: number
  lastCommitAt: number
}

interface FollowedPlaylist {
  /** The playlist's object name; segments go beside it. */
  name: string
  path: string
  uploadedSegments: Set<string>
  uploadedText: string | undefined
}

type PendingPut = { kind: 'bytes'; body: Uint8Array; contentType: string } | { kind: 'file'; path: string; contentType: string }

export class RecordingUploader extends EventEmitter<UploaderEvents> {
  readonly #sink: RecordingSink
  readonly #intervalMs: number
  readonly #commitIntervalMs: number
  readonly #initialBackoffMs: number
  readonly #maxBackoffMs: number
  readonly #maxBlockBytes: number
  readonly #growing: GrowingFile[] = []
  readonly #playlists: FollowedPlaylist[] = []
  /** Latest wins: a newer index replaces one not yet stored. */
  readonly #puts = new Map<string, PendingPut>()
  readonly #stats: UploaderStats = { uploadedBytes: 0, segments: 0, failures: 0, lastError: undefined }
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #finishing: { wholeFiles: boolean; deadline: number } | undefined
  #stopped = false

  constructor({ sink, intervalMs = 1000, commitIntervalMs = 2000, initialBackoffMs = 250, maxBackoffMs = 8000, maxBlockBytes = 4 * 1024 * 1024 }: RecordingUploaderOptions) {
    super()
    this.#sink = sink
    this.#intervalMs = intervalMs
    this.#commitIntervalMs = commitIntervalMs
    this.#initialBackoffMs = initialBackoffMs
    this.#maxBackoffMs = maxBackoffMs
    this.#maxBlockBytes = maxBlockBytes
  }

  get stats(): Readonly<UploaderStats> {
    return { ...this.#stats }
  }

  /**
   * Uploads `path` as object `name` while it grows, in blocks. It must be a (fragmented) MP4: until
   * `finish`, only whole top-level boxes are staged, so every commit is a playable file.
   */
  followGrowingFile(name: string, path: string, contentType = CONTENT_TYPES.mp4): void {
    this.#growing.push({ name, path, contentType, stagedEnd: 0, stagedBlocks: 0, committedBlocks: 0, lastCommitAt: 0 })
  }

  /** Uploads each segment `path` lists (beside it, under `name`'s folder), then the playlist itself. */
  followPlaylist(name: string, path: string): void {
    this.#playlists.push({ name, path, uploadedSegments: new Set(), uploadedText: undefined })
  }

  put(name: string, body: Uint8Array, contentType: string): void {
    this.#puts.set(name, { kind: 'bytes', body, contentType })
    this.#wake?.()
  }

  putFile(name: string, path: string, contentType: string): void {
    this.#puts.set(name, { kind: 'file', path, contentType })
    this.#wake?.()
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  /**
   * Uploads everything left and commits. `wholeFiles: false` (after a crash of the writer) keeps a
   * growing MP4 to its whole boxes. Rejects when storage is still failing at `deadlineMs`; the
   * files stay in the spool.
   */
  async finish({ deadlineMs = 120_000, wholeFiles = true }: { deadlineMs?: number; wholeFiles?: boolean } = {}): Promise<void> {
    this.#finishing = { wholeFiles, deadline: Date.now() + deadlineMs }
    this.start()
    this.#wake?.()
    await this.#loop
  }

  /** Stops at once, uploading nothing more (the spool keeps what is left). */
  async abort(): Promise<void> {
    this.#stopped = true
    this.#wake?.()
    await this.#loop
  }

  async #run(): Promise<void> {
    let delayMs = this.#initialBackoffMs
    let failuresInRow = 0
    while (!this.#stopped) {
      const finishing = this.#finishing
      try {
        const idle = await this.#syncOnce(finishing?.wholeFiles ?? false)
        if (failuresInRow > 0) this.emit('recovered', { failures: failuresInRow })
        failuresInRow = 0
        delayMs = this.#initialBackoffMs
        this.#stats.lastError = undefined
        if (finishing !== undefined && idle) return
      } catch (error) {
        failuresInRow++
        this.#stats.failures++
        const failure = error instanceof Error ? error : new Error(String(error))
        this.#stats.lastError = failure.message
        if (finishing !== undefined && Date.now() + delayMs > finishing.deadline) {
          throw new Error(`storage still failing after the final flush deadline: ${failure.message}`, { cause: failure })
        }
        this.emit('retrying', { error: failure, delayMs, failures: failuresInRow })
        await this.#sleep(delayMs, false)
        delayMs = Math.min(delayMs * 2, this.#maxBackoffMs)
        continue
      }
      await this.#sleep(this.#intervalMs, true)
    }
  }

  /** One pass over everything; true when nothing was left to do. */
  async #syncOnce(wholeFiles: boolean): Promise<boolean> {
    let idle = true
    const final = this.#finishing !== undefined
    for (const file of this.#growing) idle = (await this.#syncGrowing(file, final, wholeFiles)) && idle
    for (const playlist of this.#playlists) idle = (await this.#syncPlaylist(playlist)) && idle
    for (const [name, put] of [...this.#puts]) {
      if (put.kind === 'bytes') await this.#sink.put(name, put.body, put.contentType)
      else await this.#sink.putFile(name, put.path, put.contentType)
      this.#stats.uploadedBytes += put.kind === 'bytes' ? put.body.length : (await stat(put.path)).size
      // A newer version queued meanwhile stays queued.
      if (this.#puts.get(name) === put) this.#puts.delete(name)
    }
    return idle && this.#puts.size === 0
  }

  async #syncGrowing(file: GrowingFile, final: boolean, wholeFiles: boolean): Promise<boolean> {
    let handle
    try {
      handle = await open(file.path, 'r')
    } catch {
      return true // not written yet
    }
    try {
      const size = (await handle.stat()).size
      const end = final && wholeFiles ? size : await completeBoxesEnd(handle, file.stagedEnd, size)
      while (file.stagedEnd < end) {
        const length = Math.min(this.#maxBlockBytes, end - file.stagedEnd)
        const chunk = Buffer.alloc(length)
        const { bytesRead } = await handle.read(chunk, 0, length, file.stagedEnd)
        await this.#sink.stageBlock(file.name, file.stagedBlocks, chunk.subarray(0, bytesRead))
        file.stagedBlocks++
        file.stagedEnd += bytesRead
        this.#stats.uploadedBytes += bytesRead
      }
    } finally {
      await handle.close()
    }
    const due = final || Date.now() - file.lastCommitAt >= this.#commitIntervalMs
    if (file.stagedBlocks > file.committedBlocks && due) {
      await this.#sink.commitBlocks(file.name, file.stagedBlocks, file.contentType)
      file.committedBlocks = file.stagedBlocks
      file.lastCommitAt = Date.now()
    }
    return file.committedBlocks === file.stagedBlocks
  }

  async #syncPlaylist(playlist: FollowedPlaylist): Promise<boolean> {
    let text: string
    try {
      text = await readFile(playlist.path, 'utf8')
    } catch {
      return true
    }
    // ffmpeg replaces the playlist by rename; a torn read would still end mid-line.
    if (text === playlist.uploadedText || !text.startsWith('#EXTM3U') || !text.endsWith('\n')) return text === playlist.uploadedText || text === ''
    const folder = playlist.name.includes('/') ? playlist.name.slice(0, playlist.name.lastIndexOf('/') + 1) : ''
    const localFolder = playlist.path.slice(0, playlist.path.lastIndexOf('/'))
    for (const line of text.split('\n')) {
      const segment = line.trim()
      if (segment === '' || segment.startsWith('#') || playlist.uploadedSegments.has(segment) || segment.includes('/')) continue
      const path = join(localFolder, segment)
      await this.#sink.putFile(folder + segment, path, CONTENT_TYPES.segment)
      playlist.uploadedSegments.add(segment)
      this.#stats.segments++
      this.#stats.uploadedBytes += (await stat(path)).size
    }
    // Segments first: a stored playlist never names a segment storage does not have.
    await this.#sink.put(playlist.name, Buffer.from(text), CONTENT_TYPES.playlist)
    playlist.uploadedText = text
    return true
  }

  #sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      if (wakeable) this.#wake = done
    })
  }
}
