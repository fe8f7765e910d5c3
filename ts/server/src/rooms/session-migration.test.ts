import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { CLOSE_CODES, PROTOCOL_VERSION, type TrackId } from '@conclave/protocol'
import { MemoryEventBus } from '../cluster/event-bus.js'
import { createControlPlane } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { type Member, PUBLISH, type Plane, RECEIVE, ROOM, Socket, codeOf, join, resume, stateSeen } from '../../test/support/resume-fixtures.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'

describe('a session resumed on another node moves there', () => {
  let store: MemoryRoomStore
  let bus: MemoryEventBus
  let mediaA: FakeMediaEngine
  let mediaB: FakeMediaEngine
  let nodeA: Plane
  let nodeB: Plane
  const extra: Plane[] = []

  beforeEach(() => {
    store = new MemoryRoomStore()
    bus = new MemoryEventBus()
    mediaA = new FakeMediaEngine()
    mediaB = new FakeMediaEngine()
    nodeA = createControlPlane(mediaA, { store, bus, nodeId: 'node-a', resumeGraceMs: 10_000 })
    nodeB = createControlPlane(mediaB, { store, bus, nodeId: 'node-b', resumeGraceMs: 10_000 })
  })

  afterEach(async () => {
    // The planes share the bus: each closes its own part, the bus goes last.
    for (const plane of [...extra.splice(0), nodeB, nodeA]) {
      await plane.meeting.close()
      await plane.rooms.close()
    }
    await bus.close()
  })

  async function published(member: Member): Promise<string[]> {
    await member.socket.request({ type: 'offer', sdp: PUBLISH })
    const record = await eventually('the tracks to be recorded', async () => {
      const { tracks } = await nodeA.meeting.getParticipant(ROOM, member.id)
      return tracks.length === 2 ? tracks : undefined
    })
    return record.map((track) => track.trackId)
  }

  test('the new node takes the record over and gives it a new peer; the old one lets go without a leave', async () => {
    const ada = await join(nodeA, 'ada', 'cohost')
    const bob = await join(nodeA, 'bob', 'host')
    const oldTracks = await published(ada)
    await bob.socket.request({ type: 'offer', sdp: RECEIVE })
    assert.equal(codeOf(await ada.socket.request({ type: 'raise-hand' })), 'done')
    await nodeA.meeting.createBreakouts({ kind: 'api' }, ROOM, [{ name: 'Pair', participantIds: [ada.id] }])
    await eventually('Ada to be in her breakout partition on node A', () => [...mediaA.partitions.values()].some((partition) => partition !== 0))
    const peersBefore = (await mediaA.stats()).peers

    await ada.socket.session.handleClose()
    await eventually('Bob to see Ada reconnecting', () => stateSeen(bob.socket, ada.id).includes('reconnecting'))
    const again = new Socket(nodeB, 'ada', 'cohost')
    const resumed = await resume(again, ada)
    assert.ok(resumed.type === 'resumed', JSON.stringify(resumed))
    assert.equal(resumed.media, 'new', 'the client is told its media session is new')
    assert.equal(resumed.participantId, ada.id)
    assert.equal(resumed.role, 'cohost')
    assert.equal(resumed.resumeId, ada.resumeId, 'the same resume id goes on proving the session')
    assert.deepEqual(resumed.subscriptions, [])
    assert.deepEqual(resumed.participants.map((participant) => participant.participantId), [bob.id])
    assert.ok(resumed.breakouts !== undefined, 'the breakouts come with the snapshot')

    const record = await nodeA.meeting.getParticipant(ROOM, ada.id)
    assert.equal(record.nodeId, 'node-b')
    assert.equal(record.connection, 'connected')
    assert.equal(record.handRaised, true, 'her raised hand stays')
    assert.equal(record.role, 'cohost')
    assert.deepEqual(record.tracks, [], 'her old tracks are not hers any more')
    assert.equal(nodeB.meeting.member(ada.id)?.nodeId, 'node-b')

    // The old node: her peer closes and her tracks end for Bob, who never sees her leave.
    await eventually('node A to forget Ada', () => nodeA.meeting.member(ada.id) === undefined)
    await eventually('node A to close her old peer', async () => (await mediaA.stats()).peers === peersBefore - 1)
    await eventually('her old tracks to end for Bob', () => oldTracks.every((trackId) => bob.socket.events('track-ended').some((event) => event.trackId === trackId)))
    await eventually('Bob to see Ada back', () => stateSeen(bob.socket, ada.id).at(-1) === 'active')
    assert.equal(bob.socket.events('participant-left').length, 0, 'no leave was announced')

    // The new node: she negotiates from scratch, in her breakout partition, and publishes new tracks.
    const answer = await again.request({ type: 'offer', sdp: PUBLISH })
    assert.equal(answer.type, 'answer', JSON.stringify(answer))
    assert.deepEqual([...mediaB.partitions.values()], [[...mediaA.partitions.values()].find((partition) => partition !== 0)], 'her new peer is in her group')
    await eventually('her new tracks to be recorded', async () => (await nodeB.meeting.getParticipant(ROOM, ada.id)).tracks.length === 2)
    const hers = [...(nodeB.rooms.room(ROOM)?.tracks.values() ?? [])].filter((track) => track.owner.id === ada.id)
    assert.deepEqual(hers.map((track) => track.owner.kind), ['member', 'member'], "node B's engine has them from her new peer")
    await nodeB.meeting.endBreakouts({ kind: 'api' }, ROOM)
    assert.equal(codeOf(await again.request({ type: 'chat', text: 'moved' })), 'done', 'requests work on the new node')
    await eventually('Bob to get her chat', () => bob.socket.events('chat-posted').some((event) => event.message.text === 'moved'))

    // Node A shutting down takes no one with it: Ada lives on node B.
    await nodeA.meeting.close()
    assert.equal((await nodeB.meeting.getParticipant(ROOM, ada.id)).nodeId, 'node-b')
  })

  test('two nodes resuming the same session at once: one takes it, the other gets resume_failed', async () => {
    const mediaC = new FakeMediaEngine()
    const nodeC = createControlPlane(mediaC, { store, bus, nodeId: 'node-c', resumeGraceMs: 10_000 })
    extra.push(nodeC)
    const ada = await join(nodeA, 'ada')
    await ada.socket.session.handleClose()
    const [onB, onC] = await Promise.all([resume(new Socket(nodeB, 'ada'), ada), resume(new Socket(nodeC, 'ada'), ada)])
    const codes = [codeOf(onB), codeOf(onC)].sort()
    assert.deepEqual(codes, ['resume_failed', 'resumed'], JSON.stringify([onB, onC]))
    const winner = codeOf(onB) === 'resumed' ? 'node-b' : 'node-c'
    const [won, lost] = winner === 'node-b' ? [nodeB, nodeC] : [nodeC, nodeB]
    assert.equal((await won.meeting.getParticipant(ROOM, ada.id)).nodeId, winner)
    assert.equal(won.meeting.member(ada.id)?.nodeId, winner)
    assert.equal(lost.meeting.member(ada.id), undefined, 'the loser holds nothing')
    await eventually('node A to forget Ada', () => nodeA.meeting.member(ada.id) === undefined)
  })

  test('a resume while the old socket is still open closes it with 4006 on the old node', async () => {
    const ada = await join(nodeA, 'ada')
    const resumed = await resume(new Socket(nodeB, 'ada'), ada)
    assert.equal(codeOf(resumed), 'resumed')
    await eventually('the old socket to be closed', () => ada.socket.closed.length === 1)
    assert.deepEqual(ada.socket.closed, [{ code: CLOSE_CODES.replaced, reason: 'resumed on another node' }])
    // Its close arrives late at the old node: nothing happens to the session.
    await ada.socket.session.handleClose()
    assert.equal((await nodeB.meeting.getParticipant(ROOM, ada.id)).connection, 'connected')
  })

  test('another node refuses a wrong resume id or identity with resume_failed, and the session stays', async () => {
    const ada = await join(nodeA, 'ada')
    await ada.socket.session.handleClose()
    assert.equal(codeOf(await resume(new Socket(nodeB, 'ada'), ada, 'A'.repeat(22))), 'resume_failed')
    assert.equal(codeOf(await resume(new Socket(nodeB, 'mallory'), ada)), 'resume_failed')
    assert.equal((await nodeA.meeting.getParticipant(ROOM, ada.id)).nodeId, 'node-a')
    const home = await resume(new Socket(nodeA, 'ada'), ada)
    assert.ok(home.type === 'resumed' && home.media === undefined, 'on its own node the peer goes on')
  })

  test('a member that answers server offers keeps doing so on the new node', async () => {
    const socket = new Socket(nodeA, 'ada')
    const joined = await socket.request({ type: 'join', protocolVersion: PROTOCOL_VERSION, room: ROOM, serverOffers: true })
    assert.ok(joined.type === 'joined' && joined.resumeId !== undefined)
    const ada: Member = { socket, id: joined.participantId, resumeId: joined.resumeId }
    await socket.session.handleClose()
    assert.equal(codeOf(await resume(new Socket(nodeB, 'ada'), ada)), 'resumed')
    assert.equal(nodeB.rooms.room(ROOM)?.participants.get(ada.id)?.serverOffers, true)
  })

  test('a session that ended is session_expired on another node too', async () => {
    const ada = await join(nodeA, 'ada')
    await ada.socket.request({ type: 'leave' })
    assert.equal(codeOf(await resume(new Socket(nodeB, 'ada'), ada)), 'session_expired')
  })

  test('when the old node ends its grace period after the move, it removes nothing', async () => {
    const hasty = createControlPlane(new FakeMediaEngine(), { store, bus, nodeId: 'node-hasty', resumeGraceMs: 100 })
    extra.push(hasty)
    const ada = await join(hasty, 'ada')
    const bob = await join(nodeB, 'bob')
    await ada.socket.session.handleClose()
    // The move lands in the store; the old node hears of no event, only its grace timer fires.
    await store.moveParticipant(ROOM, ada.id, { from: 'node-hasty', to: 'node-b' })
    await eventually('the old node to let Ada go', () => hasty.meeting.member(ada.id) === undefined)
    assert.equal((await store.getParticipant(ROOM, ada.id))?.nodeId, 'node-b', 'the record node B took stays')
    assert.equal(bob.socket.events('participant-left').length, 0)
  })

  test("a host's mute follows the session: its new track of the same source is muted again", async () => {
    const ada = await join(nodeA, 'ada')
    const [, video] = await published(ada)
    assert.equal(await nodeA.meeting.mute({ kind: 'api' }, ROOM, ada.id, video as TrackId), 1)
    await eventually('the mute to be recorded', async () => (await nodeA.meeting.getParticipant(ROOM, ada.id)).tracks.some((track) => track.muted))
    await ada.socket.session.handleClose()
    const again = new Socket(nodeB, 'ada')
    assert.equal(codeOf(await resume(again, ada)), 'resumed')
    await again.request({ type: 'offer', sdp: PUBLISH })
    const tracks = await eventually('her new video to be muted', async () => {
      const { tracks } = await nodeB.meeting.getParticipant(ROOM, ada.id)
      return tracks.length === 2 && tracks.some((track) => track.muted) ? tracks : undefined
    })
    assert.deepEqual(tracks.filter((track) => track.muted).map((track) => track.kind), ['video'], 'only the camera, as before')
    assert.ok(again.events('track-muted').length === 1, 'she is told, as after a mute')
  })
})
