// A user-space network impairment proxy for tests (the kernel here has no netem): a per-flow UDP
// relay between browsers and the SFU's port with seeded loss, delay, jitter and a bandwidth cap,
// changeable at runtime, per direction. Test support only; never on a production path.

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import type { AddressInfo } from 'node:net'

/** What one direction of a link does to packets. Every field is optional; `{}` is a clean link. */
export interface LinkProfile {
  /** Probability (0-1) that a packet is lost, independently of the others. Default 0. */
  loss?: number
  /** One-way propagation delay added to every packet. Default 0. */
  delayMs?: number
  /** Extra delay drawn uniformly from 0..jitterMs per packet; packets are never reordered. Default 0. */
  jitterMs?: number
  /** Bandwidth cap (token bucket) in kbit/s; undefined is unlimited. */
  rateKbps?: number
  /** Drop-tail queue in front of the cap: a packet that would wait longer than this is dropped. Default 100 ms. */
  queueMs?: number
  /** Bytes the token bucket holds (the burst allowed after a quiet spell). Default 3000 (two full packets). */
  burstBytes?: number
}

/** Counters for one direction of one flow. */
export interface LinkCounters {
  packets: number
  bytes: number
  delivered: number
  deliveredBytes: number
  /** Lost to `loss`. */
  lost: number
  /** Dropped by the full queue of the cap. */
  queueDrops: number
}

/** `uplink`: browser to SFU. `downlink`: SFU to browser. */
export type Direction = 'uplink' | 'downlink'

export type Verdict = { deliverAt: number } | { dropped: 'loss' | 'queue' }

/**
 * One direction of one flow as a pure model: given a packet's arrival time (ms) and size, says when
 * it leaves the far end or why it was dropped. Deterministic for a seed and a packet sequence, so
 * it is tested with simulated time.
 */
export class LinkModel {
  #profile: Required<Omit<LinkProfile, 'rateKbps'>> & { rateKbps: number | undefined }
  readonly #random: () => number
  /** When the bucket last released a packet, and the tokens (bytes) it held just after. */
  #lastDeparture = -Infinity
  #tokensAfterLast = 0
  /** Delivery time of the previous packet: FIFO, so jitter never reorders. */
  #lastDelivery = -Infinity
  readonly counters: LinkCounters = { packets: 0, bytes: 0, delivered: 0, deliveredBytes: 0, lost: 0, queueDrops: 0 }

  constructor(profile: LinkProfile = {}, seed = 1) {
    this.#profile = resolve(profile)
    this.#random = mulberry32(seed)
    this.#tokensAfterLast = this.#profile.burstBytes
  }

