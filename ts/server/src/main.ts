#!/usr/bin/env node
// The composition root: configuration from the environment, then createServer. The only module
// with side effects on import.

import { loadConfig } from './config.js'
import { createLogger } from './log.js'
import { type ConclaveServer, createServer } from './server.js'

const log = createLogger({ level: process.env.CONCLAVE_LOG_LEVEL === 'silent' ? 'silent' : 'info' })
let server: ConclaveServer
try {
  const { logLevel, ...options } = loadConfig(process.env)
  server = await createServer({ ...options, log: createLogger({ level: logLevel }) })
} catch (error) {
  log.error('conclave could not start', { err: error })
  process.exit(1)
}

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (stopping) return
    stopping = true
    log.info('shutting down', { signal })
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('shutdown failed', { err: error })
        process.exit(1)
      },
    )
  })
}
