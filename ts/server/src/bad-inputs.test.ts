// A table of bad inputs over real sockets: each gets its typed answer (an HTTP status before the
// upgrade, or an `error` reply) and the server keeps serving a well-behaved member meanwhile.

import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ServerMessage } from '@conclave/protocol'
import { accessToken } from '../test/support/control-plane.js'
import { eventually } from '../test/support/eventually.js'
import { quietLog } from '../test/support/media-engines.js'
import { FakeMediaEngine } from './media/fake-media-engine.js'
import { type ConclaveServer, createServer } from './server.js'

const secret = 'bad-inputs-secret-bad-inputs-secret'
const key = new TextEncoder().encode(secret)
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600

function forged(header: Record<string, unknown>, payload: Record<string, unknown>, sign: boolean): string {
  const input = `${b64(header)}.${b64(payload)}`
  return sign ? `${input}.${createHmac('sha256', key).update(input).digest('base64url')}` : `${input}.`
}

function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.on('open', () => {
      socket.close()
      resolve(101)
    })
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      socket.terminate()
    })
    socket.on('error', reject)
  })
}

/** A member on a real socket that records what it gets. */
async function member(server: ConclaveServer, token: string) {
  const socket = new WebSocket(`${server.url.replace('http', 'ws')}/ws?token=${token}`)
  const received: ServerMessage[] = []
  const closed: number[] = []
  socket.on('message', (data: Buffer) => received.push(ServerMessage.parse(JSON.parse(data.toString()))))
  socket.on('close', (code) => closed.push(code))
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  let next = 0
  const request = async (message: Record<string, unknown>) => {
    const id = `q${++next}`
    socket.send(JSON.stringify({ ...message, id }))
    return eventually(`a reply to ${String(message.type)}`, () => received.find((reply) => 'id' in reply && reply.id === id))
  }
  return { socket, received, closed, request }
}

describe('bad inputs against a running server', () => {
  let server: ConclaveServer
  let bystander: Awaited<ReturnType<typeof member>>

  before(async () => {
    server = await createServer({ httpPort: 0, httpHost: '127.0.0.1', media: new FakeMediaEngine(), jwtSecret: secret, log: quietLog })
    bystander = await member(server, await accessToken(secret, { room: 'daily', identity: 'bystander' }))
    assert.equal((await bystander.request({ type: 'join', protocolVersion: PROTOCOL_VERSION, room: 'daily' })).type, 'joined')
  })

  after(async () => {
    bystander.socket.close()
    await server.close()
  })

  /** The bystander is still served: a chat round-trips. */
  async function stillServing() {
    const reply = await bystander.request({ type: 'chat', text: 'still here' })
    assert.equal(reply.type, 'done')
  }

  const badTokens: [string, () => Promise<string> | string][] = [
    ['no token', () => ''],
    ['garbage', () => 'garbage'],
    ['an expired token', () => accessToken(secret, { room: 'daily' }, Math.floor(Date.now() / 1000) - 10)],
    ['a token not valid yet', () => new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setNotBefore('1h').setExpirationTime('2h').sign(key)],
    ['a token signed with another secret', () => accessToken('another-secret-another-secret-xx', { room: 'daily' })],
    ['alg none', () => forged({ alg: 'none' }, { sub: 'a', room: 'daily', exp: inAnHour() }, false)],
    ['RS256 header, HMAC signature', () => forged({ alg: 'RS256' }, { sub: 'a', room: 'daily', exp: inAnHour() }, true)],
  ]
  for (const [what, make] of badTokens) {
    test(`a WebSocket upgrade with ${what} is refused with 401 before it completes`, async () => {
      assert.equal(await upgradeStatus(`${server.url.replace('http', 'ws')}/ws?token=${await make()}`), 401)
      await stillServing()
    })
  }

  const badFrames: [string, string | Record<string, unknown>, string][] = [
    ['text that is not JSON', '{nope', 'invalid_message'],
    ['JSON that is not an object', '[1,2]', 'invalid_message'],
    ['an unknown type', { type: 'teleport', id: 'x' }, 'invalid_message'],
    ['a join from protocol 1', { type: 'join', id: 'x', protocolVersion: 1, room: 'daily' }, 'invalid_message'],
    ['a join for another room than the token', { type: 'join', id: 'x', protocolVersion: PROTOCOL_VERSION, room: 'other' }, 'forbidden'],
    ['an offer before joining', { type: 'offer', id: 'x', sdp: 'v=0\r\n' }, 'invalid_state'],
    ['a chat before joining', { type: 'chat', id: 'x', text: 'hi' }, 'invalid_state'],
    ['a frame over the protocol limit', { type: 'chat', id: 'x', text: 'x'.repeat(MAX_MESSAGE_BYTES) }, 'payload_too_large'],
  ]
  for (const [what, frame, code] of badFrames) {
    test(`${what} gets ${code} and the socket stays open`, async () => {
      const client = await member(server, await accessToken(secret, { room: 'daily', identity: 'tester' }))
      try {
        client.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
        const error = await eventually('an error reply', () => client.received.find((message) => message.type === 'error'))
        assert.ok(error.type === 'error')
        assert.equal(error.code, code)
        assert.equal((await client.request({ type: 'leave' })).type, 'error', 'the socket still answers')
        assert.deepEqual(client.closed, [])
        await stillServing()
      } finally {
        client.socket.close()
      }
    })
  }

  test('a frame far over the limit closes that socket (1009) and no other', async () => {
    const client = await member(server, await accessToken(secret, { room: 'daily', identity: 'huge' }))
    client.socket.send('x'.repeat(4 * MAX_MESSAGE_BYTES + 1))
    await eventually('the socket to close', () => client.closed.length === 1)
    assert.deepEqual(client.closed, [1009])
    await stillServing()
  })

  test('a flood gets rate_limited replies, and a flood that goes on closes that socket only', async () => {
    const client = await member(server, await accessToken(secret, { room: 'daily', identity: 'flooder' }))
    for (let i = 0; i < 300; i++) client.socket.send(JSON.stringify({ type: 'leave', id: `f${i}` }))
    await eventually('rate_limited replies', () => client.received.some((message) => message.type === 'error' && message.code === 'rate_limited'))
    await eventually('the flooder to be cut off', () => client.closed.length === 1, { timeoutMs: 5000 })
    assert.deepEqual(client.closed, [1008])
    await stillServing()
  })

  test('a join to an unknown room when the token is for it creates it; REST sees unknown rooms as 404', async () => {
    const response = await fetch(`${server.url}/v1/rooms/ghost`)
    assert.equal(response.status, 401, 'no API key configured: the REST API is closed')
    await stillServing()
  })
})