  get profile(): LinkProfile {
    return { ...this.#profile }
  }

  /** Replaces the profile from now on; packets already admitted keep their times (a step change). */
  set(profile: LinkProfile): void {
    this.#profile = resolve(profile)
  }

  admit(now: number, size: number): Verdict {
    const { loss, delayMs, jitterMs, rateKbps, queueMs, burstBytes } = this.#profile
    this.counters.packets++
    this.counters.bytes += size
    // Both draws are taken for every packet so that the loss pattern does not depend on the jitter setting.
    const lossDraw = this.#random()
    const jitterDraw = this.#random()
    if (lossDraw < loss) {
      this.counters.lost++
      return { dropped: 'loss' }
    }
    let departure = now
    if (rateKbps !== undefined) {
      const bytesPerMs = rateKbps / 8
      const start = Math.max(now, this.#lastDeparture)
      const refilled = this.#lastDeparture === -Infinity ? burstBytes : this.#tokensAfterLast + (start - this.#lastDeparture) * bytesPerMs
      const tokens = Math.min(burstBytes, refilled)
      departure = tokens >= size ? start : start + (size - tokens) / bytesPerMs
      if (departure - now > queueMs) {
        this.counters.queueDrops++
        return { dropped: 'queue' }
      }
      this.#tokensAfterLast = Math.max(0, tokens - size)
      this.#lastDeparture = departure
    }
    const deliverAt = Math.max(this.#lastDelivery, departure + delayMs + jitterDraw * jitterMs)
    this.#lastDelivery = deliverAt
    this.counters.delivered++
    this.counters.deliveredBytes += size
    return { deliverAt }
  }
}

function resolve(profile: LinkProfile) {
  const { loss = 0, delayMs = 0, jitterMs = 0, rateKbps, queueMs = 100, burstBytes = 3000 } = profile
  if (!(loss >= 0 && loss <= 1)) throw new RangeError(`loss must be within 0..1, got ${loss}`)
  if (rateKbps !== undefined && !(rateKbps > 0)) throw new RangeError(`rateKbps must be positive, got ${rateKbps}`)
  return { loss, delayMs: Math.max(0, delayMs), jitterMs: Math.max(0, jitterMs), rateKbps, queueMs: Math.max(0, queueMs), burstBytes: Math.max(1, burstBytes) }
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Packets of one direction waiting for their delivery time; one timer for the head (times only grow). */
class DelayLine {
  readonly #queue: { at: number; data: Buffer }[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined

  constructor(readonly send: (data: Buffer) => void) {}

  push(at: number, data: Buffer): void {
    // Due now with nothing ahead of it: send at once. A timer, even of 0 ms, adds event-loop
    // jitter that Chromium's delay-based estimator reads as congestion on a clean link.
    if (this.#head === this.#queue.length && at <= performance.now()) {
      this.send(data)
      return
    }
    this.#queue.push({ at, data })
    if (this.#timer === undefined) this.#arm()
  }

  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue.length = 0
    this.#head = 0
  }

  #arm(): void {
    const next = this.#queue[this.#head]
    if (next === undefined) {
      this.#timer = undefined
      return
    }
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, next.at - performance.now()))
  }

  #flush(): void {
    const now = performance.now()
    for (;;) {
      const next = this.#queue[this.#head]
      // Timers fire late rather than early; half a millisecond of slack saves a timer per packet.
      if (next === undefined || next.at > now + 0.5) break
      this.#head++
      this.send(next.data)
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
    this.#arm()
  }
}

/** One client address and its own socket towards the SFU. */
export class Flow {
  readonly uplink: LinkModel
  readonly downlink: LinkModel
  readonly #lines: Record<Direction, DelayLine>
  readonly #socket: Socket

  constructor(
    /** The client's address as the proxy sees it, `ip:port`. */
    readonly client: string,
    /** The address of this flow's socket towards the SFU, `ip:port`: what the SFU sees as the peer. */
    readonly upstream: string,
    socket: Socket,
    send: Record<Direction, (data: Buffer) => void>,
    profiles: Record<Direction, LinkProfile>,
    seed: number,
  ) {
    this.#socket = socket
    this.uplink = new LinkModel(profiles.uplink, seed)
    this.downlink = new LinkModel(profiles.downlink, (seed ^ 0x9e3779b9) >>> 0)
    this.#lines = { uplink: new DelayLine(send.uplink), downlink: new DelayLine(send.downlink) }
  }

  /** Changes one direction of this flow from now on. */
  set(direction: Direction, profile: LinkProfile): void {
    this[direction].set(profile)
  }

  /** Runs one packet through the model of `direction` and sends it when it is due. */
  relay(direction: Direction, data: Buffer): void {
    const verdict = this[direction].admit(performance.now(), data.length)
    if ('deliverAt' in verdict) this.#lines[direction].push(verdict.deliverAt, data)
  }

  close(): void {
    this.#lines.uplink.close()
    this.#lines.downlink.close()
    this.#socket.close()
  }
}

export interface ImpairmentProxyOptions {
  /** Where packets go: the SFU's UDP port. May be set later with `setTarget` (before traffic). */
  targetPort?: number
  targetHost?: string
  /** The address the proxy listens on and relays from. Default 127.0.0.1. */
  host?: string
  /** Seed of every flow's randomness (each flow and direction derives its own). Default 1. */
  seed?: number
  /** Profiles for flows not set otherwise, now and later. Default clean links. */
  uplink?: LinkProfile
  downlink?: LinkProfile
}

/**
 * Listens on one UDP port (announce it instead of the SFU's) and relays each client address to
 * the SFU through a socket of its own, so the SFU sees one distinct address per browser flow.
 */
export class ImpairmentProxy {
  readonly #listener: Socket
  readonly #host: string
  readonly #seed: number
  readonly #flows = new Map<string, Flow>()
  /** Packets of flows whose upstream socket is still binding. */
  readonly #opening = new Map<string, Buffer[]>()
  readonly #defaults: Record<Direction, LinkProfile>
  #target: { host: string; port: number } | undefined
  #closed = false

