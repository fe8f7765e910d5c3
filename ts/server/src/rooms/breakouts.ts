// Breakout rooms: hosts split a room's participants into named groups and bring them back. The
// groups live in the RoomStore (one atomic record per room); each node moves the peers it holds
// into the group's media partition, so nothing is renegotiated. Rules here, wiring in
// MeetingService.

import {
  type BreakoutGroup,
  type BreakoutGroupId,
  type BreakoutGroupRequest,
  type Breakouts,
  type ParticipantId,
  type RoomId,
  breakoutGroupOf,
} from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { EventBus } from '../cluster/event-bus.js'
import type { ParticipantRecord, RoomStore } from '../state/room-store.js'

/** The media partition of the main room; group `i` (0-based) is partition `i + 1`. */
export const MAIN_PARTITION = 0

/** The media partition `participantId` belongs in while `breakouts` run (or not). */
export function partitionOf(breakouts: Breakouts | undefined, participantId: ParticipantId): number {
  const group = breakoutGroupOf(breakouts, participantId)
  return group === undefined ? MAIN_PARTITION : (breakouts as Breakouts).groups.indexOf(group) + 1
}

/**
 * Who hears a room chat message from `from`: everyone while no breakouts run, else the sender's
 * group (or the main room: everyone in no group). Undefined means the whole room.
 */
export function chatAudience(
  breakouts: Breakouts | undefined,
  participants: readonly ParticipantRecord[],
  from: ParticipantId,
): ParticipantId[] | undefined {
  if (breakouts === undefined) return undefined
  const group = breakoutGroupOf(breakouts, from)
  if (group !== undefined) return [...group.participantIds]
  return participants.map((participant) => participant.participantId).filter((id) => breakoutGroupOf(breakouts, id) === undefined)
}

/** Whether `a` and `b` are in the same group (or both in the main room) while `breakouts` run. */
export function sameBreakoutGroup(breakouts: Breakouts | undefined, a: ParticipantId, b: ParticipantId): boolean {
  return breakoutGroupOf(breakouts, a)?.groupId === breakoutGroupOf(breakouts, b)?.groupId
}

/**
 * The breakouts a host asks for, with server-assigned group ids. Everyone named must be an active
 * participant of the room, in one group at most.
 */
export function planBreakouts(requested: readonly BreakoutGroupRequest[], participants: readonly ParticipantRecord[]): Breakouts {
  const active = new Set(participants.filter((participant) => participant.state === 'active').map((participant) => participant.participantId))
  const placed = new Set<ParticipantId>()
  const groups: BreakoutGroup[] = requested.map((group, index) => {
    for (const id of group.participantIds) {
      if (!active.has(id)) throw new AppError('participant_not_found', `${id} is not an active participant of this room`)
      if (placed.has(id)) throw new AppError('bad_request', `${id} is named in more than one group`)
      placed.add(id)
    }
    return { groupId: `g${index + 1}` as BreakoutGroupId, name: group.name, participantIds: [...group.participantIds] }
  })
  return { groups }
}

/** `breakouts` with `participantId` moved into `groupId`, or to the main room when null. */
export function moveParticipant(breakouts: Breakouts, participantId: ParticipantId, groupId: BreakoutGroupId | null): Breakouts {
  if (groupId !== null && !breakouts.groups.some((group) => group.groupId === groupId)) {
    throw new AppError('breakout_not_found', `there is no breakout group ${groupId}`)
  }
  return {
    groups: breakouts.groups.map((group) => {
      const others = group.participantIds.filter((id) => id !== participantId)
      return { ...group, participantIds: group.groupId === groupId ? [...others, participantId] : others }
    }),
  }
}

export interface BreakoutControlOptions {
  store: RoomStore
  bus: EventBus
}

/** Changes a room's breakouts in the store and tells every node. Authorization is the caller's. */
export class BreakoutControl {
  readonly #store: RoomStore
  readonly #bus: EventBus

  constructor({ store, bus }: BreakoutControlOptions) {
    this.#store = store
    this.#bus = bus
  }

  get(roomId: RoomId): Promise<Breakouts | undefined> {
    return this.#store.getBreakouts(roomId)
  }

  /** Splits the room; `breakouts_running` when a split is already in progress. */
  async create(roomId: RoomId, groups: readonly BreakoutGroupRequest[]): Promise<Breakouts> {
    const breakouts = planBreakouts(groups, await this.#store.listParticipants(roomId))
    const written = await this.#write(roomId, (current) => {
      if (current !== undefined) throw new AppError('breakouts_running', 'breakouts are already running; end them first')
      return breakouts
    })
    return written as Breakouts
  }

  /** Moves one active participant into a group, or back to the main room with null. */
  async move(roomId: RoomId, participantId: ParticipantId, groupId: BreakoutGroupId | null): Promise<Breakouts> {
    const target = await this.#store.getParticipant(roomId, participantId)
    if (target === undefined || target.state !== 'active') throw new AppError('participant_not_found', `${participantId} is not an active participant of room ${roomId}`)
    const written = await this.#write(roomId, (current) => {
      if (current === undefined) throw new AppError('breakouts_not_running', 'no breakouts are running')
      return moveParticipant(current, participantId, groupId)
    })
    return written as Breakouts
  }

  /** Brings everyone back to the main room. */
  async end(roomId: RoomId): Promise<void> {
    await this.#write(roomId, (current) => {
      if (current === undefined) throw new AppError('breakouts_not_running', 'no breakouts are running')
      return undefined
    })
  }

  async #write(roomId: RoomId, update: (current: Breakouts | undefined) => Breakouts | undefined): Promise<Breakouts | undefined> {
    const written = await this.#store.updateBreakouts(roomId, update)
    if (written === 'room_not_found') throw new AppError('room_not_found', `there is no room ${roomId}`)
    await this.#bus.publish({ type: 'breakouts-changed', roomId, breakouts: written })
    return written
  }
}
