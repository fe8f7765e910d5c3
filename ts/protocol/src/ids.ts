// Identifiers and names as they appear on the wire; branded so they cannot be mixed up.

import * as z from 'zod'

/** A room's name, chosen by whoever creates the link: URL-safe, 1-64 characters. */
export const RoomId = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'room must be 1-64 characters of A-Z a-z 0-9 _ . -')
  .brand<'RoomId'>()
export type RoomId = z.infer<typeof RoomId>

/** One person (or one WHIP publisher) in a room, assigned by the server. */
export const ParticipantId = z.string().min(1).max(64).brand<'ParticipantId'>()
export type ParticipantId = z.infer<typeof ParticipantId>

/** One published media track, assigned by the server. */
export const TrackId = z.string().min(1).max(64).brand<'TrackId'>()
export type TrackId = z.infer<typeof TrackId>

/** A display name. */
export const ParticipantName = z.string().trim().min(1).max(64)

export const MediaKind = z.enum(['audio', 'video'])
export type MediaKind = z.infer<typeof MediaKind>

/** A request id chosen by the client; replies echo it. */
export const RequestId = z.string().min(1).max(64)
