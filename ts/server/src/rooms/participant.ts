// A participant of a room and the tracks it publishes; bookkeeping only, no media calls.

import { randomBytes, randomUUID } from 'node:crypto'
import type { MediaKind, ParticipantId, ParticipantInfo, ServerEvent, TrackId, TrackInfo, TrackSource } from '@conclave/protocol'
import type { EngineTrackId, PeerId } from '../media/media-engine.js'
import type { Room } from './room.js'
import { SerialQueue } from './serial-queue.js'

/**
 * How the participant came in: the signaling WebSocket, a WHIP publisher or a WHEP viewer; or
 * `remote`, held by another node: the stand-in owner of the tracks this node imports from it.
 */
export type ParticipantKind = 'member' | 'whip' | 'whep' | 'remote'

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
    /** What the publisher said it is; undefined for WHIP. */
    readonly source: TrackSource | undefined = undefined,
  ) {}

  /** A host or cohost muted it: no one is subscribed and no one will be. */
  muted = false
  /** Published on another node and brought here by a relay link (`cluster/media-relay.ts`). */
  imported = false

  info(): TrackInfo {
    const info: TrackInfo = { trackId: this.id, participantId: this.owner.id, kind: this.kind }
    if (this.source !== undefined) info.source = this.source
    if (this.muted) info.muted = true
    return info
  }
}

export interface ReceivedTrack {
  track: PublishedTrack
  /** The participant's receive m-line that carries it. */
  mid: string
}

/** A new participant id: unguessable, URL-safe. */
export function newParticipantId(): ParticipantId {
  return `p-${randomBytes(9).toString('base64url')}` as ParticipantId
}

export class Participant {
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
  /** The media partition (breakout group) its peer is in; 0 is the main room. */
  partition = 0
  /** False while its grants do not allow receiving: no track is subscribed for it. */
  canSubscribe = true
  /** A member that answers server offers: the room adds the receive m-lines it lacks. */
  serverOffers = false
  /** What the participant's sending m-lines carry, by mid, as its offers said. */
  readonly sources = new Map<string, TrackSource>()

  constructor(
    readonly room: Room,
    readonly kind: ParticipantKind,
    readonly name: string,
    readonly sink: ParticipantSink | undefined,
    readonly id: ParticipantId = newParticipantId(),
    /** The unguessable name of a WHIP/WHEP session in its resource URL; never sent to others. */
    readonly resourceId: string = randomUUID(),
  ) {}

  info(): ParticipantInfo {
    return { participantId: this.id, name: this.name }
  }
}
