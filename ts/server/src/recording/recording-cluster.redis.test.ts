// Recordings across two real server instances (HTTP, WebSocket) sharing one real redis-server:
// started on one, listed and stopped through the other. The recorder is the stand-in of
// test/support/fake-recorder.ts (a real child process speaking the recorder protocol, recording
// nothing); the media engine is the fake one.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import {
  RecordingDetails,
  RecordingList,
  type RecordingId,
  type Role,
  type RoomId,
} from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import { wsMember as joinOverWebSocket } from '../../test/support/ws-member.js'
import { quietLog } from '../../test/support/media-engines.js'
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { type ConclaveServer, createServer } from '../server.js'
import { RedisRecordingStore } from './redis-recording-store.js'

const FAKE_RECORDER = fileURLToPath(new URL('../../test/support/fake-recorder.js', import.meta.url))
const secret = 'recording-cluster-redis-secret-0123456789'
const apiKey = 'recording-cluster-redis-api-key'
const api = { Authorization: `Bearer ${apiKey}` }
/** Short leases, so that a dead node's recording lapses within the test (renewed every 300 ms). */
const leaseMs = 900

async function startNode(redis: RedisServer, nodeId: string, media: FakeMediaEngine, dir: string): Promise<ConclaveServer> {
  return createServer({
    httpPort: 0,
    httpHost: '127.0.0.1',
    jwtSecret: secret,
    apiKey,
    redisUrl: redis.url,
    nodeId,
    media,
    leaseMs,
    assetsDir: '/nonexistent',
    log: quietLog,
    recording: { command: [process.execPath, FAKE_RECORDER, 'normal'], output: { kind: 'local', dir }, stopTimeoutMs: 5_000 },
  })
}

async function recordingsOn(server: ConclaveServer, path = '/v1/recordings') {
  const response = await fetch(`${server.url}${path}`, { headers: api })
  assert.equal(response.status, 200)
  return RecordingList.parse(await response.json()).recordings
}

async function recordingOn(server: ConclaveServer, id: RecordingId) {
  const response = await fetch(`${server.url}/v1/recordings/${id}`, { headers: api })
  assert.equal(response.status, 200)
  return RecordingDetails.parse(await response.json())
}

/** A member joined over the real WebSocket of `server`, with every message it got. */
function wsMember(server: ConclaveServer, room: string, identity: string, role: Role = 'guest') {
  return joinOverWebSocket(server.url, secret, room, identity, role)
}

