// createServer: wires media, rooms, auth and HTTP together and listens. Tests start one per case.

import { createHash, randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server'
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'
import { MAX_MESSAGE_BYTES } from '@conclave/protocol'
import { createAuth } from './auth/authenticator.js'
import { type EventBus, MemoryEventBus } from './cluster/event-bus.js'
import { MediaRelay } from './cluster/media-relay.js'
import { RedisEventBus } from './cluster/redis-event-bus.js'
import { RedisRelayMessenger } from './cluster/relay-messenger.js'
import { createApp } from './http/app.js'
import type { Readiness } from './http/rest-api.js'
import { clientAssetsDir, loadStaticAssets } from './http/static-assets.js'
import { createLogger, type Logger } from './log.js'
import type { MediaEngine } from './media/media-engine.js'
import { createNativeMediaEngine } from './media/native-media-engine.js'
import { RedisRecordingStore } from './recording/redis-recording-store.js'
import { type RecordingOptions, RecordingService, recorderFinalizePartial } from './recording/recording-service.js'
import { MeetingService } from './rooms/meeting-service.js'
import { RoomService } from './rooms/room-service.js'
import { MemoryRoomStore } from './state/memory-room-store.js'
import { RedisRoomStore } from './state/redis/redis-room-store.js'
import type { RoomStore } from './state/room-store.js'
import type { TurnOptions } from './turn/turn-credentials.js'

export interface ServerOptions {
  /** HTTP (and WebSocket) port; 0 picks a free one. Default 8080. */
  httpPort?: number
  /** Address the HTTP server listens on. Default "0.0.0.0". */
  httpHost?: string
  /** UDP port for all media; 0 picks a free one. Default 40000. */
  udpPort?: number
  /** Address the UDP socket binds. Default "0.0.0.0". */
  udpBindAddress?: string
  /** The address browsers send media to, put in every answer. Default "127.0.0.1". */
  announcedAddress?: string
  /**
   * The UDP port put in every answer, when browsers reach the media socket through a port mapping
   * or a relay (the impairment proxy of the tests). Default the bound port.
   */
  announcedPort?: number
  /**
   * Last-N: in a big room each participant receives only the N loudest audio tracks and the
   * cameras of the N latest speakers (screen shares always). Default 0: off.
   */
  lastN?: number
  /** HS256 secret for access tokens; without it (and without `jwksUrl`) the server runs open (development). */
  jwtSecret?: string
  /** A JSON Web Key Set URL for asymmetric access tokens (RS256, PS256, ES256, EdDSA). */
  jwksUrl?: string
  /** Guards the REST API (`Authorization: Bearer <key>`). Without it the API is open in dev mode, closed otherwise. */
  apiKey?: string
  /** Keep room state in this Redis (and fan events out through it): several instances serve one room. Default: in memory. */
  redisUrl?: string
  /** Prefix of every Redis key and channel. Default `conclave:`. */
  redisPrefix?: string
  /** TURN relays whose time-limited credentials every joining participant receives. Default none. */
  turn?: TurnOptions
  /** This instance's name in participant records. Default a random one. */
  nodeId?: string
  /**
   * With Redis: the IP other instances reach this one's UDP port at, for the relay links that carry
   * media between instances (cascading). Default `announcedAddress`.
   */
  relayAddress?: string
  /** How long a participant's record outlives its node's last renewal, in ms. Default 30 000 (renewed every third of it). */
  leaseMs?: number
  /**
   * How long a participant whose signaling socket dropped may `resume` (same node) before it
   * leaves, in ms; 0 disables resuming. Default 15 000.
   */
  resumeGraceMs?: number
  /** The recorder, and where recordings go. Default the repository's recorder, writing to `./recordings`. */
  recording?: RecordingOptions
  /** A media engine to use instead of starting the native one (tests); the caller closes it. */
  media?: MediaEngine
  /** Where the client bundle is. Default `@conclave/client`'s `dist/public`. */
  assetsDir?: string
  log?: Logger
}

export interface ConclaveServer {
  /** `http://host:port`, for tests and logs. */
  url: string
  httpPort: number
  udpPort: number
  media: MediaEngine
  rooms: RoomService
  meeting: MeetingService
  recordings: RecordingService
  store: RoomStore
  nodeId: string
  /** Everyone leaves, sockets close, the engine stops (when this server started it). */
  close(): Promise<void>
}

export async function createServer({
  httpPort = 8080,
  httpHost = '0.0.0.0',
  udpPort = 40000,
  udpBindAddress = '0.0.0.0',
  announcedAddress = '127.0.0.1',
  announcedPort,
  lastN = 0,
  jwtSecret,
  jwksUrl,
  apiKey,
  redisUrl,
  redisPrefix,
  turn,
  nodeId = `node-${randomBytes(4).toString('hex')}`,
  relayAddress,
  leaseMs = 30_000,
  resumeGraceMs = 15_000,
  recording = {},
  media: givenMedia,
  assetsDir = clientAssetsDir(),
  log = createLogger(),
}: ServerOptions = {}): Promise<ConclaveServer> {
  const media =
    givenMedia ??
    (await createNativeMediaEngine({
      port: udpPort,
      bindAddress: udpBindAddress,
      announcedAddress,
      announcedPort,
      audioLastN: lastN,
      log: log.child({ component: 'media' }),
    }))
  let meeting: MeetingService | undefined
  // Told of track changes too (per-track recordings); made once the store and bus exist.
  let recordingsOfTracks: RecordingService | undefined
  const rooms = new RoomService({
    media,
    log: log.child({ component: 'rooms' }),
    onTrackChange: (track, change) => {
      // Another node records an imported track's owner; a recording here takes every track.
      if (!track.imported) meeting?.trackChanged(track, change)
      recordingsOfTracks?.trackChanged(track, change)
      relay?.trackChanged(track, change)
    },
    onRoomChange: (roomId, change) => relay?.roomChanged(roomId, change),
    lastN,
    // In a cluster the rooms' tracks come from every node: their ids must not collide.
    ...(redisUrl !== undefined ? { trackIdPrefix: `${createHash('sha256').update(nodeId).digest('hex').slice(0, 8)}-` } : {}),
  })
  let relay: MediaRelay | undefined
  const auth = createAuth({ jwtSecret, jwksUrl, log })
  let redis: Redis | undefined
  let store: RoomStore
  let bus: EventBus
  // With Redis every instance lists and stops every instance's recordings; else the service's own memory.
  let recordStore: RedisRecordingStore | undefined
  const readiness: Readiness = { media: () => media.stats() }
  if (redisUrl !== undefined) {
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 })
    store = new RedisRoomStore(redis, { leaseMs, ...(redisPrefix ? { prefix: redisPrefix } : {}) })
    bus = await RedisEventBus.connect(redis, { log, ...(redisPrefix ? { prefix: redisPrefix } : {}) })
    recordStore = new RedisRecordingStore(redis, { leaseMs, ...(redisPrefix ? { prefix: redisPrefix } : {}) })
    const client = redis
    readiness.redis = () => client.ping()
    relay = new MediaRelay({
      nodeId,
      media,
      rooms,
      store,
      bus,
      messenger: await RedisRelayMessenger.connect(redis, { nodeId, log, ...(redisPrefix ? { prefix: redisPrefix } : {}) }),
      address: { address: relayAddress ?? announcedAddress, port: media.udpPort },
      log: log.child({ component: 'relay', nodeId }),
    })
    await relay.start()
  } else {
    store = new MemoryRoomStore({ leaseMs })
    bus = new MemoryEventBus()
  }
  // The recorder joins through this server's own URL, known once it listens.
  let ownUrl = ''
  const { output = { kind: 'local', dir: resolve('recordings') }, ...recorder } = recording
  const recordings = new RecordingService({
    bus,
    store,
    tracks: { media, rooms },
    issuer: auth.issuer,
    output,
    serverUrl: () => ownUrl,
    log: log.child({ component: 'recording' }),
    finalizePartial: recorderFinalizePartial,
    nodeId,
    leaseRenewMs: Math.max(100, Math.floor(leaseMs / 3)),
    ...(recordStore ? { records: recordStore } : {}),
    ...recorder,
  })
  recordingsOfTracks = recordings
  meeting = new MeetingService({
    recordings,
    rooms,
    store,
    bus,
    nodeId,
    log: log.child({ component: 'meeting', nodeId }),
    refreshIntervalMs: Math.max(100, Math.floor(leaseMs / 3)),
    ...(turn ? { turn } : {}),
    resumeGraceMs,
  })
  const meetingService = meeting
  const assets = await loadStaticAssets(assetsDir)
  if (assets.size === 0) log.warn('the client bundle is missing; the meeting page will 404', { assetsDir })

  const app = createApp({ rooms, meeting: meetingService, store, auth, apiKey, readiness, log, assets, upgradeWebSocket, recordings })
  // Frames up to 4x the protocol's limit get a typed payload_too_large; larger ones close the socket (1009).
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * MAX_MESSAGE_BYTES })
  const http = createAdaptorServer({ fetch: app.fetch, websocket: { server: wss } }) as Server

  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(httpPort, httpHost, () => {
        http.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    await recordings.close()
    await meetingService.close()
    await bus.close()
    redis?.disconnect()
    if (givenMedia === undefined) await media.close()
    throw error
  }
  const port = (http.address() as AddressInfo).port
  const shownHost = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`
  ownUrl = url
  log.info('conclave listening', { url, udpPort: media.udpPort, announcedAddress, nodeId, store: redisUrl ? 'redis' : 'memory' })

  let closing: Promise<void> | undefined
  return {
    url,
    httpPort: port,
    udpPort: media.udpPort,
    media,
    rooms,
    meeting: meetingService,
    recordings,
    store,
    nodeId,
    close: () => {
      closing ??= (async () => {
        // Recorders finalize while the room is still there to record.
        await recordings.close()
        for (const client of wss.clients) client.terminate()
        await new Promise<void>((resolve) => {
          http.close(() => resolve())
          http.closeAllConnections()
        })
        await meetingService.close()
        await rooms.close()
        await relay?.close()
        await bus.close()
        await store.close()
        redis?.disconnect()
        if (givenMedia === undefined) await media.close()
      })()
      return closing
    },
  }
}
