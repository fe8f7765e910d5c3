// The WebSocket signaling messages (JSON text frames), client to server and back. Formats only.
//
// Requests are imperative and carry an `id` that their reply echoes; server events are facts in
// the past tense and carry no `id`. Clients send `offer` for every change and get an `answer` that
// also says which receive m-line carries which track; a client that joined with `serverOffers`
// also answers the server's `offer` event (the server adds receive m-lines), see `ServerOfferEvent`.

import * as z from 'zod'
import { ADAPTIVE_MEDIA_EVENTS, ADAPTIVE_MEDIA_REQUESTS } from './adaptive-media.js'
import { Breakouts } from './breakouts.js'
import { ErrorCode } from './errors.js'
import { MediaKind, ParticipantId, RequestId, RoomId, TrackId } from './ids.js'
import {
  DoneReply,
  JoinName,
  MEETING_EVENTS,
  MEETING_REQUESTS,
  ParticipantInfo,
  RoomInfo,
  WaitingParticipant,
  WaitingReply,
} from './meeting.js'
import { RecordingInfo } from './recording.js'
import { Grants, Role, TrackSource } from './tokens.js'

/**
 * Bumped on any incompatible change; `join` must carry it. 2: roles and grants, the waiting room
 * (`join` may be answered `waiting`), meeting control (meeting.ts), `name` optional in `join`.
 */
export const PROTOCOL_VERSION = 2

/** Upper bound for one signaling frame; SDP offers with many m-lines stay far below. */
export const MAX_MESSAGE_BYTES = 256 * 1024

const Sdp = z.string().min(1).max(MAX_MESSAGE_BYTES)

export const TrackInfo = z.object({
  trackId: TrackId,
  participantId: ParticipantId,
  kind: MediaKind,
  /** What the publisher said the track is; absent for WHIP publishers. */
  source: TrackSource.optional(),
  /** A host or cohost muted it: it is not forwarded. */
  muted: z.boolean().optional(),
})
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
  /** Ignored when the token carries a `name` claim. */
  name: JoinName,
  /**
   * The client answers server offers (`offer` event, `answer` request): the server adds receive
   * m-lines itself instead of waiting for the client to offer them. Default false.
   */
  serverOffers: z.boolean().optional(),
})
export type JoinRequest = z.infer<typeof JoinRequest>

/**
 * `sources` names what each sending m-line carries (by mid); unnamed audio is `microphone`,
 * unnamed video `camera`. The server refuses an offer that sends a source the grants do not allow.
 */
export const OfferRequest = z.object({
  type: z.literal('offer'),
  id: RequestId,
  sdp: Sdp,
  sources: z.record(z.string().max(32), TrackSource).optional(),
})
export type OfferRequest = z.infer<typeof OfferRequest>

/** 128 random bits, base64url: proves a reconnecting socket holds the session it resumes. */
export const ResumeId = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'a resume id is 22 base64url characters')
export type ResumeId = z.infer<typeof ResumeId>

/**
 * Takes back a participation whose socket dropped, within the server's grace period, on a new
 * socket whose token has the same identity. Answered by `resumed`, or `error` with `resume_failed`
 * (wrong id or identity, or another node took it over first) or `session_expired` (join again).
 * On a node that does not hold the session, the session moves there (`resumed` with `media: 'new'`).
 */
export const ResumeRequest = z.object({
  type: z.literal('resume'),
  id: RequestId,
  protocolVersion: z.literal(PROTOCOL_VERSION),
  room: RoomId,
  participantId: ParticipantId,
  resumeId: ResumeId,
})
export type ResumeRequest = z.infer<typeof ResumeRequest>

/**
 * The client's answer to the server's `offer` event; answered by `done` (the m-lines it accepted
 * are then filled, `subscriptions-changed` says with what), or `error`.
 */
export const AnswerRequest = z.object({ type: z.literal('answer'), id: RequestId, sdp: Sdp })
export type AnswerRequest = z.infer<typeof AnswerRequest>

export const LeaveRequest = z.object({ type: z.literal('leave'), id: RequestId })
export type LeaveRequest = z.infer<typeof LeaveRequest>

/** A length on screen in device pixels; 0 when the video is not shown. */
const Pixels = z.number().int().min(0).max(16_384)

/**
 * The size (device pixels) at which the client draws a remote video it receives. The server sends
 * the simulcast layer that fits it (by height), and the lowest one when none is that small. Send it
 * on join and whenever the size changes (debounced); until then the track comes at its best layer.
 * Answered by `done`.
 */
export const SetPreferredSizeRequest = z.object({
  type: z.literal('set-preferred-size'),
  id: RequestId,
  trackId: TrackId,
  width: Pixels,
  height: Pixels,
})
export type SetPreferredSizeRequest = z.infer<typeof SetPreferredSizeRequest>

export const ClientMessage = z.discriminatedUnion('type', [
  JoinRequest,
  ResumeRequest,
  OfferRequest,
  AnswerRequest,
  LeaveRequest,
  SetPreferredSizeRequest,
  ...ADAPTIVE_MEDIA_REQUESTS,
  ...MEETING_REQUESTS,
])
export type ClientMessage = z.infer<typeof ClientMessage>
export type ClientMessageType = ClientMessage['type']

