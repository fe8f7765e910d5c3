// Recording control through the REST API and the signaling socket. The recorder is
// test/support/fake-recorder.ts (a real child process that records nothing): these tests cover who
// may start and stop a recording and what everyone is told, not the recording itself.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, afterEach, before, beforeEach, describe, test } from 'node:test'
import {
  DEFAULT_GRANTS,
  ErrorBody,
  PROTOCOL_VERSION,
  RecordingDetails,
  RecordingList,
  type RoomId,
  type ServerMessage,
  ServerMessage as ServerMessageSchema,
} from '@conclave/protocol'
import { type Auth, type Principal, createAuth } from '../auth/authenticator.js'
import { MemoryEventBus } from '../cluster/event-bus.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { RecordingService } from '../recording/recording-service.js'
import { MeetingService } from '../rooms/meeting-service.js'
import { RoomService } from '../rooms/room-service.js'
import { SignalingSession } from '../signaling/signaling-session.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'
import { accessToken } from '../../test/support/control-plane.js'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import { createApp } from './app.js'

const FAKE_RECORDER = fileURLToPath(new URL('../../test/support/fake-recorder.js', import.meta.url))
const secret = 'recording-routes-secret-recording-routes'
const apiKey = 'recording-routes-api-key'
const withKey = { Authorization: `Bearer ${apiKey}` }

