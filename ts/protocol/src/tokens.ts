// Access tokens: the claims of the JWT a participant presents, roles and grants. Formats only;
// verification and policy are the server's.

import * as z from 'zod'
import { ParticipantName, RoomId } from './ids.js'

/** What a participant may do to others: hosts and cohosts run the meeting, guests take part. */
export const ROLES = ['host', 'cohost', 'guest'] as const
export const Role = z.enum(ROLES)
export type Role = z.infer<typeof Role>

/** Where a published track comes from; a grant may allow only some. */
export const TRACK_SOURCES = ['camera', 'microphone', 'screen'] as const
export const TrackSource = z.enum(TRACK_SOURCES)
export type TrackSource = z.infer<typeof TrackSource>

/** True for the roles that run a meeting: admit, mute, remove, lock. */
export function isModerator(role: Role): boolean {
  return role === 'host' || role === 'cohost'
}

/**
 * What a participant may do with media and chat. Every field has a default, so `{}` is a full
 * participant: publish any source, subscribe, chat, visible, not a recorder.
 */
export const Grants = z.object({
  /** Publish tracks at all. Default true. */
  canPublish: z.boolean().default(true),
  /** Receive the others' tracks. Default true. */
  canSubscribe: z.boolean().default(true),
  /** Which sources may be published when `canPublish`. Default all. */
  canPublishSources: z.array(TrackSource).max(TRACK_SOURCES.length).default([...TRACK_SOURCES]),
  /** Send chat messages. Default true. */
  canChat: z.boolean().default(true),
  /** Not listed to the others and never announced (observers, recorders). Default false. */
  hidden: z.boolean().default(false),
  /** A recording bot: hidden by convention, skips the waiting room. Default false. */
  recorder: z.boolean().default(false),
})
export type Grants = z.infer<typeof Grants>
export type GrantsInput = z.input<typeof Grants>

/** The grants a token without a `grants` claim carries. */
export const DEFAULT_GRANTS: Grants = Grants.parse({})

/** An identity chosen by the application: who this is across joins. */
export const Identity = z.string().min(1).max(128)

/**
 * The claims of a Conclave access token (a JWT). `sub` is the identity, `room` the one room it
 * admits to; `exp` is required: a token that never expires is refused.
 */
export const AccessTokenClaims = z.object({
  sub: Identity,
  room: RoomId,
  /** The display name; when present it wins over the name sent in `join`. */
  name: ParticipantName.optional(),
  /** Default `guest`. */
  role: Role.default('guest'),
  grants: Grants.prefault({}),
  exp: z.number().int(),
  nbf: z.number().int().optional(),
  iat: z.number().int().optional(),
  jti: z.string().max(128).optional(),
})
export type AccessTokenClaims = z.infer<typeof AccessTokenClaims>
