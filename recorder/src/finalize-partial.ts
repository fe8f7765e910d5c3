// After a recorder died without finalizing (SIGKILL, OOM, node lost): stores what its spool still
// holds, then rewrites `recording.json` from what storage has, marked `partial: true`. Run by the
// orchestrator; safe to run more than once.

import { access, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { trimToCompleteBoxes } from './composite-recording.js'
import { type IndexedFile, type RecordingIndex, indexedFile, sha256OfBytes } from './recording-index.js'
import { RECORDING_FILES } from './screen-capture.js'
import { CONTENT_TYPES, type RecordingSink } from './storage/recording-sink.js'
import { makeThumbnails } from './thumbnails.js'

export interface FinalizePartialOptions {
  recordingId: string
  sink: RecordingSink
  /** The dead recorder's `spoolDir`; what is left in `<spoolDir>/<recordingId>` is stored first. */
  spoolDir?: string
  /** For thumbnails from the spooled MP4, when the recorder made none. Default none. */
  ffmpeg?: string
  /** Why; default `recorder_lost`. */
  error?: { code: string; message: string }
}

export async function finalizePartial({ recordingId, sink, spoolDir, ffmpeg, error }: FinalizePartialOptions): Promise<RecordingIndex> {
  const provisional = await readIndex(sink)
  const workDir = spoolDir === undefined ? undefined : join(spoolDir, recordingId)
  if (workDir !== undefined && (await exists(workDir))) await storeSpool(workDir, sink, ffmpeg, provisional?.thumbnailEverySeconds || 5)
  const files: IndexedFile[] = []
  for (const object of await sink.list()) {
    if (object.name === RECORDING_FILES.index) continue
    const bytes = await sink.read(object.name)
    if (bytes === undefined) continue
    const file = indexedFile(object.name, { size: bytes.length, sha256: sha256OfBytes(bytes) })
    if (file !== undefined) files.push(file)
  }
  const now = new Date().toISOString()
  const index: RecordingIndex = {
    version: 1,
    recordingId,
    room: provisional?.room ?? '',
    mode: 'composite',
    status: 'partial',
    partial: true,
    startedAt: provisional?.startedAt ?? now,
    // The provisional index was refreshed every few seconds: its last time is when the recorder was last seen alive.
    endedAt: provisional?.endedAt ?? now,
    durationSeconds: provisional?.durationSeconds ?? 0,
    participants: provisional?.participants ?? [],
    tracks: provisional?.tracks ?? [],
    media: provisional?.media ?? { width: 0, height: 0, framesPerSecond: 0, video: 'h264', audio: 'aac' },
    files,
    thumbnailEverySeconds: provisional?.thumbnailEverySeconds ?? 0,
    error: error ?? provisional?.error ?? { code: 'recorder_lost', message: 'the recorder stopped without finalizing' },
  }
  await sink.put(RECORDING_FILES.index, Buffer.from(`${JSON.stringify(index, null, 2)}\n`), CONTENT_TYPES.json)
  return index
}

async function readIndex(sink: RecordingSink): Promise<RecordingIndex | undefined> {
  const bytes = await sink.read(RECORDING_FILES.index)
  if (bytes === undefined) return undefined
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as RecordingIndex
  } catch {
    return undefined
  }
}

/** Uploads the spool whole: the MP4 cut to its last whole box, segments before their playlist. */
async function storeSpool(workDir: string, sink: RecordingSink, ffmpeg: string | undefined, thumbnailEverySeconds: number): Promise<void> {
  const mp4 = join(workDir, RECORDING_FILES.mp4)
  if (await exists(mp4)) {
    const length = await trimToCompleteBoxes(mp4)
    await sink.putFile(RECORDING_FILES.mp4, mp4, CONTENT_TYPES.mp4, length)
    if (ffmpeg !== undefined && length > 0) {
      const thumbnails = await makeThumbnails({ ffmpeg, mp4, workDir, everySeconds: thumbnailEverySeconds }).catch(() => [])
      for (const name of thumbnails) await sink.putFile(name, join(workDir, name), CONTENT_TYPES.jpeg)
    }
  }
  const hls = join(workDir, RECORDING_FILES.hlsFolder)
  const names = (await exists(hls)) ? (await readdir(hls)).sort() : []
  for (const name of names.filter((entry) => entry.endsWith('.ts'))) await sink.putFile(`${RECORDING_FILES.hlsFolder}/${name}`, join(hls, name), CONTENT_TYPES.segment)
  if (names.includes('playlist.m3u8')) await sink.putFile(RECORDING_FILES.playlist, join(hls, 'playlist.m3u8'), CONTENT_TYPES.playlist)
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}
