// @conclave/server's public face for embedding and tests.

export { AppError } from './app-error.js'
export { createLogger, type Logger, type LogLevel } from './log.js'
export type { EngineTrackId, MediaEngine, MediaEvent, MediaStats, PeerId, PeerStats } from './media/media-engine.js'
export { FakeMediaEngine } from './media/fake-media-engine.js'
export { createServer, type ConclaveServer, type ServerOptions } from './server.js'
