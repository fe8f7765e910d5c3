// Reads the server's configuration from the environment. Defaults live in createServer.

import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { isLogLevel, type LogLevel } from './log.js'
import type { RecordingOptions } from './recording/recording-service.js'
import type { ServerOptions } from './server.js'
import type { TurnOptions } from './turn/turn-credentials.js'

export interface Config extends ServerOptions {
  logLevel: LogLevel
}

/**
 * CONCLAVE_HTTP_PORT (8080), CONCLAVE_HTTP_HOST (0.0.0.0), CONCLAVE_UDP_PORT (40000),
 * CONCLAVE_UDP_BIND_ADDRESS (0.0.0.0), CONCLAVE_ANNOUNCED_ADDRESS (127.0.0.1),
 * CONCLAVE_JWT_SECRET (unset: open), CONCLAVE_JWKS_URL, CONCLAVE_API_KEY, CONCLAVE_REDIS_URL (unset: in
 * memory), CONCLAVE_REDIS_PREFIX, CONCLAVE_NODE_ID, CONCLAVE_RELAY_ADDRESS (the announced address), CONCLAVE_RESUME_GRACE_MS (15000; 0: no resume), CONCLAVE_LEASE_MS (30000), CONCLAVE_LAST_N (0: off; else each participant hears only the N loudest), CONCLAVE_LOG_LEVEL (info). Recording: CONCLAVE_RECORDER_COMMAND,
 * CONCLAVE_RECORDINGS_DIR (./recordings), CONCLAVE_AZURE_STORAGE_CONNECTION_STRING with CONCLAVE_AZURE_CONTAINER.
 * Throws on a malformed value.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const config: Config = { logLevel: 'info' }
  const httpPort = port(env, 'CONCLAVE_HTTP_PORT')
  if (httpPort !== undefined) config.httpPort = httpPort
  const udpPort = port(env, 'CONCLAVE_UDP_PORT')
  if (udpPort !== undefined) config.udpPort = udpPort
  const httpHost = env.CONCLAVE_HTTP_HOST
  if (httpHost) config.httpHost = httpHost
  const udpBindAddress = ip(env, 'CONCLAVE_UDP_BIND_ADDRESS')
  if (udpBindAddress !== undefined) config.udpBindAddress = udpBindAddress
  const announcedAddress = ip(env, 'CONCLAVE_ANNOUNCED_ADDRESS')
  if (announcedAddress !== undefined) config.announcedAddress = announcedAddress
  if (env.CONCLAVE_JWT_SECRET) config.jwtSecret = env.CONCLAVE_JWT_SECRET
  if (env.CONCLAVE_JWKS_URL) config.jwksUrl = url(env, 'CONCLAVE_JWKS_URL', ['http:', 'https:'])
  if (env.CONCLAVE_API_KEY) config.apiKey = env.CONCLAVE_API_KEY
  if (env.CONCLAVE_REDIS_URL) config.redisUrl = url(env, 'CONCLAVE_REDIS_URL', ['redis:', 'rediss:'])
  if (env.CONCLAVE_REDIS_PREFIX) config.redisPrefix = env.CONCLAVE_REDIS_PREFIX
  if (env.CONCLAVE_NODE_ID) config.nodeId = env.CONCLAVE_NODE_ID
  const relayAddress = ip(env, 'CONCLAVE_RELAY_ADDRESS')
  if (relayAddress !== undefined) config.relayAddress = relayAddress
  const rawGrace = env.CONCLAVE_RESUME_GRACE_MS
  if (rawGrace) {
    const graceMs = Number(rawGrace)
    if (!Number.isInteger(graceMs) || graceMs < 0) throw new Error(`CONCLAVE_RESUME_GRACE_MS must be a whole number of ms, not ${rawGrace}`)
    config.resumeGraceMs = graceMs
  }
  const rawLease = env.CONCLAVE_LEASE_MS
  if (rawLease) {
    const leaseMs = Number(rawLease)
    // Renewed every third of the lease, at most every 100 ms: a shorter lease would lapse between renewals.
    if (!Number.isInteger(leaseMs) || leaseMs < 300) throw new Error(`CONCLAVE_LEASE_MS must be a whole number of ms, at least 300, not ${rawLease}`)
    config.leaseMs = leaseMs
  }
  const rawLastN = env.CONCLAVE_LAST_N
  if (rawLastN) {
    const lastN = Number(rawLastN)
    if (!Number.isInteger(lastN) || lastN < 0 || lastN > 1024) throw new Error(`CONCLAVE_LAST_N must be a whole number from 0 to 1024, not ${rawLastN}`)
    config.lastN = lastN
  }
  const turn = turnOptions(env)
  if (turn !== undefined) config.turn = turn
  const recording = recordingOptions(env)
  if (recording !== undefined) config.recording = recording
  const level = env.CONCLAVE_LOG_LEVEL
  if (level) {
    if (!isLogLevel(level)) throw new Error(`CONCLAVE_LOG_LEVEL must be debug, info, warn, error or silent, not ${level}`)
    config.logLevel = level
  }
  return config
}

// Both or neither: URLs without the secret would hand out credentials coturn refuses.
function turnOptions(env: NodeJS.ProcessEnv): TurnOptions | undefined {
  const urls = (env.CONCLAVE_TURN_URLS ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  const secret = env.CONCLAVE_TURN_SECRET
  if (urls.length === 0 && !secret) return undefined
  if (urls.length === 0 || !secret) throw new Error('CONCLAVE_TURN_URLS and CONCLAVE_TURN_SECRET must be set together')
  for (const entry of urls) {
    if (!/^turns?:[^\s]+$/.test(entry)) throw new Error(`CONCLAVE_TURN_URLS must hold turn: or turns: URLs, not ${entry}`)
  }
  const rawTtl = env.CONCLAVE_TURN_TTL_SECONDS
  const ttlSeconds = rawTtl ? Number(rawTtl) : 3600
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error(`CONCLAVE_TURN_TTL_SECONDS must be a positive integer, not ${rawTtl}`)
  return { urls, secret, ttlSeconds }
}

// Azure wins over the local folder when configured; its two variables come together.
function recordingOptions(env: NodeJS.ProcessEnv): RecordingOptions | undefined {
  const options: RecordingOptions = {}
  const command = (env.CONCLAVE_RECORDER_COMMAND ?? '').trim()
  if (command !== '') options.command = command.split(/\s+/)
  const connectionString = env.CONCLAVE_AZURE_STORAGE_CONNECTION_STRING
  const container = env.CONCLAVE_AZURE_CONTAINER
  if (connectionString || container) {
    if (!connectionString || !container) throw new Error('CONCLAVE_AZURE_STORAGE_CONNECTION_STRING and CONCLAVE_AZURE_CONTAINER must be set together')
    if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(container)) throw new Error(`CONCLAVE_AZURE_CONTAINER must be a valid container name, not ${container}`)
    options.output = { kind: 'azure', connectionString, container }
  } else if (env.CONCLAVE_RECORDINGS_DIR) {
    options.output = { kind: 'local', dir: resolve(env.CONCLAVE_RECORDINGS_DIR) }
  }
  return Object.keys(options).length === 0 ? undefined : options
}

function port(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name]
  if (!raw) return undefined
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port number, not ${raw}`)
  return value
}

function url(env: NodeJS.ProcessEnv, name: string, protocols: string[]): string {
  const raw = env[name] ?? ''
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new Error(`${name} must be a URL, not ${raw}`)
  }
  if (!protocols.includes(parsed.protocol)) throw new Error(`${name} must be a ${protocols.join(' or ')} URL`)
  return raw
}

function ip(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name]
  if (!raw) return undefined
  if (isIP(raw) === 0) throw new Error(`${name} must be an IP address, not ${raw}`)
  return raw
}
