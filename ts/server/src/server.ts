// createServer: wires media, rooms, auth and HTTP together and listens. Tests start one per case.

import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server'
import { WebSocketServer } from 'ws'
import { MAX_MESSAGE_BYTES } from '@conclave/protocol'
import { type Authenticator, JwtAuthenticator, OpenAuthenticator } from './auth/authenticator.js'
import { createApp } from './http/app.js'
import { clientAssetsDir, loadStaticAssets } from './http/static-assets.js'
import { createLogger, type Logger } from './log.js'
import type { MediaEngine } from './media/media-engine.js'
import { createNativeMediaEngine } from './media/native-media-engine.js'
import { RoomService } from './rooms/room-service.js'

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
  /** HS256 secret for bearer tokens; without it the server runs open (development). */
  jwtSecret?: string
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
  /** Everyone leaves, sockets close, the engine stops (when this server started it). */
  close(): Promise<void>
}

export async function createServer({
  httpPort = 8080,
  httpHost = '0.0.0.0',
  udpPort = 40000,
  udpBindAddress = '0.0.0.0',
  announcedAddress = '127.0.0.1',
  jwtSecret,
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
      log: log.child({ component: 'media' }),
    }))
  const rooms = new RoomService({ media, log: log.child({ component: 'rooms' }) })
  const auth: Authenticator = jwtSecret ? new JwtAuthenticator(jwtSecret) : new OpenAuthenticator(log)
  const assets = await loadStaticAssets(assetsDir)
  if (assets.size === 0) log.warn('the client bundle is missing; the meeting page will 404', { assetsDir })

  const app = createApp({ rooms, auth, log, assets, upgradeWebSocket })
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES })
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
    if (givenMedia === undefined) await media.close()
    throw error
  }
  const port = (http.address() as AddressInfo).port
  const shownHost = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`
  log.info('conclave listening', { url, udpPort: media.udpPort, announcedAddress })

  let closing: Promise<void> | undefined
  return {
    url,
    httpPort: port,
    udpPort: media.udpPort,
    media,
    rooms,
    close: () => {
      closing ??= (async () => {
        for (const client of wss.clients) client.terminate()
        await new Promise<void>((resolve) => {
          http.close(() => resolve())
          http.closeAllConnections()
        })
        await rooms.close()
        if (givenMedia === undefined) await media.close()
      })()
      return closing
    },
  }
}
