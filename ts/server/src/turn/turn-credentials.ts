// TURN REST credentials: short-lived usernames a coturn with `use-auth-secret` checks against the shared
// secret. Computes them only; talks to no relay.

import { createHmac } from 'node:crypto'
import type { IceServer } from '@conclave/protocol'

export interface TurnOptions {
  /** `turn:` / `turns:` URLs handed to clients, e.g. `turn:turn.example:3478?transport=udp`. */
  urls: string[]
  /** coturn's `static-auth-secret`. Never logged, never sent. */
  secret: string
  /** How long a credential stays valid. */
  ttlSeconds: number
}

/**
 * username = `${expiryUnixSeconds}:${identity}`, credential = base64(HMAC-SHA1(secret, username)): the
 * scheme of the TURN REST API draft, which coturn verifies with no call back to us.
 */
export function turnCredentials(secret: string, identity: string, expiresAtSeconds: number): { username: string; credential: string } {
  const username = `${expiresAtSeconds}:${identity}`
  const credential = createHmac('sha1', secret).update(username).digest('base64')
  return { username, credential }
}

/** The ICE servers for one participant, valid `ttlSeconds` from `nowMs`. */
export function turnIceServers(options: TurnOptions, identity: string, nowMs: number): IceServer[] {
  const expiresAt = Math.floor(nowMs / 1000) + options.ttlSeconds
  return [{ urls: [...options.urls], ...turnCredentials(options.secret, identity, expiresAt) }]
}
