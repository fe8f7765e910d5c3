import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MAX_CHAT_CHARS } from './meeting.js'
import { PROTOCOL_VERSION, ServerMessage, parseClientMessage } from './signaling.js'

test('every meeting-control request parses with its fields', () => {
  const requests = [
    { type: 'chat', id: '1', text: 'hi' },
    { type: 'chat', id: '1', text: 'psst', to: 'p-b' },
    { type: 'raise-hand', id: '1' },
    { type: 'lower-hand', id: '1', participantId: 'p-b' },
    { type: 'admit', id: '1', participantId: 'p-b' },
    { type: 'admit-all', id: '1' },
    { type: 'deny', id: '1', participantId: 'p-b' },
    { type: 'deny-all', id: '1' },
    { type: 'mute-track', id: '1', trackId: 'track-1' },
    { type: 'unmute-track', id: '1', trackId: 'track-1' },
    { type: 'remove-participant', id: '1', participantId: 'p-b' },
    { type: 'set-role', id: '1', participantId: 'p-b', role: 'cohost' },
    { type: 'lock-room', id: '1' },
    { type: 'unlock-room', id: '1' },
  ]
  for (const request of requests) assert.ok(parseClientMessage(JSON.stringify(request)).ok, request.type)
})

test('chat text is trimmed, never empty, at most MAX_CHAT_CHARS; roles cannot be set to host', () => {
  const chat = parseClientMessage(JSON.stringify({ type: 'chat', id: '1', text: '  hi  ' }))
  assert.ok(chat.ok && chat.message.type === 'chat' && chat.message.text === 'hi')
  assert.ok(!parseClientMessage(JSON.stringify({ type: 'chat', id: '1', text: '   ' })).ok)
  assert.ok(!parseClientMessage(JSON.stringify({ type: 'chat', id: '1', text: 'x'.repeat(MAX_CHAT_CHARS + 1) })).ok)
  assert.ok(!parseClientMessage(JSON.stringify({ type: 'set-role', id: '1', participantId: 'p-b', role: 'host' })).ok)
})

test('join may leave the name out (the token carries it)', () => {
  assert.ok(parseClientMessage(JSON.stringify({ type: 'join', id: '1', protocolVersion: PROTOCOL_VERSION, room: 'daily' })).ok)
})

test('a joined reply and an admitted event carry the same snapshot', () => {
  const snapshot = {
    participantId: 'p-a',
    name: 'Ada',
    role: 'host',
    grants: { canPublish: true, canSubscribe: true, canPublishSources: ['camera'], canChat: true, hidden: false, recorder: false },
    room: { waitingRoom: true, locked: false },
    participants: [{ participantId: 'p-b', name: 'Bob', role: 'guest', handRaised: true }],
    tracks: [{ trackId: 'track-1', participantId: 'p-b', kind: 'video', source: 'camera', muted: true }],
    waiting: [{ participantId: 'p-c', name: 'Cy', since: 1 }],
  }
  assert.ok(ServerMessage.safeParse({ type: 'joined', id: '1', protocolVersion: PROTOCOL_VERSION, ...snapshot }).success)
  assert.ok(ServerMessage.safeParse({ type: 'admitted', ...snapshot }).success)
  assert.ok(ServerMessage.safeParse({ type: 'waiting', id: '1', participantId: 'p-a' }).success)
})
