// RoomStore on Redis (ioredis) for several nodes serving the same rooms. Records are hashes with
// one JSON value per field; every change that touches more than one key is one Lua script, so it
// is atomic; every key has a TTL, so a node that dies leaves nothing once its leases run out.

import type { Redis } from 'ioredis'
import { Breakouts, type ParticipantId, type RoomId } from '@conclave/protocol'
import {
  type AddOutcome,
  type BreakoutsUpdate,
  type AddPolicy,
  DEFAULT_LEASE_MS,
  DEFAULT_REMOVAL_MS,
  type ParticipantPatch,
  ParticipantRecord,
  type RoomPatch,
  RoomRecord,
  type RoomStore,
  type RoomStoreOptions,
  byJoinTime,
} from '../room-store.js'
import { type RedisKeys, redisKeys } from './keys.js'

export interface RedisRoomStoreOptions extends RoomStoreOptions {
  /** Prefix of every key. Default `conclave:`. */
  prefix?: string
}

// Shared by the scripts: give a room (and its participant index) at least `ms` more to live.
const EXTEND_ROOM = `
local function extend_room(room, participants, rooms, room_id, now, ms)
  local ttl = redis.call('PTTL', room)
  if ttl >= 0 and ttl < ms then
    redis.call('PEXPIRE', room, ms)
    redis.call('ZADD', rooms, now + ms, room_id)
  end
  if redis.call('EXISTS', participants) == 1 then redis.call('PEXPIRE', participants, math.max(ms, redis.call('PTTL', room))) end
end
`

// KEYS: room, rooms. ARGV: room id, now, ttl ms, field, value, ...
const CREATE_ROOM = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
return 1
`

// KEYS: room, participants, participant, removed, rooms.
// ARGV: room id, participant id, identity, now, lease ms, bypass lock (1|0), field, value, ...
const ADD_PARTICIPANT =
  EXTEND_ROOM +
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'room_not_found' end
if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1 then return 'removed' end
if ARGV[6] == '0' and redis.call('HGET', KEYS[1], 'locked') == 'true' then return 'locked' end
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local max = redis.call('HGET', KEYS[1], 'maxParticipants')
if max and redis.call('ZCARD', KEYS[2]) >= tonumber(max) then return 'full' end
redis.call('HSET', KEYS[3], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[3], lease)
redis.call('ZADD', KEYS[2], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.max(lease, redis.call('PTTL', KEYS[1])))
extend_room(KEYS[1], KEYS[2], KEYS[5], ARGV[1], now, lease)
return 'added'
`

// KEYS: participant. ARGV: expected state as JSON or '', field, value, ...
const UPDATE_PARTICIPANT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return false end
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return redis.call('HGETALL', KEYS[1])
`

// KEYS: room. ARGV: field, value, ...
const UPDATE_ROOM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return redis.call('HGETALL', KEYS[1])
`

// Compare-and-set of the room's breakouts. KEYS: room. ARGV: the JSON read ('' for none), the
// JSON to write ('' to end them).
const SWAP_BREAKOUTS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'room_not_found' end
if (redis.call('HGET', KEYS[1], 'breakouts') or '') ~= ARGV[1] then return 'changed' end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'breakouts') else redis.call('HSET', KEYS[1], 'breakouts', ARGV[2]) end
return 'written'
`

/** Compare-and-set rounds before `updateBreakouts` gives up: each lost round means another host won one. */
const BREAKOUTS_ATTEMPTS = 32

// KEYS: room, participants, participant, removed, rooms.
// ARGV: room id, participant id, ban (1|0), now, removal ms, lease ms.
const REMOVE_PARTICIPANT = `
local identity = redis.call('HGET', KEYS[3], 'identity')
local fields = redis.call('HGETALL', KEYS[3])
if #fields == 0 then return false end
local now = tonumber(ARGV[4])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[4], cjson.decode(identity))
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) == 0 then
  if redis.call('HGET', KEYS[1], 'explicit') == 'true' then
    local ttl = math.max(tonumber(redis.call('HGET', KEYS[1], 'emptyTimeoutSeconds')) * 1000, tonumber(ARGV[6]))
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('ZADD', KEYS[5], now + ttl, ARGV[1])
  else
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('ZREM', KEYS[5], ARGV[1])
  end
end
return fields
`

// KEYS: room, participants, removed, rooms. ARGV: room id, participant key prefix.
const CLOSE_ROOM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = ARGV[2] .. id
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then table.insert(out, fields) end
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
return out
`

