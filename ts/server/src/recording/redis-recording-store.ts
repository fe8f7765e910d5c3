// RecordingStore on Redis, so that every node of a cluster lists, shows and stops any node's
// recordings. One JSON string per recording, sorted-set indexes (all, per room, ended, leases);
// a put is one Lua script, so its keys change together and the trim of old ended records with them.
//
// TTL policy: records have no TTL (a recording outlives its room, as in memory); what bounds them is
// the trim, which forgets the oldest ended records beyond `maxEnded`. An unended record is leased to
// the node that runs it; when that node stops renewing (it died or restarted), `claimLapsed` hands it
// to one other node, which ends it as failed.

import type { Redis } from 'ioredis'
import { RecordingDetails, type RecordingId, type RoomId } from '@conclave/protocol'
import { type RedisKeys, redisKeys } from '../state/redis/keys.js'
import type { RecordingRecord, RecordingStore, RecordingStoreOptions } from './recording-store.js'

export interface RedisRecordingStoreOptions extends RecordingStoreOptions {
  /** Prefix of every key. Default `conclave:`. */
  prefix?: string
}

// KEYS: recording, recordings, room recordings, ended recordings, leases.
// ARGV: id, record JSON, startedAt, endedAt ('' while unended), lease end, max ended, recording
// key prefix, room recordings key prefix. Returns how many old ended records it forgot.
const PUT_RECORDING = `
local id = ARGV[1]
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('ZADD', KEYS[3], ARGV[3], id)
if ARGV[4] == '' then
  redis.call('ZADD', KEYS[5], ARGV[5], id)
  redis.call('ZREM', KEYS[4], id)
  return 0
end
redis.call('ZREM', KEYS[5], id)
redis.call('ZADD', KEYS[4], ARGV[4], id)
local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
if excess <= 0 then return 0 end
for _, old in ipairs(redis.call('ZRANGE', KEYS[4], 0, excess - 1)) do
  local text = redis.call('GET', ARGV[7] .. old)
  if text then
    local ok, record = pcall(cjson.decode, text)
    if ok and type(record) == 'table' and type(record.room) == 'string' then redis.call('ZREM', ARGV[8] .. record.room, old) end
  end
  redis.call('DEL', ARGV[7] .. old)
  redis.call('ZREM', KEYS[2], old)
  redis.call('ZREM', KEYS[4], old)
end
return excess
`

// KEYS: leases. ARGV: now, recording key prefix, at most how many. Removing each lapsed id from the
// leases in the same script is what hands it to one caller only.
const CLAIM_LAPSED = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local records = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local text = redis.call('GET', ARGV[2] .. id)
  if text then table.insert(records, text) end
end
return records
`

/** What a stored record must look like; anything else in Redis is skipped, not served. */
const StoredRecord = RecordingDetails.omit({ files: true, filesNotice: true })

/** Lapsed records claimed per call, so that one script never runs long. */
const CLAIM_BATCH = 100

export class RedisRecordingStore implements RecordingStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #maxEnded: number
  readonly #leaseMs: number
  readonly #now: () => number

  constructor(redis: Redis, { prefix, maxEnded = 10_000, leaseMs = 30_000, now = Date.now }: RedisRecordingStoreOptions = {}) {
    this.#redis = redis
    this.#keys = redisKeys(prefix)
    this.#maxEnded = maxEnded
    this.#leaseMs = leaseMs
    this.#now = now
  }

  async put(recording: RecordingRecord): Promise<void> {
    const k = this.#keys
    await this.#redis.eval(
      PUT_RECORDING,
      5,
      k.recording(recording.recordingId),
      k.recordings(),
      k.roomRecordings(recording.room),
      k.endedRecordings(),
      k.recordingLeases(),
      recording.recordingId,
      JSON.stringify(recording),
      recording.startedAt,
      recording.endedAt ?? '',
      this.#now() + this.#leaseMs,
      this.#maxEnded,
      k.recordingPrefix(),
      k.roomRecordingsPrefix(),
    )
  }

  async get(recordingId: RecordingId): Promise<RecordingRecord | undefined> {
    return parseRecord(await this.#redis.get(this.#keys.recording(recordingId)))
  }

  async list(roomId?: RoomId): Promise<RecordingRecord[]> {
    const index = roomId === undefined ? this.#keys.recordings() : this.#keys.roomRecordings(roomId)
    const ids = await this.#redis.zrange(index, '0', '-1')
    if (ids.length === 0) return []
    const texts = await this.#redis.mget(ids.map((id) => this.#keys.recording(id as RecordingId)))
    return texts.map(parseRecord).filter((record) => record !== undefined)
  }

  async renew(recordingIds: readonly RecordingId[]): Promise<void> {
    if (recordingIds.length === 0) return
    const until = this.#now() + this.#leaseMs
    // XX: an id that ended (or was claimed) meanwhile is not leased again.
    await this.#redis.zadd(this.#keys.recordingLeases(), 'XX', ...recordingIds.flatMap((id) => [until, id]))
  }

  async claimLapsed(): Promise<RecordingRecord[]> {
    const texts = (await this.#redis.eval(CLAIM_LAPSED, 1, this.#keys.recordingLeases(), this.#now(), this.#keys.recordingPrefix(), String(CLAIM_BATCH))) as string[]
    return texts.map(parseRecord).filter((record) => record !== undefined)
  }
}

function parseRecord(text: string | null): RecordingRecord | undefined {
  if (text === null) return undefined
  try {
    const parsed = StoredRecord.safeParse(JSON.parse(text))
    return parsed.success ? (parsed.data as RecordingRecord) : undefined
  } catch {
    return undefined
  }
}
