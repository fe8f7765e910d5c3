// RecordingService with real child processes. The recorder here is test/support/fake-recorder.ts,
// a stand-in that speaks the recorder's stdout protocol and records nothing: these tests cover the
// SUPERVISION of the process (start, JSON lines, SIGTERM, crash, kill, room events), not recording.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import type { RecordingId, RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { TokenAuthenticator, TokenIssuer } from '../auth/authenticator.js'
import { type ClusterEvent, MemoryEventBus } from '../cluster/event-bus.js'
import type { ParticipantRecord } from '../state/room-store.js'
import { createLogger } from '../log.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import { eventually } from '../../test/support/eventually.js'
import { parseLine } from './recorder-process.js'
import { DEFAULT_RECORDER_SCRIPT, RecordingService, type RecordingServiceOptions, recorderFinalizePartial } from './recording-service.js'

const FAKE_RECORDER = fileURLToPath(new URL('../../test/support/fake-recorder.js', import.meta.url))
const RECORDER_TRACKS = fileURLToPath(new URL('../../../../../recorder/dist/src/tracks/index.js', import.meta.url))
const secret = new TextEncoder().encode('recording-test-secret-recording-test')
const log = createLogger({ level: (process.env.CONCLAVE_LOG_LEVEL as 'debug' | undefined) ?? 'silent' })
const room = 'studio' as RoomId

/** One visible person in every room unless a test says otherwise. */
let people: Partial<ParticipantRecord>[] = [{ state: 'active', grants: { hidden: false, recorder: false } as ParticipantRecord['grants'] }]

