// @conclave/server's public face for embedding and tests.

export { AppError } from './app-error.js'
export { createAuth, TokenAuthenticator, TokenIssuer, type Auth, type Authenticator, type Principal } from './auth/authenticator.js'
export { MemoryEventBus, type ClusterEvent, type EventBus } from './cluster/event-bus.js'
export { RedisEventBus } from './cluster/redis-event-bus.js'
export { createLogger, type Logger, type LogLevel } from './log.js'
export type {
  EngineTrackId,
  MediaEngine,
  MediaEvent,
  MediaStats,
  PeerId,
  PeerStats,
  RtpForwardDestination,
  RtpForwardId,
  RtpForwardInfo,
} from './media/media-engine.js'
export { FakeMediaEngine } from './media/fake-media-engine.js'
export { MeetingService, type Actor, type MemberChannel } from './rooms/meeting-service.js'
export { createServer, type ConclaveServer, type ServerOptions } from './server.js'
export { MemoryRoomStore } from './state/memory-room-store.js'
export { RedisRoomStore } from './state/redis/redis-room-store.js'
export type { ParticipantRecord, RoomRecord, RoomStore } from './state/room-store.js'
