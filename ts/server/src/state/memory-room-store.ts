// RoomStore in this process's memory: the default, for one node and tests. Leases expire lazily,
// on the next call that looks, by the injected clock.

import type { Breakouts, ParticipantId, RoomId } from '@conclave/protocol'
import {
  type AddOutcome,
  type BreakoutsUpdate,
  type AddPolicy,
  DEFAULT_LEASE_MS,
  DEFAULT_REMOVAL_MS,
  type ParticipantPatch,
  type ParticipantRecord,
  type RemoveOptions,
  type RoomPatch,
  type RoomRecord,
  type RoomStore,
  type RoomStoreOptions,
  byJoinTime,
} from './room-store.js'

interface StoredRoom {
  record: RoomRecord
  /** When the room goes if no participant renews it; Infinity while it has participants. */
  expiresAt: number
  participants: Map<ParticipantId, { record: ParticipantRecord; expiresAt: number }>
  /** Participants whose lease ran out, kept until a sweep takes them or one more lease passes. */
  expired: Map<ParticipantId, { record: ParticipantRecord; keptUntil: number }>
  breakouts?: Breakouts
}

export class MemoryRoomStore implements RoomStore {
  readonly #rooms = new Map<RoomId, StoredRoom>()
  /** Removed identities by room, with when each removal ends; outlives the room. */
  readonly #removed = new Map<RoomId, Map<string, number>>()
  readonly #leaseMs: number
  readonly #removalMs: number
  readonly #now: () => number

  constructor({ leaseMs = DEFAULT_LEASE_MS, removalMs = DEFAULT_REMOVAL_MS, now = Date.now }: RoomStoreOptions = {}) {
    this.#leaseMs = leaseMs
    this.#removalMs = removalMs
    this.#now = now
  }

