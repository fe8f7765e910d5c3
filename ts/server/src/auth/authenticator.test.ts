import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SignJWT } from 'jose'
import type { RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { createLogger } from '../log.js'
import { JwtAuthenticator, OpenAuthenticator, authorizeRoom, bearerToken } from './authenticator.js'

const secret = 'test-secret-test-secret-test-secret'

function sign(claims: Record<string, unknown>, { key = secret, expiresIn = '1h' } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(key))
}

async function rejectsWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (error: unknown) => error instanceof AppError && error.code === code)
}

test('a token signed with the secret grants its room', async () => {
  const grant = await new JwtAuthenticator(secret).authenticate(await sign({ room: 'daily', sub: 'ada' }))
  assert.deepEqual(grant, { room: 'daily', subject: 'ada' })
})

test('a missing, foreign or expired token is unauthenticated', async () => {
  const auth = new JwtAuthenticator(secret)
  await rejectsWith(auth.authenticate(undefined), 'unauthenticated')
  await rejectsWith(auth.authenticate('not.a.jwt'), 'unauthenticated')
  await rejectsWith(auth.authenticate(await sign({ room: 'daily' }, { key: 'another-secret-another-secret' })), 'unauthenticated')
  await rejectsWith(auth.authenticate(await sign({ room: 'daily' }, { expiresIn: '-1m' })), 'unauthenticated')
})

test('a token without a room claim is unauthenticated', async () => {
  await rejectsWith(new JwtAuthenticator(secret).authenticate(await sign({ sub: 'ada' })), 'unauthenticated')
})

test('a grant for one room forbids another', () => {
  const grant = { room: 'daily' as RoomId, subject: undefined }
  authorizeRoom(grant, 'daily' as RoomId)
  assert.throws(() => authorizeRoom(grant, 'other' as RoomId), (error: unknown) => error instanceof AppError && error.code === 'forbidden')
})

test('open mode grants every room and logs that it is open once', async () => {
  const lines: string[] = []
  const auth = new OpenAuthenticator(createLogger({ write: (line) => lines.push(line) }))
  authorizeRoom(await auth.authenticate(), 'any' as RoomId)
  await auth.authenticate()
  assert.equal(lines.length, 1)
  assert.match(lines[0] ?? '', /CONCLAVE_JWT_SECRET/)
})

test('bearerToken reads the Authorization header', () => {
  assert.equal(bearerToken('Bearer abc.def'), 'abc.def')
  assert.equal(bearerToken('bearer abc'), 'abc')
  assert.equal(bearerToken('Basic abc'), undefined)
  assert.equal(bearerToken(undefined), undefined)
})
