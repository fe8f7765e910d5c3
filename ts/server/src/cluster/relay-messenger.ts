// How the nodes of a cluster coordinate their relay links: announcements to every node, messages
// to one node, shared link keys and where each node's engine listens. Redis for a cluster; in
// memory for tests that run several nodes in one process.

import { randomBytes } from 'node:crypto'
import { TrackDetails } from '@conclave/protocol'
import type { Redis } from 'ioredis'
import * as z from 'zod'
import type { Logger } from '../log.js'
import { RELAY_KEYING_MATERIAL_BYTES, type RtpForwardDestination } from '../media/media-engine.js'
import { redisKeys } from '../state/redis/keys.js'

const TrackAnnouncement = TrackDetails

const RelayedTrackMessage = z.object({
  kind: z.enum(['audio', 'video']),
  layers: z
    .array(z.object({ ssrc: z.number().int().min(0).max(0xffff_ffff), rtxSsrc: z.number().int().min(0).max(0xffff_ffff).optional() }))
    .min(1)
    .max(4),
  payloadTypes: z
    .array(
      z.object({
        codec: z.string().min(1).max(16),
        payloadType: z.number().int().min(0).max(127),
        rtxPayloadType: z.number().int().min(0).max(127).optional(),
      }),
    )
    .min(1)
    .max(8),
})

/** Everything nodes say to each other about relays; `from` is the sender's node id. */
export const RelayMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('track-published'),
    from: z.string(),
    roomId: z.string(),
    participantId: z.string(),
    participantName: z.string(),
    track: TrackAnnouncement,
  }),
  z.object({ type: z.literal('track-ended'), from: z.string(), roomId: z.string(), trackId: z.string() }),
  z.object({ type: z.literal('export-request'), from: z.string(), requestId: z.string(), roomId: z.string(), trackId: z.string() }),
  z.object({
    type: z.literal('export-reply'),
    from: z.string(),
    requestId: z.string(),
    relayed: RelayedTrackMessage.optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }),
  z.object({ type: z.literal('unexport'), from: z.string(), roomId: z.string(), trackId: z.string() }),
  /** Dynacast across the link: the simulcast layers of an exported track the asking node needs. */
  z.object({ type: z.literal('layers-wanted'), from: z.string(), roomId: z.string(), trackId: z.string(), active: z.array(z.boolean()).min(1).max(4) }),
])
export type RelayMessage = z.infer<typeof RelayMessage>

export type RelayMessageListener = (message: RelayMessage) => void

export interface RelayMessenger {
  /** To every node but this one. */
  announce(message: RelayMessage): Promise<void>
  /** To node `nodeId` only. */
  send(nodeId: string, message: RelayMessage): Promise<void>
  /** Messages for this node (announcements of others and what was sent to it). */
  onMessage(listener: RelayMessageListener): () => void
  /** Says where this node's engine takes relay links; kept while the node runs. */
  advertise(address: RtpForwardDestination): Promise<void>
  /** Where node `nodeId`'s engine takes relay links; undefined when it is not running. */
  addressOf(nodeId: string): Promise<RtpForwardDestination | undefined>
  /** The keying material of the link between this node and `nodeId`: the same at both ends. */
  linkKey(nodeId: string): Promise<Uint8Array>
  close(): Promise<void>
}

/** How long a node's advertised address outlives its last refresh. */
const ADDRESS_TTL_MS = 30_000
const LINK_KEY_TTL_SECONDS = 24 * 60 * 60

export class RedisRelayMessenger implements RelayMessenger {
  readonly #redis: Redis
  readonly #subscriber: Redis
  readonly #keys: ReturnType<typeof redisKeys>
  readonly #nodeId: string
  readonly #listeners = new Set<RelayMessageListener>()
  readonly #log: Logger
  #refresh: NodeJS.Timeout | undefined

