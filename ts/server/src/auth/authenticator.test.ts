import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { type CreateTokenRequest, DEFAULT_GRANTS, type RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { createLogger } from '../log.js'
import { TokenAuthenticator, TokenIssuer, authorizeRoom, bearerToken, createAuth } from './authenticator.js'

const secretText = 'test-secret-test-secret-test-secret'
const secret = new TextEncoder().encode(secretText)
const quiet = createLogger({ level: 'silent' })

function sign(claims: Record<string, unknown>, { key = secret, expiresIn = '1h' as string | number, subject = 'ada' } = {}) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setIssuedAt().setExpirationTime(expiresIn).sign(key)
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600

/** A token with any header, HMAC-signed with `key`: how algorithm confusion is attempted. */
function forge(header: Record<string, unknown>, payload: Record<string, unknown>, key: Uint8Array | undefined): string {
  const input = `${b64(header)}.${b64(payload)}`
  return key === undefined ? `${input}.` : `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AppError, String(error))
    assert.equal(error.code, code)
    if (message) assert.match(error.message, message)
    return true
  })
}

describe('TokenAuthenticator', () => {
  const auth = new TokenAuthenticator({ secret })

  test('a token signed with the secret admits its identity to its room with its role and grants', async () => {
    const token = await sign({ room: 'daily', name: 'Ada', role: 'cohost', grants: { canChat: false } })
    const principal = await auth.authenticate(token)
    assert.equal(principal.room, 'daily')
    assert.equal(principal.identity, 'ada')
    assert.equal(principal.name, 'Ada')
    assert.equal(principal.role, 'cohost')
    assert.deepEqual(principal.grants, { ...DEFAULT_GRANTS, canChat: false })
    assert.equal(principal.anonymous, false)
    assert.ok(principal.expiresAt !== undefined && principal.expiresAt > Date.now())
  })

  test('a token without role or grants is a guest with the default grants', async () => {
    const principal = await auth.authenticate(await sign({ room: 'daily' }))
    assert.equal(principal.role, 'guest')
    assert.deepEqual(principal.grants, DEFAULT_GRANTS)
  })

  const badTokens: [string, () => Promise<string> | string, RegExp][] = [
    ['no token at all', () => '', /required/],
    ['text that is not a JWT', () => 'not.a.jwt', /not a JWT|not valid/],
    ['an expired token', () => sign({ room: 'daily' }, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), /expired/],
    [
      'a token that is not valid yet',
      () => new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setNotBefore('10m').setExpirationTime('1h').sign(secret),
      /not valid yet/,
    ],
    ['a token signed with another secret', () => sign({ room: 'daily' }, { key: new TextEncoder().encode('another-secret-another-secret') }), /signature/],
    ['an unsigned token (alg none)', () => forge({ alg: 'none', typ: 'JWT' }, { sub: 'a', room: 'daily', exp: inAnHour() }, undefined), /"none"/],
    [
      'an RS256 header with an HMAC signature made with the secret (algorithm confusion)',
      () => forge({ alg: 'RS256', typ: 'JWT' }, { sub: 'a', room: 'daily', exp: inAnHour() }, secret),
      /"RS256"/,
    ],
    ['an HS512 token', () => new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'HS512' }).setSubject('a').setExpirationTime('1h').sign(secret), /"HS512"/],
    ['a token without exp', () => new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').sign(secret), /exp/],
    ['a token without a room', () => sign({}), /room/],
    ['a token without a subject', () => new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(secret), /sub/],
    ['a token with an unknown role', () => sign({ room: 'daily', role: 'owner' }), /role/],
    ['a token for a room name with a slash', () => sign({ room: 'a/b' }), /room/],
    ['a token whose grants are not booleans', () => sign({ room: 'daily', grants: { canPublish: 'yes' } }), /grants/],
  ]
  for (const [what, make, message] of badTokens) {
    test(`${what} is refused with unauthenticated`, async () => {
      await rejectsWith(auth.authenticate(await make()), 'unauthenticated', message)
    })
  }

  test('with a JWKS URL, an RS256 token signed by a key of the set is accepted and HS256 still needs the secret', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256')
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
    const http = createServer((_request, response) => response.end(JSON.stringify({ keys: [jwk] })))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/jwks.json`
      const { authenticator, issuer, devMode } = createAuth({ jwksUrl: url, log: quiet })
      assert.equal(devMode, false)
      assert.equal(issuer, undefined, 'a JWKS-only server mints no tokens')
      const rs = await new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('bob').setExpirationTime('1h').sign(privateKey)
      assert.equal((await authenticator.authenticate(rs)).identity, 'bob')
      await rejectsWith(authenticator.authenticate(await sign({ room: 'daily' })), 'unauthenticated', /"HS256"/)
      const { privateKey: stranger } = await generateKeyPair('RS256')
      const foreign = await new SignJWT({ room: 'daily' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('eve').setExpirationTime('1h').sign(stranger)
      await rejectsWith(authenticator.authenticate(foreign), 'unauthenticated')
    } finally {
      http.close()
    }
  })
})

describe('TokenIssuer', () => {
  test('a minted token verifies and carries what was asked', async () => {
    const request: CreateTokenRequest = { room: 'daily' as RoomId, identity: 'ada', name: 'Ada', role: 'host', grants: { canChat: false }, ttlSeconds: 60 }
    const { token, expiresAt } = await new TokenIssuer(secret).mint(request)
    const principal = await new TokenAuthenticator({ secret }).authenticate(token)
    assert.deepEqual(
      { room: principal.room, identity: principal.identity, name: principal.name, role: principal.role, canChat: principal.grants.canChat },
      { room: 'daily', identity: 'ada', name: 'Ada', role: 'host', canChat: false },
    )
    assert.equal(principal.expiresAt, expiresAt)
  })
})

describe('createAuth', () => {
  test('open mode admits anonymous guests to any room, mints dev tokens, and says so once', async () => {
    const lines: string[] = []
    const { authenticator, issuer, devMode } = createAuth({ log: createLogger({ write: (line) => lines.push(line) }) })
    assert.equal(devMode, true)
    const anonymous = await authenticator.authenticate(undefined)
    assert.equal(anonymous.anonymous, true)
    assert.equal(anonymous.role, 'guest')
    authorizeRoom(anonymous, 'any' as RoomId)
    const dev = await issuer?.mint({ room: 'r' as RoomId, identity: 'dev', role: 'host', ttlSeconds: 60 })
    assert.equal((await authenticator.authenticate(dev?.token)).role, 'host')
    await rejectsWith(authenticator.authenticate('garbage'), 'unauthenticated')
    assert.equal(lines.length, 1)
    assert.match(lines[0] ?? '', /CONCLAVE_JWT_SECRET/)
  })

  test('with a secret, a request without a token is unauthenticated', async () => {
    await rejectsWith(createAuth({ jwtSecret: secretText, log: quiet }).authenticator.authenticate(undefined), 'unauthenticated')
  })
})

test('a principal for one room is forbidden another', () => {
  const principal = { room: 'daily' as RoomId }
  authorizeRoom(principal, 'daily' as RoomId)
  assert.throws(() => authorizeRoom(principal, 'other' as RoomId), (error: unknown) => error instanceof AppError && error.code === 'forbidden')
})

test('bearerToken reads the Authorization header', () => {
  assert.equal(bearerToken('Bearer abc.def'), 'abc.def')
  assert.equal(bearerToken('bearer abc'), 'abc')
  assert.equal(bearerToken('Basic abc'), undefined)
  assert.equal(bearerToken(undefined), undefined)
})
