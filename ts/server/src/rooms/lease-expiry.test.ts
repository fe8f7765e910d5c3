import assert from 'node:assert/strict'
import { afterEach, describe, test } from 'node:test'
import { DEFAULT_GRANTS, type ParticipantId, type RoomId, type ServerEvent } from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import type { Principal } from '../auth/authenticator.js'
import { type ClusterEvent, MemoryEventBus } from '../cluster/event-bus.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'
import type { ParticipantRecord } from '../state/room-store.js'
import { LEASE_EXPIRED } from './lease-expiry.js'
import { MeetingService } from './meeting-service.js'
import { RoomService } from './room-service.js'

const ROOM = 'daily' as RoomId
const LEASE_MS = 400

/** The renewals of the participants in `lost` never land, as when their node lost Redis. */
class FlakyStore extends MemoryRoomStore {
  readonly lost = new Set<ParticipantId>()
  override async refresh(roomId: RoomId, participantIds: readonly ParticipantId[]): Promise<void> {
    return super.refresh(roomId, participantIds.filter((id) => !this.lost.has(id)))
  }
}

function ghostOf(nodeId: string): ParticipantRecord {
  return {
    participantId: 'p-ghost' as ParticipantId,
    roomId: ROOM,
    identity: 'ghost',
    name: 'Ghost',
    role: 'guest',
    grants: { ...DEFAULT_GRANTS },
    state: 'active',
    handRaised: false,
    kind: 'member',
    nodeId,
    joinedAt: 1,
    tracks: [],
  }
}

describe('participants whose lease ran out', () => {
  const closers: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close()
  })

  function node(store: MemoryRoomStore, bus: MemoryEventBus, nodeId: string) {
    const media = new FakeMediaEngine()
    const rooms = new RoomService({ media, log: quietLog })
    const meeting = new MeetingService({ rooms, store, bus, nodeId, log: quietLog, refreshIntervalMs: 50 })
    closers.push(async () => {
      await meeting.close()
      await rooms.close()
      await media.close()
    })
    return meeting
  }

  async function member(meeting: MeetingService, identity: string) {
    const events: ServerEvent[] = []
    const closed: Array<{ code: number; reason: string }> = []
    const principal: Principal = { room: ROOM, identity, name: identity, role: 'guest', grants: { ...DEFAULT_GRANTS }, expiresAt: undefined, anonymous: false }
    const joined = await meeting.join(principal, ROOM, undefined, { send: (event) => events.push(event), close: (code, reason) => closed.push({ code, reason }) })
    assert.equal(joined.state, 'active')
    const participantId = joined.state === 'active' ? joined.snapshot.participantId : ('' as ParticipantId)
    meeting.release(participantId)
    return { participantId, events, closed, snapshot: joined.state === 'active' ? joined.snapshot : undefined }
  }

  test('of a dead node are announced once, by one of the nodes still there, to everyone', async () => {
    const store = new MemoryRoomStore({ leaseMs: LEASE_MS })
    const bus = new MemoryEventBus()
    closers.push(() => bus.close())
    const published: ClusterEvent[] = []
    bus.subscribe((event) => published.push(event))
    const one = node(store, bus, 'node-one')
    const two = node(store, bus, 'node-two')
    await store.ensureRoom({ id: ROOM, waitingRoom: false, locked: false, emptyTimeoutSeconds: 0, createdAt: 1, explicit: false })
    // The dead node added its participant once and never renewed it.
    assert.equal(await store.addParticipant(ghostOf('node-dead'), { bypassLock: false }), 'added')
    const alice = await member(one, 'alice')
    const bob = await member(two, 'bob')
    assert.ok(alice.snapshot?.participants.some((participant) => participant.participantId === 'p-ghost'))

    for (const watcher of [alice, bob]) {
      await eventually('each member to hear the ghost left', () => watcher.events.some((event) => event.type === 'participant-left' && event.participantId === 'p-ghost'))
    }
    const announcements = published.filter((event) => event.type === 'participant-left' && event.participant.participantId === 'p-ghost')
    assert.equal(announcements.length, 1)
    assert.deepEqual(announcements[0], { type: 'participant-left', roomId: ROOM, participant: ghostOf('node-dead'), reason: LEASE_EXPIRED })
    assert.deepEqual((await store.listParticipants(ROOM)).map((participant) => participant.identity).sort(), ['alice', 'bob'])
    assert.deepEqual(alice.closed, [])
    assert.deepEqual(bob.closed, [])
  })

  test('of a node that could not renew them end there too (1011: the client\'s resume then learns its session expired)', async () => {
    const store = new FlakyStore({ leaseMs: LEASE_MS })
    const bus = new MemoryEventBus()
    closers.push(() => bus.close())
    const one = node(store, bus, 'node-one')
    const two = node(store, bus, 'node-two')
    const alice = await member(one, 'alice')
    const bob = await member(two, 'bob')
    store.lost.add(alice.participantId)
    await eventually('Alice to be ended', () => alice.closed.length > 0, { timeoutMs: 10 * LEASE_MS })
    assert.deepEqual(alice.closed, [{ code: 1011, reason: LEASE_EXPIRED }])
    assert.equal(one.member(alice.participantId), undefined, 'node one holds her no more')
    await eventually('Bob to hear she left', () => bob.events.some((event) => event.type === 'participant-left' && event.participantId === alice.participantId))
    assert.deepEqual(bob.closed, [])
  })
})