// Server -> client replies (echo the request id).

/** A STUN/TURN server for the client's RTCPeerConnection (the shape of `RTCIceServer`). */
export const IceServer = z.object({
  urls: z.array(z.string().min(1)).min(1),
  /** TURN REST username, `${expiryUnixSeconds}:${identity}`: the relay refuses it after expiry. */
  username: z.string().optional(),
  credential: z.string().optional(),
})
export type IceServer = z.infer<typeof IceServer>

/** What a participant learns once, when it enters the meeting (by `joined` or `admitted`). */
export const RoomSnapshot = z.object({
  participantId: ParticipantId,
  /** The name the server uses for this participant (the token's, or the one sent in `join`). */
  name: z.string(),
  role: Role,
  grants: Grants,
  room: RoomInfo,
  /** Everyone else already in the room (hidden participants are never listed). */
  participants: z.array(ParticipantInfo),
  /** Every track already published in the room by someone else. */
  tracks: z.array(TrackInfo),
  /** Hosts and cohosts only: who is in the waiting room. */
  waiting: z.array(WaitingParticipant).optional(),
  /** Relays to use when a direct path fails (only when the server has TURN configured). */
  iceServers: z.array(IceServer).optional(),
  /** Keep it: `resume` with it after the socket drops. Absent when the server does not resume. */
  resumeId: ResumeId.optional(),
  /** The room is being recorded: show the indicator. The latest of `recordings`. */
  recording: RecordingInfo.optional(),
  /** Every recording in progress (a composite and a per-track one may run at once). */
  recordings: z.array(RecordingInfo).optional(),
  /** The breakouts in progress; the new participant is in the main room. */
  breakouts: Breakouts.optional(),
})
export type RoomSnapshot = z.infer<typeof RoomSnapshot>

export const JoinedReply = z.object({
  type: z.literal('joined'),
  id: RequestId,
  protocolVersion: z.literal(PROTOCOL_VERSION),
  ...RoomSnapshot.shape,
})
export type JoinedReply = z.infer<typeof JoinedReply>

/** To a participant waiting in the waiting room: a host admitted it; it now negotiates as if joined. */
export const AdmittedEvent = z.object({ type: z.literal('admitted'), ...RoomSnapshot.shape })
export type AdmittedEvent = z.infer<typeof AdmittedEvent>

export const AnswerReply = z.object({
  type: z.literal('answer'),
  id: RequestId,
  sdp: Sdp,
  /** Every track this participant now receives, by receive m-line. */
  subscriptions: z.array(SubscriptionInfo),
})
export type AnswerReply = z.infer<typeof AnswerReply>

/**
 * The participation goes on over this socket: the room as it is now, and what each receive m-line
 * carries, so the client keeps its transceivers (renegotiate only for what changed).
 */
export const ResumedReply = z.object({
  type: z.literal('resumed'),
  id: RequestId,
  protocolVersion: z.literal(PROTOCOL_VERSION),
  ...RoomSnapshot.shape,
  subscriptions: z.array(SubscriptionInfo),
  /**
   * `new`: the session moved to another server, which has no peer for it: close the peer
   * connection, make a new one and negotiate it as after `joined` (its tracks get new ids;
   * `subscriptions` is empty). Absent: the peer goes on (restart ICE if the network changed).
   */
  media: z.literal('new').optional(),
})
export type ResumedReply = z.infer<typeof ResumedReply>

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

/**
 * To a client that joined with `serverOffers`: the server offers new receive m-lines. Answer with
 * `answer`; the server's offer wins a collision (the client's own offer gets `glare`: roll back,
 * answer, offer again). Unanswered for `SERVER_OFFER_TIMEOUT_MS`, the participation ends.
 */
export const ServerOfferEvent = z.object({ type: z.literal('offer'), sdp: Sdp })
export type ServerOfferEvent = z.infer<typeof ServerOfferEvent>

/** How long the server waits for the `answer` to its `offer` before it ends the participation. */
export const SERVER_OFFER_TIMEOUT_MS = 10_000

/** Every track this participant now receives, by receive m-line, when it changed outside an `answer` reply. */
export const SubscriptionsChangedEvent = z.object({ type: z.literal('subscriptions-changed'), subscriptions: z.array(SubscriptionInfo) })
export type SubscriptionsChangedEvent = z.infer<typeof SubscriptionsChangedEvent>

export const ServerReply = z.discriminatedUnion('type', [
  JoinedReply,
  WaitingReply,
  ResumedReply,
  AnswerReply,
  LeftReply,
  DoneReply,
  ErrorReply,
])
export type ServerReply = z.infer<typeof ServerReply>

export const ServerEvent = z.discriminatedUnion('type', [
  ParticipantJoinedEvent,
  ParticipantLeftEvent,
  TrackPublishedEvent,
  TrackEndedEvent,
  AdmittedEvent,
  ServerOfferEvent,
  SubscriptionsChangedEvent,
  ...MEETING_EVENTS,
  ...ADAPTIVE_MEDIA_EVENTS,
])
export type ServerEvent = z.infer<typeof ServerEvent>

export const ServerMessage = z.discriminatedUnion('type', [...ServerReply.options, ...ServerEvent.options])
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