// KEYS: room, participants, rooms, participant... ARGV: room id, now, lease ms, participant id...
const REFRESH =
  EXTEND_ROOM +
  `
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
for i = 4, #KEYS do
  if redis.call('PEXPIRE', KEYS[i], lease) == 1 then redis.call('ZADD', KEYS[2], 'XX', now + lease, ARGV[i]) end
end
extend_room(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now, lease)
`

export class RedisRoomStore implements RoomStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #leaseMs: number
  readonly #removalMs: number
  readonly #now: () => number

  constructor(
    redis: Redis,
    { prefix = 'conclave:', leaseMs = DEFAULT_LEASE_MS, removalMs = DEFAULT_REMOVAL_MS, now = Date.now }: RedisRoomStoreOptions = {},
  ) {
    this.#redis = redis
    this.#keys = redisKeys(prefix)
    this.#leaseMs = leaseMs
    this.#removalMs = removalMs
    this.#now = now
  }

  async createRoom(room: RoomRecord): Promise<boolean> {
    const k = this.#keys
    const ttl = Math.max(this.#emptyTtl(room), this.#leaseMs)
    const created = await this.#redis.eval(CREATE_ROOM, 2, k.room(room.id), k.rooms(), room.id, this.#now(), ttl, ...encode(room))
    return created === 1
  }

  async ensureRoom(defaults: RoomRecord): Promise<RoomRecord> {
    await this.createRoom(defaults)
    // Closed in between: the caller's join fails with room_not_found, as it would a moment later.
    return (await this.getRoom(defaults.id)) ?? defaults
  }

  async getRoom(roomId: RoomId): Promise<RoomRecord | undefined> {
    return decodeRoom(await this.#redis.hgetall(this.#keys.room(roomId)))
  }

  async listRooms(): Promise<RoomRecord[]> {
    const k = this.#keys
    const now = this.#now()
    await this.#redis.zremrangebyscore(k.rooms(), '-inf', now)
    const ids = (await this.#redis.zrangebyscore(k.rooms(), now, '+inf')) as RoomId[]
    const rooms = await Promise.all(ids.map((id) => this.getRoom(id)))
    return rooms.filter((room) => room !== undefined).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
  }

  async updateRoom(roomId: RoomId, patch: RoomPatch): Promise<RoomRecord | undefined> {
    const fields = await this.#redis.eval(UPDATE_ROOM, 1, this.#keys.room(roomId), ...encode(patch))
    return decodeRoom(fromFlat(fields))
  }

  async closeRoom(roomId: RoomId): Promise<ParticipantRecord[] | undefined> {
    const k = this.#keys
    const result = await this.#redis.eval(
      CLOSE_ROOM,
      4,
      k.room(roomId),
      k.participants(roomId),
      k.removed(roomId),
      k.rooms(),
      roomId,
      k.participantPrefix(roomId),
    )
    if (!Array.isArray(result)) return undefined
    return result
      .map((fields) => decodeParticipant(fromFlat(fields)))
      .filter((participant) => participant !== undefined)
      .sort(byJoinTime)
  }

  async addParticipant(participant: ParticipantRecord, { bypassLock }: AddPolicy): Promise<AddOutcome> {
    const k = this.#keys
    const { roomId, participantId: id } = participant
    const outcome = await this.#redis.eval(
      ADD_PARTICIPANT,
      5,
      k.room(roomId),
      k.participants(roomId),
      k.participant(roomId, id),
      k.removed(roomId),
      k.rooms(),
      roomId,
      id,
      participant.identity,
      this.#now(),
      this.#leaseMs,
      bypassLock ? 1 : 0,
      ...encode(participant),
    )
    return outcome as AddOutcome
  }

  async getParticipant(roomId: RoomId, participantId: ParticipantId): Promise<ParticipantRecord | undefined> {
    return decodeParticipant(await this.#redis.hgetall(this.#keys.participant(roomId, participantId)))
  }

  async listParticipants(roomId: RoomId): Promise<ParticipantRecord[]> {
    const ids = (await this.#redis.zrangebyscore(this.#keys.participants(roomId), this.#now(), '+inf')) as ParticipantId[]
    if (ids.length === 0) return []
    const pipeline = this.#redis.pipeline()
    for (const id of ids) pipeline.hgetall(this.#keys.participant(roomId, id))
    const replies = (await pipeline.exec()) ?? []
    return replies
      .map(([error, fields]) => (error === null ? decodeParticipant(fields as Record<string, string>) : undefined))
      .filter((participant) => participant !== undefined)
      .sort(byJoinTime)
  }

  async updateParticipant(
    roomId: RoomId,
    participantId: ParticipantId,
    patch: ParticipantPatch,
    expectState?: ParticipantRecord['state'],
  ): Promise<ParticipantRecord | undefined> {
    const expected = expectState === undefined ? '' : JSON.stringify(expectState)
    const fields = await this.#redis.eval(UPDATE_PARTICIPANT, 1, this.#keys.participant(roomId, participantId), expected, ...encode(patch))
    return decodeParticipant(fromFlat(fields))
  }

  async removeParticipant(roomId: RoomId, participantId: ParticipantId, { ban = false } = {}): Promise<ParticipantRecord | undefined> {
    const k = this.#keys
    const record = decodeParticipant(
      fromFlat(
        await this.#redis.eval(
          REMOVE_PARTICIPANT,
          5,
          k.room(roomId),
          k.participants(roomId),
          k.participant(roomId, participantId),
          k.removed(roomId),
          k.rooms(),
          roomId,
          participantId,
          ban ? 1 : 0,
          this.#now(),
          this.#removalMs,
          this.#leaseMs,
        ),
      ),
    )
    return record
  }

  async isRemoved(roomId: RoomId, identity: string): Promise<boolean> {
    return (await this.#redis.sismember(this.#keys.removed(roomId), identity)) === 1
  }

  async getBreakouts(roomId: RoomId): Promise<Breakouts | undefined> {
    return decodeBreakouts(await this.#redis.hget(this.#keys.room(roomId), 'breakouts'))
  }

  async updateBreakouts(roomId: RoomId, update: BreakoutsUpdate): Promise<Breakouts | undefined | 'room_not_found'> {
    const key = this.#keys.room(roomId)
    for (let attempt = 0; attempt < BREAKOUTS_ATTEMPTS; attempt++) {
      const read = await this.#redis.hget(key, 'breakouts')
      const next = update(decodeBreakouts(read))
      const outcome = await this.#redis.eval(SWAP_BREAKOUTS, 1, key, read ?? '', next === undefined ? '' : JSON.stringify(next))
      if (outcome === 'room_not_found') return 'room_not_found'
      if (outcome === 'written') return next
    }
    throw new Error(`the breakouts of ${roomId} kept changing; gave up after ${BREAKOUTS_ATTEMPTS} attempts`)
  }

  async refresh(roomId: RoomId, participantIds: readonly ParticipantId[]): Promise<void> {
    const k = this.#keys
    const participantKeys = participantIds.map((id) => k.participant(roomId, id))
    await this.#redis.eval(
      REFRESH,
      3 + participantKeys.length,
      k.room(roomId),
      k.participants(roomId),
      k.rooms(),
      ...participantKeys,
      roomId,
      this.#now(),
      this.#leaseMs,
      ...participantIds,
    )
  }

  async close(): Promise<void> {}

  #emptyTtl(room: RoomRecord): number {
    return room.explicit ? Math.max(room.emptyTimeoutSeconds * 1000, this.#leaseMs) : 0
  }
}

/** A record as HSET arguments: field, JSON value, ...; undefined fields are left out. */
function encode(record: object): string[] {
  const args: string[] = []
  for (const [field, value] of Object.entries(record)) {
    if (value !== undefined) args.push(field, JSON.stringify(value))
  }
  return args
}

/** A Lua HGETALL reply (flat array) as an object; anything else as an empty one. */
function fromFlat(reply: unknown): Record<string, string> {
  const fields: Record<string, string> = {}
  if (!Array.isArray(reply)) return fields
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1])
  return fields
}

function decodeFields(fields: Record<string, string>): Record<string, unknown> | undefined {
  const entries = Object.entries(fields)
  if (entries.length === 0) return undefined
  try {
    return Object.fromEntries(entries.map(([field, value]) => [field, JSON.parse(value)]))
  } catch {
    return undefined
  }
}

function decodeRoom(fields: Record<string, string>): RoomRecord | undefined {
  const parsed = RoomRecord.safeParse(decodeFields(fields))
  return parsed.success ? parsed.data : undefined
}

function decodeBreakouts(value: string | null): Breakouts | undefined {
  if (value === null) return undefined
  try {
    const parsed = Breakouts.safeParse(JSON.parse(value))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

function decodeParticipant(fields: Record<string, string>): ParticipantRecord | undefined {
  const parsed = ParticipantRecord.safeParse(decodeFields(fields))
  return parsed.success ? parsed.data : undefined
}