  async createRoom(room: RoomRecord): Promise<boolean> {
    if (this.#room(room.id) !== undefined) return false
    // A new room lives at least one lease, so the join that made it can still add its participant.
    const ttl = Math.max(this.#emptyTtl(room), this.#leaseMs)
    this.#rooms.set(room.id, { record: clone(room), expiresAt: this.#now() + ttl, participants: new Map(), expired: new Map() })
    return true
  }

  async ensureRoom(defaults: RoomRecord): Promise<RoomRecord> {
    await this.createRoom(defaults)
    return clone((this.#room(defaults.id) as StoredRoom).record)
  }

  async getRoom(roomId: RoomId): Promise<RoomRecord | undefined> {
    const room = this.#room(roomId)
    return room === undefined ? undefined : clone(room.record)
  }

  async listRooms(): Promise<RoomRecord[]> {
    const rooms: RoomRecord[] = []
    for (const id of [...this.#rooms.keys()]) {
      const room = this.#room(id)
      if (room !== undefined) rooms.push(clone(room.record))
    }
    return rooms.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
  }

  async updateRoom(roomId: RoomId, patch: RoomPatch): Promise<RoomRecord | undefined> {
    const room = this.#room(roomId)
    if (room === undefined) return undefined
    room.record = { ...room.record, ...clone(patch) }
    return clone(room.record)
  }

  async getBreakouts(roomId: RoomId): Promise<Breakouts | undefined> {
    const breakouts = this.#room(roomId)?.breakouts
    return breakouts === undefined ? undefined : clone(breakouts)
  }

  async updateBreakouts(roomId: RoomId, update: BreakoutsUpdate): Promise<Breakouts | undefined | 'room_not_found'> {
    const room = this.#room(roomId)
    if (room === undefined) return 'room_not_found'
    const next = update(room.breakouts === undefined ? undefined : clone(room.breakouts))
    if (next === undefined) delete room.breakouts
    else room.breakouts = clone(next)
    return next === undefined ? undefined : clone(next)
  }

  async closeRoom(roomId: RoomId): Promise<ParticipantRecord[] | undefined> {
    const room = this.#room(roomId)
    if (room === undefined) return undefined
    this.#rooms.delete(roomId)
    this.#removed.delete(roomId)
    return [...room.participants.values(), ...room.expired.values()].map(({ record }) => clone(record)).sort(byJoinTime)
  }

  async addParticipant(participant: ParticipantRecord, { bypassLock }: AddPolicy): Promise<AddOutcome> {
    const room = this.#room(participant.roomId)
    if (room === undefined) return 'room_not_found'
    if (await this.isRemoved(participant.roomId, participant.identity)) return 'removed'
    if (room.record.locked && !bypassLock) return 'locked'
    const max = room.record.maxParticipants
    if (max !== undefined && room.participants.size >= max) return 'full'
    const now = this.#now()
    room.participants.set(participant.participantId, { record: clone(participant), expiresAt: now + this.#leaseMs })
    room.expiresAt = Infinity
    return 'added'
  }

  async getParticipant(roomId: RoomId, participantId: ParticipantId): Promise<ParticipantRecord | undefined> {
    const entry = this.#room(roomId)?.participants.get(participantId)
    return entry === undefined ? undefined : clone(entry.record)
  }

  async listParticipants(roomId: RoomId): Promise<ParticipantRecord[]> {
    const room = this.#room(roomId)
    if (room === undefined) return []
    return [...room.participants.values()].map(({ record }) => clone(record)).sort(byJoinTime)
  }

  async updateParticipant(
    roomId: RoomId,
    participantId: ParticipantId,
    patch: ParticipantPatch,
    expectState?: ParticipantRecord['state'],
  ): Promise<ParticipantRecord | undefined> {
    const entry = this.#room(roomId)?.participants.get(participantId)
    if (entry === undefined) return undefined
    if (expectState !== undefined && entry.record.state !== expectState) return undefined
    entry.record = { ...entry.record, ...clone(patch) }
    return clone(entry.record)
  }

  async removeParticipant(roomId: RoomId, participantId: ParticipantId, { ban = false, heldBy }: RemoveOptions = {}): Promise<ParticipantRecord | undefined> {
    const room = this.#room(roomId)
    const entry = room?.participants.get(participantId)
    if (room === undefined || entry === undefined) return undefined
    if (heldBy !== undefined && entry.record.nodeId !== heldBy) return undefined
    room.participants.delete(participantId)
    if (ban) {
      let removed = this.#removed.get(roomId)
      if (removed === undefined) {
        removed = new Map()
        this.#removed.set(roomId, removed)
      }
      removed.set(entry.record.identity, this.#now() + this.#removalMs)
    }
    this.#settleIfEmpty(room)
    return clone(entry.record)
  }

  async moveParticipant(
    roomId: RoomId,
    participantId: ParticipantId,
    { from, to }: { from: string; to: string },
    patch: ParticipantPatch = {},
  ): Promise<ParticipantRecord | undefined> {
    const entry = this.#room(roomId)?.participants.get(participantId)
    if (entry === undefined || entry.record.state !== 'active' || entry.record.nodeId !== from) return undefined
    entry.record = { ...entry.record, ...clone(patch), nodeId: to }
    entry.expiresAt = this.#now() + this.#leaseMs
    return clone(entry.record)
  }

  async isRemoved(roomId: RoomId, identity: string): Promise<boolean> {
    const removed = this.#removed.get(roomId)
    const until = removed?.get(identity)
    if (until === undefined) return false
    if (until > this.#now()) return true
    removed?.delete(identity)
    return false
  }

  async refresh(roomId: RoomId, participantIds: readonly ParticipantId[]): Promise<void> {
    const room = this.#room(roomId)
    if (room === undefined) return
    const until = this.#now() + this.#leaseMs
    for (const id of participantIds) {
      const entry = room.participants.get(id)
      if (entry !== undefined) entry.expiresAt = until
    }
  }

  async sweepExpired(roomId: RoomId): Promise<ParticipantRecord[]> {
    const room = this.#room(roomId)
    if (room === undefined) return []
    const swept = [...room.expired.values()].map(({ record }) => clone(record)).sort(byJoinTime)
    room.expired.clear()
    return swept
  }

  async close(): Promise<void> {}

  /**
   * The room if it is still there, after setting aside expired participants for the sweep (and
   * dropping the room, with them, if that empties it).
   */
  #room(roomId: RoomId): StoredRoom | undefined {
    const room = this.#rooms.get(roomId)
    if (room === undefined) return undefined
    const now = this.#now()
    let expired = false
    for (const [id, entry] of room.expired) if (entry.keptUntil <= now) room.expired.delete(id)
    for (const [id, entry] of room.participants) {
      if (entry.expiresAt <= now) {
        room.participants.delete(id)
        room.expired.set(id, { record: entry.record, keptUntil: entry.expiresAt + this.#leaseMs })
        expired = true
      }
    }
    if (expired) this.#settleIfEmpty(room, now)
    if (room.participants.size === 0 && room.expiresAt <= now) {
      this.#rooms.delete(roomId)
      return undefined
    }
    return room
  }

  /** An empty room made by a join goes now; one made by the REST API stays its empty timeout. */
  #settleIfEmpty(room: StoredRoom, now = this.#now()): void {
    if (room.participants.size > 0) return
    const ttl = this.#emptyTtl(room.record)
    if (ttl === 0) this.#rooms.delete(room.record.id)
    else room.expiresAt = now + ttl
  }

  #emptyTtl(room: RoomRecord): number {
    return room.explicit ? Math.max(room.emptyTimeoutSeconds * 1000, this.#leaseMs) : 0
  }
}

function clone<T>(value: T): T {
  return structuredClone(value)
}
