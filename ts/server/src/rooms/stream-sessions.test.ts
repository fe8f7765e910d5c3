import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { DEFAULT_GRANTS, ErrorBody, type Grants, ParticipantList, RoomDetails, type Role, type RoomId, type ServerEvent } from '@conclave/protocol'
import { createControlPlane } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import { PUBLISH_OFFER, VIEW_OFFER } from '../../test/support/sdp-fixtures.js'
import type { Principal } from '../auth/authenticator.js'
import { MemoryEventBus } from '../cluster/event-bus.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'
import type { RoomStore } from '../state/room-store.js'
import { MeetingService } from './meeting-service.js'
import { RoomService } from './room-service.js'
import { sessionParticipantId } from './stream-sessions.js'

const ROOM = 'studio' as RoomId

type Plane = ReturnType<typeof createControlPlane>

function principal(identity: string, role: Role = 'guest', grants: Partial<Grants> = {}, name?: string): Principal {
  return { room: ROOM, identity, name, role, grants: { ...DEFAULT_GRANTS, ...grants }, expiresAt: undefined, anonymous: false }
}

/** A WebSocket member of the room on `plane`, with the events it was sent. */
async function member(plane: Plane, identity: string, role: Role = 'guest') {
  const events: ServerEvent[] = []
  const joined = await plane.meeting.join(principal(identity, role), ROOM, identity, { send: (event) => events.push(event), close: () => undefined })
  assert.equal(joined.state, 'active')
  if (joined.state !== 'active') throw new Error('not admitted')
  plane.meeting.release(joined.snapshot.participantId)
  return { events, snapshot: joined.snapshot, of: (type: ServerEvent['type']) => events.filter((event) => event.type === type) }
}

async function post(plane: Plane, kind: 'whip' | 'whep', body: string, query = ''): Promise<{ location: string; resourceId: string }> {
  const response = await plane.app.request(`/${kind}/${ROOM}${query}`, { method: 'POST', body, headers: { 'Content-Type': 'application/sdp' } })
  assert.equal(response.status, 201, await response.clone().text())
  const location = response.headers.get('location') ?? ''
  return { location, resourceId: location.split('/').at(-1) ?? '' }
}

async function listed(plane: Plane) {
  const response = await plane.app.request(`/v1/rooms/${ROOM}/participants`)
  assert.equal(response.status, 200)
  return ParticipantList.parse(await response.json()).participants
}

