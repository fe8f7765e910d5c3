// The signaling WebSocket from the browser: requests with ids and their replies, plus server events.

import {
  type AnswerReply,
  type ClientMessage,
  type ErrorCode,
  type JoinedReply,
  type LeftReply,
  type MeetingRequest,
  type ParticipantId,
  type WaitingReply,
  type DoneReply,
  PROTOCOL_VERSION,
  type ResumedReply,
  type ServerEvent,
  type ServerReply,
  type TrackId,
  type TrackSource,
  parseServerMessage,
} from '@conclave/protocol'
import { Emitter } from './emitter.js'

/** A meeting-control request without its id (the client assigns one). */
export type ControlRequest = MeetingRequest extends infer M ? (M extends unknown ? Omit<M, 'id'> : never) : never

/** A request the server refused, with the protocol's stable code. */
export class SignalingError extends Error {
  override readonly name = 'SignalingError'

  constructor(
    readonly code: ErrorCode | 'connection_closed' | 'denied',
    message: string,
  ) {
    super(message)
  }
}

type SignalingEvents = {
  event: ServerEvent
  closed: { code: number; reason: string }
}

interface Pending {
  resolve(reply: ServerReply): void
  reject(error: Error): void
}

export class SignalingClient extends Emitter<SignalingEvents> {
  readonly #socket: WebSocket
  readonly #pending = new Map<string, Pending>()
  #nextId = 1

  private constructor(socket: WebSocket) {
    super()
    this.#socket = socket
    socket.addEventListener('message', (event) => this.#receive(event.data))
    socket.addEventListener('close', (event) => {
      for (const pending of this.#pending.values()) {
        pending.reject(new SignalingError('connection_closed', `signaling closed (${event.code} ${event.reason})`))
      }
      this.#pending.clear()
      this.emit('closed', { code: event.code, reason: event.reason })
    })
  }

  /** Opens the socket; `url` is the server's `/ws` URL (a token goes in `?token=`). */
  static connect(url: string | URL): Promise<SignalingClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      const fail = () => reject(new SignalingError('connection_closed', 'could not connect to the signaling server'))
      socket.addEventListener('error', fail, { once: true })
      socket.addEventListener(
        'open',
        () => {
          socket.removeEventListener('error', fail)
          resolve(new SignalingClient(socket))
        },
        { once: true },
      )
    })
  }

  /** Joins a room: `joined`, or `waiting` in a room with a waiting room (then `admitted` or `denied` follows as an event). */
  join(room: string, name: string, { serverOffers = false }: { serverOffers?: boolean } = {}): Promise<JoinedReply | WaitingReply> {
    const message = { type: 'join', id: this.#id(), protocolVersion: PROTOCOL_VERSION, room, name, ...(serverOffers ? { serverOffers } : {}) }
    return this.#request(message as ClientMessage, ['joined', 'waiting'])
  }

  /** Answers the server's `offer` event (joined with `serverOffers`). */
  answer(sdp: string): Promise<DoneReply> {
    return this.#request({ type: 'answer', id: this.#id(), sdp }, 'done')
  }

  /** `sources` names what sending m-lines carry, by mid, when not their kind's default (`screen`). */
  /** Takes back a session whose socket dropped (`resumeId` from its snapshot). */
  resume(room: string, participantId: string, resumeId: string): Promise<ResumedReply> {
    return this.#request({ type: 'resume', id: this.#id(), protocolVersion: PROTOCOL_VERSION, room, participantId, resumeId } as ClientMessage, 'resumed')
  }

  offer(sdp: string, sources: Record<string, TrackSource> = {}): Promise<AnswerReply> {
    const named = Object.keys(sources).length > 0
    return this.#request({ type: 'offer', id: this.#id(), sdp, ...(named ? { sources } : {}) }, 'answer')
  }

  leave(): Promise<LeftReply> {
    return this.#request({ type: 'leave', id: this.#id() }, 'left')
  }

  /** Tells the server the size (device pixels) at which the remote video `trackId` is drawn. */
  setPreferredSize(trackId: TrackId, width: number, height: number): Promise<DoneReply> {
    return this.#request({ type: 'set-preferred-size', id: this.#id(), trackId, width, height }, 'done')
  }

  /** Pins the cameras of `participantIds` (replacing earlier pins): always received. */
  pin(participantIds: readonly ParticipantId[]): Promise<DoneReply> {
    return this.#request({ type: 'pin', id: this.#id(), participantIds: [...participantIds] }, 'done')
  }

  close(): void {
    this.#socket.close(1000, 'bye')
  }

  #id(): string {
    return String(this.#nextId++)
  }

  /** A meeting-control request (chat, raise-hand, admit, mute-track, ...), answered by `done`. */
  control(request: ControlRequest): Promise<DoneReply> {
    return this.#request({ ...request, id: this.#id() } as ClientMessage, 'done')
  }

  #request<T extends ServerReply['type']>(message: ClientMessage, expected: T | readonly T[]): Promise<Extract<ServerReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      // A closed socket drops what is sent and never closes again: nothing would ever answer.
      if (this.#socket.readyState !== WebSocket.OPEN) {
        reject(new SignalingError('connection_closed', 'signaling is closed'))
        return
      }
      this.#pending.set(message.id, {
        resolve: (reply) => {
          if (reply.type === 'error') reject(new SignalingError(reply.code, reply.message))
          else if (reply.type === expected || (Array.isArray(expected) && expected.includes(reply.type))) resolve(reply as Extract<ServerReply, { type: T }>)
          else reject(new SignalingError('invalid_message', `expected ${expected}, got ${reply.type}`))
        },
        reject,
      })
      this.#socket.send(JSON.stringify(message))
    })
  }

  #receive(data: unknown): void {
    if (typeof data !== 'string') return
    const parsed = parseServerMessage(data)
    if (!parsed.ok) {
      console.warn('conclave: unreadable server message', parsed.problem.message)
      return
    }
    const message = parsed.message
    switch (message.type) {
      case 'joined':
      case 'waiting':
      case 'resumed':
      case 'answer':
      case 'left':
      case 'done':
      case 'error': {
        const pending = message.id === undefined ? undefined : this.#pending.get(message.id)
        if (pending === undefined) {
          if (message.type === 'error') console.warn('conclave: server error', message.code, message.message)
          return
        }
        this.#pending.delete(message.id as string)
        pending.resolve(message)
        return
      }
      default:
        this.emit('event', message)
    }
  }
}
