import { after, before } from 'node:test'
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js'
import { MemoryRoomStore } from './memory-room-store.js'
import { roomStoreContract } from './room-store.contract.js'
import { RedisRoomStore } from './redis/redis-room-store.js'

roomStoreContract('MemoryRoomStore', async (options) => ({ store: new MemoryRoomStore(options), dispose: async () => {} }))

let redis: RedisServer
before(async () => {
  redis = await startRedisServer()
})
after(async () => {
  await redis?.stop()
})

roomStoreContract('RedisRoomStore on a real redis-server', async (options) => {
  const client = redis.client()
  await client.flushdb()
  return {
    store: new RedisRoomStore(client, options),
    keyCount: () => client.dbsize(),
    dispose: async () => {
      await client.flushdb()
      client.disconnect()
    },
  }
})
