// The REST API's bodies (`/v1`), requests and responses. Formats only. Times are milliseconds
// since the epoch; errors are `ErrorBody` with the status of `HTTP_STATUS_BY_CODE`.

import * as z from 'zod'
import { MediaKind, ParticipantId, ParticipantName, RoomId, TrackId } from './ids.js'
import { WaitingParticipant } from './meeting.js'
import { Grants, Identity, Role, TrackSource } from './tokens.js'

/** Shortest and longest lifetime of a minted token, in seconds. */
export const TOKEN_TTL_LIMITS = { min: 10, max: 24 * 60 * 60, default: 60 * 60 } as const

export const CreateTokenRequest = z.object({
  room: RoomId,
  identity: Identity,
  name: ParticipantName.optional(),
  role: Role.default('guest'),
  /** Missing fields take the defaults of `Grants`. */
  grants: Grants.partial().optional(),
  /** Default 3600. */
  ttlSeconds: z.number().int().min(TOKEN_TTL_LIMITS.min).max(TOKEN_TTL_LIMITS.max).default(TOKEN_TTL_LIMITS.default),
})
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>

export const TokenResponse = z.object({ token: z.string(), expiresAt: z.number() })
export type TokenResponse = z.infer<typeof TokenResponse>

export const RoomOptions = z.object({
  /** Guests wait until a host or cohost admits them. Default false. */
  waitingRoom: z.boolean().default(false),
  /** No one but hosts may join. Default false. */
  locked: z.boolean().default(false),
  /** Active participants at most; absent for no limit. */
  maxParticipants: z.number().int().min(1).max(10_000).optional(),
  /** How long an empty room is kept, in seconds. Default 300; rooms made by a join are dropped at once. */
  emptyTimeoutSeconds: z.number().int().min(0).max(7 * 24 * 60 * 60).default(300),
})
export type RoomOptions = z.infer<typeof RoomOptions>

export const CreateRoomRequest = z.object({ room: RoomId, ...RoomOptions.shape })
export type CreateRoomRequest = z.infer<typeof CreateRoomRequest>

/** Changes to a room; absent fields stay. */
export const UpdateRoomRequest = z.object({ waitingRoom: z.boolean().optional(), locked: z.boolean().optional() })
export type UpdateRoomRequest = z.infer<typeof UpdateRoomRequest>

export const RoomDetails = z.object({
  room: RoomId,
  waitingRoom: z.boolean(),
  locked: z.boolean(),
  maxParticipants: z.number().int().optional(),
  emptyTimeoutSeconds: z.number().int(),
  createdAt: z.number(),
  /** Active participants (hidden ones included). */
  participants: z.number().int(),
  /** Participants in the waiting room. */
  waiting: z.number().int(),
})
export type RoomDetails = z.infer<typeof RoomDetails>

export const RoomList = z.object({ rooms: z.array(RoomDetails) })
export type RoomList = z.infer<typeof RoomList>

export const TrackDetails = z.object({
  trackId: TrackId,
  kind: MediaKind,
  source: TrackSource.optional(),
  muted: z.boolean(),
})
export type TrackDetails = z.infer<typeof TrackDetails>

/** How it came in: the signaling WebSocket, a WHIP publisher, or a WHEP viewer (hidden from members). */
export const ParticipantKind = z.enum(['member', 'whip', 'whep'])
export type ParticipantKind = z.infer<typeof ParticipantKind>

export const ParticipantDetails = z.object({
  participantId: ParticipantId,
  identity: Identity,
  name: z.string(),
  role: Role,
  grants: Grants,
  state: z.enum(['waiting', 'active']),
  handRaised: z.boolean(),
  kind: ParticipantKind,
  /** The server instance that holds its connection. */
  nodeId: z.string(),
  joinedAt: z.number(),
  tracks: z.array(TrackDetails),
})
export type ParticipantDetails = z.infer<typeof ParticipantDetails>

export const ParticipantList = z.object({ participants: z.array(ParticipantDetails) })
export type ParticipantList = z.infer<typeof ParticipantList>

export const WaitingList = z.object({ waiting: z.array(WaitingParticipant) })
export type WaitingList = z.infer<typeof WaitingList>

/** Mutes one track, or every track of the participant when `trackId` is absent. */
export const MuteRequest = z.object({ trackId: TrackId.optional() })
export type MuteRequest = z.infer<typeof MuteRequest>

/** Changes a participant's role and grants; takes effect at once, on media too. */
export const UpdateParticipantRequest = z.object({
  role: Role.optional(),
  /** Merged over the current grants. */
  grants: Grants.partial().optional(),
})
export type UpdateParticipantRequest = z.infer<typeof UpdateParticipantRequest>

/** Admits or denies these participants, or everyone waiting when `participantIds` is absent. */
export const WaitingDecisionRequest = z.object({ participantIds: z.array(ParticipantId).max(1000).optional() })
export type WaitingDecisionRequest = z.infer<typeof WaitingDecisionRequest>

/** How many participants a bulk action reached. */
export const CountResponse = z.object({ count: z.number().int() })
export type CountResponse = z.infer<typeof CountResponse>

export const HealthResponse = z.object({ ok: z.boolean(), nodeId: z.string().optional(), checks: z.record(z.string(), z.string()).optional() })
export type HealthResponse = z.infer<typeof HealthResponse>
