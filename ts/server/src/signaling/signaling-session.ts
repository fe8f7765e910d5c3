// One signaling WebSocket: reads requests, calls the rooms domain, replies and forwards room events.
// Bad frames get a typed `error` reply and the socket stays open.

import {
  type AnswerRequest,
  type ClientMessage,
  type ErrorCode,
  type JoinRequest,
  type LeaveRequest,
  MAX_MESSAGE_BYTES,
  type OfferRequest,
  type ParticipantId,
  PROTOCOL_VERSION,
  type ResumeRequest,
  type ServerMessage,
  type SetPreferredSizeRequest,
  parseClientMessage,
} from '@conclave/protocol'
import { AppError, toAppError } from '../app-error.js'
import type { Principal } from '../auth/authenticator.js'
import type { Logger } from '../log.js'
import type { Actor, MeetingService, MemberChannel } from '../rooms/meeting-service.js'
import type { RoomService } from '../rooms/room-service.js'
import { RateLimiter } from './rate-limiter.js'

/** The socket as the session needs it. */
export interface SignalingChannel {
  send(text: string): void
  close(code: number, reason: string): void
}

export interface SignalingSessionOptions {
  meeting: MeetingService
  rooms: RoomService
  principal: Principal
  channel: SignalingChannel
  log: Logger
  /** Messages allowed at once before throttling. Default 40. */
  burst?: number
  /** Sustained messages per second. Default 20. */
  messagesPerSecond?: number
  /** Frames refused for the rate within 10 s before the socket is closed. Default 200. */
  maxThrottled?: number
  now?: () => number
}

/** WebSocket close code for a client that kept flooding after being told (RFC 6455 policy violation). */
export const CLOSE_POLICY_VIOLATION = 1008

/** RFC 6455 §7.4.1: the endpoint is going away; browsers send it when the page unloads. */
export const CLOSE_GOING_AWAY = 1001

const THROTTLE_WINDOW_MS = 10_000

export class SignalingSession {
  readonly #meeting: MeetingService
  readonly #rooms: RoomService
  readonly #principal: Principal
  readonly #channel: SignalingChannel
  readonly #log: Logger
  readonly #limiter: RateLimiter
  readonly #maxThrottled: number
  readonly #now: () => number
  #participantId: ParticipantId | undefined
  /** What the meeting sends this participant's events through, once joined or resumed. */
  #memberChannel: MemberChannel | undefined
  /** Frames refused for the rate since `#throttledSince`. */
  #throttled = 0
  #throttledSince = 0
  #closed = false

  constructor({
    meeting,
    rooms,
    principal,
    channel,
    log,
    burst = 40,
    messagesPerSecond = 20,
    maxThrottled = 200,
    now = Date.now,
  }: SignalingSessionOptions) {
    this.#meeting = meeting
    this.#rooms = rooms
    this.#principal = principal
    this.#channel = channel
    this.#log = log
    this.#now = now
    this.#maxThrottled = maxThrottled
    this.#limiter = new RateLimiter(burst, messagesPerSecond, now())
  }

  get participantId(): ParticipantId | undefined {
    return this.#participantId
  }

