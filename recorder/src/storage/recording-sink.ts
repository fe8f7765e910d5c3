// Where a recording's files end up: one interface, implemented by a local folder and by Azure Blob
// Storage. A sink is scoped to one recording; names are relative to it (`recording.mp4`, `hls/…`).

/** An object the sink holds, for listings. */
export interface StoredObject {
  name: string
  size: number
}

/**
 * The storage of one recording. Two ways in:
 * - `put`/`putFile` replace a whole object (segments, playlists, thumbnails, the index);
 * - `stageBlock` + `commitBlocks` grow an object while it is being written (the MP4): blocks are
 *   numbered from 0 and consecutive; after `commitBlocks(name, n)` the object is exactly blocks
 *   0..n-1, and a crash later loses only what was staged after that commit.
 *
 * Every method may be retried with the same arguments (staging block `i` again replaces it), which is
 * what `RecordingUploader` does while storage is unreachable. Implementations throw on failure and
 * never retry themselves.
 */
export interface RecordingSink {
  /** Where the files go, for logs and the README: a folder or a container URL, never a secret. */
  readonly location: string
  put(name: string, body: Uint8Array, contentType: string): Promise<void>
  /** Stores the first `length` bytes of the file at `path` (default all of it). */
  putFile(name: string, path: string, contentType: string, length?: number): Promise<void>
  stageBlock(name: string, index: number, chunk: Uint8Array): Promise<void>
  commitBlocks(name: string, count: number, contentType: string): Promise<void>
  /** The object's bytes, or undefined when there is none. */
  read(name: string): Promise<Uint8Array | undefined>
  list(): Promise<StoredObject[]>
}

/** Content types of what a recording writes. */
export const CONTENT_TYPES = {
  mp4: 'video/mp4',
  playlist: 'application/vnd.apple.mpegurl',
  segment: 'video/mp2t',
  jpeg: 'image/jpeg',
  json: 'application/json',
} as const
