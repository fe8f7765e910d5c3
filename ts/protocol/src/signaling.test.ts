import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ErrorCode } from './errors.js'
import { PROTOCOL_VERSION, ServerMessage, parseClientMessage, parseServerMessage } from './signaling.js'

describe('client messages', () => {
  test('a join with the current protocol version, a room and a name is accepted', () => {
    const result = parseClientMessage(
      JSON.stringify({ type: 'join', id: '1', protocolVersion: PROTOCOL_VERSION, room: 'daily', name: ' Ada ' }),
    )
    assert.ok(result.ok)
    assert.equal(result.message.type, 'join')
    if (result.message.type === 'join') assert.equal(result.message.name, 'Ada')
  })

  test('a join from another protocol version is rejected with the request id', () => {
    const result = parseClientMessage(JSON.stringify({ type: 'join', id: '7', protocolVersion: 1, room: 'r', name: 'a' }))
    assert.ok(!result.ok)
    assert.equal(result.problem.id, '7')
    assert.match(result.problem.message, /protocolVersion/)
  })

  test('a room name with a slash or too long is rejected', () => {
    for (const room of ['a/b', '', 'x'.repeat(65)]) {
      const result = parseClientMessage(JSON.stringify({ type: 'join', id: '1', protocolVersion: PROTOCOL_VERSION, room, name: 'a' }))
      assert.ok(!result.ok, room)
    }
  })

  test('text that is not JSON is a problem without an id', () => {
    const result = parseClientMessage('{nope')
    assert.deepEqual(result, { ok: false, problem: { id: undefined, message: 'message is not valid JSON' } })
  })

  test('an unknown type is a problem that keeps the id', () => {
    const result = parseClientMessage(JSON.stringify({ type: 'dance', id: 'x' }))
    assert.ok(!result.ok)
    assert.equal(result.problem.id, 'x')
  })

  test('JSON that is not an object is a problem, not a crash', () => {
    for (const text of ['null', '42', '"join"', '[]']) assert.ok(!parseClientMessage(text).ok, text)
  })

  test('an offer needs a non-empty sdp', () => {
    assert.ok(!parseClientMessage(JSON.stringify({ type: 'offer', id: '1', sdp: '' })).ok)
    assert.ok(parseClientMessage(JSON.stringify({ type: 'offer', id: '1', sdp: 'v=0\r\n' })).ok)
  })

  test('a preferred size names a track and gives whole non-negative pixels', () => {
    const ok = { type: 'set-preferred-size', id: '4', trackId: 'track-1', width: 160, height: 90 }
    const result = parseClientMessage(JSON.stringify(ok))
    assert.ok(result.ok)
    assert.deepEqual(result.message, ok)
    assert.ok(parseClientMessage(JSON.stringify({ ...ok, width: 0, height: 0 })).ok, 'a hidden video is 0x0')
    for (const bad of [{ height: -1 }, { width: 1.5 }, { height: 20_000 }, { trackId: '' }, { width: undefined }]) {
      const parsed = parseClientMessage(JSON.stringify({ ...ok, ...bad }))
      assert.ok(!parsed.ok, JSON.stringify(bad))
      assert.equal(parsed.problem.id, '4')
    }
  })

  test('a leave needs only its id', () => {
    assert.ok(parseClientMessage(JSON.stringify({ type: 'leave', id: '1' })).ok)
  })
})

describe('server messages', () => {
  test('an answer carries the mid of every subscription', () => {
    const answer = {
      type: 'answer',
      id: '2',
      sdp: 'v=0\r\n',
      subscriptions: [{ mid: '2', trackId: 'track-1', participantId: 'p-a', kind: 'video' }],
    }
    const result = parseServerMessage(JSON.stringify(answer))
    assert.ok(result.ok)
    assert.deepEqual(result.message, answer)
  })

  test('an error without an id is valid, with an unknown code it is not', () => {
    assert.ok(ServerMessage.safeParse({ type: 'error', code: 'invalid_message', message: 'x' }).success)
    assert.ok(!ServerMessage.safeParse({ type: 'error', code: 'oops', message: 'x' }).success)
  })

  test('events in the past tense parse', () => {
    const events = [
      { type: 'participant-joined', participant: { participantId: 'p-1', name: 'Ada' } },
      { type: 'participant-left', participantId: 'p-1' },
      { type: 'track-published', track: { trackId: 'track-1', participantId: 'p-1', kind: 'audio' } },
      { type: 'track-ended', trackId: 'track-1' },
    ]
    for (const event of events) assert.ok(ServerMessage.safeParse(event).success, event.type)
  })

  test('error codes include the engine codes and the control plane codes', () => {
    for (const code of ['invalid_sdp', 'no_free_slot', 'worker_closed', 'unauthenticated', 'rate_limited']) {
      assert.ok(ErrorCode.safeParse(code).success, code)
    }
  })
})
