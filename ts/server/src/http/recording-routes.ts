// The recordings part of the REST API: start and stop a room's recording, list recordings with links
// to their files, serve a local recording's files read-only. Callers are the API key, or a host or
// cohost of the room with their access token.

import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname } from 'node:path'
import { Readable } from 'node:stream'
import { type Context, Hono } from 'hono'
import { CreateRecordingRequest, RecordingId, type RecordingDetails, RoomId, isModerator } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { type Auth, bearerToken } from '../auth/authenticator.js'
import type { Actor, MeetingService } from '../rooms/meeting-service.js'
import { localFilePath } from '../recording/recording-output.js'
import type { RecordingService } from '../recording/recording-service.js'
import type { RoomStore } from '../state/room-store.js'
import { parseRequestValue, readJsonBody } from './request-body.js'

export interface RecordingRoutesOptions {
  meeting: MeetingService
  /** Absent when the server does not record: starting answers `recorder_unavailable`, lists are empty. */
  recordings: RecordingService | undefined
  auth: Auth
  store: Pick<RoomStore, 'isRemoved'>
  /** True when the request carries the API key. */
  presentsApiKey: (c: Context) => boolean
  /** No API key is configured and the server runs open (dev): callers without credentials act as the API. */
  openApi: boolean
}

/** The API key acts in any room; a host's token only in its own. */
type Caller = { kind: 'api' } | { kind: 'moderator'; room: RoomId }

const API_ACTOR: Actor = { kind: 'api' }

const CONTENT_TYPES: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.ts': 'video/mp2t',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.ogg': 'audio/ogg',
  '.opus': 'audio/ogg',
  '.json': 'application/json',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
}

export function createRecordingRoutes({ meeting, recordings, auth, store, presentsApiKey, openApi }: RecordingRoutesOptions): Hono {
  const routes = new Hono()

  /**
   * The API key wins; then a JWT is judged as a token, even on an open server (a guest showing a
   * guest token is a guest); then, only on an open server without a key, no credentials is the API.
   */
  async function callerOf(c: Context): Promise<Caller> {
    if (presentsApiKey(c)) return { kind: 'api' }
    const token = bearerToken(c.req.header('authorization')) ?? c.req.query('token')
    if (token !== undefined && token.split('.').length === 3) {
      const principal = await auth.authenticator.authenticate(token)
      if (principal.room === undefined || !isModerator(principal.role) || principal.grants.recorder) {
        throw new AppError('forbidden', 'only hosts and cohosts of the room (or the API key) manage its recordings')
      }
      if (await store.isRemoved(principal.room, principal.identity)) throw new AppError('participant_removed', 'you were removed from this room')
      return { kind: 'moderator', room: principal.room }
    }
    if (openApi) return { kind: 'api' }
    throw new AppError('unauthenticated', 'an API key or a host access token is required')
  }

  async function callerFor(c: Context, room: RoomId): Promise<Caller> {
    const caller = await callerOf(c)
    if (caller.kind === 'moderator' && caller.room !== room) throw new AppError('forbidden', `the token is for another room than ${room}`)
    return caller
  }

  /** A recording the caller may see; another room's is not found, so ids of other rooms do not leak. */
  async function visibleRecording(c: Context): Promise<RecordingDetails> {
    const caller = await callerOf(c)
    const id = parseRequestValue(RecordingId, c.req.param('recording'), 'recording')
    if (recordings === undefined) throw new AppError('recording_not_found', `there is no recording ${id}`)
    const recording = await recordings.get(id)
    if (caller.kind === 'moderator' && caller.room !== recording.room) throw new AppError('recording_not_found', `there is no recording ${id}`)
    return recording
  }

  routes.post('/rooms/:room/recordings', async (c) => {
    const room = parseRequestValue(RoomId, c.req.param('room'), 'room')
    await callerFor(c, room)
    const { mode } = await readJsonBody(c, CreateRecordingRequest)
    return c.json(await meeting.startRecording(API_ACTOR, room, mode), 201)
  })

  routes.delete('/rooms/:room/recordings/:recording', async (c) => {
    const room = parseRequestValue(RoomId, c.req.param('room'), 'room')
    await callerFor(c, room)
    const id = parseRequestValue(RecordingId, c.req.param('recording'), 'recording')
    if (recordings === undefined) throw new AppError('recording_not_found', `there is no recording ${id}`)
    const recording = await recordings.get(id)
    if (recording.room !== room) throw new AppError('recording_not_found', `there is no recording ${id} in room ${room}`)
    const stopped = await meeting.stopRecording(API_ACTOR, room, id).catch((error: unknown) => {
      // The room closed meanwhile: the recording stops with it; report what it is.
      if (error instanceof AppError && error.code === 'room_not_found') return recordings.get(id)
      throw error
    })
    return c.json(stopped, stopped.endedAt === undefined ? 202 : 200)
  })

  // Recordings outlive their room, so a closed room's recordings are still listed.
  routes.get('/rooms/:room/recordings', async (c) => {
    const room = parseRequestValue(RoomId, c.req.param('room'), 'room')
    await callerFor(c, room)
    return c.json({ recordings: (await recordings?.list(room)) ?? [] })
  })

  routes.get('/recordings', async (c) => {
    const caller = await callerOf(c)
    const list = (await recordings?.list(caller.kind === 'moderator' ? caller.room : undefined)) ?? []
    return c.json({ recordings: list })
  })

  routes.get('/recordings/:recording', async (c) => c.json(await visibleRecording(c)))

  routes.get('/recordings/:recording/files/*', async (c) => {
    const recording = await visibleRecording(c)
    const output = recordings?.output
    if (output?.kind !== 'local') throw new AppError('resource_not_found', 'this recording is not in a local folder; its files list blob URLs')
    const match = /\/files\/(.+)$/.exec(c.req.path)
    let name: string
    try {
      name = (match?.[1] ?? '').split('/').map(decodeURIComponent).join('/')
    } catch {
      throw new AppError('bad_request', 'the file name is not valid')
    }
    const path = localFilePath(output, recording.recordingId, name)
    const info = path === undefined ? undefined : await stat(path).catch(() => undefined)
    if (path === undefined || info === undefined || !info.isFile()) {
      const elsewhere = recording.filesNotice === undefined ? '' : ` here (${recording.filesNotice})`
      throw new AppError('resource_not_found', `recording ${recording.recordingId} has no file ${name}${elsewhere}`)
    }
    const stream = Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>
    return new Response(stream, {
      headers: {
        'Content-Type': CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': String(info.size),
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-cache',
      },
    })
  })

  return routes
}
