import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import {
  BreakoutsResponse,
  DEFAULT_GRANTS,
  ErrorBody,
  PROTOCOL_VERSION,
  type ParticipantId,
  type Role,
  type RoomId,
  type ServerMessage,
  ServerMessage as ServerMessageSchema,
} from '@conclave/protocol'
import { createControlPlane } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import type { Principal } from '../auth/authenticator.js'
import { MemoryEventBus } from '../cluster/event-bus.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import type { PeerId } from '../media/media-engine.js'
import { SignalingSession } from '../signaling/signaling-session.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'
import { chatAudience, moveParticipant, partitionOf, planBreakouts } from './breakouts.js'

const ROOM = 'daily' as RoomId
const apiKey = 'breakouts-api-key'
const RECEIVE = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n'

type Plane = ReturnType<typeof createControlPlane>

interface Client {
  id: ParticipantId
  sent: ServerMessage[]
  request(message: Record<string, unknown>): Promise<ServerMessage>
  events<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[]
}

let nextRequest = 0

/** A member joined over signaling on `plane`, with a peer (it sent one offer). */
async function connect(plane: Plane, name: string, role: Role = 'guest'): Promise<Client> {
  const sent: ServerMessage[] = []
  const principal: Principal = { room: ROOM, identity: name.toLowerCase(), name, role, grants: { ...DEFAULT_GRANTS }, expiresAt: undefined, anonymous: false }
  const session = new SignalingSession({
    meeting: plane.meeting,
    rooms: plane.rooms,
    principal,
    log: quietLog,
    channel: { send: (text) => sent.push(ServerMessageSchema.parse(JSON.parse(text))), close: () => undefined },
  })
  const client: Client = {
    id: '' as ParticipantId,
    sent,
    request: async (message) => {
      const id = `r${++nextRequest}`
      await session.handleFrame(JSON.stringify({ ...message, id }))
      const reply = sent.find((candidate) => 'id' in candidate && candidate.id === id)
      assert.ok(reply, `a reply to ${JSON.stringify(message)}`)
      return reply
    },
    events: (type) => sent.filter((message) => message.type === type) as never,
  }
  const joined = await client.request({ type: 'join', protocolVersion: PROTOCOL_VERSION, room: ROOM })
  assert.ok(joined.type === 'joined', JSON.stringify(joined))
  client.id = joined.participantId
  assert.equal((await client.request({ type: 'offer', sdp: RECEIVE })).type, 'answer')
  return client
}

const codeOf = (reply: ServerMessage) => (reply.type === 'error' ? reply.code : reply.type)

function peerOf(plane: Plane, client: Client): PeerId {
  const peerId = plane.meeting.mediaOf(client.id).peerId
  assert.ok(peerId !== undefined)
  return peerId
}

