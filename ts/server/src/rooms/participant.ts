// A participant of a room and the tracks it publishes; bookkeeping only, no media calls.

import { randomBytes, randomUUID } from 'node:crypto'
import type { MediaKind, ParticipantId, ParticipantInfo, ServerEvent, TrackId, TrackInfo } from '@conclave/protocol'
import type { EngineTrackId, PeerId } from '../media/media-engine.js'
import type { Room } from './room.js'
import { SerialQueue } from './serial-queue.js'

/** How the participant came in: the signaling WebSocket, a WHIP publisher or a WHEP viewer. */
export type ParticipantKind = 'member' | 'whip' | 'whep'

/** Where a member's events go: its WebSocket. */
export interface ParticipantSink {
  send(event: ServerEvent): void
  /** The server ended the participation (its media transport was lost); the channel should close. */
  end(reason: string): void
}

export class PublishedTrack {
  constructor(
    readonly engineId: EngineTrackId,
    readonly id: TrackId,
    readonly kind: MediaKind,
    readonly owner: Participant,
  ) {}

  info(): TrackInfo {
    return { trackId: this.id, participantId: this.owner.id, kind: this.kind }
  }
}

export interface ReceivedTrack {
  track: PublishedTrack
  /** The participant's receive m-line that carries it. */
  mid: string
}

export class Participant {
  readonly id = `p-${randomBytes(9).toString('base64url')}` as ParticipantId
  /** The unguessable name of a WHIP/WHEP session in its resource URL; never sent to others. */
  readonly resourceId = randomUUID()
  /** Set by the first offer. */
  peerId: PeerId | undefined
  state: 'active' | 'left' = 'active'
  /** Whether others were told about this participant (members and WHIP publishers are; viewers never). */
  announced = false
  readonly published = new Set<EngineTrackId>()
  readonly received = new Map<EngineTrackId, ReceivedTrack>()
  /** Every media command for this participant goes through here: one negotiation at a time. */
  readonly queue = new SerialQueue()
  /** Settles once the peer is closed, after the participant left. */
  closed: Promise<void> | undefined

  constructor(
    readonly room: Room,
    readonly kind: ParticipantKind,
    readonly name: string,
    readonly sink: ParticipantSink | undefined,
  ) {}

  info(): ParticipantInfo {
    return { participantId: this.id, name: this.name }
  }
}