describe('RecordingService supervising a recorder process', () => {
  let dir: string
  const services: RecordingService[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conclave-recordings-'))
  })

  after(async () => {
    await Promise.all(services.map((service) => service.close()))
    await rm(dir, { recursive: true, force: true })
  })

  function service(behaviour: string, options: Partial<RecordingServiceOptions> = {}) {
    const bus = new MemoryEventBus()
    const events: ClusterEvent[] = []
    bus.subscribe((event) => events.push(event))
    const recordings = new RecordingService({
      bus,
      store: { listParticipants: async () => people as ParticipantRecord[] },
      issuer: new TokenIssuer(secret),
      output: { kind: 'local', dir },
      command: [process.execPath, FAKE_RECORDER, behaviour],
      serverUrl: () => 'http://127.0.0.1:1',
      log,
      stopTimeoutMs: 5_000,
      ...options,
    })
    services.push(recordings)
    return { recordings, bus, events }
  }

  async function stateOf(recordings: RecordingService, id: RecordingId, state: string, timeoutMs = 10_000) {
    return eventually(
      `recording ${id} to be ${state}`,
      async () => {
        const details = await recordings.get(id)
        if (details.state !== state) throw new Error(`state ${details.state}`)
        return details
      },
      { timeoutMs },
    )
  }

  test('a recorder started, then stopped with SIGTERM, ends finalized with its files listed and both events published', async () => {
    const { recordings, events } = service('normal')
    const started = await recordings.start(room, 'composite')
    assert.equal(started.state, 'starting')
    assert.equal(started.room, room)
    await stateOf(recordings, started.recordingId, 'recording')

    const config = JSON.parse(await readFile(join(dir, started.recordingId, 'fake-config.json'), 'utf8')) as { token: string; serverUrl: string; output: { dir: string } }
    assert.equal(config.serverUrl, 'http://127.0.0.1:1')
    assert.equal(config.output.dir, dir)
    const principal = await new TokenAuthenticator({ secret }).authenticate(config.token)
    assert.deepEqual(
      [principal.identity, principal.room, principal.grants.hidden, principal.grants.recorder, principal.grants.canPublish, principal.grants.canSubscribe],
      [`recorder-${started.recordingId}`, room, true, true, false, true],
    )

    const stopping = await recordings.stop(room)
    assert.equal(stopping.state, 'stopping')
    const finalized = await stateOf(recordings, started.recordingId, 'finalized')
    assert.equal(finalized.partial, false)
    assert.deepEqual(finalized.index?.segments, [{ name: 'segments/segment-000.bin' }])
    assert.deepEqual(finalized.files.map((file) => file.name), ['fake-config.json', 'recording.json', 'segments/segment-000.bin'])
    assert.equal(finalized.files[2]?.bytes, 1000)
    assert.equal(finalized.files[2]?.url, `/v1/recordings/${started.recordingId}/files/segments/segment-000.bin`)
    await eventually('both events', () => events.length >= 2)
    assert.deepEqual(events.map((event) => event.type), ['recording-started', 'recording-stopped'])
    assert.deepEqual(events[1], { type: 'recording-stopped', roomId: room, recordingId: started.recordingId, partial: false, failed: false })
    assert.deepEqual((await recordings.list(room)).map((recording) => recording.recordingId), [started.recordingId])
  })

  test('a second composite recording of a room is refused with recording_already_active until the first ends', async () => {
    const { recordings } = service('normal')
    const first = await recordings.start('double' as RoomId, 'composite')
    await assert.rejects(recordings.start('double' as RoomId, 'composite'), (error: unknown) => error instanceof AppError && error.code === 'recording_already_active')
    await recordings.stop('double' as RoomId, first.recordingId)
    await stateOf(recordings, first.recordingId, 'finalized')
    const second = await recordings.start('double' as RoomId, 'composite')
    assert.notEqual(second.recordingId, first.recordingId)
  })

  test('a recorder that crashes is detected: failed, partial output kept, the stderr tail in the error, everyone told', async () => {
    const { recordings, events } = service('crash')
    const started = await recordings.start('crashy' as RoomId, 'composite')
    const failed = await stateOf(recordings, started.recordingId, 'failed')
    assert.equal(failed.partial, true)
    assert.equal(failed.error?.code, 'recorder_crashed')
    assert.match(failed.error?.message ?? '', /exited with code 3 without finalizing: fake recorder: simulated crash/)
    assert.ok(failed.endedAt !== undefined)
    assert.ok(failed.files.some((file) => file.name === 'segments/segment-000.bin'))
    await eventually('the stop event', () => events.find((event) => event.type === 'recording-stopped'))
    assert.deepEqual(events.find((event) => event.type === 'recording-stopped'), {
      type: 'recording-stopped',
      roomId: 'crashy',
      recordingId: started.recordingId,
      partial: true,
      failed: true,
    })
    // The room is free again.
    await recordings.start('crashy' as RoomId, 'composite')
  })

  test("a crashed recorder's helper processes (its process group) are ended with it", async () => {
    const { recordings } = service('orphan')
    const started = await recordings.start('orphans' as RoomId, 'composite')
    await stateOf(recordings, started.recordingId, 'failed')
    const helper = Number(await readFile(join(dir, started.recordingId, 'helper.pid'), 'utf8'))
    assert.ok(helper > 0)
    await eventually('the helper to be gone', () => {
      try {
        process.kill(helper, 0)
        return false
      } catch {
        return true
      }
    })
  })

  test(
    "with the recorder package built, a crashed recorder's output is finalized as partial by the package's finalizePartial",
    { skip: existsSync(DEFAULT_RECORDER_SCRIPT) ? false : `the recorder is not built (${DEFAULT_RECORDER_SCRIPT})` },
    async () => {
      const { recordings } = service('crash', { finalizePartial: recorderFinalizePartial, spoolDir: join(dir, 'spool') })
      const started = await recordings.start('crashy-indexed' as RoomId, 'composite')
      // Loading the recorder package (puppeteer, the Azure SDK) is slow on a busy machine.
      const failed = await stateOf(recordings, started.recordingId, 'failed', 60_000)
      assert.equal(failed.partial, true)
      assert.deepEqual([failed.index?.status, failed.index?.partial, (failed.index?.error as { code?: string } | undefined)?.code], ['partial', true, 'recorder_crashed'])
      const written = JSON.parse(await readFile(join(dir, started.recordingId, 'recording.json'), 'utf8')) as { status: string }
      assert.equal(written.status, 'partial')
    },
  )

  test('a recorder that ignores SIGTERM is killed after the stop timeout and marked failed and partial', async () => {
    const { recordings } = service('ignore-term', { stopTimeoutMs: 300 })
    const started = await recordings.start('stubborn' as RoomId, 'composite')
    await stateOf(recordings, started.recordingId, 'recording')
    await recordings.stop('stubborn' as RoomId)
    const failed = await stateOf(recordings, started.recordingId, 'failed')
    assert.equal(failed.partial, true)
    assert.match(failed.error?.message ?? '', /ended by SIGKILL/)
  })

  test('a recorder that reports failed keeps its own code', async () => {
    const { recordings } = service('fail')
    const started = await recordings.start('refused' as RoomId, 'composite')
    const failed = await stateOf(recordings, started.recordingId, 'failed')
    assert.deepEqual(failed.error, { code: 'join_failed', message: 'the fake recorder was told to fail' })
    assert.equal(failed.partial, false)
  })

  test('malformed stdout lines are ignored and the recording goes on', async () => {
    const { recordings } = service('malformed')
    const started = await recordings.start('noisy' as RoomId, 'composite')
    const recording = await stateOf(recordings, started.recordingId, 'recording')
    await eventually('progress', async () => (await recordings.get(started.recordingId)).bytes === 1000)
    assert.equal(recording.error, undefined)
    await recordings.stop('noisy' as RoomId)
    await stateOf(recordings, started.recordingId, 'finalized')
  })

  test('a recorder that never says started is stopped after the start timeout', async () => {
    const { recordings } = service('silent', { startTimeoutMs: 200 })
    const started = await recordings.start('mute' as RoomId, 'composite')
    const failed = await stateOf(recordings, started.recordingId, 'failed')
    assert.equal(failed.error?.code, 'start_timeout')
  })

  test('a recorder command that cannot run fails the recording with recorder_unavailable', async () => {
    const { recordings } = service('normal', { command: [join(dir, 'no-such-recorder')] })
    const started = await recordings.start('nowhere' as RoomId, 'composite')
    const failed = await stateOf(recordings, started.recordingId, 'failed')
    assert.equal(failed.error?.code, 'recorder_unavailable')
  })

  test('the recorder not being built is refused up front with recorder_unavailable', async () => {
    const { recordings } = service('normal', { command: [process.execPath, join(dir, 'missing', 'cli.js')] })
    await assert.rejects(recordings.start(room, 'composite'), (error: unknown) => error instanceof AppError && error.code === 'recorder_unavailable')
  })

  test('per-track mode without the media engine in this process is refused with recorder_unavailable', async () => {
    const { recordings } = service('normal')
    await assert.rejects(recordings.start(room, 'tracks'), (error: unknown) => error instanceof AppError && error.code === 'recorder_unavailable')
  })

  test('per-track mode runs beside a composite recording, once per room, and stopping it writes its index', { skip: existsSync(RECORDER_TRACKS) ? false : 'the recorder is not built' }, async () => {
    const tracks = { media: new FakeMediaEngine(), rooms: { room: () => undefined } }
    const { recordings, events } = service('normal', { tracks, spoolDir: join(dir, 'spool') })
    const composite = await recordings.start(room, 'composite')
    const perTrack = await recordings.start(room, 'tracks')
    assert.deepEqual([perTrack.mode, perTrack.state], ['tracks', 'recording'])
    await assert.rejects(recordings.start(room, 'tracks'), (error: unknown) => error instanceof AppError && error.code === 'recording_already_active')
    await recordings.stop(room, perTrack.recordingId)
    const finalized = await stateOf(recordings, perTrack.recordingId, 'finalized')
    assert.equal(finalized.partial, false)
    const index = JSON.parse(await readFile(join(dir, perTrack.recordingId, 'recording.json'), 'utf8')) as Record<string, unknown>
    assert.deepEqual([index.mode, index.status, index.room, index.tracks], ['tracks', 'finalized', room, []])
    assert.ok(events.some((event) => event.type === 'recording-stopped' && event.recordingId === perTrack.recordingId && !event.failed))
    await stateOf(recordings, composite.recordingId, 'recording')
    // Once finalized, the room may record per track again.
    const again = await recordings.start(room, 'tracks')
    await recordings.stop(room, again.recordingId)
    await stateOf(recordings, again.recordingId, 'finalized')
  })

  test('closing its room stops the recording', async () => {
    const { recordings, bus } = service('normal')
    const started = await recordings.start('closing' as RoomId, 'composite')
    await stateOf(recordings, started.recordingId, 'recording')
    await bus.publish({ type: 'room-closed', roomId: 'closing' as RoomId, participants: [] })
    await stateOf(recordings, started.recordingId, 'finalized')
  })

  test('the last person leaving stops the recording; a hidden participant does not count', async () => {
    const { recordings, bus } = service('normal')
    const started = await recordings.start('emptying' as RoomId, 'composite')
    await stateOf(recordings, started.recordingId, 'recording')
    const before = people
    people = [{ state: 'active', grants: { hidden: true, recorder: true } as ParticipantRecord['grants'] }]
    try {
      await bus.publish({ type: 'participant-left', roomId: 'emptying' as RoomId, participant: {} as ParticipantRecord, reason: 'left' })
      await stateOf(recordings, started.recordingId, 'finalized')
    } finally {
      people = before
    }
  })

  test('close() stops every recorder and waits for it to finalize', async () => {
    const { recordings } = service('normal')
    const started = await recordings.start('shutdown' as RoomId, 'composite')
    await stateOf(recordings, started.recordingId, 'recording')
    await recordings.close()
    assert.equal((await recordings.get(started.recordingId)).state, 'finalized')
    await assert.rejects(recordings.start('shutdown' as RoomId, 'composite'), (error: unknown) => error instanceof AppError && error.code === 'recorder_unavailable')
  })
})

test('recorder stdout lines are parsed strictly and never throw', () => {
  assert.deepEqual(parseLine('{"type":"progress","bytes":5,"segments":1}'), { type: 'progress', bytes: 5, segments: 1 })
  assert.deepEqual(parseLine('{"type":"failed","code":"x","message":"y","extra":1}'), { type: 'failed', code: 'x', message: 'y' })
  for (const line of ['', 'not json', '[]', 'null', '{"type":"progress","bytes":-1,"segments":0}', '{"type":"started"}', `{"type":"failed","code":"${'x'.repeat(300)}","message":""}`]) {
    assert.equal(parseLine(line), undefined, line)
  }
})
