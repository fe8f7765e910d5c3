// Where the control plane's room records live: rooms, their participants (waiting or active) and
// the identities removed from them. Memory for one node and tests, Redis for a cluster. Media
// state (peers, subscriptions) never lives here: it belongs to the node that holds the peer.

import * as z from 'zod'
import {
  type Breakouts,
  ParticipantDetails,
  type ParticipantId,
  RoomId,
  type TrackDetails,
} from '@conclave/protocol'

export const RoomRecord = z.object({
  id: RoomId,
  waitingRoom: z.boolean(),
  locked: z.boolean(),
  maxParticipants: z.number().int().optional(),
  emptyTimeoutSeconds: z.number().int(),
  createdAt: z.number(),
  /** Made by the REST API (kept while empty for `emptyTimeoutSeconds`) or by a join (dropped when empty). */
  explicit: z.boolean(),
})
export type RoomRecord = z.infer<typeof RoomRecord>

export const ParticipantRecord = z.object({
  ...ParticipantDetails.shape,
  roomId: RoomId,
  /** SHA-256 (hex) of the resume id its `joined` carried; the id itself is never stored. */
  resumeHash: z.string().optional(),
  /** `reconnecting` while its signaling socket is gone, within the resume grace period. Absent: connected. */
  connection: z.enum(['connected', 'reconnecting']).optional(),
  /** It joined with `serverOffers`: a node its session moves to keeps answering it with offers. */
  serverOffers: z.boolean().optional(),
})
export type ParticipantRecord = z.infer<typeof ParticipantRecord>
export type TrackRecord = TrackDetails

/** What may change on a participant after it was added. */
export type ParticipantPatch = Partial<Pick<ParticipantRecord, 'name' | 'role' | 'grants' | 'state' | 'handRaised' | 'tracks' | 'connection'>>
export type RoomPatch = Partial<Pick<RoomRecord, 'waitingRoom' | 'locked'>>

/** Why `addParticipant` did not add, or that it did. */
export type AddOutcome = 'added' | 'room_not_found' | 'removed' | 'locked' | 'full'

export interface AddPolicy {
  /** Hosts enter a locked room. */
  bypassLock: boolean
}

/**
 * The room records of the whole deployment. Every method is atomic on its own: a participant is
 * added only if the room exists, is not locked to it, has space and never removed its identity,
 * all checked and written as one step. Participants are leased: a node refreshes the ones it holds
 * (`refresh`), and a participant whose node stopped doing so disappears after the lease, with its
 * room when that was made by a join. So a dead node leaves nothing behind, and a node that sweeps
 * the room (`sweepExpired`) learns who went that way.
 */
export interface RoomStore {
  /** Creates the room unless one with its id exists; true when it did. */
  createRoom(room: RoomRecord): Promise<boolean>
  /** The room with `defaults.id`, created from `defaults` when there is none. */
  ensureRoom(defaults: RoomRecord): Promise<RoomRecord>
  getRoom(roomId: RoomId): Promise<RoomRecord | undefined>
  listRooms(): Promise<RoomRecord[]>
  updateRoom(roomId: RoomId, patch: RoomPatch): Promise<RoomRecord | undefined>
  /** Deletes the room, its participants and its removed identities; the participants it had, or undefined when there was no room. */
  closeRoom(roomId: RoomId): Promise<ParticipantRecord[] | undefined>

  addParticipant(participant: ParticipantRecord, policy: AddPolicy): Promise<AddOutcome>
  getParticipant(roomId: RoomId, participantId: ParticipantId): Promise<ParticipantRecord | undefined>
  /** Waiting and active participants, oldest first. */
  listParticipants(roomId: RoomId): Promise<ParticipantRecord[]>
  /**
   * Applies `patch` and returns the new record; undefined when there is no such participant or,
   * with `expectState`, when it is not in that state (so two hosts admitting at once admit once).
   */
  updateParticipant(
    roomId: RoomId,
    participantId: ParticipantId,
    patch: ParticipantPatch,
    expectState?: ParticipantRecord['state'],
  ): Promise<ParticipantRecord | undefined>
  /**
   * Removes the participant and returns what it was. With `ban`, its identity is refused by
   * `addParticipant` from then on. A room made by a join is dropped when it becomes empty; one made
   * by the REST API is kept for its `emptyTimeoutSeconds`.
   */
  removeParticipant(roomId: RoomId, participantId: ParticipantId, options?: RemoveOptions): Promise<ParticipantRecord | undefined>
  /**
   * Hands an active participant held by node `from` to node `to` (its session resumed there) and
   * applies `patch`, as one step, with a new lease: undefined unless it is live, active and still
   * held by `from`, so of two nodes taking it at once only one does.
   */
  moveParticipant(roomId: RoomId, participantId: ParticipantId, move: { from: string; to: string }, patch?: ParticipantPatch): Promise<ParticipantRecord | undefined>
  isRemoved(roomId: RoomId, identity: string): Promise<boolean>
  /** The breakouts running in the room; undefined when none run or there is no room. */
  getBreakouts(roomId: RoomId): Promise<Breakouts | undefined>
  /**
   * Replaces the room's breakouts with `update(current)` (undefined ends them) as one atomic step:
   * if another change lands in between, `update` runs again on the newer value, so it must be
   * pure. Resolves with what was written; rejects with what `update` throws. The breakouts go
   * with their room.
   */
  updateBreakouts(roomId: RoomId, update: BreakoutsUpdate): Promise<Breakouts | undefined | 'room_not_found'>
  /** Renews the lease of these participants (those whose lease has not run out) and of their room. */
  refresh(roomId: RoomId, participantIds: readonly ParticipantId[]): Promise<void>
  /**
   * Removes the participants of the room whose lease ran out and returns them, whole, for their
   * leaving to be announced: among callers sweeping at once only one gets each. An expired record
   * is kept for this one more lease; a room made by a join that this empties is dropped. A room
   * made by a join that went with its last lease may take its expired records with it, unannounced:
   * no one is left in it to tell.
   */
  sweepExpired(roomId: RoomId): Promise<ParticipantRecord[]>
  close(): Promise<void>
}

export interface RemoveOptions {
  /** Refuse its identity from then on. */
  ban?: boolean
  /** Remove it only while this node holds it (a node never removes a session that moved on). */
  heldBy?: string
}

export type BreakoutsUpdate = (current: Breakouts | undefined) => Breakouts | undefined

export interface RoomStoreOptions {
  /** How long a participant stays without a refresh, in ms. Default 30 000. */
  leaseMs?: number
  /** How long a removed identity stays refused, in ms. Default 24 h (the longest minted token). */
  removalMs?: number
  now?: () => number
}

export const DEFAULT_LEASE_MS = 30_000
export const DEFAULT_REMOVAL_MS = 24 * 60 * 60 * 1000

/** Oldest first, then by id, so every store lists in the same order. */
export function byJoinTime(a: ParticipantRecord, b: ParticipantRecord): number {
  return a.joinedAt - b.joinedAt || (a.participantId < b.participantId ? -1 : a.participantId > b.participantId ? 1 : 0)
}
