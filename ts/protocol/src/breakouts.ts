// Breakout rooms on the wire: hosts and cohosts split participants into named groups and bring
// them back; each group hears, sees and chats only with itself. Formats only; the server enforces
// who may ask.

import * as z from 'zod'
import { ParticipantId, RequestId } from './ids.js'

/** Most groups one split may make. */
export const MAX_BREAKOUT_GROUPS = 50

/** A group's id, assigned by the server when the breakouts are created (`g1`, `g2`, ...). */
export const BreakoutGroupId = z.string().min(1).max(64).brand<'BreakoutGroupId'>()
export type BreakoutGroupId = z.infer<typeof BreakoutGroupId>

export const BreakoutGroupName = z.string().trim().min(1).max(64)

/** A group as the host asks for it. */
export const BreakoutGroupRequest = z.object({
  name: BreakoutGroupName,
  participantIds: z.array(ParticipantId).max(10_000).default([]),
})
export type BreakoutGroupRequest = z.infer<typeof BreakoutGroupRequest>

export const BreakoutGroup = z.object({
  groupId: BreakoutGroupId,
  name: BreakoutGroupName,
  participantIds: z.array(ParticipantId),
})
export type BreakoutGroup = z.infer<typeof BreakoutGroup>

/** The breakouts running in a room. Participants in no group are in the main room. */
export const Breakouts = z.object({ groups: z.array(BreakoutGroup).min(1).max(MAX_BREAKOUT_GROUPS) })
export type Breakouts = z.infer<typeof Breakouts>

const BreakoutGroupRequests = z.array(BreakoutGroupRequest).min(1).max(MAX_BREAKOUT_GROUPS)

// Signaling requests (hosts and cohosts only). Each is answered by `done` or `error`.

/** Splits the room: everyone named goes to their group; the others stay in the main room. */
export const CreateBreakoutsRequest = z.object({ type: z.literal('create-breakouts'), id: RequestId, groups: BreakoutGroupRequests })
/** Moves one participant into a group, or back to the main room with `groupId: null`. */
export const MoveToBreakoutRequest = z.object({
  type: z.literal('move-to-breakout'),
  id: RequestId,
  participantId: ParticipantId,
  groupId: BreakoutGroupId.nullable(),
})
/** Brings everyone back to the main room. */
export const EndBreakoutsRequest = z.object({ type: z.literal('end-breakouts'), id: RequestId })

/** To everyone in the room whenever groups or membership change; `null` when breakouts ended. */
export const BreakoutsUpdatedEvent = z.object({ type: z.literal('breakouts-updated'), breakouts: Breakouts.nullable() })
export type BreakoutsUpdatedEvent = z.infer<typeof BreakoutsUpdatedEvent>

// REST bodies (`/v1/rooms/{room}/breakouts`).

export const CreateBreakoutsBody = z.object({ groups: BreakoutGroupRequests })
export type CreateBreakoutsBody = z.infer<typeof CreateBreakoutsBody>

export const MoveToBreakoutBody = z.object({ participantId: ParticipantId, groupId: BreakoutGroupId.nullable() })
export type MoveToBreakoutBody = z.infer<typeof MoveToBreakoutBody>

/** The answer of the breakouts routes: what runs now (`null`: nothing). */
export const BreakoutsResponse = z.object({ breakouts: Breakouts.nullable() })
export type BreakoutsResponse = z.infer<typeof BreakoutsResponse>

/** The group `participantId` is in, or undefined for the main room. */
export function breakoutGroupOf(breakouts: Breakouts | null | undefined, participantId: ParticipantId): BreakoutGroup | undefined {
  return breakouts?.groups.find((group) => group.participantIds.includes(participantId))
}
