// The WebSocket signaling messages (JSON text frames), client to server and back. Formats only.
//
// Requests are imperative and carry an `id` that their reply echoes; server events are facts in
// the past tense and carry no `id`. The engine is always the SDP answerer: clients send `offer`
// for every change and get an `answer` that also says which receive m-line carries which track.

import * as z from 'zod'
import { ErrorCode } from './errors.js'
import { MediaKind, ParticipantId, ParticipantName, RoomId, TrackId } from './ids.js'

/** Bumped on any incompatible change; `join` must carry it. */
export const PROTOCOL_VERSION = 1

/** Upper bound for one signaling frame; SDP offers with many m-lines stay far below. */
export const MAX_MESSAGE_BYTES = 256 * 1024

/** A request id chosen by the client; replies echo it. */
export const RequestId = z.string().min(1).max(64)

const Sdp = z.string().min(1).max(MAX_MESSAGE_BYTES)

export const ParticipantInfo = z.object({ participantId: ParticipantId, name: z.string() })
export type ParticipantInfo = z.infer<typeof ParticipantInfo>

export const TrackInfo = z.object({ trackId: TrackId, participantId: ParticipantId, kind: MediaKind })
export type TrackInfo = z.infer<typeof TrackInfo>

/** Which of the subscriber's receive m-lines carries which track. */
export const SubscriptionInfo = z.object({
  mid: z.string(),
  trackId: TrackId,
  participantId: ParticipantId,
  kind: MediaKind,
})
export type SubscriptionInfo = z.infer<typeof SubscriptionInfo>

// Client -> server requests.

export const JoinRequest = z.object({
  type: z.literal('join'),
  id: RequestId,
  protocolVersion: z.literal(PROTOCOL_VERSION),
  room: RoomId,
  name: ParticipantName,
})
export type JoinRequest = z.infer<typeof JoinRequest>

export const OfferRequest = z.object({ type: z.literal('offer'), id: RequestId, sdp: Sdp })
export type OfferRequest = z.infer<typeof OfferRequest>

export const LeaveRequest = z.object({ type: z.literal('leave'), id: RequestId })
export type LeaveRequest = z.infer<typeof LeaveRequest>

export const ClientMessage = z.discriminatedUnion('type', [JoinRequest, OfferRequest, LeaveRequest])
export type ClientMessage = z.infer<typeof ClientMessage>
export type ClientMessageType = ClientMessage['type']

// Server -> client replies (echo the request id).

export const JoinedReply = z.object({
  type: z.literal('joined'),
  id: RequestId,
  protocolVersion: z.literal(PROTOCOL_VERSION),
  participantId: ParticipantId,
  /** Everyone else already in the room. */
  participants: z.array(ParticipantInfo),
  /** Every track already published in the room by someone else. */
  tracks: z.array(TrackInfo),
})
export type JoinedReply = z.infer<typeof JoinedReply>

export const AnswerReply = z.object({
  type: z.literal('answer'),
  id: RequestId,
  sdp: Sdp,
  /** Every track this participant now receives, by receive m-line. */
  subscriptions: z.array(SubscriptionInfo),
})
export type AnswerReply = z.infer<typeof AnswerReply>

export const LeftReply = z.object({ type: z.literal('left'), id: RequestId })
export type LeftReply = z.infer<typeof LeftReply>

export const ErrorReply = z.object({
  type: z.literal('error'),
  /** Absent when the request could not be read far enough to find its id. */
  id: RequestId.optional(),
  code: ErrorCode,
  message: z.string(),
})
export type ErrorReply = z.infer<typeof ErrorReply>

// Server -> client events (past tense, no id).

export const ParticipantJoinedEvent = z.object({ type: z.literal('participant-joined'), participant: ParticipantInfo })
export type ParticipantJoinedEvent = z.infer<typeof ParticipantJoinedEvent>

export const ParticipantLeftEvent = z.object({ type: z.literal('participant-left'), participantId: ParticipantId })
export type ParticipantLeftEvent = z.infer<typeof ParticipantLeftEvent>

export const TrackPublishedEvent = z.object({ type: z.literal('track-published'), track: TrackInfo })
export type TrackPublishedEvent = z.infer<typeof TrackPublishedEvent>

export const TrackEndedEvent = z.object({ type: z.literal('track-ended'), trackId: TrackId })
export type TrackEndedEvent = z.infer<typeof TrackEndedEvent>

export const ServerReply = z.discriminatedUnion('type', [JoinedReply, AnswerReply, LeftReply, ErrorReply])
export type ServerReply = z.infer<typeof ServerReply>

export const ServerEvent = z.discriminatedUnion('type', [
  ParticipantJoinedEvent,
  ParticipantLeftEvent,
  TrackPublishedEvent,
  TrackEndedEvent,
])
export type ServerEvent = z.infer<typeof ServerEvent>

export const ServerMessage = z.discriminatedUnion('type', [
  JoinedReply,
  AnswerReply,
  LeftReply,
  ErrorReply,
  ParticipantJoinedEvent,
  ParticipantLeftEvent,
  TrackPublishedEvent,
  TrackEndedEvent,
])
export type ServerMessage = z.infer<typeof ServerMessage>

/** Why a frame could not be read as a message, with the request id when one was found. */
export interface MessageProblem {
  id: string | undefined
  message: string
}

export type ParseResult<T> = { ok: true; message: T } | { ok: false; problem: MessageProblem }

/** Reads one text frame from a client. Never throws: bad input is data. */
export function parseClientMessage(text: string): ParseResult<ClientMessage> {
  return parseWith(ClientMessage, text)
}

/** Reads one text frame from the server. Never throws: bad input is data. */
export function parseServerMessage(text: string): ParseResult<ServerMessage> {
  return parseWith(ServerMessage, text)
}

function parseWith<T>(schema: z.ZodType<T>, text: string): ParseResult<T> {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { ok: false, problem: { id: undefined, message: 'message is not valid JSON' } }
  }
  const parsed = schema.safeParse(json)
  if (parsed.success) return { ok: true, message: parsed.data }
  return { ok: false, problem: { id: requestIdOf(json), message: describeIssues(parsed.error) } }
}

function requestIdOf(json: unknown): string | undefined {
  if (typeof json !== 'object' || json === null || !('id' in json)) return undefined
  const id = RequestId.safeParse(json.id)
  return id.success ? id.data : undefined
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ')
}