  private constructor(listener: Socket, options: ImpairmentProxyOptions) {
    this.#listener = listener
    this.#host = options.host ?? '127.0.0.1'
    this.#seed = options.seed ?? 1
    this.#defaults = { uplink: options.uplink ?? {}, downlink: options.downlink ?? {} }
    if (options.targetPort !== undefined) this.setTarget(options.targetPort, options.targetHost)
    listener.on('message', (data, from) => this.#fromClient(data, from))
    // A client that went away (ICMP port unreachable) must not crash the test process.
    listener.on('error', () => {})
  }

  static async start(options: ImpairmentProxyOptions = {}): Promise<ImpairmentProxy> {
    const listener = createSocket('udp4')
    await bind(listener, options.host ?? '127.0.0.1')
    return new ImpairmentProxy(listener, options)
  }

  /** The port clients send to. */
  get port(): number {
    return (this.#listener.address() as AddressInfo).port
  }

  setTarget(port: number, host = '127.0.0.1'): void {
    this.#target = { host, port }
  }

  /** Changes one direction of every flow, now and for flows still to come. */
  setDefault(direction: Direction, profile: LinkProfile): void {
    this.#defaults[direction] = profile
    for (const flow of this.#flows.values()) flow.set(direction, profile)
  }

  /** Every flow seen so far, by client address. */
  get flows(): ReadonlyMap<string, Flow> {
    return this.#flows
  }

  /** The flow of a client (`ip:port`), or the one the SFU sees at `ip:port` (its upstream). */
  flow(address: string): Flow | undefined {
    return this.#flows.get(address) ?? [...this.#flows.values()].find((flow) => flow.upstream === address)
  }

  /**
   * Forgets the flow of a client (`ip:port`, or the upstream the SFU sees), as a NAT that lost its
   * mapping would: the client's next packet opens a new flow, so the SFU sees it at a new address.
   */
  rebind(address: string): void {
    const flow = this.flow(address)
    if (flow === undefined) return
    this.#flows.delete(flow.client)
    flow.close()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const flow of this.#flows.values()) flow.close()
    this.#flows.clear()
    await new Promise<void>((resolve) => this.#listener.close(() => resolve()))
  }

  #fromClient(data: Buffer, from: RemoteInfo): void {
    if (this.#target === undefined || this.#closed) return
    const key = `${from.address}:${from.port}`
    const flow = this.#flows.get(key)
    if (flow !== undefined) {
      flow.relay('uplink', data)
      return
    }
    const waiting = this.#opening.get(key)
    if (waiting !== undefined) {
      waiting.push(data)
      return
    }
    this.#opening.set(key, [data])
    this.#open(key, from).catch(() => this.#opening.delete(key))
  }

  async #open(key: string, from: RemoteInfo): Promise<void> {
    const target = this.#target
    if (target === undefined) return
    const socket = createSocket('udp4')
    // The SFU must never see the proxy's listening port: each flow gets its own bound socket.
    await bind(socket, this.#host)
    socket.on('error', () => {})
    if (this.#closed) {
      socket.close()
      return
    }
    const address = socket.address()
    const send = {
      uplink: (data: Buffer) => socket.send(data, target.port, target.host),
      downlink: (data: Buffer) => {
        if (!this.#closed) this.#listener.send(data, from.port, from.address)
      },
    }
    const seed = (Math.imul(this.#seed, 0x01000193) + this.#flows.size + 1) >>> 0
    const flow = new Flow(key, `${address.address}:${address.port}`, socket, send, { ...this.#defaults }, seed)
    socket.on('message', (data) => flow.relay('downlink', data))
    this.#flows.set(key, flow)
    for (const data of this.#opening.get(key) ?? []) flow.relay('uplink', data)
    this.#opening.delete(key)
  }
}

function bind(socket: Socket, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, host, () => {
      socket.off('error', reject)
      resolve()
    })
  })
}
