// The behaviour every RoomStore must have, as one suite: room-store.test.ts runs it against the
// memory store and against the Redis store on a real redis-server.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { DEFAULT_GRANTS, type ParticipantId, type RoomId, type TrackId } from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import type { ParticipantRecord, RoomRecord, RoomStore, RoomStoreOptions } from './room-store.js'

export interface StoreHarness {
  store: RoomStore
  /** Frees what the store used (a Redis client, the keys); the store is not used after. */
  dispose(): Promise<void>
  /** How many keys the backend holds, where that means something (Redis). */
  keyCount?(): Promise<number>
}

const roomId = 'daily' as RoomId

function room(overrides: Partial<RoomRecord> = {}): RoomRecord {
  return { id: roomId, waitingRoom: false, locked: false, emptyTimeoutSeconds: 300, createdAt: 1000, explicit: true, ...overrides }
}

let seq = 0
function participant(overrides: Partial<ParticipantRecord> = {}): ParticipantRecord {
  seq++
  return {
    participantId: `p-${seq}` as ParticipantId,
    roomId,
    identity: `id-${seq}`,
    name: `Person ${seq}`,
    role: 'guest',
    grants: { ...DEFAULT_GRANTS, canPublishSources: [] },
    state: 'active',
    handRaised: false,
    kind: 'member',
    nodeId: 'node-a',
    joinedAt: seq,
    tracks: [],
    ...overrides,
  }
}

