import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import {
  DEFAULT_GRANTS,
  type Grants,
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
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { SignalingSession } from '../signaling/signaling-session.js'

const ROOM = 'daily' as RoomId
const PUBLISH = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n'
const RECEIVE = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n'

interface Client {
  sent: ServerMessage[]
  closed: { code: number; reason: string }[]
  session: SignalingSession
  /** Sends a request and resolves with its reply. */
  request(message: Record<string, unknown>): Promise<ServerMessage>
  events(type: string): ServerMessage[]
  id: ParticipantId
}

describe('MeetingService through signaling', () => {
  let plane: ReturnType<typeof createControlPlane>
  let media: FakeMediaEngine
  let nextId = 0

  beforeEach(() => {
    media = new FakeMediaEngine()
    plane = createControlPlane(media)
  })

  async function connect(name: string, role: Role = 'guest', grants: Partial<Grants> = {}, identity = name.toLowerCase()): Promise<Client> {
    const sent: ServerMessage[] = []
    const closed: { code: number; reason: string }[] = []
    const principal: Principal = { room: ROOM, identity, name, role, grants: { ...DEFAULT_GRANTS, ...grants }, expiresAt: undefined, anonymous: false }
    const session = new SignalingSession({
      meeting: plane.meeting,
      rooms: plane.rooms,
      principal,
      log: quietLog,
      channel: { send: (text) => sent.push(ServerMessageSchema.parse(JSON.parse(text))), close: (code, reason) => closed.push({ code, reason }) },
    })
    const client: Client = {
      sent,
      closed,
      session,
      id: '' as ParticipantId,
      request: async (message) => {
        const id = `r${++nextId}`
        await session.handleFrame(JSON.stringify({ ...message, id }))
        const reply = sent.find((candidate) => 'id' in candidate && candidate.id === id)
        assert.ok(reply, `a reply to ${JSON.stringify(message)}`)
        return reply
      },
      events: (type) => sent.filter((message) => message.type === type),
    }
    const reply = await client.request({ type: 'join', protocolVersion: PROTOCOL_VERSION, room: ROOM })
    assert.ok(reply.type === 'joined' || reply.type === 'waiting', JSON.stringify(reply))
    client.id = reply.participantId
    return client
  }

  const codeOf = (reply: ServerMessage) => (reply.type === 'error' ? reply.code : reply.type)

  test('a late joiner gets one snapshot with everyone, their roles and raised hands', async () => {
    const host = await connect('Host', 'host')
    const guest = await connect('Guest')
    assert.equal(codeOf(await guest.request({ type: 'raise-hand' })), 'done')
    await eventually('the hand to be seen', () => host.events('participant-updated').length > 0)
    const late = await connect('Late')
    const joined = late.sent[0]
    assert.ok(joined?.type === 'joined')
    assert.deepEqual(
      joined.participants.map(({ name, role, handRaised }) => ({ name, role, handRaised })),
      [
        { name: 'Host', role: 'host', handRaised: false },
        { name: 'Guest', role: 'guest', handRaised: true },
      ],
    )
    assert.equal(joined.waiting, undefined, 'guests do not see the waiting room')
  })

  test('with TURN configured, joined and admitted carry relay credentials for the identity; without it, none', async () => {
    const before = await connect('Plain')
    const plain = before.sent[0]
    assert.ok(plain?.type === 'joined')
    assert.equal(plain.iceServers, undefined)
    const turn = { urls: ['turn:127.0.0.1:3478?transport=udp'], secret: 'north-secret', ttlSeconds: 600 }
    plane = createControlPlane(media, { turn })
    await plane.meeting.createRoom({ room: ROOM, waitingRoom: true, locked: false, emptyTimeoutSeconds: 60 })
    const host = await connect('Host', 'host')
    const joined = host.sent[0]
    assert.ok(joined?.type === 'joined')
    const [relay] = joined.iceServers ?? []
    assert.deepEqual(relay?.urls, turn.urls)
    assert.match(relay?.username ?? '', /^\d+:host$/)
    assert.ok(relay?.credential)
    const guest = await connect('Guest')
    assert.equal(codeOf(await host.request({ type: 'admit', participantId: guest.id })), 'done')
    const admitted = await eventually('the guest to be admitted', () => guest.events('admitted')[0])
    assert.ok(admitted.type === 'admitted')
    assert.match(admitted.iceServers?.[0]?.username ?? '', /^\d+:guest$/)
  })

  test('in a room with a waiting room a guest waits, the host sees it, admits it, and it joins without reconnecting', async () => {
    await plane.meeting.createRoom({ room: ROOM, waitingRoom: true, locked: false, emptyTimeoutSeconds: 60 })
    const host = await connect('Host', 'host')
    const guest = await connect('Guest')
    assert.equal(guest.sent[0]?.type, 'waiting')
    assert.equal(codeOf(await guest.request({ type: 'chat', text: 'let me in' })), 'invalid_state')
    const update = await eventually('the host to see the queue', () => host.events('waiting-room-updated').at(-1))
    assert.ok(update.type === 'waiting-room-updated')
    assert.deepEqual(update.waiting.map((waiting) => waiting.name), ['Guest'])
    assert.equal(codeOf(await host.request({ type: 'admit', participantId: guest.id })), 'done')
    const admitted = await eventually('the guest to be admitted', () => guest.events('admitted')[0])
    assert.ok(admitted.type === 'admitted')
    assert.deepEqual(admitted.participants.map((participant) => participant.name), ['Host'])
    await eventually('the host to see the guest join', () => host.events('participant-joined').length === 1)
    assert.equal(codeOf(await guest.request({ type: 'offer', sdp: RECEIVE })), 'answer')
  })

  test('deny-all turns every waiting guest away and closes their sockets', async () => {
    await plane.meeting.createRoom({ room: ROOM, waitingRoom: true, locked: false, emptyTimeoutSeconds: 60 })
    const host = await connect('Host', 'host')
    const a = await connect('A')
    const b = await connect('B')
    assert.equal(codeOf(await host.request({ type: 'deny-all' })), 'done')
    for (const guest of [a, b]) {
      await eventually('the guest to be denied', () => guest.events('denied').length === 1)
      assert.deepEqual(guest.closed, [{ code: 4003, reason: 'denied' }])
    }
    assert.deepEqual(await plane.meeting.listWaiting(ROOM), [])
  })

  test('a removed participant is told, disconnected, and its identity cannot come back', async () => {
    const host = await connect('Host', 'host')
    const eve = await connect('Eve')
    assert.equal(codeOf(await host.request({ type: 'remove-participant', participantId: eve.id })), 'done')
    await eventually('Eve to be removed', () => eve.events('removed').length === 1)
    assert.deepEqual(eve.closed, [{ code: 4004, reason: 'removed' }])
    await eventually('the host to see Eve leave', () => host.events('participant-left').length === 1)
    await assert.rejects(connect('Eve'), /participant_removed/)
  })

  test('a muted track is no longer forwarded and everyone, its owner too, is told', async () => {
    const host = await connect('Host', 'host')
    const publisher = await connect('Pub')
    const viewer = await connect('View')
    await publisher.request({ type: 'offer', sdp: PUBLISH })
    await eventually('the tracks to be recorded', async () => (await plane.meeting.getParticipant(ROOM, publisher.id)).tracks.length === 2)
    await viewer.request({ type: 'offer', sdp: RECEIVE })
    assert.equal((await media.stats()).subscriptions, 2)
    const [video] = (await plane.meeting.getParticipant(ROOM, publisher.id)).tracks.filter((track) => track.kind === 'video')
    assert.ok(video)
    assert.equal(codeOf(await host.request({ type: 'mute-track', trackId: video.trackId })), 'done')
    for (const client of [host, publisher, viewer]) await eventually('track-muted', () => client.events('track-muted').length === 1)
    await eventually('the video to be unsubscribed', async () => (await media.stats()).subscriptions === 1)
    const answer = await viewer.request({ type: 'offer', sdp: RECEIVE })
    assert.ok(answer.type === 'answer')
    assert.deepEqual(answer.subscriptions.map((subscription) => subscription.kind), ['audio'], 'a muted track is not subscribed again')
    assert.equal((await plane.meeting.getParticipant(ROOM, publisher.id)).tracks.find((track) => track.kind === 'video')?.muted, true)

    assert.equal(codeOf(await viewer.request({ type: 'unmute-track', trackId: video.trackId })), 'track_not_found', 'only its owner unmutes it')
    assert.equal(codeOf(await publisher.request({ type: 'unmute-track', trackId: video.trackId })), 'done')
    await eventually('the viewer to hear it is back', () => viewer.events('track-unmuted').length === 1)
    const again = await viewer.request({ type: 'offer', sdp: RECEIVE })
    assert.ok(again.type === 'answer')
    assert.deepEqual(again.subscriptions.map((subscription) => subscription.kind).sort(), ['audio', 'video'], 'the next offer receives it again')
  })

  test('chat goes to the room, a private message only to its two ends', async () => {
    const a = await connect('A')
    const b = await connect('B')
    const c = await connect('C')
    await a.request({ type: 'chat', text: 'hello all' })
    await a.request({ type: 'chat', text: 'psst', to: b.id })
    await eventually('c to get the room message', () => c.events('chat-posted').length === 1)
    await eventually('b to get both', () => b.events('chat-posted').length === 2)
    await eventually('a to get both', () => a.events('chat-posted').length === 2)
    assert.equal(c.events('chat-posted').length, 1)
  })

  test('a promoted cohost is told, and may then admit and mute', async () => {
    const host = await connect('Host', 'host')
    const guest = await connect('Guest')
    assert.equal(codeOf(await guest.request({ type: 'lock-room' })), 'forbidden')
    assert.equal(codeOf(await host.request({ type: 'set-role', participantId: guest.id, role: 'cohost' })), 'done')
    await eventually('the guest to hear it', () => guest.events('permissions-updated').length === 1)
    assert.equal(codeOf(await guest.request({ type: 'lock-room' })), 'done')
    await eventually('the host to see the lock', () => host.events('room-updated').length === 1)
    await assert.rejects(connect('Latecomer'), /room_locked/)
    await connect('Second host', 'host')
  })

  test('a guest whose grants forbid publishing has its offer refused; a subscribe-only guest receives', async () => {
    const watcher = await connect('Watcher', 'guest', { canPublish: false })
    assert.equal(codeOf(await watcher.request({ type: 'offer', sdp: PUBLISH })), 'forbidden')
    assert.equal(codeOf(await watcher.request({ type: 'offer', sdp: RECEIVE })), 'answer')
    const micOnly = await connect('Mic', 'guest', { canPublishSources: ['microphone'] })
    assert.equal(codeOf(await micOnly.request({ type: 'offer', sdp: PUBLISH })), 'forbidden')
    const noChat = await connect('Quiet', 'guest', { canChat: false })
    assert.equal(codeOf(await noChat.request({ type: 'chat', text: 'hi' })), 'forbidden')
  })

  test('a screen share renegotiated as a third m-line needs the screen grant and reaches the others as source screen', async () => {
    const withScreen = `${PUBLISH}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n`
    const viewer = await connect('Viewer')
    const cameraOnly = await connect('Cam', 'guest', { canPublishSources: ['camera', 'microphone'] })
    assert.equal(codeOf(await cameraOnly.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    assert.equal(codeOf(await cameraOnly.request({ type: 'offer', sdp: withScreen, sources: { '2': 'screen' } })), 'forbidden')
    const presenter = await connect('Presenter')
    assert.equal(codeOf(await presenter.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    assert.equal(codeOf(await presenter.request({ type: 'offer', sdp: withScreen, sources: { '2': 'screen' } })), 'answer')
    await eventually('the viewer to hear of the screen', () =>
      viewer.events('track-published').some((event) => event.type === 'track-published' && event.track.participantId === presenter.id && event.track.source === 'screen'),
    )
    const screens = viewer.events('track-published').filter((event) => event.type === 'track-published' && event.track.source === 'screen')
    assert.equal(screens.length, 1, 'only the granted presenter shares a screen')
  })

  test('grants narrowed by the API apply to media at once: publishing muted, subscriptions dropped', async () => {
    const publisher = await connect('Pub')
    const viewer = await connect('View')
    await publisher.request({ type: 'offer', sdp: PUBLISH })
    await eventually('the tracks to be recorded', async () => (await plane.meeting.getParticipant(ROOM, publisher.id)).tracks.length === 2)
    await viewer.request({ type: 'offer', sdp: RECEIVE })
    assert.equal((await media.stats()).subscriptions, 2)
    await plane.meeting.updatePermissions({ kind: 'api' }, ROOM, viewer.id, { grants: { canSubscribe: false } })
    await eventually('the viewer to be told', () => viewer.events('permissions-updated').length === 1)
    await eventually('its subscriptions to end', async () => (await media.stats()).subscriptions === 0)
    const another = await connect('Another')
    await another.request({ type: 'offer', sdp: RECEIVE })
    assert.equal((await media.stats()).subscriptions, 2)
    await plane.meeting.updatePermissions({ kind: 'api' }, ROOM, publisher.id, { grants: { canPublishSources: ['microphone'] } })
    await eventually('the camera to be muted', () => another.events('track-muted').length === 1)
    await eventually('the camera to stop being forwarded', async () => (await media.stats()).subscriptions === 1)
    assert.equal(codeOf(await publisher.request({ type: 'offer', sdp: PUBLISH })), 'answer', 'its existing m-lines stay acceptable')
  })

  test('hidden participants are never listed nor announced', async () => {
    const host = await connect('Host', 'host')
    await connect('Recorder', 'guest', { hidden: true, recorder: true })
    const late = await connect('Late')
    const joined = late.sent[0]
    assert.ok(joined?.type === 'joined')
    assert.deepEqual(joined.participants.map((participant) => participant.name), ['Host'])
    await eventually('the host to see Late only', () => host.events('participant-joined').length === 1)
    assert.equal(host.events('participant-joined').length, 1)
  })

  // Every action a role may not take gets `forbidden` (or the typed error of its target), and the
  // room goes on: the last row checks that the others still chat.
  describe('forbidden actions by role', () => {
    const cases: [string, Role, (target: Client, host: Client) => Record<string, unknown>, string][] = [
      ['a guest admits', 'guest', (target) => ({ type: 'admit', participantId: target.id }), 'forbidden'],
      ['a guest admits everyone', 'guest', () => ({ type: 'admit-all' }), 'forbidden'],
      ['a guest denies everyone', 'guest', () => ({ type: 'deny-all' }), 'forbidden'],
      ['a guest removes someone', 'guest', (target) => ({ type: 'remove-participant', participantId: target.id }), 'forbidden'],
      ['a guest mutes a track', 'guest', () => ({ type: 'mute-track', trackId: 'track-1' }), 'track_not_found'],
      ['a guest promotes someone', 'guest', (target) => ({ type: 'set-role', participantId: target.id, role: 'cohost' }), 'forbidden'],
      ['a guest locks the room', 'guest', () => ({ type: 'lock-room' }), 'forbidden'],
      ['a guest lowers another hand', 'guest', (target) => ({ type: 'lower-hand', participantId: target.id }), 'forbidden'],
      ['a cohost removes the host', 'cohost', (_target, host) => ({ type: 'remove-participant', participantId: host.id }), 'forbidden'],
      ['a cohost promotes someone', 'cohost', (target) => ({ type: 'set-role', participantId: target.id, role: 'cohost' }), 'forbidden'],
      ['a host removes someone not in the room', 'host', () => ({ type: 'remove-participant', participantId: 'p-nobody' }), 'participant_not_found'],
      ['a host admits someone not waiting', 'host', (target) => ({ type: 'admit', participantId: target.id }), 'participant_not_found'],
      ['anyone chats privately to no one', 'guest', () => ({ type: 'chat', text: 'x', to: 'p-nobody' }), 'participant_not_found'],
      ['anyone sends an empty chat', 'guest', () => ({ type: 'chat', text: '   ' }), 'invalid_message'],
      ['anyone sends an oversized chat', 'guest', () => ({ type: 'chat', text: 'x'.repeat(2001) }), 'invalid_message'],
    ]
    for (const [what, role, message, code] of cases) {
      test(`${what}: ${code}`, async () => {
        const host = await connect('Host', 'host')
        const target = await connect('Target')
        const actor = role === 'host' ? await connect('Other host', 'host') : await connect('Actor', role)
        assert.equal(codeOf(await actor.request(message(target, host))), code)
        assert.equal(codeOf(await target.request({ type: 'chat', text: 'still here' })), 'done')
        await eventually('the host to hear the target', () => host.events('chat-posted').length === 1)
      })
    }
  })
})
