// Stable error codes shared by the engine, the server and clients, and their one HTTP mapping.

import * as z from 'zod'

/**
 * Every error code on the wire. The engine's and the addon's codes come first, unchanged: the
 * server passes them through. Changing or removing one is a breaking change of the protocol.
 */
export const ERROR_CODES = [
  // sfu-core (SfuError::code)
  'peer_not_found',
  'track_not_found',
  'invalid_sdp',
  'invalid_state',
  'no_free_slot',
  'already_subscribed',
  'not_subscribed',
  'crypto_failure',
  // the addon (bindings/node)
  'worker_closed',
  'worker_restarted',
  'bind_failed',
  'invalid_argument',
  // the control plane
  'unauthenticated',
  'forbidden',
  'room_not_found',
  'resource_not_found',
  'bad_request',
  'invalid_message',
  'unsupported_media_type',
  'method_not_allowed',
  'payload_too_large',
  'rate_limited',
  'internal',
  // meeting control (protocol 2)
  'participant_not_found',
  'room_exists',
  'room_locked',
  'room_full',
  'participant_removed',
  'not_ready',
  // reconnect (protocol 2)
  'resume_failed',
  'session_expired',
  // recording
  'recording_not_found',
  'recording_already_active',
  'recorder_unavailable',
  'not_implemented',
  // breakout rooms
  'breakout_not_found',
  'breakouts_not_running',
  'breakouts_running',
  // server offers: the client's offer crossed the server's (roll back, answer it, offer again)
  'glare',
] as const

export const ErrorCode = z.enum(ERROR_CODES)
export type ErrorCode = z.infer<typeof ErrorCode>

/** The HTTP status each code maps to, for WHIP/WHEP and any REST surface. One table, nowhere else. */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  peer_not_found: 404,
  track_not_found: 404,
  invalid_sdp: 400,
  invalid_state: 409,
  no_free_slot: 409,
  already_subscribed: 409,
  not_subscribed: 409,
  crypto_failure: 500,
  worker_closed: 503,
  worker_restarted: 503,
  bind_failed: 500,
  // The server validates its input before calling the addon, so this one is a bug in us.
  invalid_argument: 500,
  unauthenticated: 401,
  forbidden: 403,
  room_not_found: 404,
  resource_not_found: 404,
  bad_request: 400,
  invalid_message: 400,
  unsupported_media_type: 415,
  method_not_allowed: 405,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  participant_not_found: 404,
  room_exists: 409,
  room_locked: 403,
  room_full: 403,
  // The identity was removed from the room: its token no longer admits it.
  participant_removed: 403,
  not_ready: 503,
  // Wrong resume id, another identity, or another node took the session over first.
  resume_failed: 403,
  // The grace period ran out (or the participant left): join again.
  session_expired: 410,
  recording_not_found: 404,
  // A room has at most one active composite recording.
  recording_already_active: 409,
  // The recorder cannot be started here (not installed, no token issuer).
  recorder_unavailable: 503,
  not_implemented: 501,
  breakout_not_found: 404,
  // Moving or ending needs breakouts in progress.
  breakouts_not_running: 409,
  // One split at a time: end the running breakouts first.
  breakouts_running: 409,
  glare: 409,
}

export function httpStatusFor(code: ErrorCode): number {
  return HTTP_STATUS_BY_CODE[code]
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value)
}

/** The JSON body of an HTTP error response. */
export const ErrorBody = z.object({ code: ErrorCode, message: z.string() })
export type ErrorBody = z.infer<typeof ErrorBody>
