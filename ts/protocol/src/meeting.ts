// Meeting control on the signaling socket: who is there and in what state, the waiting room,
// chat, hand raise and what hosts and cohosts do to others. Formats only; the server enforces who
// may send which request.

import * as z from 'zod'
import { BreakoutsUpdatedEvent, CreateBreakoutsRequest, EndBreakoutsRequest, MoveToBreakoutRequest } from './breakouts.js'
import { ParticipantId, ParticipantName, RequestId, TrackId } from './ids.js'
import { RecordingId, RecordingInfo, RecordingMode } from './recording.js'
import { Grants, Role } from './tokens.js'

/** Longest chat message, in characters. */
export const MAX_CHAT_CHARS = 2000

/**
 * A participant as the others see it. `role` and `handRaised` are absent for WHIP publishers,
 * which are not people in the meeting.
 */
export const ParticipantInfo = z.object({
  participantId: ParticipantId,
  name: z.string(),
  role: Role.optional(),
  handRaised: z.boolean().optional(),
  /** `reconnecting`: its signaling dropped and it may resume within the grace period; media may still flow. */
  state: z.enum(['active', 'reconnecting']).optional(),
})
export type ParticipantInfo = z.infer<typeof ParticipantInfo>

/** Someone in the waiting room, as hosts and cohosts see them. */
export const WaitingParticipant = z.object({
  participantId: ParticipantId,
  name: z.string(),
  /** Milliseconds since the epoch. */
  since: z.number(),
})
export type WaitingParticipant = z.infer<typeof WaitingParticipant>

/** The room's settings that participants see. */
export const RoomInfo = z.object({
  /** Guests wait until a host or cohost admits them. */
  waitingRoom: z.boolean(),
  /** No one new may join (hosts still can). */
  locked: z.boolean(),
})
export type RoomInfo = z.infer<typeof RoomInfo>

export const ChatMessage = z.object({
  from: ParticipantId,
  fromName: z.string(),
  /** Set for a private message: only the sender and this participant get it. */
  to: ParticipantId.optional(),
  text: z.string(),
  /** Milliseconds since the epoch, by the server's clock. */
  sentAt: z.number(),
})
export type ChatMessage = z.infer<typeof ChatMessage>

// Client -> server requests. Each is answered by `done` (or `error`) with its id.

const ChatText = z.string().trim().min(1).max(MAX_CHAT_CHARS)

export const ChatRequest = z.object({ type: z.literal('chat'), id: RequestId, text: ChatText, to: ParticipantId.optional() })
export const RaiseHandRequest = z.object({ type: z.literal('raise-hand'), id: RequestId })
/** Lowers one's own hand, or (hosts and cohosts) someone else's. */
export const LowerHandRequest = z.object({ type: z.literal('lower-hand'), id: RequestId, participantId: ParticipantId.optional() })
export const AdmitRequest = z.object({ type: z.literal('admit'), id: RequestId, participantId: ParticipantId })
export const AdmitAllRequest = z.object({ type: z.literal('admit-all'), id: RequestId })
export const DenyRequest = z.object({ type: z.literal('deny'), id: RequestId, participantId: ParticipantId })
export const DenyAllRequest = z.object({ type: z.literal('deny-all'), id: RequestId })
/** Stops forwarding a track to everyone; its owner is told. */
export const MuteTrackRequest = z.object({ type: z.literal('mute-track'), id: RequestId, trackId: TrackId })
/** Forwards one's own muted track again (owners only, within their grants). */
export const UnmuteTrackRequest = z.object({ type: z.literal('unmute-track'), id: RequestId, trackId: TrackId })
/** Removes a participant; the token that admitted it no longer does. */
export const RemoveParticipantRequest = z.object({
  type: z.literal('remove-participant'),
  id: RequestId,
  participantId: ParticipantId,
})
/** Promotes a guest to cohost or demotes a cohost (hosts only). */
export const SetRoleRequest = z.object({
  type: z.literal('set-role'),
  id: RequestId,
  participantId: ParticipantId,
  role: z.enum(['cohost', 'guest']),
})
export const LockRoomRequest = z.object({ type: z.literal('lock-room'), id: RequestId })
export const UnlockRoomRequest = z.object({ type: z.literal('unlock-room'), id: RequestId })
/** Hosts and cohosts: starts recording the room (default `composite`); everyone is told. */
export const StartRecordingRequest = z.object({ type: z.literal('start-recording'), id: RequestId, mode: RecordingMode.optional() })
/** Hosts and cohosts: stops the room's active recording; it is finalized. */
export const StopRecordingRequest = z.object({ type: z.literal('stop-recording'), id: RequestId })

