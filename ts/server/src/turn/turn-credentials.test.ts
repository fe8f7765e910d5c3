import assert from 'node:assert/strict'
import { test } from 'node:test'
import { turnCredentials, turnIceServers } from './turn-credentials.js'

test('the credential is base64 HMAC-SHA1 of expiry:identity under the shared secret (known vector)', () => {
  // Computed independently: echo -n '1700000000:ada' | openssl dgst -sha1 -hmac 'north-secret' -binary | base64
  assert.deepEqual(turnCredentials('north-secret', 'ada', 1_700_000_000), {
    username: '1700000000:ada',
    credential: 'AuxCqUYHV4GUI+t6EUONuCC6fYM=',
  })
})

test('the ice servers expire ttlSeconds after now and carry every configured URL', () => {
  const servers = turnIceServers(
    { urls: ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'], secret: 'north-secret', ttlSeconds: 600 },
    'ada',
    1_699_999_400_500,
  )
  assert.deepEqual(servers, [
    {
      urls: ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'],
      username: '1700000000:ada',
      credential: 'AuxCqUYHV4GUI+t6EUONuCC6fYM=',
    },
  ])
})
