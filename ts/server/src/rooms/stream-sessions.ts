// WHIP publishers and WHEP viewers as participants of the meeting: each session has a record in the
// RoomStore (a publisher listed with its tracks, a viewer hidden), leased by the node that holds its
// peer and announced on the EventBus, so every node lists it and a DELETE on any node ends it.

import { createHash, randomUUID } from 'node:crypto'
import type { ParticipantId, RoomId } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { Principal } from '../auth/authenticator.js'
import type { ClusterEvent, EventBus } from '../cluster/event-bus.js'
import type { Logger } from '../log.js'
import type { AddOutcome, ParticipantRecord, RoomRecord, RoomStore } from '../state/room-store.js'
import type { Participant, PublishedTrack } from './participant.js'
import type { RoomService } from './room-service.js'
import { SerialQueue } from './serial-queue.js'

export type StreamKind = 'whip' | 'whep'

export interface StreamSessionsOptions {
  rooms: RoomService
  store: RoomStore
  bus: EventBus
  /** This server instance, as recorded on the sessions it holds. */
  nodeId: string
  log: Logger
  /** How often this node renews its sessions' leases, in ms. Default 10 000. */
  refreshIntervalMs?: number
  /** Whether opening a session may create its room. Default true. */
  createsRoom?: boolean
  now?: () => number
}

export interface OpenedStream {
  /** The last segment of the session's resource URL: whoever has it may end the session. */
  resourceId: string
  participantId: ParticipantId
  /** The engine's answer. */
  sdp: string
}

/** A session whose peer this node holds. */
interface HeldSession {
  record: ParticipantRecord
  resourceId: string
  /** Its media side, once its offer was answered. */
  media: Participant | undefined
  gone: boolean
}

const REFUSALS: Record<Exclude<AddOutcome, 'added'>, [AppError['code'], string]> = {
  room_not_found: ['room_not_found', 'the room does not exist'],
  removed: ['participant_removed', 'you were removed from this room'],
  locked: ['room_locked', 'the room is locked'],
  full: ['room_full', 'the room is full'],
}

const DEFAULT_NAMES: Record<StreamKind, string> = { whip: 'WHIP publisher', whep: 'WHEP viewer' }

/**
 * The participant id of the session at `resourceId`. One way: members see participant ids, and the
 * resource URL is what lets a caller end a session, so the id must not give the URL away. Any node
 * finds a session's record from its URL alone.
 */
export function sessionParticipantId(resourceId: string): ParticipantId {
  return `p-${createHash('sha256').update(`conclave-session:${resourceId}`).digest('base64url').slice(0, 12)}` as ParticipantId
}

export class StreamSessions {
  readonly #rooms: RoomService
  readonly #store: RoomStore
  readonly #bus: EventBus
  readonly #nodeId: string
  readonly #log: Logger
  readonly #createsRoom: boolean
  readonly #now: () => number
  readonly #held = new Map<ParticipantId, HeldSession>()
  /** Cluster events are applied one at a time, in the order the bus delivered them. */
  readonly #applying = new SerialQueue()
  readonly #unsubscribe: () => void
  readonly #refresher: NodeJS.Timeout

  constructor({ rooms, store, bus, nodeId, log, refreshIntervalMs = 10_000, createsRoom = true, now = Date.now }: StreamSessionsOptions) {
    this.#rooms = rooms
    this.#store = store
    this.#bus = bus
    this.#nodeId = nodeId
    this.#log = log
    this.#createsRoom = createsRoom
    this.#now = now
    this.#unsubscribe = bus.subscribe((event) => {
      this.#applying
        .run(() => this.#apply(event))
        .catch((error: unknown) => this.#log.error('applying a cluster event to a session failed', { type: event.type, err: error }))
    })
    this.#refresher = setInterval(() => void this.#refreshLeases(), refreshIntervalMs)
    this.#refresher.unref()
  }