describe('breakout rooms', () => {
  let media: FakeMediaEngine
  let plane: Plane

  beforeEach(() => {
    media = new FakeMediaEngine()
    plane = createControlPlane(media, { apiKey })
  })

  afterEach(async () => {
    await plane.close()
  })

  test('a host splits the room: each peer goes to its group partition, everyone is told, and ending brings all back', async () => {
    const host = await connect(plane, 'Host', 'host')
    const [ada, bob, cy] = [await connect(plane, 'Ada'), await connect(plane, 'Bob'), await connect(plane, 'Cy')]
    const reply = await host.request({
      type: 'create-breakouts',
      groups: [
        { name: 'Red', participantIds: [ada.id, bob.id] },
        { name: 'Blue', participantIds: [cy.id] },
      ],
    })
    assert.equal(codeOf(reply), 'done')
    await eventually('everyone to hear of the breakouts', () => [host, ada, bob, cy].every((client) => client.events('breakouts-updated').length === 1))
    assert.equal(media.partitions.get(peerOf(plane, ada)), 1)
    assert.equal(media.partitions.get(peerOf(plane, bob)), 1)
    assert.equal(media.partitions.get(peerOf(plane, cy)), 2)
    assert.equal(media.partitions.get(peerOf(plane, host)) ?? 0, 0, 'the host stays in the main room')
    const [updated] = cy.events('breakouts-updated')
    assert.deepEqual(
      updated?.breakouts?.groups.map(({ groupId, name, participantIds }) => ({ groupId, name, participantIds })),
      [
        { groupId: 'g1', name: 'Red', participantIds: [ada.id, bob.id] },
        { groupId: 'g2', name: 'Blue', participantIds: [cy.id] },
      ],
    )
    const offers = media.calls.filter(([name]) => name === 'applyOffer').length

    assert.equal(codeOf(await host.request({ type: 'move-to-breakout', participantId: bob.id, groupId: 'g2' })), 'done')
    await eventually('the move to reach the engine', () => media.partitions.get(peerOf(plane, bob)) === 2)
    assert.equal(codeOf(await host.request({ type: 'move-to-breakout', participantId: cy.id, groupId: null })), 'done')
    await eventually('the move back to reach the engine', () => media.partitions.get(peerOf(plane, cy)) === 0)

    assert.equal(codeOf(await host.request({ type: 'end-breakouts' })), 'done')
    await eventually('everyone to hear the end', () => [host, ada, bob, cy].every((client) => client.events('breakouts-updated').at(-1)?.breakouts === null))
    for (const client of [ada, bob, cy]) assert.equal(media.partitions.get(peerOf(plane, client)), 0)
    assert.equal(media.calls.filter(([name]) => name === 'applyOffer').length, offers, 'nothing was renegotiated')
  })

  test('room chat stays inside the sender group; private chat across groups is forbidden', async () => {
    const host = await connect(plane, 'Host', 'host')
    const [ada, bob, cy] = [await connect(plane, 'Ada'), await connect(plane, 'Bob'), await connect(plane, 'Cy')]
    await host.request({ type: 'create-breakouts', groups: [{ name: 'Red', participantIds: [ada.id, bob.id] }] })
    await eventually('the split to land', () => cy.events('breakouts-updated').length === 1)
    assert.equal(codeOf(await ada.request({ type: 'chat', text: 'red only' })), 'done')
    assert.equal(codeOf(await cy.request({ type: 'chat', text: 'main only' })), 'done')
    assert.equal(codeOf(await ada.request({ type: 'chat', text: 'psst', to: cy.id })), 'forbidden')
    assert.equal(codeOf(await ada.request({ type: 'chat', text: 'psst', to: bob.id })), 'done')
    await eventually('chat to arrive', () => bob.events('chat-posted').length === 2 && host.events('chat-posted').length === 1)
    const texts = (client: Client) => client.events('chat-posted').map((event) => event.message.text)
    assert.deepEqual(texts(ada), ['red only', 'psst'])
    assert.deepEqual(texts(bob), ['red only', 'psst'])
    assert.deepEqual(texts(cy), ['main only'])
    assert.deepEqual(texts(host), ['main only'])

    await host.request({ type: 'end-breakouts' })
    await eventually('the end to land', () => cy.events('breakouts-updated').length === 2)
    await ada.request({ type: 'chat', text: 'all again' })
    await eventually('everyone to get it', () => [host, ada, bob, cy].every((client) => texts(client).includes('all again')))
  })

  test('guests may not create, move or end breakouts', async () => {
    const host = await connect(plane, 'Host', 'host')
    const guest = await connect(plane, 'Guest')
    assert.equal(codeOf(await guest.request({ type: 'create-breakouts', groups: [{ name: 'Mine', participantIds: [guest.id] }] })), 'forbidden')
    assert.equal(codeOf(await host.request({ type: 'create-breakouts', groups: [{ name: 'Red', participantIds: [guest.id] }] })), 'done')
    assert.equal(codeOf(await guest.request({ type: 'move-to-breakout', participantId: guest.id, groupId: null })), 'forbidden')
    assert.equal(codeOf(await guest.request({ type: 'end-breakouts' })), 'forbidden')
    assert.ok(await plane.meeting.breakoutsOf(ROOM), 'still running')
  })

  test('mistakes get typed errors: unknown group or participant, none running, one already running', async () => {
    const host = await connect(plane, 'Host', 'host')
    const ada = await connect(plane, 'Ada')
    assert.equal(codeOf(await host.request({ type: 'move-to-breakout', participantId: ada.id, groupId: 'g1' })), 'breakouts_not_running')
    assert.equal(codeOf(await host.request({ type: 'end-breakouts' })), 'breakouts_not_running')
    assert.equal(codeOf(await host.request({ type: 'create-breakouts', groups: [{ name: 'Red', participantIds: ['p-nobody'] }] })), 'participant_not_found')
    assert.equal(codeOf(await host.request({ type: 'create-breakouts', groups: [{ name: 'Red', participantIds: [ada.id] }] })), 'done')
    assert.equal(codeOf(await host.request({ type: 'create-breakouts', groups: [{ name: 'Blue', participantIds: [] }] })), 'breakouts_running')
    assert.equal(codeOf(await host.request({ type: 'move-to-breakout', participantId: ada.id, groupId: 'g9' })), 'breakout_not_found')
    assert.equal(codeOf(await host.request({ type: 'move-to-breakout', participantId: 'p-nobody', groupId: 'g1' })), 'participant_not_found')
  })

  test('someone joining during breakouts lands in the main room and its snapshot lists the groups', async () => {
    const host = await connect(plane, 'Host', 'host')
    const ada = await connect(plane, 'Ada')
    await host.request({ type: 'create-breakouts', groups: [{ name: 'Red', participantIds: [ada.id] }] })
    await eventually('the split to land', () => ada.events('breakouts-updated').length === 1)
    const late = await connect(plane, 'Late')
    const joined = late.sent[0]
    assert.ok(joined?.type === 'joined')
    assert.deepEqual(joined.breakouts?.groups.map((group) => group.participantIds), [[ada.id]])
    assert.equal(media.partitions.get(peerOf(plane, late)) ?? 0, 0)
  })

  test('the REST API creates, moves and ends breakouts with the API key, with typed errors', async () => {
    const host = await connect(plane, 'Host', 'host')
    const ada = await connect(plane, 'Ada')
    const headers = { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' }
    const call = (method: string, path: string, body?: unknown) =>
      plane.app.request(`/v1/rooms/${ROOM}/breakouts${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    const errorCode = async (response: Response) => ErrorBody.parse(await response.json()).code

    assert.equal((await plane.app.request(`/v1/rooms/${ROOM}/breakouts`, { method: 'POST', body: '{}' })).status, 401)
    const none = await call('DELETE', '')
    assert.deepEqual([none.status, await errorCode(none)], [409, 'breakouts_not_running'])
    const created = await call('POST', '', { groups: [{ name: 'Red', participantIds: [ada.id] }, { name: 'Blue' }] })
    assert.equal(created.status, 201)
    assert.deepEqual(BreakoutsResponse.parse(await created.json()).breakouts?.groups.map((group) => group.participantIds), [[ada.id], []])
    await eventually('the split to reach the engine', () => media.partitions.get(peerOf(plane, ada)) === 1)
    const unknownGroup = await call('POST', '/move', { participantId: ada.id, groupId: 'g7' })
    assert.deepEqual([unknownGroup.status, await errorCode(unknownGroup)], [404, 'breakout_not_found'])
    const unknownParticipant = await call('POST', '/move', { participantId: 'p-nobody', groupId: 'g2' })
    assert.deepEqual([unknownParticipant.status, await errorCode(unknownParticipant)], [404, 'participant_not_found'])
    const moved = await call('POST', '/move', { participantId: host.id, groupId: 'g2' })
    assert.equal(moved.status, 200)
    assert.deepEqual(BreakoutsResponse.parse(await moved.json()).breakouts?.groups.map((group) => group.participantIds), [[ada.id], [host.id]])
    assert.deepEqual(BreakoutsResponse.parse(await (await call('GET', '')).json()).breakouts?.groups.length, 2)
    assert.equal((await call('DELETE', '')).status, 204)
    assert.deepEqual(BreakoutsResponse.parse(await (await call('GET', '')).json()), { breakouts: null })
    await eventually('everyone to be back', () => media.partitions.get(peerOf(plane, ada)) === 0 && media.partitions.get(peerOf(plane, host)) === 0)
    const missing = await plane.app.request('/v1/rooms/nowhere/breakouts', { method: 'POST', headers, body: JSON.stringify({ groups: [{ name: 'x' }] }) })
    assert.deepEqual([missing.status, await errorCode(missing)], [404, 'room_not_found'])
  })

  test('two nodes sharing store and bus each move the peers they hold', async () => {
    const store = new MemoryRoomStore()
    const bus = new MemoryEventBus()
    const mediaA = new FakeMediaEngine()
    const mediaB = new FakeMediaEngine()
    const nodeA = createControlPlane(mediaA, { store, bus, nodeId: 'node-a' })
    const nodeB = createControlPlane(mediaB, { store, bus, nodeId: 'node-b' })
    try {
      const host = await connect(nodeA, 'Host', 'host')
      const ada = await connect(nodeB, 'Ada')
      assert.equal(codeOf(await host.request({ type: 'create-breakouts', groups: [{ name: 'Red', participantIds: [ada.id] }, { name: 'Blue', participantIds: [host.id] }] })), 'done')
      await eventually('node B to move its peer', () => mediaB.partitions.get(peerOf(nodeB, ada)) === 1)
      assert.equal(mediaA.partitions.get(peerOf(nodeA, host)), 2)
      const setPartitions = (engine: FakeMediaEngine) => engine.calls.filter(([name]) => name === 'setPartition').length
      assert.deepEqual([setPartitions(mediaA), setPartitions(mediaB)], [1, 1], 'each node moves only the peers it holds')
      await eventually('both to hear of it', () => ada.events('breakouts-updated').length === 1 && host.events('breakouts-updated').length === 1)
    } finally {
      await nodeA.close()
      await nodeB.close()
    }
  })
})

describe('breakout rules', () => {
  const record = (id: string, state: 'active' | 'waiting' = 'active') => ({ participantId: id as ParticipantId, state }) as never

  test('group i is partition i + 1; the main room is 0', () => {
    const breakouts = planBreakouts([{ name: 'A', participantIds: ['a' as ParticipantId] }, { name: 'B', participantIds: ['b' as ParticipantId] }], [record('a'), record('b')])
    assert.deepEqual(['a', 'b', 'c'].map((id) => partitionOf(breakouts, id as ParticipantId)), [1, 2, 0])
    assert.equal(partitionOf(undefined, 'a' as ParticipantId), 0)
    const moved = moveParticipant(breakouts, 'a' as ParticipantId, null)
    assert.equal(partitionOf(moved, 'a' as ParticipantId), 0)
  })

  test('a plan names only active participants, each once', () => {
    assert.throws(() => planBreakouts([{ name: 'A', participantIds: ['w' as ParticipantId] }], [record('w', 'waiting')]), { code: 'participant_not_found' })
    assert.throws(() => planBreakouts([{ name: 'A', participantIds: ['a' as ParticipantId] }, { name: 'B', participantIds: ['a' as ParticipantId] }], [record('a')]), {
      code: 'bad_request',
    })
  })

  test('the main room audience is everyone in no group', () => {
    const breakouts = planBreakouts([{ name: 'A', participantIds: ['a' as ParticipantId] }], [record('a'), record('b')])
    assert.deepEqual(chatAudience(breakouts, [record('a'), record('b'), record('c')], 'b' as ParticipantId), ['b', 'c'])
    assert.deepEqual(chatAudience(breakouts, [], 'a' as ParticipantId), ['a'])
    assert.equal(chatAudience(undefined, [], 'a' as ParticipantId), undefined)
  })
})