/** Every meeting-control request, in the order of the protocol documentation. */
export const MEETING_REQUESTS = [
  ChatRequest,
  RaiseHandRequest,
  LowerHandRequest,
  AdmitRequest,
  AdmitAllRequest,
  DenyRequest,
  DenyAllRequest,
  MuteTrackRequest,
  UnmuteTrackRequest,
  RemoveParticipantRequest,
  SetRoleRequest,
  LockRoomRequest,
  UnlockRoomRequest,
  StartRecordingRequest,
  StopRecordingRequest,
  CreateBreakoutsRequest,
  MoveToBreakoutRequest,
  EndBreakoutsRequest,
] as const

export type MeetingRequest = z.infer<(typeof MEETING_REQUESTS)[number]>

// Server -> client.

/** The reply to a meeting-control request that has nothing else to say. */
export const DoneReply = z.object({ type: z.literal('done'), id: RequestId })
export type DoneReply = z.infer<typeof DoneReply>

/** The reply to `join` in a room with a waiting room: wait for `admitted` or `denied`. */
export const WaitingReply = z.object({ type: z.literal('waiting'), id: RequestId, participantId: ParticipantId })
export type WaitingReply = z.infer<typeof WaitingReply>

export const ParticipantUpdatedEvent = z.object({ type: z.literal('participant-updated'), participant: ParticipantInfo })
export const TrackMutedEvent = z.object({
  type: z.literal('track-muted'),
  trackId: TrackId,
  participantId: ParticipantId,
  /** Who muted it. */
  by: ParticipantId.optional(),
})
/** Its owner unmuted it: it is forwarded again (offer to receive it). */
export const TrackUnmutedEvent = z.object({ type: z.literal('track-unmuted'), trackId: TrackId, participantId: ParticipantId })
export const ChatPostedEvent = z.object({ type: z.literal('chat-posted'), message: ChatMessage })
/** To hosts and cohosts: the whole waiting room, whenever it changes. */
export const WaitingRoomUpdatedEvent = z.object({ type: z.literal('waiting-room-updated'), waiting: z.array(WaitingParticipant) })
/** To a waiting participant: a host said no. The socket closes next. */
export const DeniedEvent = z.object({ type: z.literal('denied') })
/** To a removed participant. The socket closes next. */
export const RemovedEvent = z.object({ type: z.literal('removed'), by: ParticipantId.optional() })
/** To a participant whose role or grants changed. */
export const PermissionsUpdatedEvent = z.object({ type: z.literal('permissions-updated'), role: Role, grants: Grants })
export const RoomUpdatedEvent = z.object({ type: z.literal('room-updated'), room: RoomInfo })
/** The room was closed (REST); the socket closes next. */
export const RoomClosedEvent = z.object({ type: z.literal('room-closed') })
/** To everyone in the room: it is being recorded (show an indicator until `recording-stopped`). */
export const RecordingStartedEvent = z.object({ type: z.literal('recording-started'), recording: RecordingInfo })
/** To everyone in the room: the recording ended; `failed` when the recorder died, `partial` when its output misses a part. */
export const RecordingStoppedEvent = z.object({
  type: z.literal('recording-stopped'),
  recordingId: RecordingId,
  partial: z.boolean(),
  failed: z.boolean(),
})

export const MEETING_EVENTS = [
  ParticipantUpdatedEvent,
  TrackMutedEvent,
  TrackUnmutedEvent,
  ChatPostedEvent,
  WaitingRoomUpdatedEvent,
  DeniedEvent,
  RemovedEvent,
  PermissionsUpdatedEvent,
  RoomUpdatedEvent,
  RoomClosedEvent,
  RecordingStartedEvent,
  RecordingStoppedEvent,
  BreakoutsUpdatedEvent,
] as const

export type MeetingEvent = z.infer<(typeof MEETING_EVENTS)[number]>

/** A display name for `join`: optional because a token's `name` claim wins. */
export const JoinName = ParticipantName.optional()

/** WebSocket close codes the server uses when it ends a participation. */
export const CLOSE_CODES = {
  /** The media transport was lost. */
  mediaLost: 4001,
  /** A host or cohost denied entry from the waiting room. */
  denied: 4003,
  /** A host or cohost (or the REST API) removed the participant. */
  removed: 4004,
  /** The room was closed. */
  roomClosed: 4005,
  /** The same participant resumed on a newer connection. */
  replaced: 4006,
} as const
