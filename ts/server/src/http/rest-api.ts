// The REST API under /v1 (rooms, participants, the waiting room, tokens) and the health checks.
// Guarded by an API key; bodies are validated with ts/protocol's schemas; errors are ErrorBody.

import { createHash, timingSafeEqual } from 'node:crypto'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import {
  type BreakoutsResponse,
  CreateBreakoutsBody,
  CreateRoomRequest,
  CreateTokenRequest,
  MoveToBreakoutBody,
  MuteRequest,
  ParticipantId,
  ParticipantName,
  type ParticipantDetails,
  Role,
  RoomId,
  type RoomDetails,
  TOKEN_TTL_LIMITS,
  UpdateParticipantRequest,
  UpdateRoomRequest,
  WaitingDecisionRequest,
} from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { type Auth, bearerToken } from '../auth/authenticator.js'
import type { Logger } from '../log.js'
import type { RecordingService } from '../recording/recording-service.js'
import type { Actor, MeetingService } from '../rooms/meeting-service.js'
import type { ParticipantRecord, RoomRecord, RoomStore } from '../state/room-store.js'
import { openApiDocument } from './openapi.js'
import { createRecordingRoutes } from './recording-routes.js'
import { parseRequestValue, readJsonBody } from './request-body.js'

/** Named checks for /readyz; each resolves when its dependency answers. */
export type Readiness = Record<string, () => Promise<unknown>>

export interface RestApiOptions {
  meeting: MeetingService
  auth: Auth
  /** `CONCLAVE_API_KEY`. */
  apiKey?: string | undefined
  readiness?: Readiness
  log: Logger
  /** Largest accepted JSON body. Default 64 KiB. */
  maxBodyBytes?: number
  /** Recordings; without them starting one answers `recorder_unavailable`. */
  recordings?: RecordingService | undefined
  /** Removed identities, refused on the routes that take a host's token. */
  store?: Pick<RoomStore, 'isRemoved'>
}

/** The REST API acts with every right a host has, in any room. */
const API_ACTOR: Actor = { kind: 'api' }

