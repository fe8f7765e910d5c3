// One signaling WebSocket: reads requests, calls the rooms domain, replies and forwards room events.
// Bad frames get a typed `error` reply and the socket stays open.

import {
  type ClientMessage,
  type ErrorCode,
  type JoinRequest,
  type LeaveRequest,
  type OfferRequest,
  PROTOCOL_VERSION,
  type ServerMessage,
  parseClientMessage,
} from '@conclave/protocol'
import { AppError, toAppError } from '../app-error.js'
import { type Grant, authorizeRoom } from '../auth/authenticator.js'
import type { Logger } from '../log.js'
import type { Participant } from '../rooms/participant.js'
import type { RoomService } from '../rooms/room-service.js'
import { RateLimiter } from './rate-limiter.js'

/** The socket as the session needs it. */
export interface SignalingChannel {
  send(text: string): void
  close(code: number, reason: string): void
}

export interface SignalingSessionOptions {
  rooms: RoomService
  grant: Grant
  channel: SignalingChannel
  log: Logger
  /** Messages allowed at once before throttling. Default 40. */
  burst?: number
  /** Sustained messages per second. Default 20. */
  messagesPerSecond?: number
  now?: () => number
}

/** WebSocket close code sent when the server ends a participation (e.g. its media transport died). */
export const CLOSE_MEDIA_LOST = 4001

export class SignalingSession {
  readonly #rooms: RoomService
  readonly #grant: Grant
  readonly #channel: SignalingChannel
  readonly #log: Logger
  readonly #limiter: RateLimiter
  readonly #now: () => number
  #participant: Participant | undefined
  #closed = false

  constructor({ rooms, grant, channel, log, burst = 40, messagesPerSecond = 20, now = Date.now }: SignalingSessionOptions) {
    this.#rooms = rooms
    this.#grant = grant
    this.#channel = channel
    this.#log = log
    this.#now = now
    this.#limiter = new RateLimiter(burst, messagesPerSecond, now())
  }

  get participant(): Participant | undefined {
    return this.#participant
  }

  /** Handles one frame. Never throws; every failure becomes an `error` reply. */
  async handleFrame(data: string | ArrayBuffer): Promise<void> {
    if (this.#closed) return
    if (typeof data !== 'string') {
      this.#send({ type: 'error', code: 'invalid_message', message: 'binary frames are not part of the protocol' })
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

  /** The socket closed: whoever joined through it leaves. */
  handleClose(): Promise<void> {
    this.#closed = true
    const participant = this.#participant
    this.#participant = undefined
    return participant === undefined ? Promise.resolve() : this.#rooms.leave(participant, 'signaling_closed')
  }

  #dispatch(message: ClientMessage): Promise<void> {
    switch (message.type) {
      case 'join':
        return this.#join(message)
      case 'offer':
        return this.#offer(message)
      case 'leave':
        return this.#leave(message)
      default:
        return assertNever(message)
    }
  }

  async #join({ id, room, name }: JoinRequest): Promise<void> {
    if (this.#participant !== undefined) throw new AppError('invalid_state', 'this connection already joined a room')
    authorizeRoom(this.#grant, room)
    const joined = this.#rooms.join(room, name, {
      send: (event) => this.#send(event),
      end: (reason) => {
        this.#participant = undefined
        this.#channel.close(CLOSE_MEDIA_LOST, reason)
      },
    })
    this.#participant = joined.participant
    this.#send({
      type: 'joined',
      id,
      protocolVersion: PROTOCOL_VERSION,
      participantId: joined.participant.id,
      participants: joined.participants,
      tracks: joined.tracks,
    })
  }

  async #offer({ id, sdp }: OfferRequest): Promise<void> {
    const participant = this.#joined()
    const negotiated = await this.#rooms.negotiate(participant, sdp)
    this.#send({ type: 'answer', id, sdp: negotiated.sdp, subscriptions: negotiated.subscriptions })
  }

  async #leave({ id }: LeaveRequest): Promise<void> {
    const participant = this.#joined()
    this.#participant = undefined
    await this.#rooms.leave(participant, 'left')
    this.#send({ type: 'left', id })
  }

  #joined(): Participant {
    if (this.#participant === undefined) throw new AppError('invalid_state', 'join a room first')
    return this.#participant
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
