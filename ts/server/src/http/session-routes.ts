// WHIP (RFC 9725) and WHEP endpoints: one offer in, one answer out, a resource URL to DELETE.
// The server is ICE-lite and puts all its candidates in the answer, so trickle (PATCH) is refused.
// Sessions are participants of the meeting (StreamSessions): a DELETE works on any node.

import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { type Authenticator, authorizeRoom, bearerToken, type Principal } from '../auth/authenticator.js'
import type { StreamSessions } from '../rooms/stream-sessions.js'
import type { RoomStore } from '../state/room-store.js'

export interface SessionRoutesOptions {
  kind: 'whip' | 'whep'
  sessions: StreamSessions
  auth: Authenticator
  /** Where removed identities are recorded. */
  store?: RoomStore
  /** Largest accepted offer. Default 64 KiB. */
  maxOfferBytes?: number
}

export function createSessionRoutes({ kind, sessions, auth, store, maxOfferBytes = 64 * 1024 }: SessionRoutesOptions): Hono {
  const routes = new Hono()

  /** WHIP needs canPublish, WHEP canSubscribe; a removed identity gets neither. */
  async function admit(principal: Principal, room: RoomId): Promise<void> {
    const allowed = kind === 'whip' ? principal.grants.canPublish : principal.grants.canSubscribe
    if (!allowed) throw new AppError('forbidden', `your grants do not allow ${kind === 'whip' ? 'publishing' : 'playing'}`)
    if (store !== undefined && (await store.isRemoved(room, principal.identity))) {
      throw new AppError('participant_removed', 'you were removed from this room')
    }
  }

  routes.post(
    '/:room',
    bodyLimit({
      maxSize: maxOfferBytes,
      onError: () => {
        throw new AppError('payload_too_large', `the offer exceeds ${maxOfferBytes} bytes`)
      },
    }),
    async (c) => {
      const principal = await auth.authenticate(bearerToken(c.req.header('authorization')))
      const room = roomOf(c.req.param('room'), principal)
      await admit(principal, room)
      if (mediaType(c.req.header('content-type')) !== 'application/sdp') {
        throw new AppError('unsupported_media_type', 'the offer must be sent as Content-Type: application/sdp')
      }
      const offer = await c.req.text()
      if (offer.trim() === '') throw new AppError('invalid_sdp', 'invalid SDP: the offer is empty')
      const name = c.req.query('name')?.trim().slice(0, 64) || undefined
      const { resourceId, sdp } = await sessions.open(kind, principal, room, offer, name)
      return c.body(sdp, 201, {
        'Content-Type': 'application/sdp',
        Location: `/${kind}/${encodeURIComponent(room)}/${resourceId}`,
        ETag: `"${resourceId}"`,
      })
    },
  )

  routes.delete('/:room/:resource', async (c) => {
    const principal = await auth.authenticate(bearerToken(c.req.header('authorization')))
    const room = roomOf(c.req.param('room'), principal)
    if (!(await sessions.end(kind, room, c.req.param('resource')))) {
      throw new AppError('resource_not_found', `no ${kind.toUpperCase()} session at this URL`)
    }
    return c.body(null, 200)
  })

  // RFC 9725 §4.3.1: a resource that supports no PATCH at all answers 405.
  routes.patch('/:room/:resource', (c) => methodNotAllowed(c.req.method, 'POST, DELETE'))
  routes.on(['GET', 'PUT', 'PATCH', 'DELETE'], '/:room', (c) => methodNotAllowed(c.req.method, 'POST, OPTIONS'))
  routes.on(['GET', 'PUT', 'POST'], '/:room/:resource', (c) => methodNotAllowed(c.req.method, 'DELETE, OPTIONS'))

  return routes
}

function methodNotAllowed(method: string, allow: string): Response {
  const body = JSON.stringify({ code: 'method_not_allowed', message: `${method} is not supported here` })
  return new Response(body, { status: 405, headers: { Allow: allow, 'Content-Type': 'application/json' } })
}

function roomOf(raw: string, principal: Principal): RoomId {
  const room = RoomId.safeParse(raw)
  if (!room.success) throw new AppError('bad_request', room.error.issues[0]?.message ?? 'invalid room')
  authorizeRoom(principal, room.data)
  return room.data
}

function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(';', 1)[0]?.trim().toLowerCase()
}
