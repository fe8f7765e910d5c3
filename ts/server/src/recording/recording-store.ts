// Where recording records live: in this node's memory, beside the recorder processes it supervises
// (`RedisRecordingStore` shares them between the nodes of a cluster). Files are not here; they are
// listed from the output when asked for.

import type { RecordingDetails, RecordingId, RoomId } from '@conclave/protocol'

/** A recording's record without its file list (and what is said about the files). */
export type RecordingRecord = Omit<RecordingDetails, 'files' | 'filesNotice'>

/**
 * An unended recording is leased to the node that runs it: `put` and `renew` extend the lease, and
 * one whose lease ran out (its node died or restarted) is handed by `claimLapsed` to one node, which
 * ends its record. Ended recordings have no lease.
 */
export interface RecordingStore {
  /** Saves the record; an unended one is leased from now on, an ended one no longer. */
  put(recording: RecordingRecord): Promise<void>
  get(recordingId: RecordingId): Promise<RecordingRecord | undefined>
  /** Every recording (of `roomId` when given), oldest first. */
  list(roomId?: RoomId): Promise<RecordingRecord[]>
  /** Their node still runs them: their leases go on. Ended or unknown ids are ignored. */
  renew(recordingIds: readonly RecordingId[]): Promise<void>
  /** Unended recordings whose lease ran out, each handed to one caller only (who ends its record). */
  claimLapsed(): Promise<RecordingRecord[]>
}

export interface RecordingStoreOptions {
  /** Ended recordings kept at most; the oldest are forgotten first. Default 10 000. */
  maxEnded?: number
  /** How long an unended recording's lease lasts after its last `put` or `renew`, in ms. Default 30 000. */
  leaseMs?: number
  now?: () => number
}

export type MemoryRecordingStoreOptions = RecordingStoreOptions

export class MemoryRecordingStore implements RecordingStore {
  readonly #records = new Map<RecordingId, RecordingRecord>()
  /** Unended recordings: when their lease ends. */
  readonly #leases = new Map<RecordingId, number>()
  readonly #maxEnded: number
  readonly #leaseMs: number
  readonly #now: () => number

  constructor({ maxEnded = 10_000, leaseMs = 30_000, now = Date.now }: MemoryRecordingStoreOptions = {}) {
    this.#maxEnded = maxEnded
    this.#leaseMs = leaseMs
    this.#now = now
  }

  async put(recording: RecordingRecord): Promise<void> {
    this.#records.set(recording.recordingId, structuredClone(recording))
    if (recording.endedAt === undefined) this.#leases.set(recording.recordingId, this.#now() + this.#leaseMs)
    else this.#leases.delete(recording.recordingId)
    this.#trim()
  }

  async renew(recordingIds: readonly RecordingId[]): Promise<void> {
    for (const id of recordingIds) if (this.#leases.has(id)) this.#leases.set(id, this.#now() + this.#leaseMs)
  }

  async claimLapsed(): Promise<RecordingRecord[]> {
    const now = this.#now()
    const lapsed: RecordingRecord[] = []
    for (const [id, until] of this.#leases) {
      if (until > now) continue
      this.#leases.delete(id)
      const record = this.#records.get(id)
      if (record !== undefined) lapsed.push(structuredClone(record))
    }
    return lapsed
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