export function roomStoreContract(name: string, create: (options: RoomStoreOptions) => Promise<StoreHarness>): void {
  describe(`${name} (RoomStore contract)`, () => {
    let harness: StoreHarness
    let store: RoomStore

    beforeEach(async () => {
      harness = await create({})
      store = harness.store
    })

    afterEach(async () => {
      await harness.dispose()
    })

    test('a room is created once and reads back as it was written', async () => {
      assert.equal(await store.createRoom(room({ maxParticipants: 3 })), true)
      assert.equal(await store.createRoom(room({ locked: true })), false)
      assert.deepEqual(await store.getRoom(roomId), room({ maxParticipants: 3 }))
      assert.deepEqual(await store.listRooms(), [room({ maxParticipants: 3 })])
      assert.equal(await store.getRoom('other' as RoomId), undefined)
    })

    test('ensureRoom creates a missing room from the defaults and keeps an existing one', async () => {
      assert.deepEqual(await store.ensureRoom(room({ explicit: false, waitingRoom: true })), room({ explicit: false, waitingRoom: true }))
      assert.deepEqual(await store.ensureRoom(room()), room({ explicit: false, waitingRoom: true }))
    })

    test('a participant reads back whole, empty arrays and nested grants included', async () => {
      await store.createRoom(room())
      const ada = participant({ tracks: [{ trackId: 'track-1' as never, kind: 'video', source: 'camera', muted: false }] })
      assert.equal(await store.addParticipant(ada, { bypassLock: false }), 'added')
      assert.deepEqual(await store.getParticipant(roomId, ada.participantId), ada)
      assert.deepEqual(await store.listParticipants(roomId), [ada])
    })

    test('a session keeps its resume hash, and its connection state changes by update', async () => {
      await store.createRoom(room())
      const ada = participant({ resumeHash: 'ab'.repeat(32), connection: 'connected' })
      await store.addParticipant(ada, { bypassLock: false })
      const away = await store.updateParticipant(roomId, ada.participantId, { connection: 'reconnecting' })
      assert.deepEqual(away, { ...ada, connection: 'reconnecting' })
      assert.deepEqual(await store.getParticipant(roomId, ada.participantId), { ...ada, connection: 'reconnecting' })
      await store.updateParticipant(roomId, ada.participantId, { connection: 'connected' })
      assert.deepEqual(await store.listParticipants(roomId), [ada])
    })

    test('participants are listed oldest first', async () => {
      await store.createRoom(room())
      const late = participant({ joinedAt: 50 })
      const early = participant({ joinedAt: 10 })
      await store.addParticipant(late, { bypassLock: false })
      await store.addParticipant(early, { bypassLock: false })
      assert.deepEqual(
        (await store.listParticipants(roomId)).map((p) => p.participantId),
        [early.participantId, late.participantId],
      )
    })

    test('a participant is not added to a missing room, a locked room (unless it bypasses) or a full one', async () => {
      assert.equal(await store.addParticipant(participant(), { bypassLock: false }), 'room_not_found')
      await store.createRoom(room({ locked: true, maxParticipants: 2 }))
      assert.equal(await store.addParticipant(participant(), { bypassLock: false }), 'locked')
      assert.equal(await store.addParticipant(participant(), { bypassLock: true }), 'added')
      assert.equal(await store.addParticipant(participant(), { bypassLock: true }), 'added')
      assert.equal(await store.addParticipant(participant(), { bypassLock: true }), 'full')
    })

    test('concurrent joins never overfill a room', async () => {
      await store.createRoom(room({ maxParticipants: 5 }))
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => store.addParticipant(participant(), { bypassLock: false })))
      assert.equal(outcomes.filter((outcome) => outcome === 'added').length, 5)
      assert.equal((await store.listParticipants(roomId)).length, 5)
    })

    test('an update applies its patch; with an expected state it applies once', async () => {
      await store.createRoom(room())
      const guest = participant({ state: 'waiting' })
      await store.addParticipant(guest, { bypassLock: false })
      const admitted = await store.updateParticipant(roomId, guest.participantId, { state: 'active' }, 'waiting')
      assert.equal(admitted?.state, 'active')
      assert.equal(await store.updateParticipant(roomId, guest.participantId, { state: 'active' }, 'waiting'), undefined)
      const raised = await store.updateParticipant(roomId, guest.participantId, { handRaised: true, role: 'cohost' })
      assert.deepEqual(raised, { ...guest, state: 'active', handRaised: true, role: 'cohost' })
      assert.equal(await store.updateParticipant(roomId, 'p-none' as ParticipantId, { handRaised: true }), undefined)
    })

    test('two admits of one waiting participant at once admit it once', async () => {
      await store.createRoom(room())
      const guest = participant({ state: 'waiting' })
      await store.addParticipant(guest, { bypassLock: false })
      const results = await Promise.all([1, 2, 3].map(() => store.updateParticipant(roomId, guest.participantId, { state: 'active' }, 'waiting')))
      assert.equal(results.filter((result) => result !== undefined).length, 1)
    })

    test('a session moves to another node as a compare-and-set on its node: of two nodes taking it at once, one does', async () => {
      await store.createRoom(room())
      const ada = participant({ resumeHash: 'cd'.repeat(32), connection: 'reconnecting', tracks: [{ trackId: 'track-1' as TrackId, kind: 'video', muted: false }] })
      await store.addParticipant(ada, { bypassLock: false })
      const patch = { connection: 'connected', tracks: [] } as const
      const [toB, toC] = await Promise.all([
        store.moveParticipant(roomId, ada.participantId, { from: 'node-a', to: 'node-b' }, { ...patch, tracks: [] }),
        store.moveParticipant(roomId, ada.participantId, { from: 'node-a', to: 'node-c' }, { ...patch, tracks: [] }),
      ])
      assert.equal([toB, toC].filter((moved) => moved !== undefined).length, 1, 'exactly one node takes it')
      const moved = toB ?? toC
      assert.deepEqual(moved, { ...ada, nodeId: moved?.nodeId, connection: 'connected', tracks: [] })
      assert.ok(moved?.nodeId === 'node-b' || moved?.nodeId === 'node-c')
      assert.deepEqual(await store.getParticipant(roomId, ada.participantId), moved)
      assert.equal(await store.moveParticipant(roomId, ada.participantId, { from: 'node-a', to: 'node-d' }), undefined, 'node-a no longer holds it')
      assert.equal(await store.moveParticipant(roomId, 'p-none' as ParticipantId, { from: 'node-a', to: 'node-b' }), undefined)
      const guest = participant({ state: 'waiting' })
      await store.addParticipant(guest, { bypassLock: false })
      assert.equal(await store.moveParticipant(roomId, guest.participantId, { from: 'node-a', to: 'node-b' }), undefined, 'only active participants move')
    })

    test('a removal for the node that holds a participant leaves one that moved on', async () => {
      await store.createRoom(room())
      const ada = participant()
      await store.addParticipant(ada, { bypassLock: false })
      await store.moveParticipant(roomId, ada.participantId, { from: 'node-a', to: 'node-b' })
      assert.equal(await store.removeParticipant(roomId, ada.participantId, { heldBy: 'node-a' }), undefined)
      assert.equal((await store.getParticipant(roomId, ada.participantId))?.nodeId, 'node-b')
      assert.deepEqual(await store.removeParticipant(roomId, ada.participantId, { heldBy: 'node-b' }), { ...ada, nodeId: 'node-b' })
      assert.equal(await store.getParticipant(roomId, ada.participantId), undefined)
    })

    test('a removed identity is refused from then on; others are not', async () => {
      await store.createRoom(room())
      const eve = participant({ identity: 'eve' })
      await store.addParticipant(eve, { bypassLock: false })
      await store.addParticipant(participant(), { bypassLock: false })
      const removed = await store.removeParticipant(roomId, eve.participantId, { ban: true })
      assert.deepEqual(removed, eve)
      assert.equal(await store.isRemoved(roomId, 'eve'), true)
      assert.equal(await store.addParticipant(participant({ identity: 'eve' }), { bypassLock: true }), 'removed')
      assert.equal(await store.addParticipant(participant({ identity: 'bob' }), { bypassLock: false }), 'added')
      assert.equal(await store.removeParticipant(roomId, eve.participantId), undefined, 'removing twice finds nothing')
    })

    test('a participant who leaves without a ban may come back', async () => {
      await store.createRoom(room())
      const ada = participant({ identity: 'ada' })
      await store.addParticipant(ada, { bypassLock: false })
      await store.removeParticipant(roomId, ada.participantId)
      assert.equal(await store.isRemoved(roomId, 'ada'), false)
      assert.equal(await store.addParticipant(participant({ identity: 'ada' }), { bypassLock: false }), 'added')
    })

    test('a room made by a join goes with its last participant; one made by the API stays', async () => {
      await store.ensureRoom(room({ id: 'implicit' as RoomId, explicit: false }))
      const a = participant({ roomId: 'implicit' as RoomId })
      await store.addParticipant(a, { bypassLock: false })
      await store.createRoom(room())
      const b = participant()
      await store.addParticipant(b, { bypassLock: false })
      await store.removeParticipant('implicit' as RoomId, a.participantId)
      await store.removeParticipant(roomId, b.participantId)
      assert.equal(await store.getRoom('implicit' as RoomId), undefined)
      assert.deepEqual((await store.listRooms()).map((r) => r.id), [roomId])
    })

    test('breakouts are written, changed and ended as one step each, and go with their room', async () => {
      const g = (groupId: string, ...ids: string[]) => ({ groupId: groupId as never, name: groupId, participantIds: ids as ParticipantId[] })
      assert.equal(await store.updateBreakouts(roomId, () => ({ groups: [g('g1')] })), 'room_not_found')
      await store.createRoom(room())
      assert.equal(await store.getBreakouts(roomId), undefined)
      const start = { groups: [g('g1'), g('g2')] }
      assert.deepEqual(await store.updateBreakouts(roomId, () => start), start)
      assert.deepEqual(await store.getBreakouts(roomId), start)
      assert.deepEqual(await store.getRoom(roomId), room(), 'the room record stays as it was')
      // Concurrent changes each see the others' result: none is lost.
      const ids = Array.from({ length: 8 }, (_, i) => `p-${i}`)
      await Promise.all(
        ids.map((id, i) =>
          store.updateBreakouts(roomId, (current) => {
            assert.ok(current)
            const groups = current.groups.map((group) => (group.groupId === (i % 2 === 0 ? 'g1' : 'g2') ? { ...group, participantIds: [...group.participantIds, id as ParticipantId] } : group))
            return { groups }
          }),
        ),
      )
      const after = await store.getBreakouts(roomId)
      assert.deepEqual(after?.groups.map((group) => [...group.participantIds].sort()), [
        ids.filter((_, i) => i % 2 === 0),
        ids.filter((_, i) => i % 2 === 1),
      ])
      await assert.rejects(
        store.updateBreakouts(roomId, () => {
          throw new Error('refused')
        }),
        /refused/,
      )
      assert.deepEqual(await store.getBreakouts(roomId), after, 'a refused update writes nothing')
      assert.equal(await store.updateBreakouts(roomId, () => undefined), undefined)
      assert.equal(await store.getBreakouts(roomId), undefined)
      await store.updateBreakouts(roomId, () => start)
      await store.closeRoom(roomId)
      await store.createRoom(room())
      assert.equal(await store.getBreakouts(roomId), undefined, 'a new room of the same id starts without')
    })

    test('closing a room returns its participants and leaves nothing of it', async () => {
      await store.createRoom(room())
      const a = participant({ identity: 'a' })
      const b = participant({ state: 'waiting' })
      const eve = participant({ identity: 'eve' })
      for (const p of [a, b, eve]) await store.addParticipant(p, { bypassLock: false })
      await store.removeParticipant(roomId, eve.participantId, { ban: true })
      const closed = await store.closeRoom(roomId)
      assert.deepEqual(closed?.map((p) => p.participantId), [a.participantId, b.participantId])
      assert.equal(await store.getRoom(roomId), undefined)
      assert.deepEqual(await store.listParticipants(roomId), [])
      assert.deepEqual(await store.listRooms(), [])
      assert.equal(await store.isRemoved(roomId, 'eve'), false, 'a new room of that name starts afresh')
      assert.equal(await store.closeRoom(roomId), undefined)
      const keyCount = harness.keyCount
      if (keyCount !== undefined) assert.equal(await keyCount(), 0)
    })

    test('locking and opening the waiting room are room updates', async () => {
      await store.createRoom(room())
      assert.deepEqual(await store.updateRoom(roomId, { locked: true, waitingRoom: true }), room({ locked: true, waitingRoom: true }))
      assert.equal(await store.updateRoom('none' as RoomId, { locked: true }), undefined)
    })
  })

  describe(`${name} (RoomStore leases)`, () => {
    let harness: StoreHarness | undefined

    afterEach(async () => {
      await harness?.dispose()
      harness = undefined
    })

    test('participants whose node stopped refreshing go after the lease, and with them a room made by a join', async () => {
      harness = await create({ leaseMs: 400 })
      const { store } = harness
      await store.ensureRoom(room({ explicit: false }))
      const kept = participant()
      const lost = participant()
      await store.addParticipant(kept, { bypassLock: false })
      await store.addParticipant(lost, { bypassLock: false })
      const refresher = setInterval(() => void store.refresh(roomId, [kept.participantId]), 100)
      try {
        await eventually('the unrefreshed participant to expire', async () => {
          const ids = (await store.listParticipants(roomId)).map((p) => p.participantId)
          return ids.length === 1 && ids[0] === kept.participantId
        })
        assert.ok(await store.getParticipant(roomId, kept.participantId))
      } finally {
        clearInterval(refresher)
      }
      await eventually('the room to expire with its last lease', async () => (await store.getRoom(roomId)) === undefined && (await store.listRooms()).length === 0)
      const keyCount = harness.keyCount
      if (keyCount !== undefined) await eventually('no key to be left', async () => (await keyCount()) === 0)
    })

    test('a moved participant gets a new lease from the move; an expired one does not move', async () => {
      harness = await create({ leaseMs: 1500 })
      const { store } = harness
      await store.createRoom(room())
      const ada = participant()
      const bob = participant()
      await store.addParticipant(ada, { bypassLock: false })
      await store.addParticipant(bob, { bypassLock: false })
      // Most of their common lease passes; then Ada moves and must outlive Bob.
      await sleep(1000)
      assert.ok(await store.moveParticipant(roomId, ada.participantId, { from: 'node-a', to: 'node-b' }))
      await eventually('Bob to expire', async () => (await store.getParticipant(roomId, bob.participantId)) === undefined)
      assert.equal((await store.getParticipant(roomId, ada.participantId))?.nodeId, 'node-b', 'Ada is still there, on node-b')
      assert.equal(await store.moveParticipant(roomId, bob.participantId, { from: 'node-a', to: 'node-b' }), undefined)
    })

    test('an expired participant is swept once, whole, even a while after its lease, and is gone for every other call', async () => {
      harness = await create({ leaseMs: 1000 })
      const { store } = harness
      await store.ensureRoom(room({ explicit: false }))
      const kept = participant()
      const lost = participant({ role: 'cohost', tracks: [{ trackId: 'track-9' as never, kind: 'video', source: 'camera', muted: false }] })
      await store.addParticipant(kept, { bypassLock: false })
      await store.addParticipant(lost, { bypassLock: false })
      const refresher = setInterval(() => void store.refresh(roomId, [kept.participantId]), 100)
      try {
        await eventually('the unrefreshed participant to expire', async () => (await store.listParticipants(roomId)).length === 1)
        assert.equal(await store.getParticipant(roomId, lost.participantId), undefined)
        assert.equal(await store.updateParticipant(roomId, lost.participantId, { handRaised: true }), undefined)
        assert.equal(await store.removeParticipant(roomId, lost.participantId), undefined, 'its leaving is the sweep\'s to announce')
        await store.refresh(roomId, [lost.participantId])
        assert.deepEqual((await store.listParticipants(roomId)).map((p) => p.participantId), [kept.participantId], 'a lease that ran out is not renewed')
        // The sweeping nodes tick every third of a lease: a sweep may come that late and still finds the whole record.
        await new Promise((resolve) => setTimeout(resolve, 250))
        const sweeps = await Promise.all([1, 2, 3, 4].map(() => store.sweepExpired(roomId)))
        assert.deepEqual(sweeps.flat(), [lost], 'one sweeper gets it, whole')
        assert.deepEqual(await store.sweepExpired(roomId), [])
        assert.ok(await store.getRoom(roomId), 'the room stays for the one still there')
        assert.deepEqual(await store.listParticipants(roomId), [kept])
      } finally {
        clearInterval(refresher)
      }
    })

    test('a sweep that empties a room made by a join drops it; one made by the API stays', async () => {
      // The nodes' clocks (the leases) run ahead of the backend's own expiry (Redis key TTLs).
      let now = 1_000_000
      harness = await create({ leaseMs: 5000, now: () => now })
      const { store } = harness
      const implicit = 'implicit' as RoomId
      await store.ensureRoom(room({ id: implicit, explicit: false }))
      await store.createRoom(room())
      const a = participant({ roomId: implicit })
      const b = participant()
      await store.addParticipant(a, { bypassLock: false })
      await store.addParticipant(b, { bypassLock: false })
      now += 5001
      await store.sweepExpired(implicit)
      assert.equal(await store.getRoom(implicit), undefined)
      assert.deepEqual(await store.sweepExpired(roomId), [b])
      assert.deepEqual(await store.getRoom(roomId), room())
      assert.deepEqual((await store.listRooms()).map((r) => r.id), [roomId])
      assert.equal(await store.addParticipant(participant(), { bypassLock: false }), 'added', 'the room made by the API takes participants again')
    })

    test('expired participants take no place in a full room', async () => {
      let now = 1_000_000
      harness = await create({ leaseMs: 5000, now: () => now })
      const { store } = harness
      await store.createRoom(room({ maxParticipants: 1 }))
      const ghost = participant()
      await store.addParticipant(ghost, { bypassLock: false })
      assert.equal(await store.addParticipant(participant(), { bypassLock: false }), 'full')
      now += 5001
      assert.equal(await store.addParticipant(participant(), { bypassLock: false }), 'added')
      assert.deepEqual(await store.sweepExpired(roomId), [ghost], 'and are still swept')
    })
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
