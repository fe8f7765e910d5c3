// Resume ids: the secret a participant's `joined` carries so that a new socket can take back its
// session. Only their SHA-256 is kept, so a leaked store record cannot resume anyone.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { ResumeId } from '@conclave/protocol'

/** 128 random bits, base64url (22 characters). */
export function newResumeId(): ResumeId {
  return randomBytes(16).toString('base64url')
}

/** What the RoomStore keeps for a resume id: its SHA-256, hex. */
export function hashResumeId(resumeId: string): string {
  return createHash('sha256').update(resumeId).digest('hex')
}

/** Whether `resumeId` is the one `hash` was made from; constant time in the id's content. */
export function resumeIdMatches(resumeId: string, hash: string | undefined): boolean {
  if (hash === undefined) return false
  const expected = Buffer.from(hash, 'hex')
  const actual = createHash('sha256').update(resumeId).digest()
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}
