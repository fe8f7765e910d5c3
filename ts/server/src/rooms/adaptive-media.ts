// Adaptive media policy per room: each room's active speaker (from the engine's voice activity),
// subscription priorities (screen shares, then the active speaker's and pinned cameras, then the
// rest; with video last-N, cameras of those who have not spoken lately and are not pinned pause)
// and dynacast (a publisher is
// told which simulcast encodings to send). The engine does the packets.

import type { ParticipantId } from '@conclave/protocol'
import { hasCode } from '../app-error.js'
import type { Logger } from '../log.js'
import type { EngineTrackId, MediaEngine } from '../media/media-engine.js'
import { ActiveSpeakerDetector, type ActiveSpeakerOptions } from './active-speaker.js'
import type { Participant, PublishedTrack } from './participant.js'
import type { Room } from './room.js'

/** Subscription priorities the engine's allocator serves, highest first; `paused` is never sent. */
export const PRIORITY = { screen: 3, activeSpeaker: 2, normal: 1, paused: 0 } as const

export interface AdaptiveMediaOptions {
  media: MediaEngine
  log: Logger
  activeSpeaker?: ActiveSpeakerOptions
  /** The clock, in ms; tests pass their own. */
  now?: () => number
  /**
   * Video last-N: each participant receives the cameras of only the `lastN` who spoke most
   * recently (and every screen share). Default 0: every camera.
   */
  lastN?: number
}

interface RoomSpeakers {
  detector: ActiveSpeakerDetector
  timer: ReturnType<typeof setTimeout> | undefined
  /** Who started speaking most recently first. */
  recent: ParticipantId[]
}

export class AdaptiveMedia {
  readonly #media: MediaEngine
  readonly #log: Logger
  readonly #speakerOptions: ActiveSpeakerOptions
  readonly #now: () => number
  readonly #speakers = new Map<Room, RoomSpeakers>()
  /** The publisher's m-line of each track (dynacast names it to the publisher's client). */
  readonly #mids = new Map<EngineTrackId, string>()
  readonly #lastN: number
  /** Whose cameras each participant pinned: always sent, ranked with the active speaker's. */
  readonly #pins = new WeakMap<Participant, ReadonlySet<ParticipantId>>()
  /** The priority each participant's subscriptions were last given (absent: the engine's default, normal). */
  readonly #given = new WeakMap<Participant, Map<EngineTrackId, number>>()

  constructor({ media, log, activeSpeaker = {}, now = Date.now, lastN = 0 }: AdaptiveMediaOptions) {
    this.#media = media
    this.#log = log
    this.#speakerOptions = activeSpeaker
    this.#now = now
    this.#lastN = lastN
  }

  /** The room's active speaker, if anyone took the floor. */
  activeSpeaker(room: Room): ParticipantId | undefined {
    return this.#speakers.get(room)?.detector.current
  }