describe('recordings on two instances sharing a real Redis', () => {
  let redis: RedisServer
  let dirOne: string
  let dirTwo: string
  const mediaOne = new FakeMediaEngine()
  const mediaTwo = new FakeMediaEngine()
  let one: ConclaveServer
  let two: ConclaveServer

  before(async () => {
    redis = await startRedisServer()
    dirOne = await mkdtemp(join(tmpdir(), 'conclave-rec-one-'))
    dirTwo = await mkdtemp(join(tmpdir(), 'conclave-rec-two-'))
    one = await startNode(redis, 'node-one', mediaOne, dirOne)
    two = await startNode(redis, 'node-two', mediaTwo, dirTwo)
  })

  after(async () => {
    await Promise.all([one?.close(), two?.close()])
    await Promise.all([mediaOne.close(), mediaTwo.close()])
    await redis?.stop()
    await Promise.all([dirOne, dirTwo].map((dir) => (dir ? rm(dir, { recursive: true, force: true }) : undefined)))
  })

  test('started on instance 1: listed on instance 2 (files only on 1); DELETE on instance 2 stops it on instance 1; ended on both lists', async () => {
    const host = await wsMember(two, 'shared', 'hana', 'host')
    const response = await fetch(`${one.url}/v1/rooms/shared/recordings`, { method: 'POST', headers: { ...api, 'content-type': 'application/json' }, body: '{"mode":"composite"}' })
    assert.equal(response.status, 201, await response.clone().text())
    const started = RecordingDetails.parse(await response.json())
    assert.equal(started.nodeId, 'node-one')
    assert.ok(one.recordings.pidOf(started.recordingId) !== undefined, 'the recorder runs on instance 1')
    assert.equal(two.recordings.pidOf(started.recordingId), undefined)

    const onTwo = await eventually('instance 2 to list it recording', async () =>
      (await recordingsOn(two, '/v1/rooms/shared/recordings')).find((recording) => recording.recordingId === started.recordingId && recording.state === 'recording'),
    )
    assert.equal(onTwo.nodeId, 'node-one')
    assert.deepEqual((await recordingsOn(two)).map((recording) => recording.recordingId), [started.recordingId])
    // Its files are on instance 1's disk: instance 2 says so, instance 1 lists them.
    const detailsOnTwo = await recordingOn(two, started.recordingId)
    assert.deepEqual(detailsOnTwo.files, [])
    assert.match(detailsOnTwo.filesNotice ?? '', /node-one/)
    const detailsOnOne = await recordingOn(one, started.recordingId)
    assert.ok(detailsOnOne.files.some((file) => file.name === 'segments/segment-000.bin'))
    assert.equal(detailsOnOne.filesNotice, undefined)
    const fileOnTwo = await fetch(`${two.url}/v1/recordings/${started.recordingId}/files/segments/segment-000.bin`, { headers: api })
    assert.equal(fileOnTwo.status, 404)
    assert.match(await fileOnTwo.text(), /node-one/)
    const fileOnOne = await fetch(`${one.url}/v1/recordings/${started.recordingId}/files/segments/segment-000.bin`, { headers: api })
    assert.equal(fileOnOne.status, 200)
    assert.equal((await fileOnOne.arrayBuffer()).byteLength, 1000)
    await eventually('the host on instance 2 to see the indicator', () => host.messages.some((message) => message.type === 'recording-started'))
    // One composite recording per room in the cluster: instance 2 refuses a second one.
    const second = await fetch(`${two.url}/v1/rooms/shared/recordings`, { method: 'POST', headers: { ...api, 'content-type': 'application/json' }, body: '{"mode":"composite"}' })
    assert.equal(second.status, 409)

    const stopAt = Date.now()
    const stop = await fetch(`${two.url}/v1/rooms/shared/recordings/${started.recordingId}`, { method: 'DELETE', headers: api })
    const stopMs = Date.now() - stopAt
    const stopping = RecordingDetails.parse(await stop.json())
    // Instance 1 answers through the store once it stopped it: `stopping`, or already further (the
    // stand-in finalizes at once), with the status a local stop gives for that record.
    assert.ok(stopping.state === 'stopping' || stopping.state === 'finalized', stopping.state)
    assert.equal(stop.status, stopping.endedAt === undefined ? 202 : 200)
    console.log(`# remote stop answered in ${stopMs} ms (${stopping.state})`)

    await eventually('the recorder on instance 1 to be gone', () => one.recordings.pidOf(started.recordingId) === undefined)
    for (const server of [one, two]) {
      const [listed] = await eventually(`${server.nodeId} to list it finalized`, async () => {
        const recordings = await recordingsOn(server)
        return recordings[0]?.state === 'finalized' && recordings[0].endedAt !== undefined ? recordings : undefined
      })
      assert.equal(listed?.recordingId, started.recordingId)
      assert.equal(listed?.partial, false)
    }
    await eventually('the host on instance 2 to hear it stopped', () =>
      host.messages.some((message) => message.type === 'recording-stopped' && message.recordingId === started.recordingId && !message.failed),
    )
    host.close()
  })

  test('a host on instance 2 stops, over signaling, the room recording instance 1 runs', async () => {
    const host = await wsMember(two, 'signaled', 'sam', 'host')
    const started = await one.meeting.startRecording({ kind: 'api' }, 'signaled' as RoomId, 'composite')
    await eventually('it to record', async () => (await one.recordings.get(started.recordingId)).state === 'recording')
    host.send({ type: 'stop-recording', id: 'stop-1' })
    const reply = await eventually('the reply to stop-recording', () => host.messages.find((message) => 'id' in message && message.id === 'stop-1'))
    assert.equal(reply.type, 'done', JSON.stringify(reply))
    await eventually('it to be finalized, as instance 2 sees it', async () => (await two.recordings.get(started.recordingId)).state === 'finalized')
    assert.equal(one.recordings.pidOf(started.recordingId), undefined)
    host.close()
  })

  test('a recording whose instance is gone (no lease renewals) ends failed when stopped from another instance', async () => {
    const member = await wsMember(one, 'orphaned', 'olga')
    // What a dead instance leaves in Redis: an unended record nobody renews.
    const client = redis.client()
    const ghost = { recordingId: 'rec-ghost' as RecordingId, room: 'orphaned' as RoomId, mode: 'composite' as const, state: 'recording' as const, partial: false, startedAt: Date.now(), bytes: 2000, nodeId: 'node-dead' }
    await new RedisRecordingStore(client, { leaseMs }).put(ghost)
    client.disconnect()

    const stopAt = Date.now()
    const stop = await fetch(`${two.url}/v1/rooms/orphaned/recordings/${ghost.recordingId}`, { method: 'DELETE', headers: api })
    console.log(`# stop of a dead instance's recording answered in ${Date.now() - stopAt} ms (lease ${leaseMs} ms)`)
    assert.equal(stop.status, 200, await stop.clone().text())
    const ended = RecordingDetails.parse(await stop.json())
    assert.equal(ended.state, 'failed')
    assert.equal(ended.partial, true)
    assert.equal(ended.error?.code, 'recorder_lost')
    assert.equal((await recordingOn(one, ghost.recordingId)).state, 'failed')
    await eventually('the member on instance 1 to hear it stopped, failed', () =>
      member.messages.some((message) => message.type === 'recording-stopped' && message.recordingId === ghost.recordingId && message.failed),
    )
    member.close()
  })
})
