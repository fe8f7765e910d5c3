// Where recording records live: in this node's memory, beside the recorder processes it supervises.
// Files are not here; they are listed from the output when asked for.

import type { RecordingDetails, RecordingId, RoomId } from '@conclave/protocol'

/** A recording's record without its file list. */
export type RecordingRecord = Omit<RecordingDetails, 'files'>

export interface RecordingStore {
  put(recording: RecordingRecord): Promise<void>
  get(recordingId: RecordingId): Promise<RecordingRecord | undefined>
  /** Every recording (of `roomId` when given), oldest first. */
  list(roomId?: RoomId): Promise<RecordingRecord[]>
}

export interface MemoryRecordingStoreOptions {
  /** Ended recordings kept at most; the oldest are forgotten first. Default 10 000. */
  maxEnded?: number
}

export class MemoryRecordingStore implements RecordingStore {
  readonly #records = new Map<RecordingId, RecordingRecord>()
  readonly #maxEnded: number

  constructor({ maxEnded = 10_000 }: MemoryRecordingStoreOptions = {}) {
    this.#maxEnded = maxEnded
  }

  async put(recording: RecordingRecord): Promise<void> {
    this.#records.set(recording.recordingId, structuredClone(recording))
    this.#trim()
  }

  async get(recordingId: RecordingId): Promise<RecordingRecord | undefined> {
    const record = this.#records.get(recordingId)
    return record === undefined ? undefined : structuredClone(record)
  }

  async list(roomId?: RoomId): Promise<RecordingRecord[]> {
    return [...this.#records.values()]
      .filter((record) => roomId === undefined || record.room === roomId)
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((record) => structuredClone(record))
  }

  #trim(): void {
    const ended = [...this.#records.values()].filter((record) => record.endedAt !== undefined)
    if (ended.length <= this.#maxEnded) return
    ended.sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0))
    for (const record of ended.slice(0, ended.length - this.#maxEnded)) this.#records.delete(record.recordingId)
  }
}
