// The control plane without a listening server, for tests: rooms, store, bus, meeting and the
// Hono app over a given media engine (the fake one, usually). Hono apps are called with app.request().

import { SignJWT } from 'jose'
import type { CreateTokenRequest } from '@conclave/protocol'
import { createAuth } from '../../src/auth/authenticator.js'
import { type EventBus, MemoryEventBus } from '../../src/cluster/event-bus.js'
import { createApp } from '../../src/http/app.js'
import type { MediaEngine } from '../../src/media/media-engine.js'
import { MeetingService } from '../../src/rooms/meeting-service.js'
import { RoomService } from '../../src/rooms/room-service.js'
import { MemoryRoomStore } from '../../src/state/memory-room-store.js'
import type { RoomStore } from '../../src/state/room-store.js'
import type { TurnOptions } from '../../src/turn/turn-credentials.js'
import { quietLog } from './media-engines.js'

export interface ControlPlaneOptions {
  jwtSecret?: string
  apiKey?: string
  store?: RoomStore
  bus?: EventBus
  nodeId?: string
  turn?: TurnOptions
  /** See MeetingServiceOptions. Default 15 000. */
  resumeGraceMs?: number
}

export function createControlPlane(media: MediaEngine, { jwtSecret, apiKey, store = new MemoryRoomStore(), bus = new MemoryEventBus(), nodeId = 'node-test', turn, resumeGraceMs }: ControlPlaneOptions = {}) {
  let meeting: MeetingService | undefined
  const rooms = new RoomService({ media, log: quietLog, onTrackChange: (track, change) => meeting?.trackChanged(track, change) })
  meeting = new MeetingService({ rooms, store, bus, nodeId, log: quietLog, ...(turn ? { turn } : {}), ...(resumeGraceMs !== undefined ? { resumeGraceMs } : {}) })
  const auth = createAuth({ jwtSecret, log: quietLog })
  const app = createApp({ rooms, meeting, store, auth, apiKey, log: quietLog, assets: new Map() })
  const service = meeting
  return {
    rooms,
    meeting: service,
    store,
    bus,
    auth,
    app,
    close: async () => {
      await service.close()
      await rooms.close()
      await bus.close()
    },
  }
}

/** An HS256 access token for tests, with the claims Conclave reads. */
export function accessToken(
  secret: string,
  { room, identity = 'ada', name, role = 'guest', grants = {} }: Partial<Omit<CreateTokenRequest, 'room'>> & { room: string },
  expiresIn: string | number = '5m',
): Promise<string> {
  const claims: Record<string, unknown> = { room, role, grants }
  if (name !== undefined) claims.name = name
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(identity).setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret))
}
