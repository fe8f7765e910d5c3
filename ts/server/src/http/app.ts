// The HTTP surface as one Hono app: WHIP, WHEP, the REST API (/v1), the signaling WebSocket route,
// health checks and the client pages.

import { Hono } from 'hono'
import { cors } from 'hono/cors'
import type { UpgradeWebSocket } from 'hono/ws'
import { AppError, toAppError } from '../app-error.js'
import { type Auth, type Principal, bearerToken } from '../auth/authenticator.js'
import type { Logger } from '../log.js'
import type { RecordingService } from '../recording/recording-service.js'
import type { MeetingService } from '../rooms/meeting-service.js'
import type { RoomService } from '../rooms/room-service.js'
import type { RoomStore } from '../state/room-store.js'
import { SignalingSession } from '../signaling/signaling-session.js'
import { errorResponse, handleError } from './errors.js'
import { type Readiness, createRestApi } from './rest-api.js'
import { createSessionRoutes } from './session-routes.js'
import type { StaticAssets } from './static-assets.js'

export interface AppOptions {
  rooms: RoomService
  meeting: MeetingService
  store: RoomStore
  auth: Auth
  /** Guards the REST API; without one the API is open in dev mode and closed otherwise. */
  apiKey?: string | undefined
  /** What /readyz checks. */
  readiness?: Readiness
  log: Logger
  assets: StaticAssets
  /** The runtime's WebSocket upgrade; without it `/ws` answers 426. */
  upgradeWebSocket?: UpgradeWebSocket
  recordings?: RecordingService | undefined
}

type Env = { Variables: { principal: Principal } }

export function createApp({ rooms, meeting, store, auth, apiKey, readiness, log, assets, upgradeWebSocket, recordings }: AppOptions): Hono<Env> {
  const app = new Hono<Env>()
  app.onError(handleError(log))

  // Browsers publish with WHIP/WHEP from other origins (players, OBS docks); tokens are bearer
  // headers, never cookies, so any origin may call.
  const sessionCors = cors({
    origin: '*',
    allowMethods: ['POST', 'DELETE', 'PATCH', 'OPTIONS'],
    allowHeaders: ['Authorization', 'Content-Type', 'If-Match'],
    exposeHeaders: ['Location', 'ETag', 'Link'],
    maxAge: 600,
  })
  for (const kind of ['whip', 'whep'] as const) {
    app.use(`/${kind}/*`, sessionCors)
    app.route(`/${kind}`, createSessionRoutes({ kind, sessions: meeting.sessions, auth: auth.authenticator, store }))
  }

  const rest = createRestApi({ meeting, auth, apiKey, log, recordings, store, ...(readiness ? { readiness } : {}) })
  app.route('/v1', rest.api)
  app.route('/', rest.health)

  // Browsers cannot set headers on a WebSocket, so the token may also come as ?token=. Checked
  // before the upgrade: a bad token gets a 401 and never a socket.
  app.get(
    '/ws',
    async (c, next) => {
      try {
        const token = bearerToken(c.req.header('authorization')) ?? c.req.query('token')
        const principal = await auth.authenticator.authenticate(token)
        // A removed identity is refused here too, before it ever gets a socket.
        if (principal.room !== undefined && (await store.isRemoved(principal.room, principal.identity))) {
          throw new AppError('participant_removed', 'you were removed from this room')
        }
        c.set('principal', principal)
      } catch (error) {
        return errorResponse(c, toAppError(error))
      }
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket' || upgradeWebSocket === undefined) {
        return errorResponse(c, new AppError('bad_request', 'signaling needs a WebSocket upgrade'))
      }
      return next()
    },
    upgradeWebSocket !== undefined
      ? upgradeWebSocket((c) => {
          let session: SignalingSession | undefined
          return {
            onOpen: (_event, ws) => {
              session = new SignalingSession({
                meeting,
                rooms,
                principal: c.get('principal'),
                log,
                channel: { send: (text) => ws.send(text), close: (code, reason) => ws.close(code, reason) },
              })
            },
            onMessage: (event) => {
              const data: unknown = event.data
              void session?.handleFrame(typeof data === 'string' ? data : new ArrayBuffer(0))
            },
            onClose: (event) => {
              void session?.handleClose(event.code)
            },
          }
        })
      : (c) => c.body(null, 426),
  )

  app.get('/', (c) => serveAsset(c.req.path === '/' ? '/index.html' : c.req.path))
  app.get('/*', (c) => serveAsset(c.req.path))

  function serveAsset(path: string): Response {
    const asset = assets.get(path)
    if (asset === undefined) {
      const hint = assets.size === 0 ? 'the client is not built; run `npm run build`' : `${path} does not exist`
      return new Response(hint, { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } })
    }
    return new Response(asset.body, {
      headers: { 'Content-Type': asset.contentType, 'Cache-Control': 'no-cache' },
    })
  }

  return app
}
