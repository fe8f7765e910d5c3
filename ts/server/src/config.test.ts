import assert from 'node:assert/strict'
import { resolve } from 'node:path'
import { test } from 'node:test'
import { loadConfig } from './config.js'

test('an empty environment leaves every default to createServer', () => {
  assert.deepEqual(loadConfig({}), { logLevel: 'info' })
})

test('ports, addresses, the secret and the log level come from CONCLAVE_ variables', () => {
  const config = loadConfig({
    CONCLAVE_HTTP_PORT: '9000',
    CONCLAVE_UDP_PORT: '41000',
    CONCLAVE_ANNOUNCED_ADDRESS: '192.0.2.10',
    CONCLAVE_JWT_SECRET: 's3cret',
    CONCLAVE_LOG_LEVEL: 'warn',
  })
  assert.deepEqual(config, { httpPort: 9000, udpPort: 41000, announcedAddress: '192.0.2.10', jwtSecret: 's3cret', logLevel: 'warn' })
})

test('a malformed value is refused at start, not at the first call', () => {
  assert.throws(() => loadConfig({ CONCLAVE_UDP_PORT: '70000' }), /CONCLAVE_UDP_PORT/)
  assert.throws(() => loadConfig({ CONCLAVE_ANNOUNCED_ADDRESS: 'example.com' }), /CONCLAVE_ANNOUNCED_ADDRESS/)
  assert.throws(() => loadConfig({ CONCLAVE_LOG_LEVEL: 'loud' }), /CONCLAVE_LOG_LEVEL/)
})

test('the control plane variables: JWKS URL, API key, Redis URL and prefix, node id', () => {
  const config = loadConfig({
    CONCLAVE_JWKS_URL: 'https://auth.example/jwks.json',
    CONCLAVE_API_KEY: 'k',
    CONCLAVE_REDIS_URL: 'redis://127.0.0.1:6379',
    CONCLAVE_REDIS_PREFIX: 'staging:',
    CONCLAVE_NODE_ID: 'node-a',
  })
  assert.deepEqual(config, {
    logLevel: 'info',
    jwksUrl: 'https://auth.example/jwks.json',
    apiKey: 'k',
    redisUrl: 'redis://127.0.0.1:6379',
    redisPrefix: 'staging:',
    nodeId: 'node-a',
  })
  assert.throws(() => loadConfig({ CONCLAVE_REDIS_URL: 'http://127.0.0.1' }), /CONCLAVE_REDIS_URL/)
  assert.throws(() => loadConfig({ CONCLAVE_JWKS_URL: 'not a url' }), /CONCLAVE_JWKS_URL/)
})

test('TURN: URLs and secret together, a default TTL of an hour, anything half-set refused', () => {
  const config = loadConfig({
    CONCLAVE_TURN_URLS: 'turn:127.0.0.1:3478?transport=udp, turns:turn.example:5349',
    CONCLAVE_TURN_SECRET: 'shared',
  })
  assert.deepEqual(config.turn, { urls: ['turn:127.0.0.1:3478?transport=udp', 'turns:turn.example:5349'], secret: 'shared', ttlSeconds: 3600 })
  const shorter = loadConfig({ CONCLAVE_TURN_URLS: 'turn:127.0.0.1:3478', CONCLAVE_TURN_SECRET: 's', CONCLAVE_TURN_TTL_SECONDS: '600' })
  assert.equal(shorter.turn?.ttlSeconds, 600)
  assert.throws(() => loadConfig({ CONCLAVE_TURN_URLS: 'turn:127.0.0.1:3478' }), /CONCLAVE_TURN_SECRET/)
  assert.throws(() => loadConfig({ CONCLAVE_TURN_SECRET: 's' }), /CONCLAVE_TURN_URLS/)
  assert.throws(() => loadConfig({ CONCLAVE_TURN_URLS: 'http://x', CONCLAVE_TURN_SECRET: 's' }), /CONCLAVE_TURN_URLS/)
  assert.throws(
    () => loadConfig({ CONCLAVE_TURN_URLS: 'turn:127.0.0.1:3478', CONCLAVE_TURN_SECRET: 's', CONCLAVE_TURN_TTL_SECONDS: '0' }),
    /CONCLAVE_TURN_TTL_SECONDS/,
  )
})

test('recording: a local folder by default, Azure with both of its variables, a recorder command split on spaces', () => {
  assert.equal(loadConfig({}).recording, undefined)
  const local = loadConfig({ CONCLAVE_RECORDINGS_DIR: 'recs', CONCLAVE_RECORDER_COMMAND: ' node /opt/recorder/cli.js ' })
  assert.deepEqual(local.recording, { command: ['node', '/opt/recorder/cli.js'], output: { kind: 'local', dir: resolve('recs') } })
  const azure = loadConfig({ CONCLAVE_AZURE_STORAGE_CONNECTION_STRING: 'AccountName=a;AccountKey=k', CONCLAVE_AZURE_CONTAINER: 'recordings' })
  assert.deepEqual(azure.recording, { output: { kind: 'azure', connectionString: 'AccountName=a;AccountKey=k', container: 'recordings' } })
  assert.throws(() => loadConfig({ CONCLAVE_AZURE_CONTAINER: 'recordings' }), /CONCLAVE_AZURE_STORAGE_CONNECTION_STRING/)
  assert.throws(() => loadConfig({ CONCLAVE_AZURE_STORAGE_CONNECTION_STRING: 'AccountName=a', CONCLAVE_AZURE_CONTAINER: 'Bad_Name' }), /CONCLAVE_AZURE_CONTAINER/)
})

test('CONCLAVE_LAST_N turns audio last-N on; a malformed one is refused', () => {
  assert.equal(loadConfig({ CONCLAVE_LAST_N: '8' }).lastN, 8)
  assert.equal(loadConfig({ CONCLAVE_LAST_N: '0' }).lastN, 0)
  assert.throws(() => loadConfig({ CONCLAVE_LAST_N: '-1' }), /CONCLAVE_LAST_N/)
  assert.throws(() => loadConfig({ CONCLAVE_LAST_N: 'eight' }), /CONCLAVE_LAST_N/)
})

test('CONCLAVE_RESUME_GRACE_MS sets how long a dropped participant may resume; 0 turns resuming off; junk is refused', () => {
  assert.equal(loadConfig({ CONCLAVE_RESUME_GRACE_MS: '2000' }).resumeGraceMs, 2000)
  assert.equal(loadConfig({ CONCLAVE_RESUME_GRACE_MS: '0' }).resumeGraceMs, 0)
  assert.equal(loadConfig({}).resumeGraceMs, undefined, 'createServer keeps its default')
  assert.throws(() => loadConfig({ CONCLAVE_RESUME_GRACE_MS: '-1' }), /CONCLAVE_RESUME_GRACE_MS/)
  assert.throws(() => loadConfig({ CONCLAVE_RESUME_GRACE_MS: '1.5s' }), /CONCLAVE_RESUME_GRACE_MS/)
})

test('CONCLAVE_LEASE_MS sets how long a participant outlives its node\'s last renewal; junk and too short are refused', () => {
  assert.equal(loadConfig({ CONCLAVE_LEASE_MS: '1500' }).leaseMs, 1500)
  assert.equal(loadConfig({}).leaseMs, undefined, 'createServer keeps its default')
  assert.throws(() => loadConfig({ CONCLAVE_LEASE_MS: '299' }), /CONCLAVE_LEASE_MS/)
  assert.throws(() => loadConfig({ CONCLAVE_LEASE_MS: '30s' }), /CONCLAVE_LEASE_MS/)
})
