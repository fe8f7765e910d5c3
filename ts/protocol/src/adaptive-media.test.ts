import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseServerMessage } from './signaling.js'

test('set-encodings and active-speaker are server events', () => {
  const encodings = parseServerMessage(JSON.stringify({ type: 'set-encodings', trackId: 'track-4', mid: '1', active: [true, false, false] }))
  assert.ok(encodings.ok)
  assert.deepEqual(encodings.message, { type: 'set-encodings', trackId: 'track-4', mid: '1', active: [true, false, false] })
  const speaker = parseServerMessage(JSON.stringify({ type: 'active-speaker', participantId: 'p-abc' }))
  assert.ok(speaker.ok)
  assert.ok(parseServerMessage(JSON.stringify({ type: 'active-speaker' })).ok, 'nobody holds the floor')
})

test('set-encodings without encodings or with non-boolean entries is malformed', () => {
  for (const active of [[], [1, 0], 'all']) {
    assert.ok(!parseServerMessage(JSON.stringify({ type: 'set-encodings', trackId: 'track-4', mid: '1', active })).ok, JSON.stringify(active))
  }
})
