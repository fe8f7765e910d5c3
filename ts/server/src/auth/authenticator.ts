// Who may do what: bearer tokens for WHIP/WHEP and signaling. Interface plus two implementations.

import { jwtVerify, errors as joseErrors } from 'jose'
import type { RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { Logger } from '../log.js'

/** What a verified token allows. */
export interface Grant {
  /** The one room the token is for; `undefined` means any room (open mode only). */
  room: RoomId | undefined
  /** The token's subject, when it has one. */
  subject: string | undefined
}

export interface Authenticator {
  /** Verifies a bearer token (or its absence); rejects with `unauthenticated`. */
  authenticate(token: string | undefined): Promise<Grant>
}

/** Throws `forbidden` unless `grant` allows `room`. */
export function authorizeRoom(grant: Grant, room: RoomId): void {
  if (grant.room !== undefined && grant.room !== room) {
    throw new AppError('forbidden', `the token is for another room than ${room}`)
  }
}

/** Development mode: everyone may do everything. Says so in the log, once. */
export class OpenAuthenticator implements Authenticator {
  constructor(log: Logger) {
    log.warn('CONCLAVE_JWT_SECRET is not set: running open, without authentication (development only)')
  }

  async authenticate(): Promise<Grant> {
    return { room: undefined, subject: undefined }
  }
}

/**
 * HS256 JWTs signed with a shared secret. The token must carry a string `room` claim; `exp` and
 * `nbf` are enforced when present.
 */
export class JwtAuthenticator implements Authenticator {
  readonly #key: Uint8Array

  constructor(secret: string) {
    this.#key = new TextEncoder().encode(secret)
  }

  async authenticate(token: string | undefined): Promise<Grant> {
    if (token === undefined || token === '') throw new AppError('unauthenticated', 'a bearer token is required')
    try {
      const { payload } = await jwtVerify(token, this.#key, { algorithms: ['HS256'] })
      if (typeof payload.room !== 'string' || payload.room === '') {
        throw new AppError('unauthenticated', 'the token has no room claim')
      }
      return { room: payload.room as RoomId, subject: payload.sub }
    } catch (error) {
      if (error instanceof AppError) throw error
      const why = error instanceof joseErrors.JWTExpired ? 'the token has expired' : 'the token is not valid'
      throw new AppError('unauthenticated', why, { cause: error })
    }
  }
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '')
  return match?.[1]
}
