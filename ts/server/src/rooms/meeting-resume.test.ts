import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { PROTOCOL_VERSION } from '@conclave/protocol'
import { MemoryEventBus } from '../cluster/event-bus.js'
import { createControlPlane } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { type Member, PUBLISH, type Plane, RECEIVE, ROOM, Socket, codeOf, join, resume, stateSeen } from '../../test/support/resume-fixtures.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'

describe('resuming a session after its socket dropped', () => {
  let media: FakeMediaEngine
  let plane: Plane

  beforeEach(() => {
    media = new FakeMediaEngine()
    plane = createControlPlane(media, { resumeGraceMs: 10_000 })
  })

  afterEach(async () => {
    await plane.close()
  })

  async function published(member: Member): Promise<void> {
    await member.socket.request({ type: 'offer', sdp: PUBLISH })
    await eventually('the tracks to be recorded', async () => (await plane.meeting.getParticipant(ROOM, member.id)).tracks.length === 2)
  }

  test('a dropped socket leaves the member reconnecting: the others see that, not a leave, and its media stays', async () => {
    const ada = await join(plane, 'ada')
    const bob = await join(plane, 'bob')
    await published(ada)
    await bob.socket.request({ type: 'offer', sdp: RECEIVE })
    const before = await media.stats()
    assert.equal(before.subscriptions, 2)

    await ada.socket.session.handleClose()
    await eventually('Bob to see Ada reconnecting', () => stateSeen(bob.socket, ada.id).includes('reconnecting'))
    assert.equal(bob.socket.events('participant-left').length, 0)
    assert.equal(bob.socket.events('track-ended').length, 0)
    assert.deepEqual(await media.stats(), before, 'peers and subscriptions stay in the engine')
    assert.equal((await plane.meeting.getParticipant(ROOM, ada.id)).tracks.length, 2)
  })

  test('resume on a new socket gets the room now with its subscriptions by mid, and events flow there', async () => {
    const ada = await join(plane, 'ada')
    const bob = await join(plane, 'bob')
    await published(ada)
    const answer = await bob.socket.request({ type: 'offer', sdp: RECEIVE })
    assert.ok(answer.type === 'answer')

    await bob.socket.session.handleClose()
    await eventually('Ada to see Bob reconnecting', () => stateSeen(ada.socket, bob.id).includes('reconnecting'))
    const again = new Socket(plane, 'bob')
    const resumed = await resume(again, bob)
    assert.ok(resumed.type === 'resumed', JSON.stringify(resumed))
    assert.equal(resumed.participantId, bob.id)
    assert.deepEqual(resumed.participants.map((participant) => participant.participantId), [ada.id])
    assert.equal(resumed.tracks.length, 2)
    assert.deepEqual(resumed.subscriptions, answer.subscriptions, 'the same m-lines carry the same tracks')
    await eventually('Ada to see Bob back', () => stateSeen(ada.socket, bob.id).at(-1) === 'active')

    assert.equal(codeOf(await ada.socket.request({ type: 'chat', text: 'still there?' })), 'done')
    await eventually('the chat to reach the new socket', () => again.events('chat-posted').length === 1)
    assert.equal(bob.socket.events('chat-posted').length, 0, 'nothing goes to the dropped socket')
    assert.equal(codeOf(await again.request({ type: 'raise-hand' })), 'done', 'requests work on the new socket')
  })

  test('a wrong resume id, another identity or a second resume on the same socket are refused', async () => {
    const ada = await join(plane, 'ada')
    await ada.socket.session.handleClose()
    assert.equal(codeOf(await resume(new Socket(plane, 'ada'), ada, 'A'.repeat(22))), 'resume_failed')
    assert.equal(codeOf(await resume(new Socket(plane, 'mallory'), ada)), 'resume_failed', 'the id alone does not do for another identity')
    assert.equal(codeOf(await resume(new Socket(plane, 'ada'), ada, 'short')), 'invalid_message')
    const again = new Socket(plane, 'ada')
    assert.equal(codeOf(await resume(again, ada)), 'resumed')
    assert.equal(codeOf(await resume(again, ada)), 'invalid_state')
  })

  test('a resume while the old socket is still open takes over: the old one is closed with 4006', async () => {
    const ada = await join(plane, 'ada')
    const again = new Socket(plane, 'ada')
    assert.equal(codeOf(await resume(again, ada)), 'resumed')
    assert.deepEqual(ada.socket.closed, [{ code: 4006, reason: 'resumed on another connection' }])
    // The old socket's close arrives late: it must not put the session back to reconnecting.
    await ada.socket.session.handleClose()
    assert.equal(plane.meeting.member(ada.id)?.connection, 'connected')
    assert.equal(codeOf(await again.request({ type: 'raise-hand' })), 'done')
  })

  test('after the grace period the member leaves as with leave, and its resume gets session_expired', async () => {
    await plane.close()
    plane = createControlPlane(media, { resumeGraceMs: 50 })
    const ada = await join(plane, 'ada')
    const bob = await join(plane, 'bob')
    await ada.socket.request({ type: 'offer', sdp: PUBLISH })
    await bob.socket.request({ type: 'offer', sdp: RECEIVE })
    await eventually('Bob to hear of the tracks', () => bob.socket.events('track-published').length === 2)

    await ada.socket.session.handleClose()
    await eventually('Bob to see Ada leave', () => bob.socket.events('participant-left').some((event) => event.participantId === ada.id))
    await eventually('her tracks to end for Bob', () => bob.socket.events('track-ended').length === 2)
    assert.equal((await media.stats()).peers, 1, 'her peer is closed')
    assert.equal(codeOf(await resume(new Socket(plane, 'ada'), ada)), 'session_expired')
  })

  test('a socket closed with 1001 (the page went away) leaves at once: nothing is left to resume', async () => {
    const ada = await join(plane, 'ada')
    const bob = await join(plane, 'bob')
    await ada.socket.session.handleClose(1001)
    await eventually('Bob to see Ada leave', () => bob.socket.events('participant-left').some((event) => event.participantId === ada.id))
    assert.deepEqual(stateSeen(bob.socket, ada.id), [], 'never reconnecting')
    assert.equal(codeOf(await resume(new Socket(plane, 'ada'), ada)), 'session_expired')
  })

  test('a socket that drops while waiting leaves at once', async () => {
    await plane.meeting.createRoom({ room: ROOM, waitingRoom: true, locked: false, emptyTimeoutSeconds: 60 })
    const guest = new Socket(plane, 'guest')
    assert.equal(codeOf(await guest.request({ type: 'join', protocolVersion: PROTOCOL_VERSION, room: ROOM })), 'waiting')
    await guest.session.handleClose()
    await eventually('the waiting room to be empty', async () => (await plane.meeting.listWaiting(ROOM)).length === 0)
  })

  test('another node on the same store takes the session over with a new peer (see session-migration.test.ts)', async () => {
    const store = new MemoryRoomStore()
    const bus = new MemoryEventBus()
    const first = createControlPlane(media, { store, bus, nodeId: 'node-a', resumeGraceMs: 10_000 })
    const second = createControlPlane(new FakeMediaEngine(), { store, bus, nodeId: 'node-b', resumeGraceMs: 10_000 })
    try {
      const ada = await join(first, 'ada')
      await ada.socket.session.handleClose()
      const elsewhere = await resume(new Socket(second, 'ada'), ada)
      assert.ok(elsewhere.type === 'resumed' && elsewhere.media === 'new', JSON.stringify(elsewhere))
      assert.equal((await store.getParticipant(ROOM, ada.id))?.nodeId, 'node-b')
    } finally {
      await second.close()
      await first.close()
    }
  })
})
