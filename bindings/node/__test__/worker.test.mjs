// The addon's contract (docs: /ADDON_API.md in the lead's notes), against a real worker on loopback.
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { after, test } from 'node:test'
import { MediaWorker } from '../index.js'

const PATIENCE_MS = 10_000
const workers = []

/** Starts a worker on a free loopback port; every batch of events is recorded. */
function startWorker({ faultInjection = false } = {}) {
  const previous = process.env.CONCLAVE_FAULT_INJECTION
  if (faultInjection) process.env.CONCLAVE_FAULT_INJECTION = '1'
  else delete process.env.CONCLAVE_FAULT_INJECTION
  const batches = []
  const waiters = []
  try {
    const worker = MediaWorker.start({ port: 0, bindAddress: '127.0.0.1', announcedAddress: '127.0.0.1' }, (err, events) => {
      assert.equal(err, null)
      batches.push(events)
      for (const waiter of [...waiters]) waiter()
    })
    workers.push(worker)
    /** Resolves with the first event matching `wanted`, or rejects after PATIENCE_MS. */
    const eventMatching = (wanted) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = batches.flat().find(wanted)
          if (!found) return
          waiters.splice(waiters.indexOf(check), 1)
          clearTimeout(timer)
          resolve(found)
        }
        const timer = setTimeout(() => reject(new Error(`no matching event in ${JSON.stringify(batches)}`)), PATIENCE_MS)
        waiters.push(check)
        check()
      })
    return { worker, batches, eventMatching }
  } finally {
    if (previous === undefined) delete process.env.CONCLAVE_FAULT_INJECTION
    else process.env.CONCLAVE_FAULT_INJECTION = previous
  }
}

after(async () => {
  await Promise.all(workers.map((worker) => worker.close()))
})

test('start on port 0 binds a free port and announces a sha-256 fingerprint', async () => {
  const { worker } = startWorker()
  assert.ok(worker.port > 0 && worker.port < 65536)
  assert.match(worker.fingerprint, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
})

test('createPeer resolves with a peer id that closePeer then frees', async () => {
  const { worker } = startWorker()
  const peerId = await worker.createPeer()
  assert.equal(typeof peerId, 'number')
  const stats = await worker.peerStats(peerId)
  assert.equal(stats.peerId, peerId)
  assert.equal(stats.connected, false)
  await worker.closePeer(peerId)
  await assert.rejects(worker.closePeer(peerId), { code: 'peer_not_found' })
})

test('closePeer of an unknown peer rejects with peer_not_found', async () => {
  const { worker } = startWorker()
  await assert.rejects(worker.closePeer(12345), (err) => {
    assert.ok(err instanceof Error)
    assert.equal(err.code, 'peer_not_found')
    return true
  })
})

test('applyOffer with garbage rejects with invalid_sdp', async () => {
  const { worker } = startWorker()
  const peerId = await worker.createPeer()
  await assert.rejects(worker.applyOffer(peerId, 'this is not sdp'), { code: 'invalid_sdp' })
})

test('ids that are not whole non-negative numbers reject with invalid_argument', async () => {
  const { worker } = startWorker()
  await assert.rejects(worker.closePeer(-1), { code: 'invalid_argument' })
  await assert.rejects(worker.subscribe(1, 1.5), { code: 'invalid_argument' })
  await assert.rejects(worker.requestKeyframe(2 ** 32), { code: 'invalid_argument' })
})

test('setLayerPreference checks its numbers and answers the engine codes', async () => {
  const { worker } = startWorker()
  const peerId = await worker.createPeer()
  await assert.rejects(worker.setLayerPreference(peerId, 1, { maxSpatialLayer: 256 }), { code: 'invalid_argument' })
  await assert.rejects(worker.setLayerPreference(peerId, 1, { maxHeight: 0.5 }), { code: 'invalid_argument' })
  await assert.rejects(worker.setLayerPreference(peerId + 1000, 1, { maxHeight: 180 }), { code: 'peer_not_found' })
  await assert.rejects(worker.setLayerPreference(peerId, 1, { maxHeight: 180 }), { code: 'not_subscribed' })
  await assert.rejects(worker.setLayerPreference(peerId, 1, {}), { code: 'not_subscribed' })
})

test('start with a bad address throws invalid_argument; with a taken port, bind_failed', async () => {
  assert.throws(() => MediaWorker.start({ port: 0, announcedAddress: 'not an ip' }, () => {}), {
    code: 'invalid_argument',
  })
  const taken = createSocket('udp4')
  await new Promise((resolve) => taken.bind(0, '127.0.0.1', resolve))
  try {
    const port = taken.address().port
    assert.throws(() => MediaWorker.start({ port, bindAddress: '127.0.0.1', announcedAddress: '127.0.0.1' }, () => {}), {
      code: 'bind_failed',
    })
  } finally {
    taken.close()
  }
})

test('stats count datagrams the worker dropped', async () => {
  const { worker } = startWorker()
  const client = createSocket('udp4')
  await new Promise((resolve) => client.bind(0, '127.0.0.1', resolve))
  try {
    await new Promise((resolve, reject) =>
      client.send(Buffer.from([0xff, 1, 2, 3]), worker.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
    )
    const deadline = Date.now() + PATIENCE_MS
    let stats = await worker.stats()
    while (stats.droppedMalformed < 1) {
      assert.ok(Date.now() < deadline, `never counted: ${JSON.stringify(stats)}`)
      await new Promise((resolve) => setImmediate(resolve))
      stats = await worker.stats()
    }
    assert.equal(stats.workerRestarts, 0)
  } finally {
    client.close()
  }
})

test('without CONCLAVE_FAULT_INJECTION, injectPanic rejects with invalid_state', async () => {
  const { worker } = startWorker()
  await assert.rejects(worker.injectPanic(), { code: 'invalid_state' })
})

test('an injected panic restarts the worker, reports it in event arrays, and the worker keeps serving', async () => {
  const { worker, batches, eventMatching } = startWorker({ faultInjection: true })
  const peerId = await worker.createPeer()
  const order = []
  const restarted = eventMatching((event) => event.type === 'worker-restarted').then((event) => {
    order.push('event')
    return event
  })
  await assert.rejects(
    worker.injectPanic().finally(() => order.push('reply')),
    { code: 'worker_restarted' },
  )
  const event = await restarted
  assert.match(event.reason, /InjectPanic/)
  const disconnected = await eventMatching((e) => e.type === 'peer-disconnected' && e.peerId === peerId)
  assert.equal(disconnected.reason, 'worker_restarted')
  assert.deepEqual(order, ['reply', 'event'], 'the reply settles before the events it caused are delivered')
  assert.ok(batches.every((batch) => Array.isArray(batch) && batch.length > 0))

  const stats = await worker.stats()
  assert.equal(stats.workerRestarts, 1)
  assert.equal(stats.peers, 0)
  await worker.createPeer()
})

test('close resolves once; later calls reject with worker_closed; closing again resolves', async () => {
  const { worker } = startWorker()
  const port = worker.port
  const answered = worker.stats()
  const closed = worker.close()
  await assert.rejects(worker.createPeer(), { code: 'worker_closed' })
  await answered
  await closed
  await worker.close()
  const reuse = createSocket('udp4')
  await new Promise((resolve, reject) => {
    reuse.once('error', reject)
    reuse.bind(port, '127.0.0.1', resolve)
  })
  reuse.close()
})
