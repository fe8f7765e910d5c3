// `recording.json`: what a recording holds, written early (provisional, `partial: true`) and
// rewritten when it is finalized, so a crashed recorder still leaves an index behind.

import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { CONTENT_TYPES } from './storage/recording-sink.js'

export interface IndexedParticipant {
  participantId: string
  name: string
  /** When the recorder saw them join (or found them there), ISO 8601. */
  joinedAt: string
  /** Absent while they are still there when the recording ends. */
  leftAt?: string
}

export interface IndexedTrack {
  trackId: string
  participantId: string
  kind: string
  startedAt: string
  endedAt?: string
}

export interface IndexedFile {
  /** Relative to the recording: `recording.mp4`, `hls/segment_00001.ts`, `thumbnails/0001.jpg`. */
  name: string
  kind: 'mp4' | 'hls-playlist' | 'hls-segment' | 'thumbnail'
  contentType: string
  size: number
  sha256: string
}

export interface RecordingIndex {
  version: 1
  recordingId: string
  room: string
  mode: 'composite'
  /** `recording` while it runs (the provisional index), `finalized` when stopped cleanly, `partial` after a crash. */
  status: 'recording' | 'finalized' | 'partial'
  /** True unless the recording was stopped and everything was stored. */
  partial: boolean
  startedAt: string
  /** When capture stopped; in a provisional index, the last time it was updated. */
  endedAt: string
  durationSeconds: number
  participants: IndexedParticipant[]
  tracks: IndexedTrack[]
  media: { width: number; height: number; framesPerSecond: number; video: 'h264'; audio: 'aac' }
  files: IndexedFile[]
  thumbnailEverySeconds: number
  /** Why it is partial, when a failure made it so. */
  error?: { code: string; message: string }
}

export function fileKind(name: string): IndexedFile['kind'] | undefined {
  if (name.endsWith('.mp4')) return 'mp4'
  if (name.endsWith('.m3u8')) return 'hls-playlist'
  if (name.endsWith('.ts')) return 'hls-segment'
  if (name.endsWith('.jpg')) return 'thumbnail'
  return undefined
}

const KIND_TYPES: Record<IndexedFile['kind'], string> = {
  mp4: CONTENT_TYPES.mp4,
  'hls-playlist': CONTENT_TYPES.playlist,
  'hls-segment': CONTENT_TYPES.segment,
  thumbnail: CONTENT_TYPES.jpeg,
}

export function indexedFile(name: string, bytes: { size: number; sha256: string }): IndexedFile | undefined {
  const kind = fileKind(name)
  return kind === undefined ? undefined : { name, kind, contentType: KIND_TYPES[kind], ...bytes }
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

export function sha256OfBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** The recording's media files under `dir`, with sizes and checksums, in name order. */
export async function indexLocalFiles(dir: string): Promise<IndexedFile[]> {
  const files: IndexedFile[] = []
  for (const entry of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, entry)
    const info = await stat(path)
    if (!info.isFile()) continue
    const file = indexedFile(relative(dir, path).split(sep).join('/'), { size: info.size, sha256: await sha256OfFile(path) })
    if (file !== undefined) files.push(file)
  }
  return files
}
