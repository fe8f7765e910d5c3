import assert from 'node:assert/strict'
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