describe('WHIP and WHEP sessions as participants', () => {
  let media: FakeMediaEngine
  let plane: Plane

  beforeEach(() => {
    media = new FakeMediaEngine()
    plane = createControlPlane(media)
  })

  afterEach(async () => {
    await plane.close()
  })

  test('a WHIP publisher is listed with its tracks; members see it join and leave', async () => {
    const ada = await member(plane, 'ada')
    const { location, resourceId } = await post(plane, 'whip', PUBLISH_OFFER, '?name=Cam%201')
    const participantId = sessionParticipantId(resourceId)

    const publisher = await eventually('the publisher and its two tracks to be listed', async () => {
      const found = (await listed(plane)).find((participant) => participant.kind === 'whip')
      return found?.tracks.length === 2 ? found : undefined
    })
    assert.equal(publisher.participantId, participantId, 'the record id is derived from the resource URL')
    assert.equal(publisher.name, 'Cam 1')
    assert.equal(publisher.role, 'guest')
    assert.equal(publisher.state, 'active')
    assert.equal(publisher.nodeId, 'node-test')
    assert.deepEqual(publisher.tracks.map(({ kind, muted }) => ({ kind, muted })).sort((a, b) => a.kind.localeCompare(b.kind)), [
      { kind: 'audio', muted: false },
      { kind: 'video', muted: false },
    ])
    assert.ok(!publisher.participantId.includes(resourceId))

    await eventually('Ada to hear of the publisher', () => ada.of('participant-joined').length === 1)
    assert.deepEqual(ada.of('participant-joined'), [{ type: 'participant-joined', participant: { participantId, name: 'Cam 1' } }], 'no role: not a person')
    assert.equal(ada.of('track-published').length, 2)

    const late = await member(plane, 'bob')
    assert.deepEqual(late.snapshot.participants.map((participant) => participant.participantId).sort(), [ada.snapshot.participantId, participantId].sort())

    assert.equal((await plane.app.request(location, { method: 'DELETE' })).status, 200)
    assert.equal((await media.stats()).peers, 0, 'the peer is closed before DELETE answers')
    assert.equal(await plane.store.getParticipant(ROOM, participantId), undefined)
    await eventually('Ada to hear it left', () => ada.of('participant-left').length === 1)
    assert.deepEqual(ada.of('participant-left'), [{ type: 'participant-left', participantId }])
    assert.equal((await plane.app.request(location, { method: 'DELETE' })).status, 404)
  })

  test('a WHEP viewer counts for the room but is never shown to members', async () => {
    const ada = await member(plane, 'ada')
    const { location, resourceId } = await post(plane, 'whep', VIEW_OFFER)
    const viewer = (await plane.store.listParticipants(ROOM)).find((participant) => participant.kind === 'whep')
    assert.equal(viewer?.participantId, sessionParticipantId(resourceId))
    assert.equal(viewer?.grants.hidden, true)
    assert.equal(viewer?.name, 'WHEP viewer')
    const room = RoomDetails.parse(await (await plane.app.request(`/v1/rooms/${ROOM}`)).json())
    assert.equal(room.participants, 2)

    const bob = await member(plane, 'bob')
    assert.deepEqual(bob.snapshot.participants.map((participant) => participant.participantId), [ada.snapshot.participantId])
    assert.equal((await plane.app.request(location, { method: 'DELETE' })).status, 200)
    assert.equal((await plane.store.listParticipants(ROOM)).length, 2)
    // Events are delivered in order: once this one is in, the viewer's leaving went by too.
    await plane.meeting.updateRoom(ROOM, { waitingRoom: false })
    await eventually('both members to hear the room update', () => ada.of('room-updated').length === 1 && bob.of('room-updated').length === 1)
    assert.deepEqual(ada.of('participant-joined'), [{ type: 'participant-joined', participant: { participantId: bob.snapshot.participantId, name: 'bob', role: 'guest', handRaised: false, state: 'active' } }])
    assert.deepEqual([...ada.of('participant-left'), ...bob.of('participant-joined'), ...bob.of('participant-left')], [])
  })

  test('a host puts a WHIP publisher in a breakout group: its peer moves to the group partition and back', async () => {
    await member(plane, 'ada')
    const { resourceId } = await post(plane, 'whip', PUBLISH_OFFER)
    const participantId = sessionParticipantId(resourceId)
    const created = await plane.app.request(`/v1/rooms/${ROOM}/breakouts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ groups: [{ name: 'Studio', participantIds: [participantId] }] }),
    })
    assert.equal(created.status, 201, await created.clone().text())
    // Ada never offered, so the one peer is the publisher's.
    await eventually("the publisher's peer to be in partition 1", () => media.partitions.size === 1 && [...media.partitions.values()][0] === 1)
    assert.equal((await plane.app.request(`/v1/rooms/${ROOM}/breakouts`, { method: 'DELETE' })).status, 204)
    await eventually('every peer back in the main room', () => [...media.partitions.values()].every((partition) => partition === 0))
  })

  test('removing a WHIP publisher through the REST API closes its peer and refuses it afterwards', async () => {
    const { resourceId, location } = await post(plane, 'whip', PUBLISH_OFFER)
    const participantId = sessionParticipantId(resourceId)
    assert.equal((await media.stats()).peers, 1)
    assert.equal((await plane.app.request(`/v1/rooms/${ROOM}/participants/${participantId}`, { method: 'DELETE' })).status, 204)
    await eventually('the publisher peer to be closed', async () => (await media.stats()).peers === 0)
    assert.equal(plane.rooms.room(ROOM), undefined)
    assert.equal((await plane.app.request(location, { method: 'DELETE' })).status, 404)
  })

  test('muting a WHIP track through the REST API stops forwarding it and records it', async () => {
    const { resourceId } = await post(plane, 'whip', PUBLISH_OFFER)
    const participantId = sessionParticipantId(resourceId)
    const record = await eventually('both tracks recorded', async () => {
      const found = await plane.store.getParticipant(ROOM, participantId)
      return found?.tracks.length === 2 ? found : undefined
    })
    const video = record.tracks.find((track) => track.kind === 'video')
    const response = await plane.app.request(`/v1/rooms/${ROOM}/participants/${participantId}/mute`, {
      method: 'POST',
      body: JSON.stringify({ trackId: video?.trackId }),
      headers: { 'Content-Type': 'application/json' },
    })
    assert.deepEqual(await response.json(), { count: 1 })
    await eventually('the track to be muted in the room', () => [...(plane.rooms.room(ROOM)?.tracks.values() ?? [])].some((track) => track.kind === 'video' && track.muted))
    await eventually('the record to say so', async () => (await plane.store.getParticipant(ROOM, participantId))?.tracks.find((track) => track.kind === 'video')?.muted === true)
  })

  test('a lost publisher peer ends the session: its record goes and members see it leave', async () => {
    const ada = await member(plane, 'ada')
    const { resourceId } = await post(plane, 'whip', PUBLISH_OFFER)
    const participantId = sessionParticipantId(resourceId)
    const peerId = plane.rooms.room(ROOM)?.participants.get(participantId)?.peerId
    assert.ok(peerId !== undefined)
    media.disconnect(peerId)
    await eventually('the record to be gone', async () => (await plane.store.getParticipant(ROOM, participantId)) === undefined)
    await eventually('Ada to hear it left', () => ada.of('participant-left').some((event) => event.type === 'participant-left' && event.participantId === participantId))
  })

  test('a locked room refuses a WHIP publisher and leaves nothing behind', async () => {
    await member(plane, 'host', 'host')
    await plane.meeting.updateRoom(ROOM, { locked: true })
    const response = await plane.app.request(`/whip/${ROOM}`, { method: 'POST', body: PUBLISH_OFFER, headers: { 'Content-Type': 'application/sdp' } })
    assert.equal(response.status, 403, await response.clone().text())
    assert.equal(ErrorBody.parse(await response.json()).code, 'room_locked')
    assert.equal((await media.stats()).peers, 0)
    assert.equal((await plane.store.listParticipants(ROOM)).length, 1)
  })

  test('a refused offer leaves no record behind', async () => {
    const response = await plane.app.request(`/whip/${ROOM}`, { method: 'POST', body: 'garbage', headers: { 'Content-Type': 'application/sdp' } })
    assert.equal(response.status, 400)
    assert.equal(await plane.store.getRoom(ROOM), undefined, 'the join-made room went with its only record')
  })

  test('ending a session needs its own room, kind and exact resource id', async () => {
    const { resourceId } = await post(plane, 'whip', PUBLISH_OFFER)
    assert.equal(await plane.meeting.sessions.end('whep', ROOM, resourceId), false)
    assert.equal(await plane.meeting.sessions.end('whip', 'other' as RoomId, resourceId), false)
    assert.equal(await plane.meeting.sessions.end('whip', ROOM, `${resourceId}x`), false)
    assert.equal((await media.stats()).peers, 1)
  })
})

describe('WHIP and WHEP sessions across two nodes sharing a store and a bus', () => {
  let store: RoomStore
  let bus: MemoryEventBus
  let one: Plane
  let two: Plane
  let mediaOne: FakeMediaEngine

  beforeEach(() => {
    store = new MemoryRoomStore()
    bus = new MemoryEventBus()
    mediaOne = new FakeMediaEngine()
    one = createControlPlane(mediaOne, { store, bus, nodeId: 'node-one' })
    two = createControlPlane(new FakeMediaEngine(), { store, bus, nodeId: 'node-two' })
  })

  afterEach(async () => {
    await Promise.all([one.close(), two.close()])
  })

  test('a publisher on node one is listed on node two, seen by its members, and DELETE on node two ends it on node one', async () => {
    const carol = await member(two, 'carol')
    const { location, resourceId } = await post(one, 'whip', PUBLISH_OFFER)
    const participantId = sessionParticipantId(resourceId)
    const publisher = await eventually('node two to list the publisher with its tracks', async () => (await listed(two)).find((p) => p.kind === 'whip' && p.tracks.length === 2))
    assert.equal(publisher.nodeId, 'node-one')
    await eventually('Carol on node two to hear it joined', () => carol.of('participant-joined').length === 1)

    assert.equal((await two.app.request(location, { method: 'DELETE' })).status, 200)
    await eventually('node one to close the publisher peer', async () => (await mediaOne.stats()).peers === 0)
    assert.equal(one.rooms.room(ROOM), undefined)
    assert.deepEqual((await listed(one)).map((p) => p.participantId), [carol.snapshot.participantId])
    await eventually('Carol to hear it left', () => carol.of('participant-left').some((event) => event.type === 'participant-left' && event.participantId === participantId))
    assert.equal((await two.app.request(location, { method: 'DELETE' })).status, 404)
    assert.equal((await one.app.request(location, { method: 'DELETE' })).status, 404)
  })

  test('a viewer on node one is ended by a DELETE on node two', async () => {
    const { location } = await post(one, 'whep', VIEW_OFFER)
    assert.equal((await two.app.request(location.replace('/whep/', '/whip/'), { method: 'DELETE' })).status, 404, 'wrong kind')
    assert.equal((await two.app.request(location, { method: 'DELETE' })).status, 200)
    await eventually('node one to close the viewer peer', async () => (await mediaOne.stats()).peers === 0)
    assert.equal((await store.listParticipants(ROOM)).length, 0)
  })
})

describe('StreamSessions leases', () => {
  test('the holding node renews its sessions leases', async () => {
    const renewed: string[][] = []
    const store = new MemoryRoomStore()
    const refresh = store.refresh.bind(store)
    store.refresh = async (roomId, ids) => {
      renewed.push([...ids])
      await refresh(roomId, ids)
    }
    const media = new FakeMediaEngine()
    const rooms = new RoomService({ media, log: quietLog })
    const meeting = new MeetingService({ rooms, store, bus: new MemoryEventBus(), nodeId: 'node-lease', log: quietLog, refreshIntervalMs: 20 })
    try {
      const opened = await meeting.sessions.open('whip', principal('cam'), ROOM, PUBLISH_OFFER)
      await eventually('a renewal naming the session', () => renewed.some((ids) => ids.includes(opened.participantId)))
    } finally {
      await meeting.close()
      await rooms.close()
    }
  })
})
