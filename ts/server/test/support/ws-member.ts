// A member joined over a server's real WebSocket, for tests of several instances: everything it
// was sent (parsed against the protocol, with when), and a way to send more.

import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { PROTOCOL_VERSION, type Role, type ServerMessage, ServerMessage as ServerMessageSchema } from '@conclave/protocol'
import { accessToken } from './control-plane.js'
import { eventually } from './eventually.js'

export interface WsMember {
  participantId: string
  /** Every message, with `performance.now()` at arrival. */
  received: Array<{ at: number; message: ServerMessage }>
  readonly messages: ServerMessage[]
  of(type: ServerMessage['type']): ServerMessage[]
  send(message: object): void
  /** Tracks it was shown: in its snapshot or published since, less those ended. */
  tracks(): Set<string>
  close(): void
}

/** Joins `room` on the server at `url` (http) as `identity`, with a token signed by `secret`. */
export async function wsMember(url: string, secret: string, room: string, identity: string, role: Role = 'guest'): Promise<WsMember> {
  const token = await accessToken(secret, { room, identity, name: identity, role })
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`)
  const received: WsMember['received'] = []
  socket.on('message', (data: Buffer) => received.push({ at: performance.now(), message: ServerMessageSchema.parse(JSON.parse(data.toString())) }))
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  // A server killed under it must not crash the test with an unhandled error.
  socket.on('error', () => undefined)
  const send = (message: object) => socket.send(JSON.stringify(message))
  send({ type: 'join', id: 'j1', protocolVersion: PROTOCOL_VERSION, room })
  const joined = await eventually(`${identity} to be joined`, () => received.find(({ message }) => message.type === 'joined')?.message)
  assert.equal(joined.type, 'joined')
  return {
    participantId: joined.type === 'joined' ? joined.participantId : '',
    received,
    get messages() {
      return received.map(({ message }) => message)
    },
    of: (type) => received.map(({ message }) => message).filter((message) => message.type === type),
    send,
    tracks() {
      const tracks = new Set<string>()
      for (const { message } of received) {
        if (message.type === 'joined') for (const track of message.tracks) tracks.add(track.trackId)
        if (message.type === 'track-published') tracks.add(message.track.trackId)
        if (message.type === 'track-ended') tracks.delete(message.trackId)
      }
      return tracks
    },
    close: () => socket.close(),
  }
}
