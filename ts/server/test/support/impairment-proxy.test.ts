import assert from 'node:assert/strict'
import { createSocket, type Socket } from 'node:dgram'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { eventually } from './eventually.js'
import { ImpairmentProxy, LinkModel } from './impairment-proxy.js'

/** Packets of `size` bytes at `kbps` for `seconds`, through `link`; the verdicts with their send times. */
function offer(link: LinkModel, { kbps, seconds, size = 1200, start = 0 }: { kbps: number; seconds: number; size?: number; start?: number }) {
  const gapMs = (size * 8) / kbps
  const verdicts = []
  for (let at = start; at < start + seconds * 1000; at += gapMs) verdicts.push({ at, verdict: link.admit(at, size) })
  return verdicts
}

describe('LinkModel (simulated time)', () => {
  test('a clean link delivers every packet at once, in order', () => {
    const link = new LinkModel()
    for (const { at, verdict } of offer(link, { kbps: 2000, seconds: 1 })) assert.deepEqual(verdict, { deliverAt: at })
    assert.equal(link.counters.lost + link.counters.queueDrops, 0)
  })

  test('5% loss loses about 5% of packets, the same ones for the same seed', () => {
    const pattern = (seed: number) => {
      const link = new LinkModel({ loss: 0.05 }, seed)
      return offer(link, { kbps: 1000, seconds: 100 }).map(({ verdict }) => 'dropped' in verdict)
    }
    const first = pattern(7)
    const lost = first.filter(Boolean).length / first.length
    assert.ok(lost > 0.04 && lost < 0.06, `lost ${lost}`)
    assert.deepEqual(pattern(7), first)
    assert.notDeepEqual(pattern(8), first)
  })

  test('delay and jitter hold each packet between delay and delay + jitter, never reordered', () => {
    const link = new LinkModel({ delayMs: 40, jitterMs: 20 }, 3)
    let previous = -Infinity
    for (const { at, verdict } of offer(link, { kbps: 500, seconds: 5 })) {
      assert.ok('deliverAt' in verdict)
      assert.ok(verdict.deliverAt >= at + 40 && verdict.deliverAt >= previous, `${at} -> ${verdict.deliverAt}`)
      previous = verdict.deliverAt
    }
    // Order is kept by holding a packet behind a later-drawn one: bounded by the jitter itself.
    const last = offer(link, { kbps: 10, seconds: 1, start: 10_000 }).at(-1)
    assert.ok(last !== undefined && 'deliverAt' in last.verdict && last.verdict.deliverAt <= last.at + 60)
  })

  test('a 500 kbit/s cap delivers 500 kbit/s of a 1 Mbit/s stream, queueing at most queueMs and dropping the rest', () => {
    const link = new LinkModel({ rateKbps: 500, queueMs: 200 })
    const verdicts = offer(link, { kbps: 1000, seconds: 10 })
    const delivered = verdicts.filter(({ verdict }) => 'deliverAt' in verdict)
    const lastDelivery = Math.max(...delivered.map(({ verdict }) => ('deliverAt' in verdict ? verdict.deliverAt : 0)))
    const kbps = (delivered.length * 1200 * 8) / lastDelivery
    assert.ok(kbps > 480 && kbps < 520, `throughput ${kbps} kbit/s`)
    for (const { at, verdict } of delivered) assert.ok('deliverAt' in verdict && verdict.deliverAt - at <= 200)
    assert.ok(link.counters.queueDrops > verdicts.length * 0.45, `queue drops ${link.counters.queueDrops} of ${verdicts.length}`)
    assert.equal(link.counters.lost, 0)
  })

  test('under the cap nothing waits; lifting the cap lets later packets through at once once the queue has drained', () => {
    const link = new LinkModel({ rateKbps: 500 })
    for (const { at, verdict } of offer(link, { kbps: 400, seconds: 2 })) assert.deepEqual(verdict, { deliverAt: at })
    offer(link, { kbps: 2000, seconds: 1, start: 2000 })
    assert.ok(link.counters.queueDrops > 0)
    link.set({})
    // What the queue already holds (at most queueMs, 100 by default) still goes first: FIFO.
    for (const { at, verdict } of offer(link, { kbps: 2000, seconds: 1, start: 3000 })) {
      assert.ok('deliverAt' in verdict && verdict.deliverAt <= Math.max(at, 3100))
    }
    for (const { at, verdict } of offer(link, { kbps: 2000, seconds: 1, start: 4000 })) assert.deepEqual(verdict, { deliverAt: at })
  })
})

describe('ImpairmentProxy (loopback sockets)', () => {
  const sockets: Socket[] = []
  const proxies: ImpairmentProxy[] = []

  after(async () => {
    for (const socket of sockets) socket.close()
    await Promise.all(proxies.map((proxy) => proxy.close()))
  })

  async function udp(onMessage?: (socket: Socket, data: Buffer, from: { address: string; port: number }) => void): Promise<Socket> {
    const socket = createSocket('udp4')
    sockets.push(socket)
    if (onMessage !== undefined) socket.on('message', (data, from) => onMessage(socket, data, from))
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    return socket
  }

  test('each client gets its own upstream address, replies find their client, and a flow can be impaired alone', async () => {
    const seenBy = new Set<string>()
    const server = await udp((socket, data, from) => {
      seenBy.add(`${from.address}:${from.port}`)
      socket.send(data, from.port, from.address)
    })
    const proxy = await ImpairmentProxy.start({ targetPort: (server.address() as AddressInfo).port, seed: 5 })
    proxies.push(proxy)
    const echoes = [0, 0]
    const clients = await Promise.all([0, 1].map((i) => udp(() => echoes[i]!++)))
    const sendAll = (count: number) => {
      for (let n = 0; n < count; n++) for (const client of clients) client.send(Buffer.from(`ping ${n}`), proxy.port, '127.0.0.1')
    }
    sendAll(5)
    await eventually('both clients to get their echoes', () => echoes[0] === 5 && echoes[1] === 5)
    assert.equal(seenBy.size, 2)
    assert.ok(!seenBy.has(`127.0.0.1:${proxy.port}`), 'the server never sees the listening port')
    const first = proxy.flow(`127.0.0.1:${(clients[0]!.address() as AddressInfo).port}`)
    assert.ok(first !== undefined && seenBy.has(first.upstream))
    assert.equal(proxy.flow(first.upstream), first, 'a flow is found by what the SFU sees too')

    first.set('downlink', { loss: 1 })
    sendAll(5)
    await eventually('the clean client to get its echoes', () => echoes[1] === 10)
    assert.equal(first.downlink.counters.lost, 5)
    assert.equal(echoes[0], 5)
  })

  test('a default set at runtime delays every flow', async () => {
    const server = await udp((socket, data, from) => socket.send(data, from.port, from.address))
    const proxy = await ImpairmentProxy.start({ targetPort: (server.address() as AddressInfo).port })
    proxies.push(proxy)
    let echoedAt = 0
    const client = await udp(() => (echoedAt = performance.now()))
    proxy.setDefault('uplink', { delayMs: 60 })
    const sentAt = performance.now()
    client.send(Buffer.from('x'), proxy.port, '127.0.0.1')
    await eventually('the echo', () => echoedAt > 0)
    assert.ok(echoedAt - sentAt >= 59, `round trip ${echoedAt - sentAt} ms`)
  })
})
