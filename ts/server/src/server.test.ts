import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { PROTOCOL_VERSION, ServerMessage } from '@conclave/protocol'
import { accessToken } from '../test/support/control-plane.js'
import { eventually } from '../test/support/eventually.js'
import { quietLog } from '../test/support/media-engines.js'
import { FakeMediaEngine } from './media/fake-media-engine.js'
import { type ConclaveServer, createServer } from './server.js'

const secret = 'server-test-secret-server-test-secret'

function token(room: string) {
  return accessToken(secret, { room })
}

/** Resolves with the HTTP status of a refused upgrade, or 101 once the socket opens. */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers })
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

describe('the server with JWT authentication', () => {
  let server: ConclaveServer
  let media: FakeMediaEngine

  before(async () => {
    media = new FakeMediaEngine()
    server = await createServer({ httpPort: 0, httpHost: '127.0.0.1', media, jwtSecret: secret, log: quietLog })
  })

  after(async () => {
    await server.close()
  })

  test('a WebSocket upgrade without a token is rejected with 401 before it completes', async () => {
    assert.equal(await upgradeStatus(`${server.url.replace('http', 'ws')}/ws`), 401)
    assert.equal(await upgradeStatus(`${server.url.replace('http', 'ws')}/ws?token=forged`), 401)
  })

  test('a token in ?token= or in the Authorization header opens the socket', async () => {
    const wsUrl = `${server.url.replace('http', 'ws')}/ws`
    assert.equal(await upgradeStatus(`${wsUrl}?token=${await token('daily')}`), 101)
    assert.equal(await upgradeStatus(wsUrl, { Authorization: `Bearer ${await token('daily')}` }), 101)
  })

  test('a member joins over a real socket, and closing it as a page does when unloaded (1001) makes it leave at once', async () => {
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/ws?token=${await token('daily')}`)
    const received: ServerMessage[] = []
    socket.on('message', (data: Buffer) => received.push(ServerMessage.parse(JSON.parse(data.toString()))))
    await new Promise((resolve) => socket.once('open', resolve))
    socket.send('not json')
    socket.send(JSON.stringify({ type: 'join', id: '1', protocolVersion: PROTOCOL_VERSION, room: 'daily', name: 'Ada' }))
    await eventually('joined', () => received.find((message) => message.type === 'joined'))
    assert.equal(received[0]?.type, 'error', 'the bad frame got an error and the socket stayed open')
    assert.equal(server.rooms.roomCount, 1)
    // Other closes keep the participant for the resume grace period (meeting-resume.test.ts).
    socket.close(1001)
    await eventually('the room is gone', () => server.rooms.roomCount === 0)
  })

  test('the meeting page is served at /', async () => {
    const response = await fetch(`${server.url}/`)
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /text\/html/)
    assert.match(await response.text(), /meeting-page\.js/)
    assert.equal((await fetch(`${server.url}/meeting-page.js`)).status, 200)
    assert.equal((await fetch(`${server.url}/nope.js`)).status, 404)
  })
})
