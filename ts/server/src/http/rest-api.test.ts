import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { ErrorBody, ParticipantList, RoomDetails, RoomList, TokenResponse } from '@conclave/protocol'
import { createControlPlane } from '../../test/support/control-plane.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'

const secret = 'rest-test-secret-rest-test-secret'
const apiKey = 'rest-test-api-key'
const auth = { Authorization: `Bearer ${apiKey}` }

function json(method: string, body: unknown, headers: Record<string, string> = auth): RequestInit {
  return { method, body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers } }
}

describe('REST API /v1', () => {
  let plane: ReturnType<typeof createControlPlane>
  let app: ReturnType<typeof createControlPlane>['app']

  before(() => {
    plane = createControlPlane(new FakeMediaEngine(), { jwtSecret: secret, apiKey })
    app = plane.app
  })

  after(async () => {
    await plane.close()
  })

  test('the OpenAPI document lists every route with its schemas', async () => {
    const response = await app.request('/v1/openapi.json')
    assert.equal(response.status, 200)
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> }
    assert.equal(document.openapi, '3.1.0')
    for (const path of ['/v1/rooms', '/v1/rooms/{room}/participants/{participant}/mute', '/v1/rooms/{room}/waiting/admit', '/v1/tokens', '/healthz', '/readyz']) {
      assert.ok(document.paths[path], path)
    }
    assert.ok(JSON.stringify(document.paths['/v1/tokens']).includes('canPublishSources'))
  })

  test('a room is created with options, listed, read, locked and closed', async () => {
    const created = await app.request('/v1/rooms', json('POST', { room: 'board', waitingRoom: true, maxParticipants: 10 }))
    assert.equal(created.status, 201)
    assert.deepEqual(RoomDetails.parse(await created.json()), {
      ...RoomDetails.parse({ room: 'board', waitingRoom: true, locked: false, maxParticipants: 10, emptyTimeoutSeconds: 300, createdAt: 0, participants: 0, waiting: 0 }),
      createdAt: (await plane.store.getRoom('board' as never))?.createdAt ?? 0,
    })
    assert.equal((await app.request('/v1/rooms', json('POST', { room: 'board' }))).status, 409)
    const list = RoomList.parse(await (await app.request('/v1/rooms', { headers: auth })).json())
    assert.deepEqual(list.rooms.map((room) => room.room), ['board'])
    const locked = await app.request('/v1/rooms/board', json('PATCH', { locked: true }))
    assert.equal(RoomDetails.parse(await locked.json()).locked, true)
    assert.equal((await app.request('/v1/rooms/board', { method: 'DELETE', headers: auth })).status, 204)
    assert.equal((await app.request('/v1/rooms/board', { headers: auth })).status, 404)
  })

  test('a minted token admits to its room with its role', async () => {
    const response = await app.request('/v1/tokens', json('POST', { room: 'board', identity: 'ada', role: 'cohost', grants: { canChat: false } }))
    assert.equal(response.status, 201)
    const { token } = TokenResponse.parse(await response.json())
    const principal = await plane.auth.authenticator.authenticate(token)
    assert.deepEqual([principal.room, principal.identity, principal.role, principal.grants.canChat], ['board', 'ada', 'cohost', false])
  })

  test('participants of a room made by a join are listed', async () => {
    const principal = await plane.auth.authenticator.authenticate(
      TokenResponse.parse(await (await app.request('/v1/tokens', json('POST', { room: 'live', identity: 'bob', name: 'Bob' }))).json()).token,
    )
    const result = await plane.meeting.join(principal, 'live' as never, undefined, { send: () => {}, close: () => {} })
    assert.equal(result.state, 'active')
    const list = ParticipantList.parse(await (await app.request('/v1/rooms/live/participants', { headers: auth })).json())
    assert.deepEqual(list.participants.map(({ name, identity, state, kind }) => ({ name, identity, state, kind })), [{ name: 'Bob', identity: 'bob', state: 'active', kind: 'member' }])
    const id = list.participants[0]?.participantId
    const patched = await app.request(`/v1/rooms/live/participants/${id}`, json('PATCH', { role: 'cohost', grants: { canChat: false } }))
    assert.equal(patched.status, 200)
    assert.equal(((await patched.json()) as { role: string }).role, 'cohost')
    assert.equal((await app.request(`/v1/rooms/live/participants/${id}`, { method: 'DELETE', headers: auth })).status, 204)
    assert.equal((await app.request(`/v1/rooms/live/participants/${id}`, { headers: auth })).status, 404)
  })

  test('the dev token route exists only in open dev mode', async () => {
    assert.equal((await app.request('/v1/dev-token?room=x')).status, 404)
    const open = createControlPlane(new FakeMediaEngine())
    try {
      const response = await open.app.request('/v1/dev-token?room=x&name=Ada&role=guest')
      assert.equal(response.status, 200)
      const principal = await open.auth.authenticator.authenticate(TokenResponse.parse(await response.json()).token)
      assert.deepEqual([principal.room, principal.name, principal.role], ['x', 'Ada', 'guest'])
      assert.equal((await open.app.request('/v1/dev-token?room=a/b')).status, 400)
    } finally {
      await open.close()
    }
  })

  test('health and readiness answer without a key', async () => {
    assert.equal((await app.request('/healthz')).status, 200)
    assert.equal((await app.request('/readyz')).status, 200)
  })

  // Bad inputs, each with its typed error; the API keeps serving after every one.
  const badRequests: [string, string, RequestInit, number, string][] = [
    ['no API key', '/v1/rooms', { method: 'GET' }, 401, 'unauthenticated'],
    ['a wrong API key', '/v1/rooms', { headers: { Authorization: 'Bearer nope' } }, 401, 'unauthenticated'],
    ['a body that is not JSON', '/v1/rooms', json('POST', '{nope'), 400, 'bad_request'],
    ['a room name with a slash', '/v1/rooms', json('POST', { room: 'a/b' }), 400, 'bad_request'],
    ['a negative participant limit', '/v1/rooms', json('POST', { room: 'neg', maxParticipants: -1 }), 400, 'bad_request'],
    ['a body over 64 KiB', '/v1/rooms', json('POST', { room: 'big', pad: 'x'.repeat(70_000) }), 413, 'payload_too_large'],
    ['a token with an unknown role', '/v1/tokens', json('POST', { room: 'r', identity: 'a', role: 'owner' }), 400, 'bad_request'],
    ['a token for ten years', '/v1/tokens', json('POST', { room: 'r', identity: 'a', ttlSeconds: 315_360_000 }), 400, 'bad_request'],
    ['an unknown room', '/v1/rooms/ghost', { headers: auth }, 404, 'room_not_found'],
    ['the participants of an unknown room', '/v1/rooms/ghost/participants', { headers: auth }, 404, 'room_not_found'],
    ['muting in an unknown room', '/v1/rooms/ghost/participants/p-x/mute', json('POST', {}), 404, 'participant_not_found'],
    ['admitting in an unknown room', '/v1/rooms/ghost/waiting/admit', json('POST', {}), 404, 'room_not_found'],
    ['an unknown route', '/v1/teleport', { headers: auth }, 404, 'resource_not_found'],
  ]
  for (const [what, path, init, status, code] of badRequests) {
    test(`${what} gets ${status} ${code}`, async () => {
      const response = await app.request(path, init)
      assert.equal(response.status, status)
      assert.equal(ErrorBody.parse(await response.json()).code, code)
      assert.equal((await app.request('/v1/rooms', { headers: auth })).status, 200, 'the API still serves')
    })
  }
})
