import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import type { RoomId, ServerEvent, TrackId } from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import { PUBLISH_OFFER, VIEW_OFFER } from '../../test/support/sdp-fixtures.js'
import { AppError } from '../app-error.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import type { PeerId } from '../media/media-engine.js'
import type { ParticipantSink } from './participant.js'
import { RoomService } from './room-service.js'

const room = 'daily' as RoomId

/** A member's channel that records what it was sent. */
function recorder(): ParticipantSink & { events: ServerEvent[]; ended: string[] } {
  const events: ServerEvent[] = []
  const ended: string[] = []
  return { events, ended, send: (event) => events.push(event), end: (reason) => ended.push(reason) }
}

/** An offer with `recv` receive m-lines of each kind after a sendonly audio+video pair. */
function memberOffer(recv: number): string {
  const lines = ['v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=sendonly', 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=sendonly']
  for (let i = 0; i < recv; i++) {
    lines.push('m=audio 9 UDP/TLS/RTP/SAVPF 111', `a=mid:${2 + 2 * i}`, 'a=recvonly')
    lines.push('m=video 9 UDP/TLS/RTP/SAVPF 96', `a=mid:${3 + 2 * i}`, 'a=recvonly')
  }
  return lines.join('\r\n') + '\r\n'
}

describe('RoomService', () => {
  let media: FakeMediaEngine
  let rooms: RoomService

  beforeEach(() => {
    media = new FakeMediaEngine()
    rooms = new RoomService({ media, log: quietLog })
  })

  test('a joiner learns who is there and everyone else learns about the joiner', async () => {
    const ada = recorder()
    const first = rooms.join(room, 'Ada', ada)
    assert.deepEqual(first.participants, [])
    const second = rooms.join(room, 'Bob', recorder())
    assert.deepEqual(second.participants, [{ participantId: first.participant.id, name: 'Ada' }])
    assert.deepEqual(ada.events, [{ type: 'participant-joined', participant: { participantId: second.participant.id, name: 'Bob' } }])
  })

  test("a member's published tracks are announced to the others, not to itself", async () => {
    const ada = recorder()
    const bob = recorder()
    const a = rooms.join(room, 'Ada', ada).participant
    rooms.join(room, 'Bob', bob)
    await rooms.negotiate(a, memberOffer(0))
    await eventually('two tracks announced', () => bob.events.filter((e) => e.type === 'track-published').length === 2)
    assert.ok(!ada.events.some((event) => event.type === 'track-published'))
    assert.equal(rooms.room(room)?.tracks.size, 2)
  })

  test('an offer with receive m-lines is answered with the mid of every track it now receives', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    await rooms.negotiate(a, memberOffer(0))
    await eventually('tracks registered', () => rooms.room(room)?.tracks.size === 2)
    const joined = rooms.join(room, 'Bob', recorder())
    assert.equal(joined.tracks.length, 2)
    const negotiated = await rooms.negotiate(joined.participant, memberOffer(1))
    assert.deepEqual(
      negotiated.subscriptions.map(({ mid, kind, participantId }) => ({ mid, kind, participantId })).sort((x, y) => x.mid.localeCompare(y.mid)),
      [
        { mid: '2', kind: 'audio', participantId: a.id },
        { mid: '3', kind: 'video', participantId: a.id },
      ],
    )
  })

  test('tracks without a free receive m-line wait for the next offer', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    const b = rooms.join(room, 'Bob', recorder()).participant
    await rooms.negotiate(b, memberOffer(0))
    await eventually('Bob publishes', () => rooms.room(room)?.tracks.size === 2)
    assert.deepEqual((await rooms.negotiate(a, memberOffer(0))).subscriptions, [])
    assert.equal((await rooms.negotiate(a, memberOffer(1))).subscriptions.length, 2)
  })

  test('a preferred size becomes a height limit on the received track; other tracks are refused', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    await rooms.negotiate(a, memberOffer(0))
    await eventually('Ada publishes', () => rooms.room(room)?.tracks.size === 2)
    const c = rooms.join(room, 'Cy', recorder()).participant
    await rooms.negotiate(c, memberOffer(0))
    await eventually('Cy publishes', () => rooms.room(room)?.tracks.size === 4)
    const b = rooms.join(room, 'Bob', recorder()).participant
    const { subscriptions } = await rooms.negotiate(b, memberOffer(1))
    const video = subscriptions.find((subscription) => subscription.kind === 'video')
    assert.ok(video !== undefined)
    await rooms.setPreferredSize(b, video.trackId, 160, 90)
    const tracks = [...(rooms.room(room)?.tracks.values() ?? [])]
    const received = tracks.find((track) => track.id === video.trackId)
    assert.deepEqual(media.calls.at(-1), ['setLayerPreference', b.peerId, received?.engineId, { maxHeight: 90 }])
    const notReceived = tracks.find((track) => track.kind === 'video' && track.owner.id !== video.participantId)
    assert.ok(notReceived !== undefined)
    await assert.rejects(rooms.setPreferredSize(b, notReceived.id, 160, 90), (error) => error instanceof AppError && error.code === 'not_subscribed')
    await assert.rejects(rooms.setPreferredSize(b, 'track-404' as TrackId, 160, 90), (error) => error instanceof AppError && error.code === 'track_not_found')
  })

  test('negotiations of one participant run one at a time, in order', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    await Promise.all([rooms.negotiate(a, memberOffer(0)), rooms.negotiate(a, memberOffer(1)), rooms.negotiate(a, memberOffer(2))])
    const commands = media.calls.map(([name]) => name)
    assert.deepEqual(commands, ['createPeer', 'applyOffer', 'applyOffer', 'applyOffer'])
  })

  test('leaving ends the tracks, unsubscribes the receivers, closes the peer and drops the empty room', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    await rooms.negotiate(a, memberOffer(0))
    await eventually('Ada publishes', () => rooms.room(room)?.tracks.size === 2)
    const bob = recorder()
    const b = rooms.join(room, 'Bob', bob).participant
    await rooms.negotiate(b, memberOffer(1))
    assert.equal((await media.stats()).subscriptions, 2)

    await rooms.leave(a, 'left')
    const seen = bob.events.map((event) => event.type)
    assert.deepEqual(seen.filter((type) => type === 'track-ended').length, 2)
    assert.equal(seen.at(-1), 'participant-left')
    await eventually('Bob unsubscribed', async () => (await media.stats()).subscriptions === 0)
    assert.equal((await media.stats()).peers, 1)
    assert.equal(b.received.size, 0)

    await rooms.leave(b, 'left')
    assert.equal((await media.stats()).peers, 0)
    assert.equal(rooms.roomCount, 0)
  })

  test('a lost transport makes the member leave and ends its channel', async () => {
    const ada = recorder()
    const a = rooms.join(room, 'Ada', ada).participant
    const bob = recorder()
    rooms.join(room, 'Bob', bob)
    await rooms.negotiate(a, memberOffer(0))
    media.disconnect(a.peerId as PeerId, 'consent_expired')
    await eventually("Ada's peer closed", async () => (await media.stats()).peers === 0)
    assert.deepEqual(ada.ended, ['consent_expired'])
    assert.ok(bob.events.some((event) => event.type === 'participant-left'))
    assert.equal(rooms.room(room)?.participants.size, 1)
  })

  test('a WHIP publisher is announced and its tracks fill a WHEP viewer, even one that came first', async () => {
    const viewer = await rooms.view(room, VIEW_OFFER)
    const bob = recorder()
    rooms.join(room, 'Bob', bob)
    const publisher = await rooms.publish(room, PUBLISH_OFFER, 'Camera 1')
    assert.ok(bob.events.some((event) => event.type === 'participant-joined' && event.participant.name === 'Camera 1'))
    await eventually('the viewer receives both tracks', () => viewer.participant.received.size === 2)
    assert.equal(rooms.room(room)?.snapshotFor(viewer.participant).participants.length, 2, 'viewers are not listed')

    await rooms.leave(publisher.participant, 'deleted')
    await eventually('the viewer is unsubscribed', async () => (await media.stats()).subscriptions === 0)
  })

  test("a viewer's freed m-line takes a track that was waiting", async () => {
    const first = await rooms.publish(room, PUBLISH_OFFER, 'one')
    await rooms.publish(room, PUBLISH_OFFER, 'two')
    await eventually('four tracks', () => rooms.room(room)?.tracks.size === 4)
    const viewer = await rooms.view(room, VIEW_OFFER)
    assert.equal(viewer.participant.received.size, 2)
    const firstOwner = [...viewer.participant.received.values()].every((received) => received.track.owner === first.participant)
    assert.ok(firstOwner, 'the oldest tracks come first')
    await rooms.leave(first.participant, 'deleted')
    await eventually('the second publisher fills the slots', () =>
      [...viewer.participant.received.values()].filter((received) => received.track.owner.name === 'two').length === 2,
    )
  })

  test('a refused WHIP offer leaves no peer, no participant and no room behind', async () => {
    await assert.rejects(rooms.publish(room, 'garbage', 'x'), (error: unknown) => error instanceof AppError && error.code === 'invalid_sdp')
    assert.equal((await media.stats()).peers, 0)
    assert.equal(rooms.roomCount, 0)
  })

  test('an offer after leaving is refused with invalid_state', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    await rooms.leave(a, 'left')
    await assert.rejects(rooms.negotiate(a, memberOffer(0)), (error: unknown) => error instanceof AppError && error.code === 'invalid_state')
    assert.equal((await media.stats()).peers, 0)
  })

  test('leaving during a negotiation still closes the peer that negotiation created', async () => {
    const a = rooms.join(room, 'Ada', recorder()).participant
    const negotiation = rooms.negotiate(a, memberOffer(0))
    const left = rooms.leave(a, 'left')
    await assert.rejects(negotiation)
    await left
    assert.equal((await media.stats()).peers, 0)
  })
})
