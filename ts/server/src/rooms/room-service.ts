// The rooms domain: admits participants, negotiates their peers, keeps subscriptions in step with
// published tracks. Edges (signaling, WHIP/WHEP) call it; it calls the media engine and hears back
// only through engine events.

import type { MediaKind, ParticipantId, RoomId, SubscriptionInfo, TrackId, TrackSource } from '@conclave/protocol'
import { AppError, hasCode } from '../app-error.js'
import { type Logger, redactAddress } from '../log.js'
import type { EngineTrackId, MediaEngine, MediaEvent, PeerId } from '../media/media-engine.js'
import { AdaptiveMedia } from './adaptive-media.js'
import { Participant, type ParticipantKind, type ParticipantSink, PublishedTrack } from './participant.js'
import { Room } from './room.js'
import { ServerOffers } from './server-offers.js'

export interface RoomServiceOptions {
  media: MediaEngine
  log: Logger
  /**
   * Told when a track of the room starts or ends (the meeting keeps its records from this), those
   * imported from other nodes too (`track.imported`: not this node's to record in the store).
   */
  onTrackChange?: (track: PublishedTrack, change: 'published' | 'ended') => void
  /** Video last-N: each participant receives the cameras of only the N latest speakers. Default 0: off. */
  lastN?: number
  /** How long a server offer may wait for its answer before the participation ends. Default 10 s. */
  serverOfferTimeoutMs?: number
  /** Put before the engine's number in track ids, so that nodes of a cluster never hand out the same id. */
  trackIdPrefix?: string
  /** Told when this node gets its first participant of a room (`opened`) and loses its last (`closed`). */
  onRoomChange?: (roomId: RoomId, change: 'opened' | 'closed') => void
}

/** A track another node publishes, as this node's relay link brought it in. */
export interface ImportedTrackSpec {
  engineId: EngineTrackId
  id: TrackId
  kind: MediaKind
  source: TrackSource | undefined
  muted: boolean
  owner: { id: ParticipantId; name: string }
}

export interface JoinOptions {
  /** Use this id (the meeting's record id) instead of a new one. */
  id?: ParticipantId
  /**
   * Tell the room's members that it joined and, later, left. Default true; false when the caller
   * announces participants itself (the meeting does, across nodes).
   */
  announce?: boolean
  /** It answers server offers: the room adds the receive m-lines it lacks (`ServerOffers`). Default false. */
  serverOffers?: boolean
}

/** How a WHIP/WHEP session is opened; the meeting's StreamSessions sets them all. */
export interface SessionOptions {
  /** Use this id (the session's record id) instead of a new one. */
  id?: ParticipantId
  /** Use this resource id (its URL's last segment) instead of a new one. */
  resourceId?: string
  /** Told when the server ends the session (its peer was lost); room events sent to it are dropped. */
  sink?: ParticipantSink
  /** Tell the room's members that a publisher joined and left. Default true; false when the caller does. */
  announce?: boolean
}

export interface Negotiated {
  /** The engine's answer. */
  sdp: string
  /** Every track the participant receives now, by receive m-line. */
  subscriptions: SubscriptionInfo[]
}

export interface OpenedSession {
  participant: Participant
  sdp: string
}

export class RoomService {
  readonly #media: MediaEngine
  readonly #log: Logger
  readonly #rooms = new Map<RoomId, Room>()
  readonly #byPeer = new Map<PeerId, Participant>()
  readonly #bySession = new Map<string, Participant>()
  readonly #stopListening: () => void

  readonly #onTrackChange: RoomServiceOptions['onTrackChange']
  readonly #onRoomChange: RoomServiceOptions['onRoomChange']
  readonly #trackIdPrefix: string
  readonly #adaptive: AdaptiveMedia
  readonly #serverOffers: ServerOffers

