import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import { DEFAULT_GRANTS, PROTOCOL_VERSION, type RoomId, type ServerMessage, ServerMessage as ServerMessageSchema } from '@conclave/protocol'
import type { Principal } from '../auth/authenticator.js'
import { createControlPlane } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import type { MeetingService } from '../rooms/meeting-service.js'
import type { RoomService } from '../rooms/room-service.js'
import { SignalingSession, type SignalingSessionOptions } from './signaling-session.js'

function channel() {
  const sent: ServerMessage[] = []
  const closed: { code: number; reason: string }[] = []
  return {
    sent,
    closed,
    send: (text: string) => sent.push(ServerMessageSchema.parse(JSON.parse(text))),
    close: (code: number, reason: string) => closed.push({ code, reason }),
  }
}

const join = (id: string, room = 'daily') => JSON.stringify({ type: 'join', id, protocolVersion: PROTOCOL_VERSION, room, name: 'Ada' })

export function principal(overrides: Partial<Principal> = {}): Principal {
  return { room: undefined, identity: `id-${Math.random()}`, name: undefined, role: 'guest', grants: DEFAULT_GRANTS, expiresAt: undefined, anonymous: true, ...overrides }
}

describe('SignalingSession', () => {
  let media: FakeMediaEngine
  let rooms: RoomService
  let meeting: MeetingService

  beforeEach(() => {
    media = new FakeMediaEngine()
    ;({ rooms, meeting } = createControlPlane(media))
  })

  function open(grantRoom?: string, options: Partial<SignalingSessionOptions> = {}) {
    const socket = channel()
    const session = new SignalingSession({
      meeting,
      rooms,
      principal: principal({ room: grantRoom as RoomId | undefined }),
      channel: socket,
      log: quietLog,
      ...options,
    })
    return { socket, session }
  }

  test('text that is not JSON gets an invalid_message error and the session stays usable', async () => {
    const { socket, session } = open()
    await session.handleFrame('{oops')
    assert.deepEqual(socket.sent, [{ type: 'error', code: 'invalid_message', message: 'message is not valid JSON' }])
    await session.handleFrame(join('2'))
    assert.equal(socket.sent[1]?.type, 'joined')
    assert.deepEqual(socket.closed, [])
  })

  test('an unknown type or a schema failure is an invalid_message error echoing the id', async () => {
    const { socket, session } = open()
    await session.handleFrame(JSON.stringify({ type: 'teleport', id: 'a' }))
    await session.handleFrame(JSON.stringify({ type: 'join', id: 'b', protocolVersion: 1, room: 'no spaces', name: 'x' }))
    assert.deepEqual(
      socket.sent.map((message) => (message.type === 'error' ? [message.id, message.code] : message.type)),
      [
        ['a', 'invalid_message'],
        ['b', 'invalid_message'],
      ],
    )
  })

  test('a binary frame is an invalid_message error', async () => {
    const { socket, session } = open()
    await session.handleFrame(new ArrayBuffer(4))
    assert.equal(socket.sent[0]?.type === 'error' && socket.sent[0].code, 'invalid_message')
  })

  test('an offer before join is refused with invalid_state', async () => {
    const { socket, session } = open()
    await session.handleFrame(JSON.stringify({ type: 'offer', id: '1', sdp: 'v=0\r\n' }))
    assert.deepEqual(socket.sent, [{ type: 'error', id: '1', code: 'invalid_state', message: 'join a room first' }])
  })

  test('joining a room the token is not for is forbidden', async () => {
    const { socket, session } = open('other')
    await session.handleFrame(join('1', 'daily'))
    assert.equal(socket.sent[0]?.type === 'error' && socket.sent[0].code, 'forbidden')
    assert.equal(rooms.roomCount, 0)
  })

  test('join, offer and leave are answered in order with their ids', async () => {
    const { socket, session } = open()
    await session.handleFrame(join('1'))
    await session.handleFrame(JSON.stringify({ type: 'offer', id: '2', sdp: 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n' }))
    await session.handleFrame(JSON.stringify({ type: 'leave', id: '3' }))
    assert.deepEqual(
      socket.sent.map((message) => [message.type, 'id' in message ? message.id : undefined]),
      [
        ['joined', '1'],
        ['answer', '2'],
        ['left', '3'],
      ],
    )
    assert.equal((await media.stats()).peers, 0)
  })

  test('a preferred size is answered done with its id, or refused for a track not received', async () => {
    const publisher = open()
    await publisher.session.handleFrame(join('1'))
    await publisher.session.handleFrame(JSON.stringify({ type: 'offer', id: '2', sdp: 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n' }))
    await eventually('the track to be published', () => rooms.room('daily' as RoomId)?.tracks.size === 1)
    const viewer = open()
    await viewer.session.handleFrame(join('1'))
    const size = (id: string, trackId: string) => JSON.stringify({ type: 'set-preferred-size', id, trackId, width: 160, height: 90 })
    await viewer.session.handleFrame(size('2', 'track-1'))
    await viewer.session.handleFrame(JSON.stringify({ type: 'offer', id: '3', sdp: 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\n' }))
    await viewer.session.handleFrame(size('4', 'track-1'))
    await viewer.session.handleFrame(size('5', 'track-9'))
    assert.deepEqual(
      viewer.socket.sent.map((message) => (message.type === 'error' ? [message.id, message.code] : [message.type, 'id' in message ? message.id : undefined])),
      [
        ['joined', '1'],
        ['2', 'not_subscribed'],
        ['answer', '3'],
        ['done', '4'],
        ['5', 'track_not_found'],
      ],
    )
  })

  test('a pin is answered done with its id; more than MAX_PINNED ids are refused as invalid', async () => {
    const { socket, session } = open()
    await session.handleFrame(join('1'))
    const pin = (id: string, count: number) => JSON.stringify({ type: 'pin', id, participantIds: Array.from({ length: count }, (_, i) => `p-${i}`) })
    await session.handleFrame(pin('2', 2))
    await session.handleFrame(pin('3', 0))
    await session.handleFrame(pin('4', 10))
    assert.deepEqual(
      socket.sent.map((message) => (message.type === 'error' ? [message.type, message.code] : [message.type, 'id' in message ? message.id : undefined])),
      [
        ['joined', '1'],
        ['done', '2'],
        ['done', '3'],
        ['error', 'invalid_message'],
      ],
    )
  })

  test('a second join on one connection is refused', async () => {
    const { socket, session } = open()
    await session.handleFrame(join('1'))
    await session.handleFrame(join('2'))
    assert.equal(socket.sent[1]?.type === 'error' && socket.sent[1].code, 'invalid_state')
  })

  test('an engine error on an offer is passed on with its code', async () => {
    const { socket, session } = open()
    await session.handleFrame(join('1'))
    await session.handleFrame(JSON.stringify({ type: 'offer', id: '2', sdp: 'not sdp' }))
    assert.equal(socket.sent[1]?.type === 'error' && socket.sent[1].code, 'invalid_sdp')
  })

  test('a flood of messages is throttled with rate_limited', async () => {
    let now = 0
    const { socket, session } = open(undefined, { burst: 3, messagesPerSecond: 1, now: () => now })
    for (let i = 0; i < 5; i++) await session.handleFrame(JSON.stringify({ type: 'leave', id: String(i) }))
    const codes = socket.sent.map((message) => (message.type === 'error' ? message.code : message.type))
    assert.deepEqual(codes, ['invalid_state', 'invalid_state', 'invalid_state', 'rate_limited', 'rate_limited'])
    now = 1000
    await session.handleFrame(JSON.stringify({ type: 'leave', id: 'later' }))
    const last = socket.sent.at(-1)
    assert.ok(last?.type === 'error' && last.code === 'invalid_state', 'a token came back after a second')
  })

  test('a client that keeps flooding after rate_limited is disconnected', async () => {
    const { socket, session } = open(undefined, { burst: 2, messagesPerSecond: 1, maxThrottled: 5, now: () => 0 })
    await session.handleFrame(join('1'))
    for (let i = 0; i < 10; i++) await session.handleFrame(JSON.stringify({ type: 'raise-hand', id: String(i) }))
    assert.deepEqual(socket.closed, [{ code: 1008, reason: 'rate limit exceeded' }])
    assert.equal(socket.sent.filter((message) => message.type === 'error' && message.code === 'rate_limited').length, 5)
    await eventually('the flooder to have left', () => rooms.roomCount === 0)
  })

  test('closing the socket makes the member leave when resuming is off', async () => {
    ;({ rooms, meeting } = createControlPlane(media, { resumeGraceMs: 0 }))
    const { session } = open()
    await session.handleFrame(join('1'))
    assert.equal(rooms.roomCount, 1)
    await session.handleClose()
    await eventually('the room to be gone', () => rooms.roomCount === 0)
  })
})