  /**
   * Opens a WHIP (publish) or WHEP (play) session for `principal`: its record enters the store
   * under the room's admission rules (removed identities, lock, size), then its offer is answered.
   * A publisher is announced to the room; a viewer stays hidden. The caller checked the grants.
   */
  async open(kind: StreamKind, principal: Principal, roomId: RoomId, offer: string, requestedName?: string): Promise<OpenedStream> {
    const room = this.#createsRoom ? await this.#store.ensureRoom(joinMadeRoom(roomId, this.#now())) : await this.#store.getRoom(roomId)
    if (room === undefined) throw new AppError('room_not_found', `there is no room ${roomId}`)
    const resourceId = randomUUID()
    const record: ParticipantRecord = {
      participantId: sessionParticipantId(resourceId),
      roomId,
      identity: principal.identity,
      name: principal.name ?? requestedName ?? DEFAULT_NAMES[kind],
      role: 'guest',
      // A viewer counts for the room (its size, its emptiness) but is never shown, as a recorder.
      grants: kind === 'whep' ? { ...principal.grants, hidden: true } : principal.grants,
      state: 'active',
      handRaised: false,
      kind,
      nodeId: this.#nodeId,
      joinedAt: this.#now(),
      tracks: [],
    }
    const outcome = await this.#store.addParticipant(record, { bypassLock: principal.role === 'host' || principal.grants.recorder })
    if (outcome !== 'added') throw new AppError(...REFUSALS[outcome])
    const session: HeldSession = { record, resourceId, media: undefined, gone: false }
    // Held before the offer: its tracks are reported as soon as the engine answered.
    this.#held.set(record.participantId, session)
    const options = {
      id: record.participantId,
      resourceId,
      sink: {
        send: () => undefined,
        end: (reason: string) => {
          this.#end(session, reason).catch((error: unknown) => this.#log.error('ending a stream session failed', { participantId: record.participantId, err: error }))
        },
      },
    }
    let opened: { participant: Participant; sdp: string }
    try {
      opened =
        kind === 'whip'
          ? await this.#rooms.publish(roomId, offer, record.name, { ...options, announce: false })
          : await this.#rooms.view(roomId, offer, options)
    } catch (error) {
      await this.#end(session, 'offer_failed')
      throw error
    }
    session.media = opened.participant
    if (session.gone) {
      // Removed, or its room closed, while its offer was applied.
      await this.#rooms.leave(opened.participant, 'removed')
      throw new AppError('session_expired', 'the session ended while it was being opened')
    }
    if (!record.grants.hidden) await this.#bus.publish({ type: 'participant-joined', roomId, participant: record })
    this.#log.info('stream session opened', { roomId, participantId: record.participantId, kind })
    return { resourceId, participantId: record.participantId, sdp: opened.sdp }
  }

  /**
   * Ends the `kind` session at `resourceId` in `roomId`, wherever its peer is: its record is removed
   * and its leaving announced; the node that holds it closes the peer on hearing that. False when
   * there was no such session.
   */
  async end(kind: StreamKind, roomId: RoomId, resourceId: string): Promise<boolean> {
    const participantId = sessionParticipantId(resourceId)
    const held = this.#held.get(participantId)
    if (held !== undefined) {
      if (held.gone || held.resourceId !== resourceId || held.record.kind !== kind || held.record.roomId !== roomId) return false
      await this.#end(held, 'deleted')
      return true
    }
    const record = await this.#store.getParticipant(roomId, participantId)
    if (record === undefined || record.kind !== kind) return false
    const removed = await this.#store.removeParticipant(roomId, participantId)
    if (removed === undefined) return false
    await this.#bus.publish({ type: 'participant-left', roomId, participant: removed, reason: 'deleted' })
    this.#log.info('stream session ended through another node', { roomId, participantId, nodeId: removed.nodeId })
    return true
  }

  /** Keeps the store's record of a held publisher's tracks in step with its media. */
  trackChanged(track: PublishedTrack, change: 'published' | 'ended'): void {
    const session = this.#held.get(track.owner.id)
    if (session === undefined || session.gone) return
    const others = session.record.tracks.filter((known) => known.trackId !== track.id)
    const tracks = change === 'ended' ? others : [...others, { trackId: track.id, kind: track.kind, muted: track.muted }]
    this.#write(session, { ...session.record, tracks })
  }

