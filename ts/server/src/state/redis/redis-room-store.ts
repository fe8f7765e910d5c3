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
  type RemoveOptions,
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

// Shared by the scripts: a participant's lease is its score in the room's participant set (ms); its
// hash lives one lease longer, so that the node sweeping the room can still announce who it was.
const LEASES = `
local function is_live(participants, participant_id, now)
  local score = redis.call('ZSCORE', participants, participant_id)
  return score and tonumber(score) > now
end
local function record_ttl(lease) return 2 * lease end
`

// Shared by the scripts: once a room has no live participant, one made by the REST API waits its
// empty timeout and one made by a join goes, with the expired records nobody announced (no one is
// left to tell).
const SETTLE_IF_EMPTY = `
local function settle_if_empty(room, participants, rooms, room_id, now, lease, participant_prefix)
  if redis.call('ZCOUNT', participants, '(' .. now, '+inf') > 0 then return end
  if redis.call('HGET', room, 'explicit') == 'true' then
    local ttl = math.max(tonumber(redis.call('HGET', room, 'emptyTimeoutSeconds')) * 1000, lease)
    redis.call('PEXPIRE', room, ttl)
    redis.call('ZADD', rooms, now + ttl, room_id)
  else
    for _, id in ipairs(redis.call('ZRANGE', participants, 0, -1)) do redis.call('DEL', participant_prefix .. id) end
    redis.call('DEL', room, participants)
    redis.call('ZREM', rooms, room_id)
  end
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
  LEASES +
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'room_not_found' end
if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1 then return 'removed' end
if ARGV[6] == '0' and redis.call('HGET', KEYS[1], 'locked') == 'true' then return 'locked' end
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local max = redis.call('HGET', KEYS[1], 'maxParticipants')
-- Expired participants stay in the set until a sweep announces them; they take no place.
if max and redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[4], '+inf') >= tonumber(max) then return 'full' end
redis.call('HSET', KEYS[3], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[3], record_ttl(lease))
redis.call('ZADD', KEYS[2], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.max(lease, redis.call('PTTL', KEYS[1])))
extend_room(KEYS[1], KEYS[2], KEYS[5], ARGV[1], now, lease)
return 'added'
`

// KEYS: participant, participants. ARGV: participant id, now, expected state as JSON or '', field, value, ...
const UPDATE_PARTICIPANT =
  LEASES +
  `
if redis.call('EXISTS', KEYS[1]) == 0 or not is_live(KEYS[2], ARGV[1], tonumber(ARGV[2])) then return false end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'state') ~= ARGV[3] then return false end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
return redis.call('HGETALL', KEYS[1])
`

// KEYS: participant, participants. ARGV: participant id, now, lease ms, from node (JSON), to node (JSON), field, value, ...
const MOVE_PARTICIPANT =
  LEASES +
  `
local now = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 or not is_live(KEYS[2], ARGV[1], now) then return false end
if redis.call('HGET', KEYS[1], 'state') ~= '"active"' or redis.call('HGET', KEYS[1], 'nodeId') ~= ARGV[4] then return false end
if #ARGV > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 6)) end
redis.call('HSET', KEYS[1], 'nodeId', ARGV[5])
redis.call('PEXPIRE', KEYS[1], record_ttl(tonumber(ARGV[3])))
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return redis.call('HGETALL', KEYS[1])
`

// KEYS: participant, participants. ARGV: participant id, now.
const GET_PARTICIPANT =
  LEASES +
  `
if not is_live(KEYS[2], ARGV[1], tonumber(ARGV[2])) then return false end
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
// ARGV: room id, participant id, ban (1|0), now, removal ms, lease ms, participant key prefix,
// holding node (JSON) or ''.
const REMOVE_PARTICIPANT =
  LEASES +
  SETTLE_IF_EMPTY +
  `
local now = tonumber(ARGV[4])
-- One whose lease ran out is the sweep's to remove and announce.
if not is_live(KEYS[2], ARGV[2], now) then return false end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[3], 'nodeId') ~= ARGV[8] then return false end
local identity = redis.call('HGET', KEYS[3], 'identity')
local fields = redis.call('HGETALL', KEYS[3])
if #fields == 0 then return false end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[4], cjson.decode(identity))
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
settle_if_empty(KEYS[1], KEYS[2], KEYS[5], ARGV[1], now, tonumber(ARGV[6]), ARGV[7])
return fields
`

// KEYS: room, participants, rooms. ARGV: room id, now, lease ms, participant key prefix.
const SWEEP_EXPIRED =
  SETTLE_IF_EMPTY +
  `
local now = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #expired == 0 then return {} end
local out = {}
for _, id in ipairs(expired) do
  local key = ARGV[4] .. id
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then table.insert(out, fields) end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], id)
end
settle_if_empty(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now, tonumber(ARGV[3]), ARGV[4])
return out
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
  LEASES +
  `
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
for i = 4, #KEYS do
  -- A lease that ran out stays over: the others may have been told it left.
  if is_live(KEYS[2], ARGV[i], now) and redis.call('PEXPIRE', KEYS[i], record_ttl(lease)) == 1 then
    redis.call('ZADD', KEYS[2], 'XX', now + lease, ARGV[i])
  end
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
    const k = this.#keys
    const fields = await this.#redis.eval(GET_PARTICIPANT, 2, k.participant(roomId, participantId), k.participants(roomId), participantId, this.#now())
    return decodeParticipant(fromFlat(fields))
  }

  async listParticipants(roomId: RoomId): Promise<ParticipantRecord[]> {
    const ids = (await this.#redis.zrangebyscore(this.#keys.participants(roomId), `(${this.#now()}`, '+inf')) as ParticipantId[]
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
    const k = this.#keys
    const fields = await this.#redis.eval(
      UPDATE_PARTICIPANT,
      2,
      k.participant(roomId, participantId),
      k.participants(roomId),
      participantId,
      this.#now(),
      expected,
      ...encode(patch),
    )
    return decodeParticipant(fromFlat(fields))
  }

  async removeParticipant(roomId: RoomId, participantId: ParticipantId, { ban = false, heldBy }: RemoveOptions = {}): Promise<ParticipantRecord | undefined> {
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
          k.participantPrefix(roomId),
          heldBy === undefined ? '' : JSON.stringify(heldBy),
        ),
      ),
    )
    return record
  }

  async moveParticipant(
    roomId: RoomId,
    participantId: ParticipantId,
    { from, to }: { from: string; to: string },
    patch: ParticipantPatch = {},
  ): Promise<ParticipantRecord | undefined> {
    const k = this.#keys
    const moved = await this.#redis.eval(
      MOVE_PARTICIPANT,
      2,
      k.participant(roomId, participantId),
      k.participants(roomId),
      participantId,
      this.#now(),
      this.#leaseMs,
      JSON.stringify(from),
      JSON.stringify(to),
      ...encode(patch),
    )
    return decodeParticipant(fromFlat(moved))
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

  async sweepExpired(roomId: RoomId): Promise<ParticipantRecord[]> {
    const k = this.#keys
    const result = await this.#redis.eval(
      SWEEP_EXPIRED,
      3,
      k.room(roomId),
      k.participants(roomId),
      k.rooms(),
      roomId,
      this.#now(),
      this.#leaseMs,
      k.participantPrefix(roomId),
    )
    if (!Array.isArray(result)) return []
    return result
      .map((fields) => decodeParticipant(fromFlat(fields)))
      .filter((participant) => participant !== undefined)
      .sort(byJoinTime)
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