  /** Handles one frame. Never throws; every failure becomes an `error` reply. */
  async handleFrame(data: string | ArrayBuffer): Promise<void> {
    if (this.#closed) return
    if (typeof data !== 'string') {
      this.#send({ type: 'error', code: 'invalid_message', message: 'binary frames are not part of the protocol' })
      return
    }
    if (data.length > MAX_MESSAGE_BYTES / 4 && Buffer.byteLength(data) > MAX_MESSAGE_BYTES) {
      this.#send({ type: 'error', code: 'payload_too_large', message: `a message may have at most ${MAX_MESSAGE_BYTES} bytes` })
      return
    }
    const parsed = parseClientMessage(data)
    if (!parsed.ok) {
      this.#replyError(parsed.problem.id, 'invalid_message', parsed.problem.message)
      return
    }
    const message = parsed.message
    if (!this.#limiter.take(this.#now())) {
      this.#replyError(message.id, 'rate_limited', 'too many messages; slow down')
      const now = this.#now()
      if (now - this.#throttledSince > THROTTLE_WINDOW_MS) {
        this.#throttledSince = now
        this.#throttled = 0
      }
      if (++this.#throttled >= this.#maxThrottled) {
        this.#log.warn('closing a signaling socket that keeps flooding', { participantId: this.#participantId })
        this.#channel.close(CLOSE_POLICY_VIOLATION, 'rate limit exceeded')
        // A flooder does not get to resume: it leaves now.
        this.#closed = true
        const participantId = this.#participantId
        this.#participantId = undefined
        if (participantId !== undefined) await this.#meeting.leave(participantId, 'rate_limited')
      }
      return
    }
    try {
      await this.#dispatch(message)
    } catch (error) {
      const appError = toAppError(error)
      if (appError.code === 'internal') this.#log.error('signaling request failed', { type: message.type, err: error })
      this.#replyError(message.id, appError.code, appError.message)
    }
  }

  /**
   * The socket closed without `leave`. With 1001 (the page went away: closed, reloaded, navigated)
   * whoever joined through it leaves, since nothing is left to resume; otherwise (a dropped
   * connection) it may resume within the grace period.
   */
  handleClose(code?: number): Promise<void> {
    this.#closed = true
    const participantId = this.#participantId
    this.#participantId = undefined
    const channel = this.#memberChannel
    if (participantId === undefined || channel === undefined) return Promise.resolve()
    if (code === CLOSE_GOING_AWAY) return this.#meeting.leave(participantId, 'signaling_closed')
    return this.#meeting.disconnected(participantId, channel)
  }

  #dispatch(message: ClientMessage): Promise<void> {
    switch (message.type) {
      case 'join':
        return this.#join(message)
      case 'resume':
        return this.#resume(message)
      case 'offer':
        return this.#offer(message)
      case 'answer':
        return this.#answer(message)
      case 'leave':
        return this.#leave(message)
      case 'set-preferred-size':
        return this.#setPreferredSize(message)
      case 'pin':
        return this.#done(message.id, (id) => this.#rooms.pin(this.#meeting.mediaOf(id), message.participantIds))
      case 'chat':
        return this.#done(message.id, (id) => this.#meeting.chat(id, message.text, message.to))
      case 'raise-hand':
        return this.#done(message.id, (id, actor) => this.#meeting.setHand(actor, this.#roomId(id), id, true))
      case 'lower-hand':
        return this.#done(message.id, (id, actor) => this.#meeting.setHand(actor, this.#roomId(id), message.participantId ?? id, false))
      case 'admit':
        return this.#done(message.id, (id, actor) => this.#meeting.admit(actor, this.#roomId(id), [message.participantId]))
      case 'admit-all':
        return this.#done(message.id, (id, actor) => this.#meeting.admit(actor, this.#roomId(id)))
      case 'deny':
        return this.#done(message.id, (id, actor) => this.#meeting.deny(actor, this.#roomId(id), [message.participantId]))
      case 'deny-all':
        return this.#done(message.id, (id, actor) => this.#meeting.deny(actor, this.#roomId(id)))
      case 'mute-track':
        return this.#done(message.id, (id, actor) => this.#meeting.muteTrack(actor, this.#roomId(id), message.trackId))
      case 'unmute-track':
        return this.#done(message.id, (id) => this.#meeting.unmuteTrack(id, message.trackId))
      case 'remove-participant':
        return this.#done(message.id, (id, actor) => this.#meeting.remove(actor, this.#roomId(id), message.participantId))
      case 'set-role':
        return this.#done(message.id, (id, actor) => this.#meeting.updatePermissions(actor, this.#roomId(id), message.participantId, { role: message.role }))
      case 'lock-room':
        return this.#done(message.id, (id, actor) => this.#meeting.setLocked(actor, this.#roomId(id), true))
      case 'unlock-room':
        return this.#done(message.id, (id, actor) => this.#meeting.setLocked(actor, this.#roomId(id), false))
      case 'start-recording':
        return this.#done(message.id, (id, actor) => this.#meeting.startRecording(actor, this.#roomId(id), message.mode))
      case 'stop-recording':
        return this.#done(message.id, (id, actor) => this.#meeting.stopRecording(actor, this.#roomId(id)))
      case 'create-breakouts':
        return this.#done(message.id, (id, actor) => this.#meeting.createBreakouts(actor, this.#roomId(id), message.groups))
      case 'move-to-breakout':
        return this.#done(message.id, (id, actor) => this.#meeting.moveToBreakout(actor, this.#roomId(id), message.participantId, message.groupId))
      case 'end-breakouts':
        return this.#done(message.id, (id, actor) => this.#meeting.endBreakouts(actor, this.#roomId(id)))
      default:
        return assertNever(message)
    }
  }