  /** How `track` ranks for `viewer` now. */
  priorityFor(viewer: Participant, track: PublishedTrack): number {
    if (track.kind !== 'video') return PRIORITY.normal
    if (track.source === 'screen') return PRIORITY.screen
    if (this.#pins.get(viewer)?.has(track.owner.id) === true) return PRIORITY.activeSpeaker
    if (this.#lastN > 0 && !this.#lastSpeakersFor(viewer).has(track.owner.id)) return PRIORITY.paused
    if (this.activeSpeaker(track.owner.room) === track.owner.id) return PRIORITY.activeSpeaker
    return PRIORITY.normal
  }

  /**
   * Whose cameras `viewer` sees under last-N: the `lastN` others who started speaking most
   * recently, topped up with other camera owners in room order while fewer have spoken.
   */
  #lastSpeakersFor(viewer: Participant): Set<ParticipantId> {
    const room = viewer.room
    const chosen = new Set<ParticipantId>()
    const cameraOwners = [...room.tracks.values()].filter((track) => track.kind === 'video' && track.source !== 'screen').map((track) => track.owner.id)
    for (const id of [...(this.#speakers.get(room)?.recent ?? []), ...cameraOwners]) {
      if (chosen.size >= this.#lastN) break
      if (id !== viewer.id && room.participants.has(id)) chosen.add(id)
    }
    return chosen
  }

  /** `viewer` pins the cameras of `participantIds`, replacing its earlier pins. */
  pin(viewer: Participant, participantIds: readonly ParticipantId[]): void {
    this.#pins.set(viewer, new Set(participantIds))
    this.#reprioritizeFor(viewer)
  }

  trackPublished(track: PublishedTrack, mid: string): void {
    this.#mids.set(track.engineId, mid)
  }

  trackEnded(track: PublishedTrack): void {
    this.#mids.delete(track.engineId)
  }

  /** `participant` now receives `track`: give it its priority. Call inside the participant's queue. */
  async subscribed(participant: Participant, track: PublishedTrack): Promise<void> {
    this.#given.get(participant)?.delete(track.engineId)
    await this.#setPriority(participant, track, this.priorityFor(participant, track))
  }

  /** Dynacast: the engine says which encodings of `track` are needed; its publisher's client applies it. */
  layersNeeded(track: PublishedTrack, active: boolean[]): void {
    const mid = this.#mids.get(track.engineId)
    if (mid === undefined || track.owner.state !== 'active') return
    track.owner.sink?.send({ type: 'set-encodings', trackId: track.id, mid, active })
    this.#log.debug('encodings set', { participantId: track.owner.id, trackId: track.id, active })
  }

  /** The engine's voice activity for one of `participant`'s audio tracks. */
  speakingChanged(participant: Participant, speaking: boolean): void {
    const speakers = this.#roomSpeakers(participant.room)
    speakers.detector.setSpeaking(participant.id, speaking, this.#now())
    if (speaking && speakers.recent[0] !== participant.id) {
      const wasAmongLast = speakers.recent.indexOf(participant.id)
      speakers.recent = [participant.id, ...speakers.recent.filter((id) => id !== participant.id)].slice(0, 64)
      // A new face among the last N changes who sees whose camera.
      if (this.#lastN > 0 && (wasAmongLast < 0 || wasAmongLast >= this.#lastN)) this.#reprioritize(participant.room)
    }
    this.#decide(participant.room, speakers)
  }

  left(participant: Participant): void {
    const room = participant.room
    const speakers = this.#speakers.get(room)
    if (speakers === undefined) return
    const wasActive = speakers.detector.current === participant.id
    speakers.detector.remove(participant.id)
    speakers.recent = speakers.recent.filter((id) => id !== participant.id)
    if (this.#lastN > 0) this.#reprioritize(room)
    if (room.participants.size === 0) {
      clearTimeout(speakers.timer)
      this.#speakers.delete(room)
      return
    }
    if (wasActive) room.broadcast({ type: 'active-speaker' })
    this.#decide(room, speakers)
  }

  close(): void {
    for (const speakers of this.#speakers.values()) clearTimeout(speakers.timer)
    this.#speakers.clear()
  }

  #roomSpeakers(room: Room): RoomSpeakers {
    let speakers = this.#speakers.get(room)
    if (speakers === undefined) {
      speakers = { detector: new ActiveSpeakerDetector(this.#speakerOptions), timer: undefined, recent: [] }
      this.#speakers.set(room, speakers)
    }
    return speakers
  }

  #decide(room: Room, speakers: RoomSpeakers): void {
    const previous = speakers.detector.current
    if (speakers.detector.decide(this.#now())) this.#speakerChanged(room, previous, speakers.detector.current)
    clearTimeout(speakers.timer)
    speakers.timer = undefined
    const next = speakers.detector.nextDecisionAt()
    if (next === undefined) return
    speakers.timer = setTimeout(() => this.#decide(room, speakers), Math.max(0, next - this.#now()))
    speakers.timer.unref()
  }

  #speakerChanged(room: Room, previous: ParticipantId | undefined, current: ParticipantId | undefined): void {
    this.#log.debug('active speaker changed', { roomId: room.id, participantId: current })
    room.broadcast(current === undefined ? { type: 'active-speaker' } : { type: 'active-speaker', participantId: current })
    // The floor's camera rises for every subscriber; the previous speaker's falls back.
    this.#reprioritize(room, (track) => track.owner.id === previous || track.owner.id === current)
  }

  /** Gives every camera subscription in `room` (those `which` selects) its priority now. */
  #reprioritize(room: Room, which: (track: PublishedTrack) => boolean = () => true): void {
    for (const participant of room.participants.values()) this.#reprioritizeFor(participant, which)
  }

  /** Gives each camera subscription of `participant` (those `which` selects) its priority now. */
  #reprioritizeFor(participant: Participant, which: (track: PublishedTrack) => boolean = () => true): void {
    for (const { track } of participant.received.values()) {
      if (track.kind !== 'video' || track.source === 'screen' || !which(track)) continue
      const priority = this.priorityFor(participant, track)
      if ((this.#given.get(participant)?.get(track.engineId) ?? PRIORITY.normal) === priority) continue
      participant.queue
        .run(() => this.#setPriority(participant, track, priority))
        .catch((error: unknown) => this.#log.warn('setting a priority failed', { participantId: participant.id, err: error }))
    }
  }

  /** Sets a priority unless the engine already has it. Call inside the participant's queue. */
  async #setPriority(participant: Participant, track: PublishedTrack, priority: number): Promise<void> {
    const peerId = participant.peerId
    if (peerId === undefined || participant.state !== 'active') return
    let given = this.#given.get(participant)
    if ((given?.get(track.engineId) ?? PRIORITY.normal) === priority) return
    try {
      await this.#media.setPriority(peerId, track.engineId, priority)
      if (given === undefined) {
        given = new Map()
        this.#given.set(participant, given)
      }
      given.set(track.engineId, priority)
    } catch (error) {
      // The subscription may have ended meanwhile; the engine dropped it by itself.
      if (!hasCode(error, 'not_subscribed', 'peer_not_found', 'track_not_found', 'worker_closed')) throw error
    }
  }
}
