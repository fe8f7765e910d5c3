// Adaptive media on the signaling socket: the server asks a publisher to pause or resume simulcast
// encodings nobody needs (dynacast) and names the room's active speaker; a member pins cameras
// it always wants to see. Formats only.

import * as z from 'zod'
import { ParticipantId, RequestId, TrackId } from './ids.js'

/**
 * To a publisher: set `encodings[i].active = active[i]` on the sender of its m-line `mid` (the
 * encodings in the order its offer listed their RIDs). Paused encodings are ones no subscriber
 * needs now; a later `set-encodings` resumes them when one does.
 */
export const SetEncodingsEvent = z.object({
  type: z.literal('set-encodings'),
  trackId: TrackId,
  /** The publisher's sending m-line that carries the track. */
  mid: z.string().min(1).max(64),
  active: z.array(z.boolean()).min(1).max(8),
})
export type SetEncodingsEvent = z.infer<typeof SetEncodingsEvent>

/**
 * The room's dominant speaker changed (with hysteresis: a short interjection does not take the
 * floor). `participantId` is absent when nobody has spoken yet or the speaker left.
 */
export const ActiveSpeakerEvent = z.object({
  type: z.literal('active-speaker'),
  participantId: ParticipantId.optional(),
})
export type ActiveSpeakerEvent = z.infer<typeof ActiveSpeakerEvent>

export const ADAPTIVE_MEDIA_EVENTS = [SetEncodingsEvent, ActiveSpeakerEvent] as const

/** The most cameras one member may pin. */
export const MAX_PINNED = 9

/**
 * The cameras of `participantIds` are always sent to this member, as the active speaker's are,
 * even when video last-N leaves them out. Replaces the previous pins; `[]` unpins all. Ids not
 * (or no longer) in the room are kept and simply match nobody. Answered by `done`.
 */
export const PinRequest = z.object({
  type: z.literal('pin'),
  id: RequestId,
  participantIds: z.array(ParticipantId).max(MAX_PINNED),
})
export type PinRequest = z.infer<typeof PinRequest>

export const ADAPTIVE_MEDIA_REQUESTS = [PinRequest] as const
