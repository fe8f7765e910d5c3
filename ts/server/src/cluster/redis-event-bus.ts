// EventBus over Redis pub/sub: one channel for every room; each node gets every event, its own too.

import type { Redis } from 'ioredis'
import type { Logger } from '../log.js'
import { redisKeys } from '../state/redis/keys.js'
import { type ClusterEvent, type ClusterEventListener, type EventBus, deliver } from './event-bus.js'

export class RedisEventBus implements EventBus {
  readonly #publisher: Redis
  readonly #subscriber: Redis
  readonly #channel: string
  readonly #listeners = new Set<ClusterEventListener>()
  readonly #log: Logger

  private constructor(publisher: Redis, subscriber: Redis, channel: string, log: Logger) {
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#channel = channel
    this.#log = log
    subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel) return
      let event: ClusterEvent
      try {
        event = JSON.parse(text) as ClusterEvent
      } catch (error) {
        this.#log.warn('unreadable cluster event dropped', { err: error })
        return
      }
      deliver(this.#listeners, event)
    })
  }

  /** Subscribes on a connection of its own (a subscribed connection can do nothing else). */
  static async connect(publisher: Redis, { prefix, log }: { prefix?: string; log: Logger }): Promise<RedisEventBus> {
    const subscriber = publisher.duplicate()
    const channel = redisKeys(prefix).events()
    await subscriber.subscribe(channel)
    return new RedisEventBus(publisher, subscriber, channel, log)
  }

  async publish(event: ClusterEvent): Promise<void> {
    await this.#publisher.publish(this.#channel, JSON.stringify(event))
  }

  subscribe(listener: ClusterEventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.#listeners.clear()
    this.#subscriber.disconnect()
  }
}