  /** The media side of the sessions this node holds in `roomId` (for breakouts: their partitions). */
  mediaIn(roomId: RoomId): Participant[] {
    return [...this.#held.values()].flatMap((session) => (session.record.roomId === roomId && !session.gone && session.media !== undefined ? [session.media] : []))
  }

  /** The rooms where this node holds a session. */
  roomIds(): Set<RoomId> {
    return new Set([...this.#held.values()].map((session) => session.record.roomId))
  }

  /** Every held session ends (its record goes, its leaving is announced); the listener and the lease timer stop. */
  async close(): Promise<void> {
    clearInterval(this.#refresher)
    this.#unsubscribe()
    await Promise.all([...this.#held.values()].map((session) => this.#end(session, 'server_closing').catch(() => undefined)))
  }

  /** Ends a held session from this node: its peer was lost, it was deleted here, or the server closes. */
  async #end(session: HeldSession, reason: string): Promise<void> {
    if (session.gone) return
    this.#forget(session)
    const { roomId, participantId } = session.record
    const removed = await this.#store.removeParticipant(roomId, participantId)
    if (removed !== undefined && reason !== 'offer_failed') await this.#bus.publish({ type: 'participant-left', roomId, participant: removed, reason })
    if (session.media !== undefined) await this.#rooms.leave(session.media, reason)
    this.#log.info('stream session ended', { roomId, participantId, reason })
  }

  /** Its record is already gone (another node or the API ended it): only the peer is left to close. */
  async #drop(session: HeldSession, reason: string): Promise<void> {
    if (session.gone) return
    this.#forget(session)
    if (session.media !== undefined) await this.#rooms.leave(session.media, reason)
    this.#log.info('stream session ended', { roomId: session.record.roomId, participantId: session.record.participantId, reason })
  }

  #forget(session: HeldSession): void {
    session.gone = true
    this.#held.delete(session.record.participantId)
  }

  #write(session: HeldSession, record: ParticipantRecord): void {
    session.record = record
    this.#store
      .updateParticipant(record.roomId, record.participantId, { tracks: record.tracks })
      .catch((error: unknown) => this.#log.warn('recording a session track failed', { participantId: record.participantId, err: error }))
  }

  async #apply(event: ClusterEvent): Promise<void> {
    switch (event.type) {
      case 'participant-left':
      case 'participant-removed': {
        const session = this.#held.get(event.participant.participantId)
        if (session !== undefined) await this.#drop(session, event.type === 'participant-removed' ? 'removed' : event.reason)
        return
      }
      case 'room-closed': {
        const closing = [...this.#held.values()].filter((session) => session.record.roomId === event.roomId)
        await Promise.all(closing.map((session) => this.#drop(session, 'room_closed')))
        return
      }
      case 'track-muted':
      case 'track-unmuted': {
        const session = this.#held.get(event.participantId)
        if (session?.media === undefined || session.gone) return
        const muted = event.type === 'track-muted'
        if (muted) this.#rooms.muteTrack(event.roomId, event.trackId)
        else this.#rooms.unmuteTrack(event.roomId, event.trackId)
        const tracks = session.record.tracks.map((track) => (track.trackId === event.trackId ? { ...track, muted } : track))
        this.#write(session, { ...session.record, tracks })
        return
      }
      case 'participant-updated': {
        const session = this.#held.get(event.participant.participantId)
        if (session === undefined || session.gone) return
        const before = session.record
        // Its tracks are this node's to know; the rest (role, grants, name) comes from the store.
        session.record = { ...event.participant, tracks: before.tracks }
        const { grants } = event.participant
        if (session.media !== undefined && before.grants.canSubscribe !== grants.canSubscribe) await this.#rooms.setCanSubscribe(session.media, grants.canSubscribe)
        if (!grants.canPublish) {
          // A publisher no longer allowed to publish stops being forwarded, as a member would.
          for (const track of before.tracks) {
            if (!track.muted) await this.#bus.publish({ type: 'track-muted', roomId: event.roomId, participantId: before.participantId, trackId: track.trackId, by: undefined })
          }
        }
        return
      }
      default:
        return
    }
  }

  async #refreshLeases(): Promise<void> {
    const byRoom = new Map<RoomId, ParticipantId[]>()
    for (const { record } of this.#held.values()) byRoom.set(record.roomId, [...(byRoom.get(record.roomId) ?? []), record.participantId])
    for (const [roomId, ids] of byRoom) {
      await this.#store.refresh(roomId, ids).catch((error: unknown) => this.#log.warn('renewing session leases failed', { roomId, err: error }))
    }
  }
}

/** A room made by the first session in it: dropped once empty, as one made by a join. */
function joinMadeRoom(id: RoomId, now: number): RoomRecord {
  return { id, waitingRoom: false, locked: false, emptyTimeoutSeconds: 0, createdAt: now, explicit: false }
}