  async #join({ id, room, name, serverOffers }: JoinRequest): Promise<void> {
    if (this.#participantId !== undefined) throw new AppError('invalid_state', 'this connection already joined a room')
    const channel = this.#newMemberChannel()
    const result = await this.#meeting.join(this.#principal, room, name, channel, { serverOffers: serverOffers === true })
    this.#memberChannel = channel
    if (result.state === 'waiting') {
      this.#participantId = result.participantId
      this.#send({ type: 'waiting', id, participantId: result.participantId })
    } else {
      this.#participantId = result.snapshot.participantId
      this.#send({ type: 'joined', id, protocolVersion: PROTOCOL_VERSION, ...result.snapshot })
    }
    // Only now may events reach it: the reply is the first thing it hears.
    this.#meeting.release(this.#participantId)
    if (this.#closed) await this.#meeting.leave(this.#participantId, 'signaling_closed')
  }

  async #resume({ id, room, participantId, resumeId }: ResumeRequest): Promise<void> {
    if (this.#participantId !== undefined) throw new AppError('invalid_state', 'this connection already joined a room')
    const channel = this.#newMemberChannel()
    const { snapshot, subscriptions, media } = await this.#meeting.resume(this.#principal, room, participantId, resumeId, channel)
    this.#participantId = participantId
    this.#memberChannel = channel
    this.#send({ type: 'resumed', id, protocolVersion: PROTOCOL_VERSION, ...snapshot, subscriptions, ...(media ? { media } : {}) })
    this.#meeting.release(participantId)
    if (this.#closed) await this.#meeting.disconnected(participantId, channel)
  }

  /** The meeting's way to this socket; closing it from the server side ends the participation here. */
  #newMemberChannel(): MemberChannel {
    return {
      send: (event) => this.#send(event),
      close: (code, reason) => {
        this.#participantId = undefined
        this.#channel.close(code, reason)
      },
    }
  }

  async #offer({ id, sdp, sources }: OfferRequest): Promise<void> {
    const negotiated = await this.#meeting.negotiate(this.#joinedId(), sdp, sources)
    this.#send({ type: 'answer', id, sdp: negotiated.sdp, subscriptions: negotiated.subscriptions })
  }

  /** The answer to the server's offer; `subscriptions-changed` follows when the new m-lines carry tracks. */
  async #answer({ id, sdp }: AnswerRequest): Promise<void> {
    await this.#rooms.answer(this.#meeting.mediaOf(this.#joinedId()), sdp)
    this.#send({ type: 'done', id })
  }

  async #leave({ id }: LeaveRequest): Promise<void> {
    const participantId = this.#joinedId()
    this.#participantId = undefined
    await this.#meeting.leave(participantId, 'left')
    this.#send({ type: 'left', id })
  }

  async #setPreferredSize({ id, trackId, width, height }: SetPreferredSizeRequest): Promise<void> {
    await this.#rooms.setPreferredSize(this.#meeting.mediaOf(this.#joinedId()), trackId, width, height)
    this.#send({ type: 'done', id })
  }

  /** Runs a meeting-control request as this participant and replies `done`. */
  async #done(id: string, action: (participantId: ParticipantId, actor: Actor) => Promise<unknown>): Promise<void> {
    const participantId = this.#joinedId()
    await action(participantId, { kind: 'participant', participantId })
    this.#send({ type: 'done', id })
  }

  #joinedId(): ParticipantId {
    if (this.#participantId === undefined) throw new AppError('invalid_state', 'join a room first')
    return this.#participantId
  }

  #roomId(participantId: ParticipantId) {
    const record = this.#meeting.member(participantId)
    if (record === undefined) throw new AppError('invalid_state', 'join a room first')
    return record.roomId
  }

  #replyError(id: string | undefined, code: ErrorCode, message: string): void {
    this.#send(id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message })
  }

  #send(message: ServerMessage): void {
    if (this.#closed) return
    try {
      this.#channel.send(JSON.stringify(message))
    } catch (error) {
      this.#log.debug('signaling send failed', { err: error })
    }
  }
}

function assertNever(value: never): never {
  throw new AppError('invalid_message', `unknown message ${JSON.stringify(value)}`)
}