describe('recording control', () => {
  let dir: string
  let media: FakeMediaEngine
  let rooms: RoomService
  let meeting: MeetingService
  let recordings: RecordingService
  let auth: Auth
  let app: ReturnType<typeof createApp>

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conclave-recording-routes-'))
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  beforeEach(() => {
    media = new FakeMediaEngine()
    const store = new MemoryRoomStore()
    const bus = new MemoryEventBus()
    auth = createAuth({ jwtSecret: secret, log: quietLog })
    recordings = new RecordingService({
      bus,
      store,
      issuer: auth.issuer,
      output: { kind: 'local', dir },
      command: [process.execPath, FAKE_RECORDER, 'normal'],
      serverUrl: () => 'http://127.0.0.1:1',
      log: quietLog,
      tracks: { media, rooms: { room: (roomId) => rooms.room(roomId) } },
      spoolDir: join(dir, 'spool'),
    })
    let service: MeetingService | undefined
    rooms = new RoomService({ media, log: quietLog, onTrackChange: (track, change) => service?.trackChanged(track, change) })
    service = new MeetingService({ rooms, store, bus, nodeId: 'node-test', log: quietLog, recordings })
    meeting = service
    app = createApp({ rooms, meeting, store, auth, apiKey, log: quietLog, assets: new Map(), recordings })
  })

  afterEach(async () => {
    await recordings.close()
    await meeting.close()
    await rooms.close()
  })

  async function createRoom(room: string): Promise<void> {
    const response = await app.request('/v1/rooms', { method: 'POST', headers: { ...withKey, 'Content-Type': 'application/json' }, body: JSON.stringify({ room }) })
    assert.equal(response.status, 201)
  }

  function start(room: string, headers: Record<string, string> = withKey, body: unknown = {}): Promise<Response> {
    return Promise.resolve(app.request(`/v1/rooms/${room}/recordings`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) }))
  }

  async function errorCode(response: Response): Promise<string> {
    return ErrorBody.parse(await response.json()).code
  }

  async function finalized(id: string) {
    return eventually(`recording ${id} to be finalized`, async () => {
      const response = await app.request(`/v1/recordings/${id}`, { headers: withKey })
      const details = RecordingDetails.parse(await response.json())
      return details.state === 'finalized' ? details : undefined
    })
  }

  test('with the API key a recording is started (201), listed with links, stopped (202) and served read-only', async () => {
    await createRoom('board')
    const created = await start('board')
    assert.equal(created.status, 201)
    const recording = RecordingDetails.parse(await created.json())
    assert.deepEqual([recording.room, recording.mode, recording.state], ['board', 'composite', 'starting'])

    const listed = RecordingList.parse(await (await app.request('/v1/rooms/board/recordings', { headers: withKey })).json())
    assert.deepEqual(listed.recordings.map((entry) => entry.recordingId), [recording.recordingId])

    const stopped = await app.request(`/v1/rooms/board/recordings/${recording.recordingId}`, { method: 'DELETE', headers: withKey })
    assert.equal(stopped.status, 202)
    const done = await finalized(recording.recordingId)
    assert.equal(done.partial, false)
    const again = await app.request(`/v1/rooms/board/recordings/${recording.recordingId}`, { method: 'DELETE', headers: withKey })
    assert.equal(again.status, 200)

    const all = RecordingList.parse(await (await app.request('/v1/recordings', { headers: withKey })).json())
    const segment = all.recordings[0]?.files.find((file) => file.name === 'segments/segment-000.bin')
    assert.equal(segment?.url, `/v1/recordings/${recording.recordingId}/files/segments/segment-000.bin`)
    const file = await app.request(segment.url, { headers: withKey })
    assert.equal(file.status, 200)
    assert.equal((await file.arrayBuffer()).byteLength, 1000)
    assert.equal(file.headers.get('content-type'), 'application/octet-stream')
    const escape = await app.request(`/v1/recordings/${recording.recordingId}/files/..%2F..%2F..%2Fetc%2Fpasswd`, { headers: withKey })
    assert.equal(escape.status, 404)
    assert.equal((await app.request(segment.url)).status, 401)
  })

  test("a host's or cohost's token of the room starts and stops; a guest's gets 403, another room's 403, none 401", async () => {
    await createRoom('board')
    const host = await accessToken(secret, { room: 'board', identity: 'hana', role: 'host' })
    const cohost = await accessToken(secret, { room: 'board', identity: 'cora', role: 'cohost' })
    const guest = await accessToken(secret, { room: 'board', identity: 'gus', role: 'guest' })
    const otherHost = await accessToken(secret, { room: 'elsewhere', identity: 'olga', role: 'host' })

    const forGuest = await start('board', { Authorization: `Bearer ${guest}` })
    assert.deepEqual([forGuest.status, await errorCode(forGuest)], [403, 'forbidden'])
    const forOther = await start('board', { Authorization: `Bearer ${otherHost}` })
    assert.deepEqual([forOther.status, await errorCode(forOther)], [403, 'forbidden'])
    const anonymous = await start('board', {})
    assert.deepEqual([anonymous.status, await errorCode(anonymous)], [401, 'unauthenticated'])

    const created = await start('board', { Authorization: `Bearer ${host}` })
    assert.equal(created.status, 201)
    const { recordingId } = RecordingDetails.parse(await created.json())
    // A host token sees its room's recordings, and only those.
    const mine = RecordingList.parse(await (await app.request('/v1/recordings', { headers: { Authorization: `Bearer ${host}` } })).json())
    assert.deepEqual(mine.recordings.map((entry) => entry.recordingId), [recordingId])
    const theirs = RecordingList.parse(await (await app.request('/v1/recordings', { headers: { Authorization: `Bearer ${otherHost}` } })).json())
    assert.deepEqual(theirs.recordings, [])
    assert.equal((await app.request(`/v1/recordings/${recordingId}`, { headers: { Authorization: `Bearer ${otherHost}` } })).status, 404)

    const stopped = await app.request(`/v1/rooms/board/recordings/${recordingId}`, { method: 'DELETE', headers: { Authorization: `Bearer ${cohost}` } })
    assert.equal(stopped.status, 202)
    await finalized(recordingId)
  })

  test('an unknown room is 404, a second start 409, an unknown recording 404, per-track mode 201 beside it (twice 409), a bad mode 400', async () => {
    const unknownRoom = await start('nowhere')
    assert.deepEqual([unknownRoom.status, await errorCode(unknownRoom)], [404, 'room_not_found'])
    await createRoom('board')
    assert.equal((await start('board')).status, 201)
    const twice = await start('board')
    assert.deepEqual([twice.status, await errorCode(twice)], [409, 'recording_already_active'])
    const unknown = await app.request('/v1/recordings/rec-nope', { headers: withKey })
    assert.deepEqual([unknown.status, await errorCode(unknown)], [404, 'recording_not_found'])
    const unknownStop = await app.request('/v1/rooms/board/recordings/rec-nope', { method: 'DELETE', headers: withKey })
    assert.deepEqual([unknownStop.status, await errorCode(unknownStop)], [404, 'recording_not_found'])
    const tracks = await start('board', withKey, { mode: 'tracks' })
    assert.equal(tracks.status, 201)
    assert.equal(RecordingDetails.parse(await tracks.json()).mode, 'tracks')
    const tracksTwice = await start('board', withKey, { mode: 'tracks' })
    assert.deepEqual([tracksTwice.status, await errorCode(tracksTwice)], [409, 'recording_already_active'])
    const bad = await start('board', withKey, { mode: 'hologram' })
    assert.deepEqual([bad.status, await errorCode(bad)], [400, 'bad_request'])
  })

  test('the OpenAPI document lists the recording routes', async () => {
    const document = (await (await app.request('/v1/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> }
    for (const path of ['/v1/rooms/{room}/recordings', '/v1/rooms/{room}/recordings/{recording}', '/v1/recordings', '/v1/recordings/{recording}']) {
      assert.ok(document.paths[path], path)
    }
  })

  describe('over signaling', () => {
    function open(principal: Principal) {
      const sent: ServerMessage[] = []
      const session = new SignalingSession({
        meeting,
        rooms,
        principal,
        log: quietLog,
        channel: { send: (text) => sent.push(ServerMessageSchema.parse(JSON.parse(text))), close: () => undefined },
      })
      return { sent, session }
    }

    const person = (role: Principal['role'], identity: string): Principal => ({
      room: 'daily' as RoomId,
      identity,
      name: identity,
      role,
      grants: DEFAULT_GRANTS,
      expiresAt: undefined,
      anonymous: false,
    })

    async function joined(principal: Principal) {
      const member = open(principal)
      await member.session.handleFrame(JSON.stringify({ type: 'join', id: 'j', protocolVersion: PROTOCOL_VERSION, room: 'daily' }))
      assert.equal(member.sent[0]?.type, 'joined')
      return member
    }

    const reply = (sent: ServerMessage[], id: string) => sent.find((message) => 'id' in message && message.id === id)

    test('a host starts and stops; everyone is told, a late joiner sees it in its snapshot, a guest is forbidden', async () => {
      const host = await joined(person('host', 'hana'))
      const guest = await joined(person('guest', 'gus'))

      await guest.session.handleFrame(JSON.stringify({ type: 'start-recording', id: 'g1' }))
      assert.deepEqual(reply(guest.sent, 'g1'), { type: 'error', id: 'g1', code: 'forbidden', message: 'only hosts and cohosts may do that' })

      await host.session.handleFrame(JSON.stringify({ type: 'start-recording', id: 'h1' }))
      assert.deepEqual(reply(host.sent, 'h1'), { type: 'done', id: 'h1' })
      const started = await eventually('the guest to hear recording-started', () => guest.sent.find((message) => message.type === 'recording-started'))
      assert.ok(host.sent.some((message) => message.type === 'recording-started'))

      const late = await joined(person('guest', 'lea'))
      const snapshot = late.sent[0]
      assert.equal(snapshot?.type, 'joined')
      assert.deepEqual(snapshot.type === 'joined' ? snapshot.recording : undefined, started.recording)

      await guest.session.handleFrame(JSON.stringify({ type: 'stop-recording', id: 'g2' }))
      assert.equal(reply(guest.sent, 'g2')?.type, 'error')
      await host.session.handleFrame(JSON.stringify({ type: 'stop-recording', id: 'h2' }))
      assert.deepEqual(reply(host.sent, 'h2'), { type: 'done', id: 'h2' })
      const stopped = await eventually('the late joiner to hear recording-stopped', () => late.sent.find((message) => message.type === 'recording-stopped'))
      assert.deepEqual(stopped, { type: 'recording-stopped', recordingId: started.recording.recordingId, partial: false, failed: false })

      const after = await joined(person('guest', 'max'))
      const afterSnapshot = after.sent[0]
      assert.equal(afterSnapshot?.type === 'joined' ? afterSnapshot.recording : 'not joined', undefined)
      for (const member of [host, guest, late, after]) await member.session.handleClose()
    })

    test('with a composite and a per-track recording at once, the snapshot lists both and stopping one leaves the other', async () => {
      const host = await joined(person('host', 'hana'))
      await host.session.handleFrame(JSON.stringify({ type: 'start-recording', id: 'c', mode: 'composite' }))
      await host.session.handleFrame(JSON.stringify({ type: 'start-recording', id: 't', mode: 'tracks' }))
      assert.deepEqual([reply(host.sent, 'c')?.type, reply(host.sent, 't')?.type], ['done', 'done'])
      const started = await eventually('both recording-started events', () => {
        const events = host.sent.filter((message) => message.type === 'recording-started')
        return events.length === 2 ? events : undefined
      })
      const [composite, tracks] = started.map((event) => event.recording)

      const late = await joined(person('guest', 'lea'))
      const snapshot = late.sent[0]
      assert.ok(snapshot?.type === 'joined')
      assert.deepEqual(snapshot.recordings?.map((recording) => recording.mode), ['composite', 'tracks'])
      assert.equal(snapshot.recording?.recordingId, tracks?.recordingId, 'the latest')

      const stopped = await recordings.stop('daily' as RoomId, composite?.recordingId)
      await eventually('the composite to stop', () => late.sent.find((message) => message.type === 'recording-stopped'))
      assert.equal(stopped.recordingId, composite?.recordingId)
      const after = await joined(person('guest', 'max'))
      const afterSnapshot = after.sent[0]
      assert.ok(afterSnapshot?.type === 'joined')
      assert.deepEqual(afterSnapshot.recordings?.map((recording) => recording.recordingId), [tracks?.recordingId], 'the per-track recording still runs')
      await recordings.stop('daily' as RoomId, tracks?.recordingId)
      for (const member of [host, late, after]) await member.session.handleClose()
    })
  })
})
