// Who is asking and what they may do: verifies access tokens (JWT) for signaling, WHIP and WHEP,
// and mints them. No policy beyond the token itself; rooms decide what a role may do to others.

import { randomBytes } from 'node:crypto'
import {
  type JWTVerifyGetKey,
  SignJWT,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
} from 'jose'
import {
  AccessTokenClaims,
  type CreateTokenRequest,
  DEFAULT_GRANTS,
  type Grants,
  Grants as GrantsSchema,
  type Role,
  type RoomId,
  type TokenResponse,
} from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { Logger } from '../log.js'

/** Who presented a token (or none, in open development mode) and what it allows. */
export interface Principal {
  /** The one room the token is for; `undefined` means any room (anonymous, open mode only). */
  room: RoomId | undefined
  /** The token's `sub`; a random one for anonymous principals. */
  identity: string
  /** The token's `name` claim, which wins over a name sent in `join`. */
  name: string | undefined
  role: Role
  grants: Grants
  /** The token's `exp`, in milliseconds since the epoch; `undefined` when anonymous. */
  expiresAt: number | undefined
  anonymous: boolean
}

export interface Authenticator {
  /** Verifies a bearer token (or its absence); rejects with `unauthenticated`. */
  authenticate(token: string | undefined): Promise<Principal>
}

/** Throws `forbidden` unless `principal` may enter `room`. */
export function authorizeRoom(principal: Pick<Principal, 'room'>, room: RoomId): void {
  if (principal.room !== undefined && principal.room !== room) {
    throw new AppError('forbidden', `the token is for another room than ${room}`)
  }
}

/** Asymmetric algorithms accepted from a JWKS. HS256 is only ever checked against the secret. */
const JWKS_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const

export interface TokenAuthenticatorOptions {
  /** HS256 secret. */
  secret?: Uint8Array
  /** Keys for asymmetric tokens (a remote JWKS or a local key set). */
  jwks?: JWTVerifyGetKey
  /** Accept a request without a token as an anonymous guest of any room. Open dev mode only. */
  allowAnonymous?: boolean
  /** Leeway for `exp` and `nbf`, in seconds. Default 5. */
  clockToleranceSeconds?: number
}

/**
 * Verifies Conclave access tokens. The algorithm in the token's header picks the key source, and
 * each source accepts only its own algorithms: an `HS256` token is checked against the secret
 * only, an asymmetric one against the JWKS only, so a public key can never be used as an HMAC
 * secret. `alg: none` and every other algorithm are refused.
 */
export class TokenAuthenticator implements Authenticator {
  readonly #secret: Uint8Array | undefined
  readonly #jwks: JWTVerifyGetKey | undefined
  readonly #allowAnonymous: boolean
  readonly #tolerance: number

  constructor({ secret, jwks, allowAnonymous = false, clockToleranceSeconds = 5 }: TokenAuthenticatorOptions) {
    this.#secret = secret
    this.#jwks = jwks
    this.#allowAnonymous = allowAnonymous
    this.#tolerance = clockToleranceSeconds
  }

  async authenticate(token: string | undefined): Promise<Principal> {
    if (token === undefined || token === '') {
      if (this.#allowAnonymous) return anonymousPrincipal()
      throw new AppError('unauthenticated', 'a bearer token is required')
    }
    let alg: unknown
    try {
      alg = decodeProtectedHeader(token).alg
    } catch (error) {
      throw new AppError('unauthenticated', 'the token is not a JWT', { cause: error })
    }
    let payload: unknown
    try {
      const options = { clockTolerance: this.#tolerance, requiredClaims: ['exp'] }
      if (alg === 'HS256' && this.#secret !== undefined) {
        payload = (await jwtVerify(token, this.#secret, { ...options, algorithms: ['HS256'] })).payload
      } else if (typeof alg === 'string' && (JWKS_ALGORITHMS as readonly string[]).includes(alg) && this.#jwks !== undefined) {
        payload = (await jwtVerify(token, this.#jwks, { ...options, algorithms: [...JWKS_ALGORITHMS] })).payload
      } else {
        throw new AppError('unauthenticated', `tokens signed with ${JSON.stringify(alg)} are not accepted`)
      }
    } catch (error) {
      if (error instanceof AppError) throw error
      throw new AppError('unauthenticated', describeJoseError(error), { cause: error })
    }
    const claims = AccessTokenClaims.safeParse(payload)
    if (!claims.success) {
      const issue = claims.error.issues[0]
      throw new AppError('unauthenticated', `the token's claims are invalid: ${issue?.path.join('.') || 'claims'}: ${issue?.message ?? ''}`)
    }
    const { room, sub, name, role, grants, exp } = claims.data
    return { room, identity: sub, name, role, grants, expiresAt: exp * 1000, anonymous: false }
  }
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired'
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'nbf') return 'the token is not valid yet'
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is invalid`
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature does not verify'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the key set matches the token'
  return 'the token is not valid'
}

function anonymousPrincipal(): Principal {
  return {
    room: undefined,
    identity: `anon-${randomBytes(9).toString('base64url')}`,
    name: undefined,
    role: 'guest',
    grants: DEFAULT_GRANTS,
    expiresAt: undefined,
    anonymous: true,
  }
}

/** Mints HS256 access tokens with the server's secret. */
export class TokenIssuer {
  readonly #secret: Uint8Array

  constructor(secret: Uint8Array) {
    this.#secret = secret
  }

  async mint({ room, identity, name, role, grants, ttlSeconds }: CreateTokenRequest, now = Date.now()): Promise<TokenResponse> {
    const issuedAt = Math.floor(now / 1000)
    const expiresAt = issuedAt + ttlSeconds
    const claims: Record<string, unknown> = { room, role, grants: GrantsSchema.parse(grants ?? {}) }
    if (name !== undefined) claims.name = name
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(identity)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(expiresAt)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(this.#secret)
    return { token, expiresAt: expiresAt * 1000 }
  }
}

export interface AuthOptions {
  /** HS256 secret (`CONCLAVE_JWT_SECRET`). */
  jwtSecret?: string | undefined
  /** URL of a JSON Web Key Set for asymmetric tokens (`CONCLAVE_JWKS_URL`). */
  jwksUrl?: string | undefined
  log: Logger
}

export interface Auth {
  authenticator: Authenticator
  /** Absent when the server only verifies tokens from a JWKS. */
  issuer: TokenIssuer | undefined
  /** No secret and no JWKS: anonymous access and dev tokens signed with a per-process secret. */
  devMode: boolean
}

/** Picks the authentication mode from the configuration; says so in the log when it is open. */
export function createAuth({ jwtSecret, jwksUrl, log }: AuthOptions): Auth {
  const jwks = jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(jwksUrl))
  if (jwtSecret !== undefined || jwks !== undefined) {
    const secret = jwtSecret === undefined ? undefined : new TextEncoder().encode(jwtSecret)
    return {
      authenticator: new TokenAuthenticator({ ...(secret ? { secret } : {}), ...(jwks ? { jwks } : {}) }),
      issuer: secret === undefined ? undefined : new TokenIssuer(secret),
      devMode: false,
    }
  }
  log.warn('CONCLAVE_JWT_SECRET is not set: running open, without authentication (development only)')
  // Dev tokens still carry roles; they are signed with a secret no one else knows.
  const secret = new Uint8Array(randomBytes(32))
  return {
    authenticator: new TokenAuthenticator({ secret, allowAnonymous: true }),
    issuer: new TokenIssuer(secret),
    devMode: true,
  }
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '')
  return match?.[1]
}
