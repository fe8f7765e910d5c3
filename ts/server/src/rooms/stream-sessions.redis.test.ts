// WHIP/WHEP sessions across two real server instances (HTTP, WebSocket) sharing one real
// redis-server; the media engine is the fake one, so tracks appear as soon as an offer is answered.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { ParticipantList, type Role } from '@conclave/protocol'
import { accessToken } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { wsMember as joinOverWebSocket } from '../../test/support/ws-member.js'
import { quietLog } from '../../test/support/media-engines.js'
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js'
import { PUBLISH_OFFER, VIEW_OFFER } from '../../test/support/sdp-fixtures.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { type ConclaveServer, createServer } from '../server.js'
import { sessionParticipantId } from './stream-sessions.js'

const secret = 'stream-sessions-redis-secret-0123456789'
const apiKey = 'stream-sessions-redis-api-key'
const api = { Authorization: `Bearer ${apiKey}` }

async function startNode(redis: RedisServer, nodeId: string, media: FakeMediaEngine): Promise<ConclaveServer> {
  return createServer({ httpPort: 0, httpHost: '127.0.0.1', jwtSecret: secret, apiKey, redisUrl: redis.url, nodeId, media, assetsDir: '/nonexistent', log: quietLog })
}

async function listed(server: ConclaveServer, room: string) {
  const response = await fetch(`${server.url}/v1/rooms/${room}/participants`, { headers: api })
  assert.equal(response.status, 200)
  return ParticipantList.parse(await response.json()).participants
}

/** A member joined over the real WebSocket of `server`, with every message it got. */
function wsMember(server: ConclaveServer, room: string, identity: string, role: Role = 'guest') {
  return joinOverWebSocket(server.url, secret, room, identity, role)
}

describe('WHIP and WHEP sessions on two instances sharing a real Redis', () => {
  let redis: RedisServer
  const mediaOne = new FakeMediaEngine()
  const mediaTwo = new FakeMediaEngine()
  let one: ConclaveServer
  let two: ConclaveServer

  before(async () => {
    redis = await startRedisServer()
    one = await startNode(redis, 'node-one', mediaOne)
    two = await startNode(redis, 'node-two', mediaTwo)
  })

  after(async () => {
    await Promise.all([one?.close(), two?.close()])
    await Promise.all([mediaOne.close(), mediaTwo.close()])
    await redis?.stop()
  })

  test('a WHIP publisher on instance 1 is listed with its tracks on instance 2; DELETE on instance 2 ends it on instance 1', async () => {
    const carol = await wsMember(two, 'shared', 'carol')
    const token = await accessToken(secret, { room: 'shared', identity: 'obs', name: 'OBS studio' })
    const response = await fetch(`${one.url}/whip/shared`, {
      method: 'POST',
      body: PUBLISH_OFFER,
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
    })
    assert.equal(response.status, 201, await response.clone().text())
    const location = response.headers.get('location') ?? ''
    const participantId = sessionParticipantId(location.split('/').at(-1) ?? '')

    const publisher = await eventually('instance 2 to list the publisher with both tracks', async () =>
      (await listed(two, 'shared')).find((participant) => participant.participantId === participantId && participant.tracks.length === 2),
    )
    assert.deepEqual(
      { kind: publisher.kind, name: publisher.name, identity: publisher.identity, nodeId: publisher.nodeId, role: publisher.role, state: publisher.state },
      { kind: 'whip', name: 'OBS studio', identity: 'obs', nodeId: 'node-one', role: 'guest', state: 'active' },
    )
    assert.deepEqual(publisher.tracks.map((track) => track.kind).sort(), ['audio', 'video'])
    await eventually('Carol on instance 2 to hear the publisher joined', () =>
      carol.of('participant-joined').some((event) => event.type === 'participant-joined' && event.participant.participantId === participantId),
    )
    assert.equal(await sessionPeers(mediaOne), 1)
    // Carol's instance imports the publisher's tracks over a relay link (cluster/media-relay.ts).
    await eventually('instance 2 to import both tracks', () => mediaTwo.calls.filter(([name]) => name === 'relayImport').length === 2)

    // No sticky routing: the DELETE goes to the instance that does not hold the peer.
    const deleted = await fetch(`${two.url}${location}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } })
    assert.equal(deleted.status, 200)
    await eventually('instance 1 to close the publisher peer', async () => (await sessionPeers(mediaOne)) === 0)
    for (const server of [one, two]) assert.deepEqual((await listed(server, 'shared')).map((participant) => participant.identity), ['carol'])
    await eventually('Carol to hear the publisher left', () =>
      carol.of('participant-left').some((event) => event.type === 'participant-left' && event.participantId === participantId),
    )
    assert.equal((await fetch(`${one.url}${location}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } })).status, 404)
    carol.close()
  })

  test('a WHEP viewer on instance 1 counts on instance 2 without being shown, and a DELETE there ends it', async () => {
    const token = await accessToken(secret, { room: 'watch', identity: 'player' })
    const response = await fetch(`${one.url}/whep/watch`, {
      method: 'POST',
      body: VIEW_OFFER,
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
    })
    assert.equal(response.status, 201)
    const location = response.headers.get('location') ?? ''
    const [viewer] = await listed(two, 'watch')
    assert.equal(viewer?.kind, 'whep')
    assert.equal(viewer?.grants.hidden, true)
    const dave = await wsMember(two, 'watch', 'dave')
    const joined = dave.of('joined')[0]
    assert.deepEqual(joined?.type === 'joined' ? joined.participants : undefined, [], 'the viewer is not in the snapshot')

    assert.equal((await fetch(`${two.url}${location}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } })).status, 200)
    await eventually('instance 1 to close the viewer peer', async () => (await sessionPeers(mediaOne)) === 0)
    assert.deepEqual((await listed(one, 'watch')).map((participant) => participant.identity), ['dave'])
    dave.close()
  })
})

/** Peers of sessions and members: the engine's peers without the relay links to other instances. */
async function sessionPeers(media: FakeMediaEngine): Promise<number> {
  return (await media.stats()).peers - media.calls.filter(([name]) => name === 'createRelayLink').length
}
