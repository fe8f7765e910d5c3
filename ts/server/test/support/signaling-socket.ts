// A signaling socket for control-plane tests without a network: one person's SignalingSession on
// one node, with every message it was sent (parsed against the protocol) and every close.

import assert from 'node:assert/strict'
import { DEFAULT_GRANTS, type Role, type RoomId, type ServerMessage, ServerMessage as ServerMessageSchema } from '@conclave/protocol'
import type { Principal } from '../../src/auth/authenticator.js'
import type { MeetingService } from '../../src/rooms/meeting-service.js'
import type { RoomService } from '../../src/rooms/room-service.js'
import { SignalingSession } from '../../src/signaling/signaling-session.js'
import { quietLog } from './media-engines.js'

export class SignalingSocket {
  readonly sent: ServerMessage[] = []
  readonly closed: { code: number; reason: string }[] = []
  readonly session: SignalingSession
  #next = 0

  constructor(plane: { meeting: MeetingService; rooms: RoomService }, room: RoomId, identity: string, role: Role = 'guest') {
    const principal: Principal = { room, identity, name: identity, role, grants: DEFAULT_GRANTS, expiresAt: undefined, anonymous: false }
    this.session = new SignalingSession({
      meeting: plane.meeting,
      rooms: plane.rooms,
      principal,
      log: quietLog,
      channel: {
        send: (text) => this.sent.push(ServerMessageSchema.parse(JSON.parse(text))),
        close: (code, reason) => this.closed.push({ code, reason }),
      },
    })
  }

  /** Sends `message` with a fresh request id and resolves with its reply. */
  async request(message: Record<string, unknown>): Promise<ServerMessage> {
    const id = `r${++this.#next}`
    await this.session.handleFrame(JSON.stringify({ ...message, id }))
    const reply = this.sent.find((candidate) => 'id' in candidate && candidate.id === id)
    assert.ok(reply, `a reply to ${JSON.stringify(message)}`)
    return reply
  }

  events<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.sent.filter((message): message is Extract<ServerMessage, { type: T }> => message.type === type)
  }
}
