import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import { ClientMessage, MAX_PINNED, type ParticipantId, type RoomId, type ServerEvent } from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import type { PeerId } from '../media/media-engine.js'
import { PRIORITY } from './adaptive-media.js'
import type { Participant, ParticipantSink } from './participant.js'
import { RoomService } from './room-service.js'

const roomId = 'adaptive' as RoomId

function recorder(): ParticipantSink & { events: ServerEvent[] } {
  const events: ServerEvent[] = []
  return { events, send: (event) => events.push(event), end: () => undefined }
}

/** Sends audio and video (mids 0 and 1), receives one of each per other member. */
function memberOffer(recv: number): string {
  const lines = ['v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=sendonly', 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=sendonly']
  for (let i = 0; i < recv; i++) {
    lines.push('m=audio 9 UDP/TLS/RTP/SAVPF 111', `a=mid:${2 + 2 * i}`, 'a=recvonly')
    lines.push('m=video 9 UDP/TLS/RTP/SAVPF 96', `a=mid:${3 + 2 * i}`, 'a=recvonly')
  }
  return lines.join('\r\n') + '\r\n'
}

describe('adaptive media in a room', () => {
  let media: FakeMediaEngine
  let rooms: RoomService

  beforeEach(() => {
    media = new FakeMediaEngine()
    rooms = new RoomService({ media, log: quietLog })
  })

  /** Three members who publish audio and video and receive each other. */
  async function threeMembers() {
    const sinks = [recorder(), recorder(), recorder()]
    const members: Participant[] = []
    for (const [index, name] of ['Ada', 'Bob', 'Cy'].entries()) {
      members.push(rooms.join(roomId, name, sinks[index]!).participant)
    }
    for (const member of members) await rooms.negotiate(member, memberOffer(0))
    await eventually('six tracks', () => rooms.room(roomId)?.tracks.size === 6)
    for (const member of members) await rooms.negotiate(member, memberOffer(2))
    const tracks = [...(rooms.room(roomId)?.tracks.values() ?? [])]
    const trackOf = (member: Participant, kind: 'audio' | 'video') => tracks.find((track) => track.owner === member && track.kind === kind)!
    return { members, sinks, trackOf }
  }

  const priorityCalls = (media: FakeMediaEngine) => media.calls.filter(([name]) => name === 'setPriority')

  test("who speaks for a second becomes the active speaker and their camera gets priority for everyone", async () => {
    const { members, sinks, trackOf } = await threeMembers()
    const [ada, bob, cy] = members as [Participant, Participant, Participant]
    media.report([{ type: 'speaking-changed', peerId: ada.peerId as PeerId, trackId: trackOf(ada, 'audio').engineId, speaking: true }])
    const announced = await eventually('the active speaker announced', () =>
      sinks[1]!.events.find((event) => event.type === 'active-speaker'),
    )
    assert.deepEqual(announced, { type: 'active-speaker', participantId: ada.id })
    assert.ok(sinks[0]!.events.some((event) => event.type === 'active-speaker'), 'the speaker is told too')
    const camera = trackOf(ada, 'video').engineId
    await eventually('priorities set', () => priorityCalls(media).length === 2)
    assert.deepEqual(
      priorityCalls(media).sort((x, y) => Number(x[1]) - Number(y[1])),
      [bob, cy].map((member) => ['setPriority', member.peerId, camera, PRIORITY.activeSpeaker]).sort((x, y) => Number(x[1]) - Number(y[1])),
    )

    // Ada pauses; Bob speaks up, then stops after well under 1.5 s: Ada keeps the floor.
    media.report([{ type: 'speaking-changed', peerId: ada.peerId as PeerId, trackId: trackOf(ada, 'audio').engineId, speaking: false }])
    media.report([{ type: 'speaking-changed', peerId: bob.peerId as PeerId, trackId: trackOf(bob, 'audio').engineId, speaking: true }])
    await new Promise((resolve) => setImmediate(resolve))
    media.report([{ type: 'speaking-changed', peerId: bob.peerId as PeerId, trackId: trackOf(bob, 'audio').engineId, speaking: false }])
    // Cy speaks on: after 1.5 s the floor and the priority move to Cy.
    media.report([{ type: 'speaking-changed', peerId: cy.peerId as PeerId, trackId: trackOf(cy, 'audio').engineId, speaking: true }])
    await eventually('Cy takes the floor', () => sinks[0]!.events.filter((event) => event.type === 'active-speaker').length === 2, { timeoutMs: 5000 })
    assert.deepEqual(sinks[0]!.events.filter((event) => event.type === 'active-speaker').at(-1), { type: 'active-speaker', participantId: cy.id })
    await eventually('priorities moved', () => priorityCalls(media).length === 6)
    const moved = priorityCalls(media).slice(2)
    assert.ok(moved.some(([, peer, track, priority]) => peer === bob.peerId && track === camera && priority === PRIORITY.normal))
    assert.ok(moved.some(([, peer, track, priority]) => peer === ada.peerId && track === trackOf(cy, 'video').engineId && priority === PRIORITY.activeSpeaker))
  })

  test('the engine asking for fewer encodings reaches the publisher as set-encodings for its m-line', async () => {
    const { members, sinks, trackOf } = await threeMembers()
    const ada = members[0]!
    const camera = trackOf(ada, 'video')
    media.report([{ type: 'layers-needed', peerId: ada.peerId as PeerId, trackId: camera.engineId, active: [true, false, false] }])
    const event = await eventually('set-encodings sent', () => sinks[0]!.events.find((e) => e.type === 'set-encodings'))
    assert.deepEqual(event, { type: 'set-encodings', trackId: camera.id, mid: '1', active: [true, false, false] })
    assert.ok(!sinks[1]!.events.some((e) => e.type === 'set-encodings'), 'only the publisher is told')
  })

  test('with video last-N 1, each member receives the camera of only the latest other speaker', async () => {
    rooms = new RoomService({ media, log: quietLog, lastN: 1 })
    const { members, trackOf } = await threeMembers()
    const [ada, bob, cy] = members as [Participant, Participant, Participant]
    const given = (viewer: Participant, owner: Participant) =>
      media.calls.filter(([name, peer, track]) => name === 'setPriority' && peer === viewer.peerId && track === trackOf(owner, 'video').engineId).at(-1)?.[3]
    // Before anyone spoke: the first other camera owner in the room.
    await eventually('cameras beyond the first paused', () => given(ada, cy) === PRIORITY.paused && given(bob, cy) === PRIORITY.paused)
    assert.equal(given(cy, bob), PRIORITY.paused, 'Cy sees Ada')
    assert.equal(given(cy, ada), undefined, 'left at the default')

    media.report([{ type: 'speaking-changed', peerId: cy.peerId as PeerId, trackId: trackOf(cy, 'audio').engineId, speaking: true }])
    await eventually('Cy speaking: the others see Cy', () => given(ada, cy) === PRIORITY.normal && given(bob, cy) === PRIORITY.normal)
    assert.equal(given(bob, ada), PRIORITY.paused, 'Bob no longer sees Ada')
    assert.equal(given(ada, bob), PRIORITY.paused)
  })

  test('with video last-N 1, a pinned camera is sent to whoever pinned it until unpinned', async () => {
    rooms = new RoomService({ media, log: quietLog, lastN: 1 })
    const { members, trackOf } = await threeMembers()
    const [ada, bob, cy] = members as [Participant, Participant, Participant]
    const given = (viewer: Participant, owner: Participant) =>
      media.calls.filter(([name, peer, track]) => name === 'setPriority' && peer === viewer.peerId && track === trackOf(owner, 'video').engineId).at(-1)?.[3]
    await eventually('cameras beyond the first paused', () => given(ada, cy) === PRIORITY.paused && given(bob, cy) === PRIORITY.paused)

    await rooms.pin(ada, [cy.id])
    await eventually('Ada receives the pinned camera', () => given(ada, cy) === PRIORITY.activeSpeaker)
    assert.equal(given(bob, cy), PRIORITY.paused, 'only for Ada')
    assert.equal(given(ada, bob), undefined, 'Ada still sees her last-N camera at the default')

    // Pins replace each other; an id that is nobody's matches nobody.
    await rooms.pin(ada, ['p-gone' as ParticipantId])
    await eventually('unpinned: last-N decides again', () => given(ada, cy) === PRIORITY.paused)
    assert.equal(given(ada, bob), undefined)
  })

  test('a pin request names at most MAX_PINNED participants', () => {
    const ids = (count: number) => Array.from({ length: count }, (_, i) => `p-${i}` as ParticipantId)
    assert.ok(ClientMessage.safeParse({ type: 'pin', id: '1', participantIds: ids(MAX_PINNED) }).success)
    assert.ok(!ClientMessage.safeParse({ type: 'pin', id: '1', participantIds: ids(MAX_PINNED + 1) }).success)
  })
})
