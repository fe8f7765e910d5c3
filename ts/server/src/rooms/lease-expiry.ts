// Announces the participants whose node stopped renewing their lease (it died, or lost Redis): the
// store removes them after the lease, but only their own node announces a leaving, so without this
// the members on other nodes would keep seeing them and their tracks. The nodes sweep the rooms
// where they hold someone, after renewing their own leases; the store gives each expired
// participant to one sweeper only, so it is announced once.

import type { RoomId } from '@conclave/protocol'
import type { EventBus } from '../cluster/event-bus.js'
import type { Logger } from '../log.js'
import type { ParticipantRecord, RoomStore } from '../state/room-store.js'

/** The `reason` of the `participant-left` events this publishes. */
export const LEASE_EXPIRED = 'lease_expired'

export interface LeaseExpiryOptions {
  store: RoomStore
  bus: EventBus
  log: Logger
}

/**
 * Sweeps each room and publishes `participant-left` (reason `lease_expired`) for every participant
 * whose lease ran out, and `waiting-room-changed` where one of them was waiting. Resolves with the
 * participants announced. A room whose sweep fails is logged and skipped.
 */
export async function announceExpiredLeases({ store, bus, log }: LeaseExpiryOptions, roomIds: Iterable<RoomId>): Promise<ParticipantRecord[]> {
  const announced: ParticipantRecord[] = []
  for (const roomId of roomIds) {
    try {
      const expired = await store.sweepExpired(roomId)
      for (const participant of expired) {
        log.info('lease expired: announcing the participant left', { roomId, participantId: participant.participantId, nodeId: participant.nodeId })
        // Every kind (a waiting one too): each node drops what it holds of it, media imports included.
        await bus.publish({ type: 'participant-left', roomId, participant, reason: LEASE_EXPIRED })
        announced.push(participant)
      }
      if (expired.some((participant) => participant.state === 'waiting')) await bus.publish({ type: 'waiting-room-changed', roomId })
    } catch (error) {
      log.warn('sweeping expired leases failed', { roomId, err: error })
    }
  }
  return announced
}
