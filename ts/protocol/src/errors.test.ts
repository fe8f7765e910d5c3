import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ERROR_CODES, httpStatusFor, isErrorCode } from './errors.js'

test('every error code maps to an HTTP error status', () => {
  for (const code of ERROR_CODES) {
    const status = httpStatusFor(code)
    assert.ok(status >= 400 && status < 600, `${code} -> ${status}`)
  }
})

test('client mistakes map to 4xx and our own failures to 5xx', () => {
  assert.equal(httpStatusFor('invalid_sdp'), 400)
  assert.equal(httpStatusFor('unauthenticated'), 401)
  assert.equal(httpStatusFor('forbidden'), 403)
  assert.equal(httpStatusFor('resource_not_found'), 404)
  assert.equal(httpStatusFor('unsupported_media_type'), 415)
  assert.equal(httpStatusFor('rate_limited'), 429)
  assert.equal(httpStatusFor('worker_closed'), 503)
})

test('isErrorCode accepts only known codes', () => {
  assert.ok(isErrorCode('no_free_slot'))
  assert.ok(!isErrorCode('no_such_code'))
  assert.ok(!isErrorCode(undefined))
})