  private constructor(redis: Redis, subscriber: Redis, keys: ReturnType<typeof redisKeys>, nodeId: string, log: Logger) {
    this.#redis = redis
    this.#subscriber = subscriber
    this.#keys = keys
    this.#nodeId = nodeId
    this.#log = log
    const channels = new Set([keys.relayInbox(nodeId), keys.relayAnnouncements()])
    subscriber.on('message', (channel: string, text: string) => {
      if (!channels.has(channel)) return
      const message = parseRelayMessage(text)
      if (message === undefined) {
        this.#log.warn('unreadable relay message dropped', { channel })
        return
      }
      if (message.from === nodeId) return
      for (const listener of this.#listeners) listener(message)
    })
  }

  /** Subscribes on a connection of its own (a subscribed connection can do nothing else). */
  static async connect(redis: Redis, { nodeId, prefix, log }: { nodeId: string; prefix?: string; log: Logger }): Promise<RedisRelayMessenger> {
    const keys = redisKeys(prefix)
    const subscriber = redis.duplicate()
    await subscriber.subscribe(keys.relayInbox(nodeId), keys.relayAnnouncements())
    return new RedisRelayMessenger(redis, subscriber, keys, nodeId, log)
  }

  async announce(message: RelayMessage): Promise<void> {
    await this.#redis.publish(this.#keys.relayAnnouncements(), JSON.stringify(message))
  }

  async send(nodeId: string, message: RelayMessage): Promise<void> {
    await this.#redis.publish(this.#keys.relayInbox(nodeId), JSON.stringify(message))
  }

  onMessage(listener: RelayMessageListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async advertise(address: RtpForwardDestination): Promise<void> {
    const write = () => this.#redis.set(this.#keys.relayNode(this.#nodeId), JSON.stringify(address), 'PX', ADDRESS_TTL_MS)
    await write()
    clearInterval(this.#refresh)
    this.#refresh = setInterval(() => {
      write().catch((error: unknown) => this.#log.warn('refreshing the relay address failed', { err: error }))
    }, ADDRESS_TTL_MS / 3)
    this.#refresh.unref()
  }

  async addressOf(nodeId: string): Promise<RtpForwardDestination | undefined> {
    const text = await this.#redis.get(this.#keys.relayNode(nodeId))
    if (text === null) return undefined
    const parsed = z.object({ address: z.string(), port: z.number().int().min(1).max(65535) }).safeParse(safeJson(text))
    return parsed.success ? parsed.data : undefined
  }

  async linkKey(nodeId: string): Promise<Uint8Array> {
    const key = this.#keys.relayLinkKey(this.#nodeId, nodeId)
    // Both ends may ask at once: the first write wins and both read it.
    await this.#redis.set(key, randomBytes(RELAY_KEYING_MATERIAL_BYTES).toString('hex'), 'EX', LINK_KEY_TTL_SECONDS, 'NX')
    const hex = await this.#redis.get(key)
    if (hex === null || hex.length !== RELAY_KEYING_MATERIAL_BYTES * 2) throw new Error(`the relay link key ${key} is missing or malformed`)
    return Buffer.from(hex, 'hex')
  }

  async close(): Promise<void> {
    clearInterval(this.#refresh)
    this.#listeners.clear()
    await this.#redis.del(this.#keys.relayNode(this.#nodeId)).catch(() => undefined)
    this.#subscriber.disconnect()
  }
}

/** Nodes in one process, for tests: each gets a messenger from `join`. */
export class MemoryRelayNetwork {
  readonly #inboxes = new Map<string, Set<RelayMessageListener>>()
  readonly #addresses = new Map<string, RtpForwardDestination>()
  readonly #linkKeys = new Map<string, Uint8Array>()

  join(nodeId: string): RelayMessenger {
    const listeners = new Set<RelayMessageListener>()
    this.#inboxes.set(nodeId, listeners)
    const deliver = (to: Set<RelayMessageListener>, message: RelayMessage) => {
      // As over Redis: later, and a copy.
      const copy = parseRelayMessage(JSON.stringify(message))
      if (copy !== undefined) setImmediate(() => to.forEach((listener) => listener(copy)))
    }
    return {
      announce: async (message) => {
        for (const [id, inbox] of this.#inboxes) if (id !== nodeId) deliver(inbox, message)
      },
      send: async (to, message) => {
        const inbox = this.#inboxes.get(to)
        if (inbox !== undefined) deliver(inbox, message)
      },
      onMessage: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      },
      advertise: async (address) => void this.#addresses.set(nodeId, address),
      addressOf: async (other) => this.#addresses.get(other),
      linkKey: async (other) => {
        const pair = nodeId < other ? `${nodeId}|${other}` : `${other}|${nodeId}`
        let key = this.#linkKeys.get(pair)
        if (key === undefined) {
          key = randomBytes(RELAY_KEYING_MATERIAL_BYTES)
          this.#linkKeys.set(pair, key)
        }
        return key
      },
      close: async () => {
        listeners.clear()
        this.#inboxes.delete(nodeId)
        this.#addresses.delete(nodeId)
      },
    }
  }
}

export function parseRelayMessage(text: string): RelayMessage | undefined {
  const parsed = RelayMessage.safeParse(safeJson(text))
  return parsed.success ? parsed.data : undefined
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