  constructor({ media, log, onTrackChange, lastN = 0, serverOfferTimeoutMs, trackIdPrefix = '', onRoomChange }: RoomServiceOptions) {
    this.#media = media
    this.#log = log
    this.#onTrackChange = onTrackChange
    this.#onRoomChange = onRoomChange
    this.#trackIdPrefix = trackIdPrefix
    this.#adaptive = new AdaptiveMedia({ media, log, lastN })
    this.#serverOffers = new ServerOffers({
      media,
      log,
      ...(serverOfferTimeoutMs !== undefined ? { timeoutMs: serverOfferTimeoutMs } : {}),
      fillSlots: (participant) => this.#fillSlots(participant),
      end: (participant, reason) => {
        participant.sink?.end(reason)
        void this.leave(participant, reason)
      },
    })
    this.#stopListening = media.onEvents((events) => {
      for (const event of events) this.#handleMediaEvent(event)
    })
  }

  /** A member joins over signaling; it is announced at once and negotiates with `negotiate`. */
  join(roomId: RoomId, name: string, sink: ParticipantSink, { id, announce = true, serverOffers = false }: JoinOptions = {}) {
    const participant = this.#admit(roomId, 'member', name, sink, id)
    participant.serverOffers = serverOffers
    if (announce) this.#announce(participant)
    this.#log.info('participant joined', { roomId, participantId: participant.id, kind: 'member' })
    return { participant, ...participant.room.snapshotFor(participant) }
  }

  /**
   * Applies a member's offer and subscribes it to every track of the room it has a free receive
   * m-line for. Serialized per participant.
   */
  negotiate(participant: Participant, sdp: string): Promise<Negotiated> {
    return participant.queue.run(async () => {
      const glare = () => new AppError('glare', "the server's offer is out: roll back, answer it, then offer again")
      if (this.#serverOffers.isPending(participant)) throw glare()
      const answer = await this.#applyOffer(participant, sdp).catch((error: unknown) => {
        // The engine's own word for the same collision (its offer waits, see local_offer.rs).
        if (hasCode(error, 'invalid_state') && error instanceof Error && error.message.includes('have-local-offer')) throw glare()
        throw error
      })
      await this.#fillSlots(participant, false)
      return { sdp: answer, subscriptions: subscriptionsOf(participant) }
    })
  }

  /**
   * A member's signaling dropped (`false`) or resumed (`true`); its peer goes on meanwhile. A server
   * offer it could not receive waits without a deadline and is sent again when it is back.
   */
  signalingChanged(participant: Participant, connected: boolean): void {
    if (connected) this.#serverOffers.reconnected(participant)
    else this.#serverOffers.disconnected(participant)
  }

  /**
   * A member's answer to the server's offer (`serverOffers`): the m-lines it accepted are filled and
   * `subscriptions-changed` tells it with what. Rejects with `invalid_state` when no offer waits.
   */
  answer(participant: Participant, sdp: string): Promise<void> {
    assertActive(participant)
    return this.#serverOffers.answer(participant, sdp)
  }

  /** `participant` always wants the cameras of `participantIds` (replacing earlier pins). */
  pin(participant: Participant, participantIds: readonly ParticipantId[]): Promise<void> {
    assertActive(participant)
    this.#adaptive.pin(participant, participantIds)
    return Promise.resolve()
  }

  /**
   * A member draws the remote video `trackId` at `width` x `height` device pixels: it is sent the
   * simulcast layer that fits that height. Serialized per participant, after any negotiation.
   * Rejects with `track_not_found` (no such track in the room) or `not_subscribed` (not received).
   */
  setPreferredSize(participant: Participant, trackId: TrackId, width: number, height: number): Promise<void> {
    return participant.queue.run(async () => {
      assertActive(participant)
      const received = [...participant.received.values()].find(({ track }) => track.id === trackId)
      if (received === undefined) {
        const exists = [...participant.room.tracks.values()].some((track) => track.id === trackId)
        if (!exists) throw new AppError('track_not_found', `${trackId} is not a track of this room`)
        throw new AppError('not_subscribed', `${trackId} is not received by this participant`)
      }
      const peerId = participant.peerId
      if (peerId === undefined) throw new AppError('invalid_state', 'send an offer first')
      // Height decides: the engine's layers are described by their height, and a landscape
      // picture drawn narrower than its box is still as tall as the box.
      await this.#media.setLayerPreference(peerId, received.track.engineId, { maxHeight: height })
      this.#log.debug('preferred size set', { participantId: participant.id, trackId, width, height })
    })
  }

  /** WHIP: a publisher's offer. The publisher is announced once its offer is answered. */
  async publish(roomId: RoomId, sdp: string, name: string, { id, resourceId, sink, announce = true }: SessionOptions = {}): Promise<OpenedSession> {
    const participant = this.#admit(roomId, 'whip', name, sink, id, resourceId)
    try {
      const answer = await participant.queue.run(() => this.#applyOffer(participant, sdp))
      // Runs before the offer's track-published events: the engine replies before it reports.
      if (announce) this.#announce(participant)
      this.#log.info('whip session opened', { roomId, participantId: participant.id, peerId: participant.peerId })
      return { participant, sdp: answer }
    } catch (error) {
      await this.leave(participant, 'offer_failed')
      throw error
    }
  }

  /** WHEP: a viewer's offer. Its receive m-lines are filled with the room's tracks, now and later. */
  async view(roomId: RoomId, sdp: string, { id, resourceId, sink }: SessionOptions = {}): Promise<OpenedSession> {
    const participant = this.#admit(roomId, 'whep', 'WHEP viewer', sink, id, resourceId)
    try {
      const answer = await participant.queue.run(async () => {
        const answer = await this.#applyOffer(participant, sdp)
        await this.#fillSlots(participant)
        return answer
      })
      this.#log.info('whep session opened', {
        roomId,
        participantId: participant.id,
        peerId: participant.peerId,
        subscriptions: participant.received.size,
      })
      return { participant, sdp: answer }
    } catch (error) {
      await this.leave(participant, 'offer_failed')
      throw error
    }
  }

  /** The WHIP or WHEP session at `resourceId` in `roomId`, if it is still open. */
  findSession(kind: 'whip' | 'whep', roomId: RoomId, resourceId: string): Participant | undefined {
    const participant = this.#bySession.get(resourceId)
    if (participant === undefined || participant.kind !== kind || participant.room.id !== roomId) return undefined
    return participant
  }

  /**
   * Removes the participant and everything it had: its tracks end for the room, its subscribers
   * are unsubscribed, its peer is closed. Idempotent; settles once the peer is closed.
   */
  leave(participant: Participant, reason: string): Promise<void> {
    if (participant.closed !== undefined) return participant.closed
    const room = participant.room
    participant.state = 'left'
    room.participants.delete(participant.id)
    this.#bySession.delete(participant.resourceId)
    for (const engineId of participant.published) {
      const track = room.tracks.get(engineId)
      if (track !== undefined) this.#endTrack(track)
    }
    participant.received.clear()
    this.#adaptive.left(participant)
    this.#serverOffers.forget(participant)
    if (participant.announced) room.broadcast({ type: 'participant-left', participantId: participant.id })
    if (room.participants.size === 0 && this.#rooms.get(room.id) === room) {
      this.#rooms.delete(room.id)
      this.#onRoomChange?.(room.id, 'closed')
    }
    this.#log.info('participant left', { roomId: room.id, participantId: participant.id, peerId: participant.peerId, reason })

    participant.closed = participant.queue.run(async () => {
      const peerId = participant.peerId
      if (peerId === undefined) return
      try {
        await this.#media.closePeer(peerId)
      } catch (error) {
        if (!hasCode(error, 'peer_not_found', 'worker_closed')) this.#log.warn('closing a peer failed', { peerId, err: error })
      } finally {
        this.#byPeer.delete(peerId)
      }
    })
    return participant.closed
  }

  /**
   * Adds a track another node publishes, imported into this node's engine, to the local room: its
   * members hear of it and receive it as any other. Undefined when no participant of the room is
   * here (any more).
   */
  addImportedTrack(roomId: RoomId, spec: ImportedTrackSpec): PublishedTrack | undefined {
    const room = this.#rooms.get(roomId)
    if (room === undefined) return undefined
    // Never a member of the room here: it only owns what was imported (one stand-in for all its tracks).
    const owner =
      [...room.tracks.values()].find((other) => other.imported && other.owner.id === spec.owner.id)?.owner ??
      new Participant(room, 'remote', spec.owner.name, undefined, spec.owner.id)
    const track = new PublishedTrack(spec.engineId, spec.id, spec.kind, owner, spec.source)
    track.imported = true
    track.muted = spec.muted
    room.tracks.set(track.engineId, track)
    room.broadcast({ type: 'track-published', track: track.info() })
    this.#onTrackChange?.(track, 'published')
    this.#log.info('imported track added', { roomId, trackId: track.id, participantId: owner.id, kind: track.kind })
    for (const viewer of room.participants.values()) {
      if (!fillsItself(viewer)) continue
      viewer.queue
        .run(() => this.#fillSlots(viewer))
        .catch((error: unknown) => this.#log.warn('subscribing a viewer failed', { participantId: viewer.id, err: error }))
    }
    return track
  }

  /** Ends an imported track here (its node ended it, or stopped sending it); false when it was not here. */
  endImportedTrack(roomId: RoomId, engineId: EngineTrackId): boolean {
    const room = this.#rooms.get(roomId)
    const track = room?.tracks.get(engineId)
    if (room === undefined || track === undefined || !track.imported) return false
    this.#endTrack(track)
    const owner = track.owner
    if (![...room.tracks.values()].some((other) => other.owner === owner)) {
      // Its last track here: as far as this node's speakers go, it left.
      owner.state = 'left'
      this.#adaptive.left(owner)
    }
    return true
  }

  /** The imported track with this engine id, in whichever room holds it. */
  #importedTrack(engineId: EngineTrackId): PublishedTrack | undefined {
    for (const room of this.#rooms.values()) {
      const track = room.tracks.get(engineId)
      if (track?.imported) return track
    }
    return undefined
  }

  room(roomId: RoomId): Room | undefined {
    return this.#rooms.get(roomId)
  }

  get roomCount(): number {
    return this.#rooms.size
  }

  /** Everyone leaves; settles when every peer is closed. */
  async close(): Promise<void> {
    this.#stopListening()
    this.#adaptive.close()
    const everyone = [...this.#rooms.values()].flatMap((room) => [...room.participants.values()])
    await Promise.all(everyone.map((participant) => this.leave(participant, 'server_closing')))
  }

  /**
   * Stops forwarding `track` to anyone, now and later; its receivers' m-lines are freed. Nothing is
   * said to the members: the caller tells them. False when the room has no such track.
   */
  muteTrack(roomId: RoomId, trackId: TrackId): boolean {
    const track = [...(this.#rooms.get(roomId)?.tracks.values() ?? [])].find((candidate) => candidate.id === trackId)
    if (track === undefined) return false
    if (track.muted) return true
    track.muted = true
    this.#dropReceivers(track)
    this.#log.info('track muted', { roomId, trackId, participantId: track.owner.id })
    return true
  }

  /**
   * Lets a muted track be forwarded again: members get it on their next offer, WHEP viewers at once.
   * False when the room has no such track.
   */
  unmuteTrack(roomId: RoomId, trackId: TrackId): boolean {
    const room = this.#rooms.get(roomId)
    const track = [...(room?.tracks.values() ?? [])].find((candidate) => candidate.id === trackId)
    if (room === undefined || track === undefined) return false
    track.muted = false
    for (const viewer of room.participants.values()) {
      if (!fillsItself(viewer)) continue
      viewer.queue
        .run(() => this.#fillSlots(viewer))
        .catch((error: unknown) => this.#log.warn('subscribing a viewer failed', { participantId: viewer.id, err: error }))
    }
    this.#log.info('track unmuted', { roomId, trackId, participantId: track.owner.id })
    return true
  }

  /** Whether `participant` may receive tracks; when it may not, everything it receives stops. */
  setCanSubscribe(participant: Participant, canSubscribe: boolean): Promise<void> {
    participant.canSubscribe = canSubscribe
    if (canSubscribe) return Promise.resolve()
    return participant.queue.run(async () => {
      const peerId = participant.peerId
      const received = [...participant.received.values()]
      participant.received.clear()
      if (peerId === undefined) return
      for (const { track } of received) await this.#unsubscribe(peerId, track)
    })
  }

  /**
   * Moves the participant's media into `partition` (0 is the main room): it then hears and is
   * heard only by participants of that partition, with no renegotiation. A peer made later (by
   * the first offer) starts in it. Serialized per participant.
   */
  setPartition(participant: Participant, partition: number): Promise<void> {
    return participant.queue.run(async () => {
      if (participant.partition === partition) return
      participant.partition = partition
      if (participant.peerId !== undefined && participant.state === 'active') await this.#media.setPartition(participant.peerId, partition)
    })
  }

  #admit(roomId: RoomId, kind: ParticipantKind, name: string, sink: ParticipantSink | undefined, id?: ParticipantId, resourceId?: string): Participant {
    let room = this.#rooms.get(roomId)
    const opened = room === undefined
    if (room === undefined) {
      room = new Room(roomId)
      this.#rooms.set(roomId, room)
    }
    const participant = new Participant(room, kind, name, sink, id, resourceId)
    room.participants.set(participant.id, participant)
    if (kind !== 'member') this.#bySession.set(participant.resourceId, participant)
    if (opened) this.#onRoomChange?.(roomId, 'opened')
    return participant
  }

  #announce(participant: Participant): void {
    if (participant.state !== 'active') return
    participant.announced = true
    participant.room.broadcast({ type: 'participant-joined', participant: participant.info() }, participant)
  }

  /** Creates the peer on the first offer. Call inside the participant's queue. */
  async #applyOffer(participant: Participant, sdp: string): Promise<string> {
    assertActive(participant)
    if (participant.peerId === undefined) {
      const peerId = await this.#media.createPeer()
      // Registered before any await: the peer's events can only come after this.
      participant.peerId = peerId
      this.#byPeer.set(peerId, participant)
      assertActive(participant)
      if (participant.partition !== 0) await this.#media.setPartition(peerId, participant.partition)
    }
    const answer = await this.#media.applyOffer(participant.peerId, sdp)
    assertActive(participant)
    return answer
  }

  /**
   * Subscribes the participant to every track of its room it does not receive yet, as long as it
   * has free receive m-lines of the track's kind. Never throws. Call inside the participant's queue.
   * A member with server offers is offered the m-lines it lacks and, unless `notify` is false (an
   * answer reply says it), told what it receives when that changed.
   */
  async #fillSlots(participant: Participant, notify = true): Promise<void> {
    const peerId = participant.peerId
    if (peerId === undefined || !participant.canSubscribe) return
    const before = subscriptionKey(participant)
    const missing = await this.#subscribeAll(participant, peerId)
    if (!participant.serverOffers || participant.state !== 'active') return
    if (missing.length > 0) this.#serverOffers.wants(participant, missing)
    if (notify && subscriptionKey(participant) !== before) {
      participant.sink?.send({ type: 'subscriptions-changed', subscriptions: subscriptionsOf(participant) })
    }
  }

  /** `#fillSlots` without the telling; resolves with the kinds of the receive m-lines it lacks, one per track. */
  async #subscribeAll(participant: Participant, peerId: PeerId): Promise<MediaKind[]> {
    const full = new Set<MediaKind>()
    const missing: MediaKind[] = []
    for (const track of [...participant.room.tracks.values()]) {
      if (participant.state !== 'active') return missing
      if (track.owner === participant || track.muted || participant.received.has(track.engineId)) continue
      if (full.has(track.kind)) {
        missing.push(track.kind)
        continue
      }
      try {
        const { mid } = await this.#media.subscribe(peerId, track.engineId)
        if (participant.state !== 'active') return missing
        if (participant.room.tracks.get(track.engineId) !== track) {
          // The track ended while we subscribed; its end already went by without us.
          await this.#unsubscribe(peerId, track)
          continue
        }
        participant.received.set(track.engineId, { track, mid })
        await this.#adaptive.subscribed(participant, track)
      } catch (error) {
        if (hasCode(error, 'no_free_slot')) {
          full.add(track.kind)
          missing.push(track.kind)
        } else if (!hasCode(error, 'track_not_found', 'already_subscribed')) {
          // The offer is already applied: the answer must still go out, with what we have.
          this.#log.warn('subscribing failed', { participantId: participant.id, trackId: track.id, err: error })
          return missing
        }
      }
    }
    return missing
  }

  async #unsubscribe(peerId: PeerId, track: PublishedTrack): Promise<void> {
    try {
      await this.#media.unsubscribe(peerId, track.engineId)
    } catch (error) {
      // The engine drops a subscription by itself when the track or the peer goes.
      if (!hasCode(error, 'not_subscribed', 'track_not_found', 'peer_not_found', 'worker_closed')) throw error
    }
  }

  #endTrack(track: PublishedTrack): void {
    const room = track.owner.room
    if (room.tracks.get(track.engineId) !== track) return
    room.tracks.delete(track.engineId)
    track.owner.published.delete(track.engineId)
    room.broadcast({ type: 'track-ended', trackId: track.id }, track.owner)
    this.#adaptive.trackEnded(track)
    this.#dropReceivers(track)
    this.#log.info('track ended', { roomId: room.id, trackId: track.id, participantId: track.owner.id })
    this.#onTrackChange?.(track, 'ended')
  }

  /** Unsubscribes every receiver of `track`; a viewer's freed m-line takes another track. */
  #dropReceivers(track: PublishedTrack): void {
    for (const participant of track.owner.room.participants.values()) {
      if (participant.received.get(track.engineId)?.track !== track) continue
      participant.received.delete(track.engineId)
      participant.queue
        .run(async () => {
          if (participant.peerId === undefined || participant.state !== 'active') return
          await this.#unsubscribe(participant.peerId, track)
          // A viewer's freed m-line can carry a track it could not receive before.
          if (fillsItself(participant)) await this.#fillSlots(participant)
        })
        .catch((error: unknown) => this.#log.warn('unsubscribing failed', { participantId: participant.id, err: error }))
    }
  }

  #handleMediaEvent(event: MediaEvent): void {
    switch (event.type) {
      case 'track-published': {
        const owner = this.#byPeer.get(event.peerId)
        if (owner === undefined || owner.state !== 'active') {
          this.#log.debug('track of an unknown or departed peer ignored', { peerId: event.peerId, engineTrackId: event.trackId })
          return
        }
        const room = owner.room
        const source = owner.kind === 'whip' ? undefined : (owner.sources.get(event.mid) ?? defaultSource(event.kind))
        const track = new PublishedTrack(event.trackId, `track-${this.#trackIdPrefix}${event.trackId}` as TrackId, event.kind, owner, source)
        room.tracks.set(track.engineId, track)
        owner.published.add(track.engineId)
        this.#adaptive.trackPublished(track, event.mid)
        room.broadcast({ type: 'track-published', track: track.info() }, owner)
        this.#onTrackChange?.(track, 'published')
        this.#log.info('track published', { roomId: room.id, participantId: owner.id, peerId: event.peerId, trackId: track.id, kind: track.kind })
        for (const viewer of room.participants.values()) {
          if (!fillsItself(viewer)) continue
          viewer.queue
            .run(() => this.#fillSlots(viewer))
            .catch((error: unknown) => this.#log.warn('subscribing a viewer failed', { participantId: viewer.id, err: error }))
        }
        return
      }
      case 'track-ended': {
        const owner = this.#byPeer.get(event.peerId)
        const track = owner?.room.tracks.get(event.trackId)
        if (track !== undefined && track.owner === owner) this.#endTrack(track)
        return
      }
      case 'peer-disconnected': {
        const participant = this.#byPeer.get(event.peerId)
        if (participant === undefined || participant.state !== 'active') return
        this.#log.info('peer disconnected', { peerId: event.peerId, participantId: participant.id, reason: event.reason })
        participant.sink?.end(event.reason)
        void this.leave(participant, event.reason)
        return
      }
      case 'peer-connected':
        this.#log.info('peer connected', {
          peerId: event.peerId,
          participantId: this.#byPeer.get(event.peerId)?.id,
          remote: redactAddress(event.remote),
        })
        return
      case 'keyframe-requested':
        this.#log.debug('keyframe requested', { engineTrackId: event.trackId, by: event.by })
        return
      case 'layer-switched':
        this.#log.debug('layer switched', { peerId: event.peerId, engineTrackId: event.trackId, layer: event.layer })
        return
      case 'speaking-changed': {
        const owner = this.#byPeer.get(event.peerId) ?? this.#importedTrack(event.trackId)?.owner
        if (owner !== undefined && owner.state === 'active') this.#adaptive.speakingChanged(owner, event.speaking)
        return
      }
      case 'layers-needed': {
        const track = this.#byPeer.get(event.peerId)?.room.tracks.get(event.trackId)
        if (track !== undefined) this.#adaptive.layersNeeded(track, event.active)
        return
      }
      case 'worker-restarted':
        this.#log.error('media worker restarted; every peer was lost', { reason: event.reason })
        return
      default:
        return assertNever(event)
    }
  }
}

function defaultSource(kind: MediaKind): TrackSource {
  return kind === 'audio' ? 'microphone' : 'camera'
}

/** Viewers and members with server offers get m-lines filled by the room; other members offer for them. */
function fillsItself(participant: Participant): boolean {
  return participant.kind === 'whep' || participant.serverOffers
}

/** What `participant` receives, comparable: tells whether a fill changed it. */
function subscriptionKey(participant: Participant): string {
  return [...participant.received.values()].map(({ track, mid }) => `${mid}=${track.id}`).sort().join(',')
}

/** Every track `participant` receives, by receive m-line. */
export function subscriptionsOf(participant: Participant): SubscriptionInfo[] {
  return [...participant.received.values()].map(({ track, mid }) => ({ mid, ...track.info() }))
}

function assertActive(participant: Participant): void {
  if (participant.state !== 'active') throw new AppError('invalid_state', 'the participant has left')
}

function assertNever(value: never): never {
  throw new Error(`unhandled media event ${JSON.stringify(value)}`)
}
