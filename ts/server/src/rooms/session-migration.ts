// Moving a session to the node its `resume` reached: behind a load balancer without affinity a
// reconnecting member often lands on a node that does not hold it. That node checks the stored
// record, takes it over from the holding node as one compare-and-set in the store (of two nodes
// resuming it at once, only one does) and gives it a new peer; the holding node, told by the
// `participant-migrated` cluster event, forgets it without a leave and closes its old peer.

import type { ParticipantId, RoomId, TrackSource } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { Principal } from '../auth/authenticator.js'
import type { ParticipantRecord, RoomStore } from '../state/room-store.js'
import { resumeIdMatches } from './resume-id.js'
import type { RoomService } from './room-service.js'

export interface TakenOver {
  /** The record as this node now holds it: connected, no tracks yet (its new peer publishes anew). */
  record: ParticipantRecord
  /** The node that held it (it may be dead: then nothing answers, and nothing needs to). */
  fromNode: string
  /** Sources a host had muted: the new tracks of these sources are muted again. */
  mutedSources: TrackSource[]
}

/**
 * Takes the session over for `nodeId`. Rejects with `session_expired` when the record is gone (the
 * holding node ended it after its grace period, or its lease ran out) and `resume_failed` when the
 * resume id or identity does not match, it is not an admitted member, or another node took it first.
 */
export async function takeOverSession(
  store: RoomStore,
  nodeId: string,
  principal: Principal,
  roomId: RoomId,
  participantId: ParticipantId,
  resumeId: string,
): Promise<TakenOver> {
  const record = await store.getParticipant(roomId, participantId)
  if (record === undefined) throw new AppError('session_expired', 'the session is over; join again')
  // Anonymous principals (open dev mode) get a new identity per socket: the resume id alone proves it.
  const sameIdentity = principal.anonymous || record.identity === principal.identity
  if (!resumeIdMatches(resumeId, record.resumeHash) || !sameIdentity) {
    throw new AppError('resume_failed', 'the resume id or identity does not match the session')
  }
  if (record.kind !== 'member' || record.state !== 'active') throw new AppError('resume_failed', 'only admitted participants resume')
  const moved = await store.moveParticipant(roomId, participantId, { from: record.nodeId, to: nodeId }, { connection: 'connected', tracks: [] })
  if (moved === undefined) {
    const now = await store.getParticipant(roomId, participantId)
    if (now === undefined) throw new AppError('session_expired', 'the session is over; join again')
    throw new AppError('resume_failed', `the session was resumed on node ${now.nodeId} meanwhile`)
  }
  const mutedSources = record.tracks.filter((track) => track.muted).map((track) => track.source ?? (track.kind === 'audio' ? 'microphone' : 'camera'))
  return { record: moved, fromNode: record.nodeId, mutedSources }
}

/**
 * Ends, on this node, the tracks of `participantId` that were imported from the node that held it:
 * they are about to end there (its old peer closes), and its own new peer must neither list them
 * in its snapshot nor be subscribed to them.
 */
export function endImportsOf(rooms: RoomService, roomId: RoomId, participantId: ParticipantId): void {
  for (const track of [...(rooms.room(roomId)?.tracks.values() ?? [])]) {
    if (track.imported && track.owner.id === participantId) rooms.endImportedTrack(roomId, track.engineId)
  }
}
