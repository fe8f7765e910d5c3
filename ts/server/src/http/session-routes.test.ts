import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { ErrorBody } from '@conclave/protocol'
import { ENGINE_FLAVORS, quietLog } from '../../test/support/media-engines.js'
import { GARBAGE_SDP, PUBLISH_OFFER, VIEW_OFFER } from '../../test/support/sdp-fixtures.js'
import { accessToken, createControlPlane } from '../../test/support/control-plane.js'
import type { MediaEngine } from '../media/media-engine.js'

const secret = 'a-test-secret-of-some-length-1234'

function sdpPost(body: string, headers: Record<string, string> = {}): RequestInit {
  return { method: 'POST', body, headers: { 'Content-Type': 'application/sdp', ...headers } }
}

async function errorOf(response: Response): Promise<ErrorBody> {
  return ErrorBody.parse(await response.json())
}

function token(room: string, grants: Record<string, boolean> = {}) {
  return accessToken(secret, { room, grants })
}

for (const flavor of ENGINE_FLAVORS) {
  describe(`WHIP and WHEP over HTTP (${flavor.name})`, { skip: flavor.skip }, () => {
    let media: MediaEngine
    let plane: ReturnType<typeof createControlPlane>
    let app: ReturnType<typeof createControlPlane>['app']

    before(async () => {
      media = await flavor.create()
      plane = createControlPlane(media)
      app = plane.app
    })

    after(async () => {
      await plane.close()
      await media.close()
    })

    test('an offer that is not application/sdp is refused with 415', async () => {
      const response = await app.request('/whip/r1', { method: 'POST', body: PUBLISH_OFFER, headers: { 'Content-Type': 'text/plain' } })
      assert.equal(response.status, 415)
      assert.equal((await errorOf(response)).code, 'unsupported_media_type')
    })

    test('a malformed offer is refused with 400 and the engine says why', async () => {
      const response = await app.request('/whip/r1', sdpPost(GARBAGE_SDP))
      assert.equal(response.status, 400)
      const body = await errorOf(response)
      assert.equal(body.code, 'invalid_sdp')
      assert.ok(body.message.length > 0)
      assert.equal((await media.stats()).peers, 0, 'the peer of a refused offer is closed')
    })

    test('an empty offer is refused with 400', async () => {
      const response = await app.request('/whep/r1', sdpPost(''))
      assert.equal(response.status, 400)
    })

    test('a room name that is not URL-safe is a bad request', async () => {
      const response = await app.request('/whip/a%20b', sdpPost(PUBLISH_OFFER))
      assert.equal(response.status, 400)
      assert.equal((await errorOf(response)).code, 'bad_request')
    })

    test('deleting an unknown session is 404', async () => {
      const response = await app.request('/whip/r1/00000000-0000-4000-8000-000000000000', { method: 'DELETE' })
      assert.equal(response.status, 404)
      assert.equal((await errorOf(response)).code, 'resource_not_found')
    })

    test('PATCH on a session is 405 with Allow (no trickle: every candidate is in the answer)', async () => {
      const response = await app.request('/whip/r1/some-resource', { method: 'PATCH', body: 'a=end-of-candidates' })
      assert.equal(response.status, 405)
      assert.equal(response.headers.get('allow'), 'POST, DELETE')
    })

    test('a CORS preflight for the endpoint is answered', async () => {
      const response = await app.request('/whip/r1', {
        method: 'OPTIONS',
        headers: {
          Origin: 'https://player.example',
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'content-type, authorization',
        },
      })
      assert.equal(response.status, 204)
      assert.equal(response.headers.get('access-control-allow-origin'), '*')
      assert.match(response.headers.get('access-control-allow-methods') ?? '', /POST/)
      assert.match(response.headers.get('access-control-allow-headers') ?? '', /Authorization/i)
    })

    test('a publisher gets 201 with the answer, a Location and an ETag; DELETE ends it and frees the peer', async () => {
      const response = await app.request('/whip/r2', sdpPost(PUBLISH_OFFER, { Origin: 'https://player.example' }))
      assert.equal(response.status, 201, await response.clone().text())
      assert.equal(response.headers.get('content-type'), 'application/sdp')
      assert.match(response.headers.get('etag') ?? '', /^"[^"]+"$/)
      assert.match(response.headers.get('access-control-expose-headers') ?? '', /Location/)
      const location = response.headers.get('location') ?? ''
      assert.match(location, /^\/whip\/r2\/[0-9a-f-]{36}$/)
      assert.match(await response.text(), /^v=0\r\n/)
      assert.equal((await media.stats()).peers, 1)

      assert.equal((await app.request(location, { method: 'DELETE' })).status, 200)
      assert.equal((await media.stats()).peers, 0)
      assert.equal(plane.rooms.room('r2' as never), undefined, 'the empty room is gone')
      assert.equal((await app.request(location, { method: 'DELETE' })).status, 404)
    })

    test('a session is deleted only at its own room and kind', async () => {
      const response = await app.request('/whip/r3', sdpPost(PUBLISH_OFFER))
      const location = response.headers.get('location') ?? ''
      const resource = location.split('/').at(-1) ?? ''
      assert.equal((await app.request(`/whip/other/${resource}`, { method: 'DELETE' })).status, 404)
      assert.equal((await app.request(`/whep/r3/${resource}`, { method: 'DELETE' })).status, 404)
      assert.equal((await app.request(location, { method: 'DELETE' })).status, 200)
    })

    test('a viewer gets 201 with an answer', async () => {
      const response = await app.request('/whep/r4', sdpPost(VIEW_OFFER))
      assert.equal(response.status, 201, await response.clone().text())
      assert.match(response.headers.get('location') ?? '', /^\/whep\/r4\//)
      assert.match(await response.text(), /^v=0\r\n/)
      assert.equal((await app.request(response.headers.get('location') ?? '', { method: 'DELETE' })).status, 200)
    })
  })

  describe(`WHIP with JWT authentication (${flavor.name})`, { skip: flavor.skip }, () => {
    let media: MediaEngine
    let plane: ReturnType<typeof createControlPlane>
    let app: ReturnType<typeof createControlPlane>['app']

    before(async () => {
      media = await flavor.create()
      plane = createControlPlane(media, { jwtSecret: secret })
      app = plane.app
    })

    after(async () => {
      await plane.close()
      await media.close()
    })

    test('an offer without a token is rejected with 401', async () => {
      const response = await app.request('/whip/r1', sdpPost(PUBLISH_OFFER))
      assert.equal(response.status, 401)
      assert.equal((await errorOf(response)).code, 'unauthenticated')
    })

    test('a token for another room is rejected with 403', async () => {
      const response = await app.request('/whip/r1', sdpPost(PUBLISH_OFFER, { Authorization: `Bearer ${await token('r2')}` }))
      assert.equal(response.status, 403)
      assert.equal((await errorOf(response)).code, 'forbidden')
    })

    test('a token for the room publishes, and is needed to delete', async () => {
      const bearer = `Bearer ${await token('r1')}`
      const response = await app.request('/whip/r1', sdpPost(PUBLISH_OFFER, { Authorization: bearer }))
      assert.equal(response.status, 201)
      const location = response.headers.get('location') ?? ''
      assert.equal((await app.request(location, { method: 'DELETE' })).status, 401)
      assert.equal((await app.request(location, { method: 'DELETE', headers: { Authorization: bearer } })).status, 200)
    })

    test('a token without canPublish may not publish, one without canSubscribe may not play', async () => {
      const publish = await app.request('/whip/r1', sdpPost(PUBLISH_OFFER, { Authorization: `Bearer ${await token('r1', { canPublish: false })}` }))
      assert.equal(publish.status, 403)
      const play = await app.request('/whep/r1', sdpPost(VIEW_OFFER, { Authorization: `Bearer ${await token('r1', { canSubscribe: false })}` }))
      assert.equal(play.status, 403)
      assert.equal((await errorOf(play)).code, 'forbidden')
    })
  })
}
