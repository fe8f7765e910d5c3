// When and how often a meeting tries to resume after its signaling socket dropped: backoff
// between attempts, bounded by the server's grace period. The Meeting applies what comes back.

import { CLOSE_CODES } from '@conclave/protocol'
import { SignalingError } from './signaling-client.js'

/** Waits between attempts, in ms; the last one repeats. The first attempt goes at once. */
export const RESUME_BACKOFF_MS: readonly number[] = [250, 500, 1000, 2000]

/** Server default for `CONCLAVE_RESUME_GRACE_MS`. */
export const DEFAULT_RESUME_WITHIN_MS = 15_000

/** Refusals after which another attempt cannot succeed. */
const FINAL_CODES = new Set(['session_expired', 'resume_failed', 'unauthenticated', 'participant_removed', 'forbidden', 'invalid_message'])

/** Close codes with which the server itself ended the participation (RFC 6455 1008: policy). */
const ENDED_BY_SERVER = new Set<number>([...Object.values(CLOSE_CODES), 1008])

/** Whether a socket that closed with `code` is worth resuming (a drop, not the server ending it). */
export function isResumable(code: number): boolean {
  return !ENDED_BY_SERVER.has(code)
}

export type ResumeOutcome<T> =
  | { ok: true; value: T; attempts: number }
  | { ok: false; reason: 'session-expired' | 'cancelled'; error: Error | undefined }

export interface ResumeOptions<T> {
  /** One attempt (connect, then `resume`); rejects with a SignalingError. */
  attempt: () => Promise<T>
  /** Give up once this long has passed since the drop. */
  withinMs: number
  /** True once the meeting was left: stop trying. */
  cancelled: () => boolean
  backoffMs?: readonly number[]
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

/** Attempts until one succeeds, the server refuses for good, time runs out or the caller cancels. */
export async function resumeWithBackoff<T>({
  attempt,
  withinMs,
  cancelled,
  backoffMs = RESUME_BACKOFF_MS,
  now = () => performance.now(),
  sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
}: ResumeOptions<T>): Promise<ResumeOutcome<T>> {
  const deadline = now() + withinMs
  let lastError: Error | undefined
  for (let attempts = 1; ; attempts++) {
    if (cancelled()) return { ok: false, reason: 'cancelled', error: lastError }
    try {
      return { ok: true, value: await attempt(), attempts }
    } catch (error) {
      lastError = error instanceof Error ? error : new Error(String(error))
      if (error instanceof SignalingError && FINAL_CODES.has(error.code)) return { ok: false, reason: 'session-expired', error: lastError }
    }
    const wait = backoffMs[Math.min(attempts - 1, backoffMs.length - 1)] ?? 1000
    if (now() + wait >= deadline) return { ok: false, reason: 'session-expired', error: lastError }
    await sleep(wait)
  }
}