export function createRestApi({ meeting, auth, apiKey, readiness = {}, log, maxBodyBytes = 64 * 1024, recordings, store = { isRemoved: async () => false } }: RestApiOptions) {
  const api = new Hono()
  const keyDigest = apiKey === undefined ? undefined : digest(apiKey)
  const presentsApiKey = (c: Context): boolean => {
    const presented = bearerToken(c.req.header('authorization')) ?? c.req.header('x-api-key')
    return keyDigest !== undefined && presented !== undefined && timingSafeEqual(digest(presented), keyDigest)
  }

  api.use(
    '*',
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new AppError('payload_too_large', `the body exceeds ${maxBodyBytes} bytes`)
      },
    }),
  )

  api.get('/openapi.json', (c) => c.json(openApiDocument()))

  // Only in open dev mode: the meeting page asks for a token so that roles work without a backend.
  api.get('/dev-token', async (c) => {
    if (!auth.devMode || auth.issuer === undefined) throw new AppError('resource_not_found', 'dev tokens exist only when no CONCLAVE_JWT_SECRET is set')
    const room = parseRequestValue(RoomId, c.req.query('room'), 'room')
    const name = parseRequestValue(ParticipantName.optional(), c.req.query('name'), 'name')
    const role = parseRequestValue(Role.default('host'), c.req.query('role'), 'role')
    const identity = `dev-${crypto.randomUUID()}`
    return c.json(await auth.issuer.mint({ room, identity, role, ttlSeconds: TOKEN_TTL_LIMITS.default, ...(name ? { name } : {}) }))
  })

  // Recordings take a host's or cohost's token as well as the API key.
  api.route('/', createRecordingRoutes({ meeting, recordings, auth, store, presentsApiKey, openApi: keyDigest === undefined && auth.devMode }))

  // Everything below needs the API key (or open dev mode without one).
  api.use('*', async (c, next) => {
    if (keyDigest === undefined) {
      if (!auth.devMode) throw new AppError('unauthenticated', 'the REST API needs CONCLAVE_API_KEY to be set on the server')
      return next()
    }
    if (!presentsApiKey(c)) throw new AppError('unauthenticated', 'a valid API key is required')
    return next()
  })

  api.post('/tokens', async (c) => {
    if (auth.issuer === undefined) throw new AppError('forbidden', 'this server verifies tokens from a JWKS and mints none')
    const request = await readJsonBody(c, CreateTokenRequest)
    return c.json(await auth.issuer.mint(request), 201)
  })

  api.get('/rooms', async (c) => {
    const rooms = await meeting.listRooms()
    return c.json({ rooms: await Promise.all(rooms.map((room) => details(room))) })
  })

  api.post('/rooms', async (c) => {
    const room = await meeting.createRoom(await readJsonBody(c, CreateRoomRequest))
    return c.json(await details(room), 201)
  })

  api.get('/rooms/:room', async (c) => c.json(await details(await meeting.getRoom(roomParam(c)))))

  api.patch('/rooms/:room', async (c) => {
    const patch = await readJsonBody(c, UpdateRoomRequest)
    return c.json(await details(await meeting.updateRoom(roomParam(c), patch)))
  })

  api.delete('/rooms/:room', async (c) => {
    await meeting.closeRoom(roomParam(c))
    return c.body(null, 204)
  })

  api.get('/rooms/:room/participants', async (c) => {
    const participants = await meeting.listParticipants(roomParam(c))
    return c.json({ participants: participants.map(participantDetails) })
  })

  api.get('/rooms/:room/participants/:participant', async (c) =>
    c.json(participantDetails(await meeting.getParticipant(roomParam(c), participantParam(c)))),
  )

  api.patch('/rooms/:room/participants/:participant', async (c) => {
    const change = await readJsonBody(c, UpdateParticipantRequest)
    const updated = await meeting.updatePermissions(API_ACTOR, roomParam(c), participantParam(c), {
      ...(change.role ? { role: change.role } : {}),
      ...(change.grants ? { grants: stripUndefined(change.grants) } : {}),
    })
    return c.json(participantDetails(updated))
  })

  api.delete('/rooms/:room/participants/:participant', async (c) => {
    await meeting.remove(API_ACTOR, roomParam(c), participantParam(c))
    return c.body(null, 204)
  })

  api.post('/rooms/:room/participants/:participant/mute', async (c) => {
    const { trackId } = await readJsonBody(c, MuteRequest)
    return c.json({ count: await meeting.mute(API_ACTOR, roomParam(c), participantParam(c), trackId) })
  })

  api.get('/rooms/:room/waiting', async (c) => c.json({ waiting: await meeting.listWaiting(roomParam(c)) }))

  api.post('/rooms/:room/waiting/admit', async (c) => {
    const { participantIds } = await readJsonBody(c, WaitingDecisionRequest)
    return c.json({ count: await meeting.admit(API_ACTOR, roomParam(c), participantIds) })
  })

  api.post('/rooms/:room/waiting/deny', async (c) => {
    const { participantIds } = await readJsonBody(c, WaitingDecisionRequest)
    return c.json({ count: await meeting.deny(API_ACTOR, roomParam(c), participantIds) })
  })

  api.get('/rooms/:room/breakouts', async (c) => {
    const breakouts = await meeting.breakoutsOf(roomParam(c))
    return c.json({ breakouts: breakouts ?? null } satisfies BreakoutsResponse)
  })

  api.post('/rooms/:room/breakouts', async (c) => {
    const { groups } = await readJsonBody(c, CreateBreakoutsBody)
    const breakouts = await meeting.createBreakouts(API_ACTOR, roomParam(c), groups)
    return c.json({ breakouts } satisfies BreakoutsResponse, 201)
  })

  api.post('/rooms/:room/breakouts/move', async (c) => {
    const { participantId, groupId } = await readJsonBody(c, MoveToBreakoutBody)
    const breakouts = await meeting.moveToBreakout(API_ACTOR, roomParam(c), participantId, groupId)
    return c.json({ breakouts } satisfies BreakoutsResponse)
  })

  api.delete('/rooms/:room/breakouts', async (c) => {
    await meeting.endBreakouts(API_ACTOR, roomParam(c))
    return c.body(null, 204)
  })

  api.all('*', () => {
    throw new AppError('resource_not_found', 'no such API route')
  })

  async function details(room: RoomRecord): Promise<RoomDetails> {
    const participants = await meeting.listParticipants(room.id).catch(() => [])
    const waiting = participants.filter((participant) => participant.state === 'waiting').length
    const result: RoomDetails = {
      room: room.id,
      waitingRoom: room.waitingRoom,
      locked: room.locked,
      emptyTimeoutSeconds: room.emptyTimeoutSeconds,
      createdAt: room.createdAt,
      participants: participants.length - waiting,
      waiting,
    }
    if (room.maxParticipants !== undefined) result.maxParticipants = room.maxParticipants
    return result
  }

  const health = new Hono()
  health.get('/healthz', (c) => c.json({ ok: true, nodeId: meeting.nodeId }))
  health.get('/readyz', async (c) => {
    const checks: Record<string, string> = {}
    let ok = true
    for (const [name, check] of Object.entries(readiness)) {
      try {
        await check()
        checks[name] = 'ok'
      } catch (error) {
        ok = false
        checks[name] = error instanceof Error ? error.message : String(error)
        log.warn('readiness check failed', { check: name, err: error })
      }
    }
    return c.json({ ok, nodeId: meeting.nodeId, checks }, ok ? 200 : 503)
  })

  return { api, health }
}

function participantDetails(record: ParticipantRecord): ParticipantDetails {
  const { roomId: _roomId, resumeHash: _resumeHash, connection: _connection, serverOffers: _serverOffers, ...details } = record
  return details
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

function stripUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> }
}

function roomParam(c: Context): RoomId {
  return parseRequestValue(RoomId, c.req.param('room'), 'room')
}

function participantParam(c: Context): ParticipantId {
  return parseRequestValue(ParticipantId, c.req.param('participant'), 'participant')
}
