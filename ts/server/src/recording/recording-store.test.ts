// The behaviour every RecordingStore must have, run against the memory store and against the Redis
// store on a real redis-server. Lease time is a clock the tests move, not waited for.

import assert from 'node:assert/strict'
import { after, afterEach, before, beforeEach, describe, test } from 'node:test'
import type { RecordingId, RoomId } from '@conclave/protocol'
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js'
import { redisKeys } from '../state/redis/keys.js'
import { MemoryRecordingStore, type RecordingRecord, type RecordingStore, type RecordingStoreOptions } from './recording-store.js'
import { RedisRecordingStore } from './redis-recording-store.js'

interface Harness {
  store: RecordingStore
  /** Another store on the same backend, as another node has (the same one in memory). */
  other: RecordingStore
  dispose(): Promise<void>
}

type MakeHarness = (options: RecordingStoreOptions) => Promise<Harness>

let seq = 0
function recording(overrides: Partial<RecordingRecord> = {}): RecordingRecord {
  seq++
  return {
    recordingId: `rec-${seq}` as RecordingId,
    room: 'studio' as RoomId,
    mode: 'composite',
    state: 'recording',
    partial: false,
    startedAt: 1000 + seq,
    nodeId: 'node-a',
    ...overrides,
  }
}

function recordingStoreContract(name: string, make: MakeHarness): void {
  describe(`RecordingStore contract: ${name}`, () => {
    let clock = 0
    let harness: Harness
    let store: RecordingStore

    beforeEach(async () => {
      clock = 100_000
      harness = await make({ leaseMs: 1000, maxEnded: 2, now: () => clock })
      store = harness.store
    })
    afterEach(async () => {
      await harness.dispose()
    })

    test('a put record is read back equal, as a copy; an unknown id is undefined', async () => {
      const record = recording({ bytes: 10, segments: 1, index: { files: ['a.mp4'], nested: { n: 1 } } })
      await store.put(record)
      const read = await store.get(record.recordingId)
      assert.deepEqual(read, record)
      if (read?.index !== undefined) read.index.changed = true
      assert.deepEqual(await store.get(record.recordingId), record)
      assert.deepEqual(await harness.other.get(record.recordingId), record)
      assert.equal(await store.get('rec-none' as RecordingId), undefined)
    })

    test('list is oldest first, per room when asked, one entry per recording however often it is put', async () => {
      const later = recording({ startedAt: 5000 })
      const earlier = recording({ startedAt: 4000, room: 'other' as RoomId })
      const first = recording({ startedAt: 3000 })
      for (const record of [later, earlier, first]) await store.put(record)
      await store.put({ ...later, state: 'stopping' })
      assert.deepEqual((await store.list()).map((record) => record.recordingId), [first.recordingId, earlier.recordingId, later.recordingId])
      assert.deepEqual((await store.list('studio' as RoomId)).map((record) => [record.recordingId, record.state]), [
        [first.recordingId, 'recording'],
        [later.recordingId, 'stopping'],
      ])
      assert.deepEqual(await store.list('nowhere' as RoomId), [])
    })

    test('beyond maxEnded ended recordings, the ones that ended first are forgotten; unended ones never', async () => {
      const running = recording()
      const ended = [recording({ endedAt: 30, state: 'finalized' }), recording({ endedAt: 10, state: 'failed' }), recording({ endedAt: 20, state: 'finalized' })]
      await store.put(running)
      for (const record of ended) await store.put(record)
      const kept = (await store.list()).map((record) => record.recordingId)
      assert.deepEqual(kept, [running.recordingId, ended[0]?.recordingId, ended[2]?.recordingId])
      assert.equal(await store.get(ended[1]?.recordingId as RecordingId), undefined)
      assert.deepEqual((await store.list('studio' as RoomId)).map((record) => record.recordingId), kept)
    })

    test('an unended recording is leased: renewed it stays, unrenewed it is handed out once, ended it never lapses', async () => {
      const renewed = recording()
      const abandoned = recording()
      const finished = recording()
      for (const record of [renewed, abandoned, finished]) await store.put(record)
      await store.put({ ...finished, state: 'finalized', endedAt: clock })
      clock += 999
      assert.deepEqual(await store.claimLapsed(), [])
      await store.renew([renewed.recordingId, finished.recordingId, 'rec-unknown' as RecordingId])
      clock += 1
      const claimed = await Promise.all([store.claimLapsed(), harness.other.claimLapsed()])
      assert.deepEqual(claimed.flat(), [abandoned], 'the lapsed one, to one caller only')
      assert.deepEqual(await store.claimLapsed(), [])
      clock += 999
      assert.deepEqual(await store.claimLapsed(), [renewed])
      // The ended one was not leased again by `renew`, and the claimed ones are gone from the leases.
      clock += 10_000
      assert.deepEqual(await store.claimLapsed(), [])
    })

    test('a put of an unended record leases it again, from now', async () => {
      const record = recording()
      await store.put(record)
      clock += 900
      await store.put({ ...record, bytes: 5 })
      clock += 999
      assert.deepEqual(await store.claimLapsed(), [])
      clock += 1
      assert.deepEqual(await store.claimLapsed(), [{ ...record, bytes: 5 }])
    })
  })
}

recordingStoreContract('MemoryRecordingStore', async (options) => {
  const store = new MemoryRecordingStore(options)
  return { store, other: store, dispose: async () => {} }
})

let redis: RedisServer
before(async () => {
  redis = await startRedisServer()
})
after(async () => {
  await redis?.stop()
})

recordingStoreContract('RedisRecordingStore on a real redis-server', async (options) => {
  const client = redis.client()
  const otherClient = redis.client()
  await client.flushdb()
  return {
    store: new RedisRecordingStore(client, options),
    other: new RedisRecordingStore(otherClient, options),
    dispose: async () => {
      await client.flushdb()
      client.disconnect()
      otherClient.disconnect()
    },
  }
})

describe('RedisRecordingStore on a real redis-server', () => {
  test('its keys are the declared ones, the trim leaves no key of a forgotten recording, and a garbled record is skipped', async () => {
    const client = redis.client()
    await client.flushdb()
    try {
      const store = new RedisRecordingStore(client, { maxEnded: 1, prefix: 't:' })
      const keys = redisKeys('t:')
      const first = recording({ endedAt: 1, state: 'finalized', room: 'gone' as RoomId })
      const second = recording({ endedAt: 2, state: 'finalized' })
      await store.put(first)
      await store.put(second)
      assert.deepEqual((await client.keys('*')).sort(), [keys.endedRecordings(), keys.recording(second.recordingId), keys.recordings(), keys.roomRecordings(second.room)].sort())
      await client.set(keys.recording(second.recordingId), '{"not":"a recording"}')
      assert.deepEqual(await store.list(), [])
      assert.equal(await store.get(second.recordingId), undefined)
    } finally {
      await client.flushdb()
      client.disconnect()
    }
  })
})
