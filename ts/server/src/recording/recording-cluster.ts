// Recordings across the nodes of a cluster: each node keeps the leases of the recordings it runs,
// ends the records of recordings whose node stopped renewing them, and asks the node that runs a
// recording to stop it when the request reached another node.

import { setTimeout as sleep } from 'node:timers/promises'
import type { RecordingId, RoomId } from '@conclave/protocol'
import type { EventBus } from '../cluster/event-bus.js'
import type { Logger } from '../log.js'
import type { RecordingRecord, RecordingStore } from './recording-store.js'

export interface RecordingLeasesOptions {
  records: RecordingStore
  bus: EventBus
  nodeId: string | undefined
  /** The record of a recording this node runs, undefined for any other. */
  liveRecord: (recordingId: RecordingId) => RecordingRecord | undefined
  /** Every recording this node runs. */
  liveIds: () => RecordingId[]
  /** How often leases are renewed and lapsed ones swept, in ms (a third of the store's lease or less). */
  intervalMs: number
  log: Logger
  now: () => number
}

/**
 * Renews this node's leases on its recordings and ends lapsed ones: a record whose node died or
 * restarted (its recorder died with it, or lives on unsupervised) would otherwise say `recording`
 * forever. Any node may end it; the store hands each lapsed record to one node only.
 */
export class RecordingLeases {
  readonly #options: RecordingLeasesOptions
  readonly #timer: NodeJS.Timeout
  #ticking: Promise<void> | undefined

  constructor(options: RecordingLeasesOptions) {
    this.#options = options
    this.#timer = setInterval(() => void this.tick(), options.intervalMs)
    this.#timer.unref()
  }

  /** Renews, then sweeps; one tick at a time. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick()
      .catch((error: unknown) => this.#options.log.warn('renewing recording leases failed', { err: error }))
      .finally(() => {
        this.#ticking = undefined
      })
    return this.#ticking
  }

  close(): void {
    clearInterval(this.#timer)
  }

  async #tick(): Promise<void> {
    const { records, bus, liveRecord, liveIds, log, now, nodeId } = this.#options
    await records.renew(liveIds())
    for (const record of await records.claimLapsed()) {
      const live = liveRecord(record.recordingId)
      // Ours after all (this process was too busy to renew in time): leased again.
      if (live !== undefined) {
        await records.put(live)
        continue
      }
      if (record.endedAt !== undefined) continue
      const ended = endedAsLost(record, now())
      await records.put(ended)
      log.warn('a recording lost its node: its record is ended', { recordingId: record.recordingId, roomId: record.room, holder: record.nodeId, by: nodeId, state: ended.state })
      await bus.publish({ type: 'recording-stopped', roomId: record.room, recordingId: record.recordingId, partial: ended.partial, failed: ended.state === 'failed' })
    }
  }
}

/**
 * The record of a recording whose node stopped renewing it. A finalized output stays finalized;
 * anything else failed, partial when something was written.
 */
export function endedAsLost(record: RecordingRecord, now: number): RecordingRecord {
  if (record.state === 'finalized') return { ...record, endedAt: now }
  const partial = record.partial || (record.bytes ?? 0) > 0 || (record.segments ?? 0) > 0
  const error = record.error ?? {
    code: 'recorder_lost',
    message: `node ${record.nodeId ?? '(unknown)'} stopped renewing the recording (it died or restarted) before it finalized`,
  }
  return { ...record, state: 'failed', partial, endedAt: now, error }
}

/** The room's unended recording another node may run: a composite one first, the latest. */
export async function unendedRecordingOf(records: RecordingStore, roomId: RoomId): Promise<RecordingId | undefined> {
  const unended = (await records.list(roomId)).filter((record) => record.endedAt === undefined)
  return (unended.filter((record) => record.mode === 'composite').at(-1) ?? unended.at(-1))?.recordingId
}

export interface StopElsewhereOptions {
  records: RecordingStore
  bus: EventBus
  fromNode: string | undefined
  /** How long to wait for the node that runs it to say it is stopping, in ms. */
  timeoutMs: number
  /** Ends the record now if its node is gone (its lease lapsed). */
  sweep: () => Promise<void>
}

/**
 * Asks the node that runs `record` to stop it and answers as that node would: the record once it
 * says `stopping` (or ended). Without an answer in time the record is returned as it is; if its
 * node is gone, its lease lapses and a sweep ends it as failed.
 */
export async function stopElsewhere(record: RecordingRecord, { records, bus, fromNode, timeoutMs, sweep }: StopElsewhereOptions): Promise<RecordingRecord> {
  await bus.publish({ type: 'recording-stop-requested', roomId: record.room, recordingId: record.recordingId, fromNode: fromNode ?? '' })
  const deadline = Date.now() + timeoutMs
  // The answer is the record in the shared store: its node writes `stopping` before anything else.
  for (let delayMs = 10; ; delayMs = Math.min(delayMs * 2, 200)) {
    const current = await records.get(record.recordingId)
    if (current === undefined) return record
    if (current.endedAt !== undefined || (current.state !== 'starting' && current.state !== 'recording')) return current
    if (Date.now() >= deadline) break
    await sleep(delayMs)
  }
  await sweep()
  return (await records.get(record.recordingId)) ?? record
}
