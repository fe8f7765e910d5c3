// The meeting: admission (tokens' rooms, removed identities, locks, the waiting room), roles and
// grants enforced on every action, chat, hands, and what hosts do to others. State lives in the
// RoomStore; every change is published on the EventBus and every node (this one too) applies it
// to the members it holds. Media stays with RoomService on the node that holds the peer.

import {
  type BreakoutGroupId,
  type BreakoutGroupRequest,
  type Breakouts,
  type ChatMessage,
  CLOSE_CODES,
  type CreateRoomRequest,
  type Grants,
  type ParticipantId,
  type ParticipantInfo,
  type RecordingDetails,
  type RecordingId,
  type RecordingInfo,
  type RecordingMode,
  type Role,
  type RoomId,
  type RoomInfo,
  type RoomSnapshot,
  type ServerEvent,
  type SubscriptionInfo,
  type TrackId,
  type TrackSource,
  type WaitingParticipant,
  isModerator,
} from '@conclave/protocol'
import { AppError } from '../app-error.js'
import { type Principal, authorizeRoom } from '../auth/authenticator.js'
import type { ClusterEvent, EventBus } from '../cluster/event-bus.js'
import type { Logger } from '../log.js'
import type { RecordingControl } from '../recording/recording-service.js'
import type { AddOutcome, ParticipantPatch, ParticipantRecord, RoomRecord, RoomStore } from '../state/room-store.js'
import { type TurnOptions, turnIceServers } from '../turn/turn-credentials.js'
import { BreakoutControl, chatAudience, partitionOf, sameBreakoutGroup } from './breakouts.js'
import { LEASE_EXPIRED, announceExpiredLeases } from './lease-expiry.js'
import { sendingSections } from './offer-sections.js'
import { type Participant, type PublishedTrack, newParticipantId } from './participant.js'
import { hashResumeId, newResumeId, resumeIdMatches } from './resume-id.js'
import { type Negotiated, type RoomService, subscriptionsOf } from './room-service.js'
import { SerialQueue } from './serial-queue.js'
import { endImportsOf, takeOverSession } from './session-migration.js'
import { StreamSessions } from './stream-sessions.js'

/** A member's connection as the meeting needs it. */
export interface MemberChannel {
  send(event: ServerEvent): void
  /** The server ends the participation; the connection should close with `code`. */
  close(code: number, reason: string): void
}

/** Who asks for a moderator action: a participant (its role decides) or the REST API (may do all). */
export type Actor = { kind: 'api' } | { kind: 'participant'; participantId: ParticipantId }

export type JoinResult = { state: 'active'; snapshot: RoomSnapshot } | { state: 'waiting'; participantId: ParticipantId }

/** A resumed participation: the room now, and what each of its receive m-lines carries. */
export interface ResumeResult {
  snapshot: RoomSnapshot
  subscriptions: SubscriptionInfo[]
  /** `new`: the session moved here from another node; the client negotiates a new peer connection. */
  media?: 'new'
}

/** Where events for a member whose socket dropped go: nowhere; `resumed` carries the state instead. */
const DETACHED: MemberChannel = { send: () => undefined, close: () => undefined }

export interface MeetingServiceOptions {
  rooms: RoomService
  store: RoomStore
  bus: EventBus
  /** This server instance, as recorded on the participants it holds. */
  nodeId: string
  log: Logger
  /** How often this node renews its participants' leases, in ms. Default 10 000. */
  refreshIntervalMs?: number
  /** Whether a join may create its room. Default true. */
  joinCreatesRoom?: boolean
  /** TURN relays: each entering member gets credentials for its identity. */
  turn?: TurnOptions
  /**
   * How long an active member whose socket closed without `leave` stays, reconnecting, for a
   * `resume` on this node, in ms; then it leaves. 0: it leaves at once. Default 15 000.
   */
  resumeGraceMs?: number
  /** Starts and stops recorders; without it recording requests get `recorder_unavailable`. */
  recordings?: RecordingControl
  now?: () => number
}

interface LocalMember {
  record: ParticipantRecord
  channel: MemberChannel
  /** Its media side, once active. */
  media: Participant | undefined
  /** Events held back until the reply to its join went out. */
  held: ServerEvent[] | undefined
  gone: boolean
  /** The secret its snapshot carries for `resume` (the store keeps only its hash). */
  resumeId: string
  /** While its socket is gone: the timer that ends the grace period. */
  graceTimer: NodeJS.Timeout | undefined
  /** It joined with `serverOffers`: it answers the server's offers. */
  serverOffers?: boolean
  /** Moved here from another node: sources a host had muted there, muted again when published here. */
  remute?: Set<TrackSource>
}

const OUTCOME_ERRORS: Record<Exclude<AddOutcome, 'added'>, [AppError['code'], string]> = {
  room_not_found: ['room_not_found', 'the room does not exist'],
  removed: ['participant_removed', 'you were removed from this room'],
  locked: ['room_locked', 'the room is locked'],
  full: ['room_full', 'the room is full'],
}

export class MeetingService {
  readonly #rooms: RoomService
  readonly #store: RoomStore
  readonly #bus: EventBus
  readonly #nodeId: string
  readonly #log: Logger
  readonly #joinCreatesRoom: boolean
  readonly #turn: TurnOptions | undefined
  readonly #resumeGraceMs: number
  readonly #now: () => number
  readonly #local = new Map<ParticipantId, LocalMember>()
  readonly #breakouts: BreakoutControl
  readonly #unsubscribe: () => void
  /** Cluster events are applied one at a time, in the order the bus delivered them. */
  readonly #applying = new SerialQueue()
  readonly #refresher: NodeJS.Timeout
  readonly #recordings: RecordingControl | undefined
  /** WHIP publishers and WHEP viewers, recorded and announced as participants. */
  readonly sessions: StreamSessions
  /**
   * The recordings in progress per room, oldest first, from the bus: any node's recorder, so late
   * joiners see the indicator. A composite and a per-track recording may run at once.
   */
  readonly #recordingsByRoom = new Map<RoomId, Map<RecordingId, RecordingInfo>>()

  constructor({ rooms, store, bus, nodeId, log, refreshIntervalMs = 10_000, joinCreatesRoom = true, turn, recordings, resumeGraceMs = 15_000, now = Date.now }: MeetingServiceOptions) {
    this.#resumeGraceMs = resumeGraceMs
    this.#recordings = recordings
    this.#rooms = rooms
    this.#store = store
    this.#bus = bus
    this.#breakouts = new BreakoutControl({ store, bus })
    this.#nodeId = nodeId
    this.#log = log
    this.#joinCreatesRoom = joinCreatesRoom
    this.#turn = turn
    this.#now = now
    this.#unsubscribe = bus.subscribe((event) => {
      this.#applying
        .run(() => this.#apply(event))
        .catch((error: unknown) => this.#log.error('applying a cluster event failed', { type: event.type, err: error }))
    })
    this.#refresher = setInterval(() => void this.#refreshLeases(), refreshIntervalMs)
    this.#refresher.unref()
    this.sessions = new StreamSessions({ rooms, store, bus, nodeId, log, refreshIntervalMs, createsRoom: joinCreatesRoom, now })
  }

  get nodeId(): string {
    return this.#nodeId
  }

  /** The media side of an active local member. */
  mediaOf(participantId: ParticipantId): Participant {
    return this.#active(participantId).media as Participant
  }

  /** The local member's record as this node last saw it. */
  member(participantId: ParticipantId): ParticipantRecord | undefined {
    return this.#local.get(participantId)?.record
  }

  /**
   * Admits `principal` to `roomId`: active at once, or waiting when the room has a waiting room and
   * it is a guest. Events for it are held until `release` is called (after the reply went out).
   */
  async join(
    principal: Principal,
    roomId: RoomId,
    requestedName: string | undefined,
    channel: MemberChannel,
    { serverOffers = false }: { serverOffers?: boolean } = {},
  ): Promise<JoinResult> {
    authorizeRoom(principal, roomId)
    const room = this.#joinCreatesRoom
      ? await this.#store.ensureRoom(this.#defaultRoom(roomId, false))
      : await this.#store.getRoom(roomId)
    if (room === undefined) throw new AppError('room_not_found', `there is no room ${roomId}`)
    const waits = room.waitingRoom && principal.role === 'guest' && !principal.grants.recorder
    const resumeId = newResumeId()
    const record: ParticipantRecord = {
      participantId: newParticipantId(),
      roomId,
      identity: principal.identity,
      name: principal.name ?? requestedName ?? 'Guest',
      role: principal.role,
      grants: principal.grants,
      state: waits ? 'waiting' : 'active',
      handRaised: false,
      kind: 'member',
      nodeId: this.#nodeId,
      joinedAt: this.#now(),
      tracks: [],
      resumeHash: hashResumeId(resumeId),
      connection: 'connected',
      ...(serverOffers ? { serverOffers: true } : {}),
    }
    const outcome = await this.#store.addParticipant(record, { bypassLock: principal.role === 'host' || principal.grants.recorder })
    if (outcome !== 'added') throw new AppError(...OUTCOME_ERRORS[outcome])
    const member: LocalMember = { record, channel, media: undefined, held: [], gone: false, resumeId, graceTimer: undefined, serverOffers }
    this.#local.set(record.participantId, member)
    this.#log.info('participant entered', { roomId, participantId: record.participantId, role: record.role, state: record.state })
    if (waits) {
      await this.#bus.publish({ type: 'waiting-room-changed', roomId })
      return { state: 'waiting', participantId: record.participantId }
    }
    return { state: 'active', snapshot: await this.#activate(member, room) }
  }

  /** The reply to the join went out: held events follow it. */
  release(participantId: ParticipantId): void {
    const member = this.#local.get(participantId)
    if (member === undefined || member.held === undefined) return
    const held = member.held
    member.held = undefined
    for (const event of held) member.channel.send(event)
  }

  /**
   * A member's socket closed without `leave`. An active member stays for the grace period,
   * reconnecting: its peer and subscriptions go on, the others see it as reconnecting, `resume`
   * takes it back; afterwards it leaves as with `leave`. A waiting member leaves at once. Ignored
   * unless `channel` is the member's current one (a resume may have replaced it).
   */
  async disconnected(participantId: ParticipantId, channel: MemberChannel): Promise<void> {
    const member = this.#local.get(participantId)
    if (member === undefined || member.gone || member.channel !== channel) return
    if (this.#resumeGraceMs <= 0 || member.record.state !== 'active' || member.media === undefined) {
      await this.leave(participantId, 'signaling_closed')
      return
    }
    member.channel = DETACHED
    member.held = undefined
    member.graceTimer = setTimeout(() => {
      this.#log.info('resume grace period over', { roomId: member.record.roomId, participantId })
      this.leave(participantId, 'resume_expired').catch((error: unknown) => this.#log.error('ending a session failed', { participantId, err: error }))
    }, this.#resumeGraceMs)
    member.graceTimer.unref()
    this.#log.info('participant reconnecting', { roomId: member.record.roomId, participantId, graceMs: this.#resumeGraceMs })
    this.#rooms.signalingChanged(member.media, false)
    await this.#setConnection(member, 'reconnecting')
  }

  /**
   * Takes back a session over a new connection. The token's identity must be the session's and
   * `resumeId` the one its snapshot carried. A session another node holds moves here with a new
   * peer (`media: 'new'`, see ./session-migration.ts); one held here keeps its peer.
   * Events for it are held until `release`, as after `join`.
   */
  async resume(principal: Principal, roomId: RoomId, participantId: ParticipantId, resumeId: string, channel: MemberChannel): Promise<ResumeResult> {
    authorizeRoom(principal, roomId)
    const member = this.#local.get(participantId)
    if (member === undefined || member.gone || member.record.roomId !== roomId) return this.#takeOver(principal, roomId, participantId, resumeId, channel)
    // Anonymous principals (open dev mode) get a new identity per socket: the resume id alone proves it.
    const sameIdentity = principal.anonymous || member.record.identity === principal.identity
    if (!resumeIdMatches(resumeId, member.record.resumeHash) || !sameIdentity) {
      throw new AppError('resume_failed', 'the resume id or identity does not match the session')
    }
    const room = await this.#store.getRoom(roomId)
    if (room === undefined || member.gone) throw new AppError('session_expired', 'the session is over; join again')
    if (member.record.state !== 'active' || member.media === undefined) throw new AppError('resume_failed', 'only admitted participants resume')
    clearTimeout(member.graceTimer)
    member.graceTimer = undefined
    const previous = member.channel
    member.channel = channel
    member.held = []
    // A half-open old socket the server has not noticed yet: the newer one wins.
    previous.close(CLOSE_CODES.replaced, 'resumed on another connection')
    const snapshot = await this.#snapshotOf(member, room)
    if (member.record.connection === 'reconnecting') await this.#setConnection(member, 'connected')
    // Held like every event until `release`, so it follows the `resumed` reply.
    this.#rooms.signalingChanged(member.media, true)
    this.#log.info('participant resumed', { roomId, participantId })
    return { snapshot, subscriptions: subscriptionsOf(member.media) }
  }

  /** `resume` of a session another node holds: it moves here, and its member gets a new peer. */
  async #takeOver(principal: Principal, roomId: RoomId, participantId: ParticipantId, resumeId: string, channel: MemberChannel): Promise<ResumeResult> {
    const room = await this.#store.getRoom(roomId)
    if (room === undefined) throw new AppError('session_expired', 'the session is over; join again')
    const { record, fromNode, mutedSources } = await takeOverSession(this.#store, this.#nodeId, principal, roomId, participantId, resumeId)
    const member: LocalMember = { record, channel, media: undefined, held: [], gone: false, resumeId, graceTimer: undefined, serverOffers: record.serverOffers === true }
    if (mutedSources.length > 0) member.remute = new Set(mutedSources)
    this.#local.set(participantId, member)
    try {
      // First, so the old node lets go before anything else about it reaches it.
      await this.#bus.publish({ type: 'participant-migrated', roomId, participantId, fromNode, toNode: this.#nodeId })
      endImportsOf(this.#rooms, roomId, participantId)
      const media = this.#attachMedia(member)
      await this.#rooms.setPartition(media, partitionOf(await this.#breakouts.get(roomId), participantId))
      const snapshot = await this.#snapshotOf(member, room)
      await this.#bus.publish({ type: 'participant-updated', roomId, participant: record })
      this.#log.info('participant resumed from another node', { roomId, participantId, fromNode })
      return { snapshot, subscriptions: [], media: 'new' }
    } catch (error) {
      // Half moved is no session: it ends here as with `leave`.
      await this.leave(participantId, 'resume_failed').catch(() => undefined)
      throw error
    }
  }

  async #setConnection(member: LocalMember, connection: 'connected' | 'reconnecting'): Promise<void> {
    const { roomId, participantId } = member.record
    member.record = { ...member.record, connection }
    const updated = await this.#store.updateParticipant(roomId, participantId, { connection })
    if (updated !== undefined && !member.gone) await this.#bus.publish({ type: 'participant-updated', roomId, participant: updated })
  }

  /** A local member leaves (its request, its socket closed, its media lost). Idempotent. */
  async leave(participantId: ParticipantId, reason: string): Promise<void> {
    const member = this.#local.get(participantId)
    if (member === undefined) return
    this.#forget(member)
    const media = member.media
    // Only while this node holds it: one that moved on meanwhile just lets its old peer go here.
    const removed = await this.#store.removeParticipant(member.record.roomId, participantId, { heldBy: this.#nodeId })
    if (removed !== undefined) {
      if (removed.state === 'waiting') await this.#bus.publish({ type: 'waiting-room-changed', roomId: removed.roomId })
      else await this.#bus.publish({ type: 'participant-left', roomId: removed.roomId, participant: removed, reason })
    }
    if (media !== undefined) await this.#rooms.leave(media, reason)
  }

  /** Applies an offer after checking what it sends against the grants. */
  async negotiate(participantId: ParticipantId, sdp: string, sources: Record<string, TrackSource> = {}): Promise<Negotiated> {
    const member = this.#active(participantId)
    const media = member.media as Participant
    const { grants } = member.record
    for (const { mid, kind } of sendingSections(sdp)) {
      const source = sources[mid] ?? (kind === 'audio' ? 'microphone' : 'camera')
      // A track published before a grant was narrowed stays in the offer; it was muted instead.
      const known = media.sources.get(mid)
      if (known !== undefined && known === source) continue
      if (!grants.canPublish) throw new AppError('forbidden', 'your grants do not allow publishing')
      if (!grants.canPublishSources.includes(source)) throw new AppError('forbidden', `your grants do not allow publishing ${source}`)
      media.sources.set(mid, source)
    }
    return this.#rooms.negotiate(media, sdp)
  }

  async chat(participantId: ParticipantId, text: string, to: ParticipantId | undefined): Promise<void> {
    const member = this.#active(participantId)
    if (!member.record.grants.canChat) throw new AppError('forbidden', 'your grants do not allow chat')
    const roomId = member.record.roomId
    if (to !== undefined) {
      const recipient = await this.#store.getParticipant(roomId, to)
      if (recipient === undefined || recipient.state !== 'active') throw new AppError('participant_not_found', `${to} is not in this room`)
    }
    // While breakouts run, chat (private messages too) stays inside the sender's group.
    const breakouts = await this.#breakouts.get(roomId)
    if (to !== undefined && !sameBreakoutGroup(breakouts, participantId, to)) throw new AppError('forbidden', `${to} is in another breakout group`)
    const message: ChatMessage = { from: participantId, fromName: member.record.name, text, sentAt: this.#now() }
    if (to !== undefined) message.to = to
    const audience = to === undefined ? chatAudience(breakouts, await this.#store.listParticipants(roomId), participantId) : undefined
    await this.#bus.publish({ type: 'chat-posted', roomId, message, ...(audience ? { audience } : {}) })
  }

  async setHand(actor: Actor, roomId: RoomId, participantId: ParticipantId, raised: boolean): Promise<void> {
    if (!(actor.kind === 'participant' && actor.participantId === participantId && this.#local.has(participantId))) {
      if (raised) throw new AppError('forbidden', 'only participants raise their own hand')
      await this.#authorizeModerator(actor, roomId)
    }
    await this.#update(roomId, participantId, { handRaised: raised })
  }

  /** Admits waiting participants (all of them when `participantIds` is undefined); returns how many. */
  async admit(actor: Actor, roomId: RoomId, participantIds?: readonly ParticipantId[]): Promise<number> {
    await this.#authorizeModerator(actor, roomId)
    let count = 0
    for (const id of await this.#waitingIds(roomId, participantIds)) {
      const admitted = await this.#store.updateParticipant(roomId, id, { state: 'active' }, 'waiting')
      if (admitted === undefined) continue
      count++
      await this.#bus.publish({ type: 'participant-admitted', roomId, participantId: id })
    }
    if (count > 0) await this.#bus.publish({ type: 'waiting-room-changed', roomId })
    return count
  }

  /** Turns waiting participants away (all of them when `participantIds` is undefined); returns how many. */
  async deny(actor: Actor, roomId: RoomId, participantIds?: readonly ParticipantId[]): Promise<number> {
    await this.#authorizeModerator(actor, roomId)
    let count = 0
    for (const id of await this.#waitingIds(roomId, participantIds)) {
      const waiting = await this.#store.getParticipant(roomId, id)
      if (waiting?.state !== 'waiting') continue
      const removed = await this.#store.removeParticipant(roomId, id)
      if (removed === undefined) continue
      count++
      await this.#bus.publish({ type: 'participant-denied', roomId, participant: removed })
    }
    if (count > 0) await this.#bus.publish({ type: 'waiting-room-changed', roomId })
    return count
  }

  /** Stops forwarding a participant's track (or all its tracks) to everyone; returns how many were muted. */
  async mute(actor: Actor, roomId: RoomId, participantId: ParticipantId, trackId?: TrackId): Promise<number> {
    const target = await this.#target(roomId, participantId)
    await this.#authorizeOver(actor, target)
    const tracks = target.tracks.filter((track) => (trackId === undefined || track.trackId === trackId) && !track.muted)
    if (trackId !== undefined && !target.tracks.some((track) => track.trackId === trackId)) {
      throw new AppError('track_not_found', `${trackId} is not published by ${participantId}`)
    }
    const by = actor.kind === 'participant' ? actor.participantId : undefined
    for (const track of tracks) await this.#bus.publish({ type: 'track-muted', roomId, participantId, trackId: track.trackId, by })
    return tracks.length
  }

  /** Mutes by track id alone, as a member asks. */
  async muteTrack(actor: Actor, roomId: RoomId, trackId: TrackId): Promise<void> {
    const owner = (await this.#store.listParticipants(roomId)).find((participant) => participant.tracks.some((track) => track.trackId === trackId))
    if (owner === undefined) throw new AppError('track_not_found', `${trackId} is not a track of this room`)
    await this.mute(actor, roomId, owner.participantId, trackId)
  }

  /** The owner forwards its muted track again, if its grants still allow the track's source. */
  async unmuteTrack(participantId: ParticipantId, trackId: TrackId): Promise<void> {
    const member = this.#active(participantId)
    const track = member.record.tracks.find((candidate) => candidate.trackId === trackId)
    if (track === undefined) throw new AppError('track_not_found', `${trackId} is not one of your tracks`)
    const { grants } = member.record
    if (!grants.canPublish || (track.source !== undefined && !grants.canPublishSources.includes(track.source))) {
      throw new AppError('forbidden', 'your grants do not allow publishing this track')
    }
    if (!track.muted) return
    await this.#bus.publish({ type: 'track-unmuted', roomId: member.record.roomId, participantId, trackId })
  }

  /** Removes a participant; its identity may not come back to this room. */
  async remove(actor: Actor, roomId: RoomId, participantId: ParticipantId): Promise<void> {
    const target = await this.#target(roomId, participantId)
    await this.#authorizeOver(actor, target)
    const removed = await this.#store.removeParticipant(roomId, participantId, { ban: true })
    if (removed === undefined) throw new AppError('participant_not_found', `${participantId} is not in this room`)
    const by = actor.kind === 'participant' ? actor.participantId : undefined
    await this.#bus.publish({ type: 'participant-removed', roomId, participant: removed, by })
    if (removed.state === 'waiting') await this.#bus.publish({ type: 'waiting-room-changed', roomId })
  }

  /** Changes role and grants. Only hosts (and the API) change roles; no one changes their own. */
  async updatePermissions(actor: Actor, roomId: RoomId, participantId: ParticipantId, change: { role?: Role; grants?: Partial<Grants> }): Promise<ParticipantRecord> {
    const target = await this.#target(roomId, participantId)
    if (actor.kind === 'participant') {
      const role = await this.#actorRole(actor, roomId)
      if (role !== 'host') throw new AppError('forbidden', 'only hosts change roles and grants')
      if (actor.participantId === participantId) throw new AppError('forbidden', 'hosts do not change their own role')
      if (change.role === 'host') throw new AppError('forbidden', 'a host cannot make another host')
    }
    const patch: ParticipantPatch = {}
    if (change.role !== undefined) patch.role = change.role
    if (change.grants !== undefined) patch.grants = { ...target.grants, ...change.grants }
    return this.#update(roomId, participantId, patch)
  }

  /** Hosts and cohosts (and the API) split the room into breakout groups (see ./breakouts.ts). */
  async createBreakouts(actor: Actor, roomId: RoomId, groups: readonly BreakoutGroupRequest[]): Promise<Breakouts> {
    await this.#authorizeModerator(actor, roomId)
    return this.#breakouts.create(roomId, groups)
  }

  /** Hosts and cohosts (and the API) move a participant into a group, or to the main room (null). */
  async moveToBreakout(actor: Actor, roomId: RoomId, participantId: ParticipantId, groupId: BreakoutGroupId | null): Promise<Breakouts> {
    await this.#authorizeModerator(actor, roomId)
    return this.#breakouts.move(roomId, participantId, groupId)
  }

  /** Hosts and cohosts (and the API) bring everyone back to the main room. */
  async endBreakouts(actor: Actor, roomId: RoomId): Promise<void> {
    await this.#authorizeModerator(actor, roomId)
    await this.#breakouts.end(roomId)
  }

  /** The breakouts running in the room, if any. */
  async breakoutsOf(roomId: RoomId): Promise<Breakouts | undefined> {
    await this.getRoom(roomId)
    return this.#breakouts.get(roomId)
  }

  /** Hosts and cohosts (and the API) start recording the room. */
  async startRecording(actor: Actor, roomId: RoomId, mode: RecordingMode = 'composite'): Promise<RecordingDetails> {
    await this.#authorizeModerator(actor, roomId)
    return this.#recordingControl().start(roomId, mode)
  }

  /** Hosts and cohosts (and the API) stop the room's active recording, or the one named. */
  async stopRecording(actor: Actor, roomId: RoomId, recordingId?: RecordingId): Promise<RecordingDetails> {
    await this.#authorizeModerator(actor, roomId)
    return this.#recordingControl().stop(roomId, recordingId)
  }

  /** The recording in progress in `roomId`, as participants see it. */
  recordingOf(roomId: RoomId): RecordingInfo | undefined {
    return [...(this.#recordingsByRoom.get(roomId)?.values() ?? [])].at(-1)
  }

  #recordingControl(): RecordingControl {
    if (this.#recordings === undefined) throw new AppError('recorder_unavailable', 'this server does not record')
    return this.#recordings
  }

  async setLocked(actor: Actor, roomId: RoomId, locked: boolean): Promise<RoomRecord> {
    await this.#authorizeModerator(actor, roomId)
    return this.updateRoom(roomId, { locked })
  }

  async updateRoom(roomId: RoomId, patch: { locked?: boolean; waitingRoom?: boolean }): Promise<RoomRecord> {
    const room = await this.#store.updateRoom(roomId, patch)
    if (room === undefined) throw new AppError('room_not_found', `there is no room ${roomId}`)
    await this.#bus.publish({ type: 'room-updated', roomId, room })
    return room
  }

  // The REST API's reads and room lifecycle.

  async createRoom({ room: id, ...options }: CreateRoomRequest): Promise<RoomRecord> {
    const record: RoomRecord = { ...this.#defaultRoom(id, true), ...options }
    if (options.maxParticipants === undefined) delete record.maxParticipants
    if (!(await this.#store.createRoom(record))) throw new AppError('room_exists', `the room ${id} exists`)
    return record
  }

  async getRoom(roomId: RoomId): Promise<RoomRecord> {
    const room = await this.#store.getRoom(roomId)
    if (room === undefined) throw new AppError('room_not_found', `there is no room ${roomId}`)
    return room
  }

  listRooms(): Promise<RoomRecord[]> {
    return this.#store.listRooms()
  }

  async listParticipants(roomId: RoomId): Promise<ParticipantRecord[]> {
    await this.getRoom(roomId)
    return this.#store.listParticipants(roomId)
  }

  async getParticipant(roomId: RoomId, participantId: ParticipantId): Promise<ParticipantRecord> {
    return this.#target(roomId, participantId)
  }

  async listWaiting(roomId: RoomId): Promise<WaitingParticipant[]> {
    await this.getRoom(roomId)
    return waitingOf(await this.#store.listParticipants(roomId))
  }

  async closeRoom(roomId: RoomId): Promise<void> {
    const participants = await this.#store.closeRoom(roomId)
    if (participants === undefined) throw new AppError('room_not_found', `there is no room ${roomId}`)
    await this.#bus.publish({ type: 'room-closed', roomId, participants })
  }

  /** Every local member leaves; the listener and the lease timer stop. */
  async close(): Promise<void> {
    clearInterval(this.#refresher)
    this.#unsubscribe()
    await Promise.all([...this.#local.keys()].map((id) => this.leave(id, 'server_closing').catch(() => undefined)))
    await this.sessions.close()
  }

  // Internals.

  #defaultRoom(id: RoomId, explicit: boolean): RoomRecord {
    return { id, waitingRoom: false, locked: false, emptyTimeoutSeconds: explicit ? 300 : 0, createdAt: this.#now(), explicit }
  }

  /** Gives an active member its media side and builds what it learns on entering. */
  async #activate(member: LocalMember, room: RoomRecord): Promise<RoomSnapshot> {
    this.#attachMedia(member)
    const snapshot = await this.#snapshotOf(member, room)
    if (!member.record.grants.hidden) await this.#bus.publish({ type: 'participant-joined', roomId: member.record.roomId, participant: member.record })
    return snapshot
  }

  /** Gives an active member its media side here (no peer until its first offer). */
  #attachMedia(member: LocalMember): Participant {
    const { record } = member
    const { participant: media } = this.#rooms.join(record.roomId, record.name, {
      send: (event) => this.#deliver(member, event),
      end: (reason) => {
        member.channel.close(CLOSE_CODES.mediaLost, reason)
        void this.leave(record.participantId, reason)
      },
    }, { id: record.participantId, announce: false, serverOffers: member.serverOffers === true })
    media.canSubscribe = record.grants.canSubscribe
    member.media = media
    return media
  }

  /** What an active member learns on entering (or resuming): the room as it is now. */
  async #snapshotOf(member: LocalMember, room: RoomRecord): Promise<RoomSnapshot> {
    const { record } = member
    const media = member.media as Participant
    const everyone = await this.#store.listParticipants(record.roomId)
    const snapshot: RoomSnapshot = {
      participantId: record.participantId,
      name: record.name,
      role: record.role,
      grants: record.grants,
      room: roomInfo(room),
      participants: everyone.filter((other) => other.participantId !== record.participantId && isListed(other)).map(participantInfo),
      tracks: media.room.snapshotFor(media).tracks,
    }
    if (isModerator(record.role)) snapshot.waiting = waitingOf(everyone)
    if (this.#turn) snapshot.iceServers = turnIceServers(this.#turn, record.identity, this.#now())
    const recordings = [...(this.#recordingsByRoom.get(record.roomId)?.values() ?? [])]
    const breakouts = await this.#breakouts.get(record.roomId)
    if (breakouts !== undefined) snapshot.breakouts = breakouts
    if (recordings.length > 0) {
      snapshot.recording = recordings.at(-1)
      snapshot.recordings = recordings
    }
    if (this.#resumeGraceMs > 0) snapshot.resumeId = member.resumeId
    return snapshot
  }

  #active(participantId: ParticipantId): LocalMember {
    const member = this.#local.get(participantId)
    if (member === undefined || member.gone) throw new AppError('invalid_state', 'join a room first')
    if (member.record.state !== 'active' || member.media === undefined) throw new AppError('invalid_state', 'wait until a host admits you')
    return member
  }

  async #target(roomId: RoomId, participantId: ParticipantId): Promise<ParticipantRecord> {
    const target = await this.#store.getParticipant(roomId, participantId)
    if (target === undefined) throw new AppError('participant_not_found', `${participantId} is not in room ${roomId}`)
    return target
  }

  async #actorRole(actor: Actor & { kind: 'participant' }, roomId: RoomId): Promise<Role> {
    const local = this.#local.get(actor.participantId)?.record
    const record = local ?? (await this.#store.getParticipant(roomId, actor.participantId))
    if (record === undefined || record.roomId !== roomId || record.state !== 'active') {
      throw new AppError('forbidden', 'you are not an active participant of this room')
    }
    return record.role
  }

  async #authorizeModerator(actor: Actor, roomId: RoomId): Promise<void> {
    if (actor.kind === 'api') {
      await this.getRoom(roomId)
      return
    }
    if (!isModerator(await this.#actorRole(actor, roomId))) throw new AppError('forbidden', 'only hosts and cohosts may do that')
  }

  /** Moderators act on others; a cohost never on a host. */
  async #authorizeOver(actor: Actor, target: ParticipantRecord): Promise<void> {
    if (actor.kind === 'api') return
    const role = await this.#actorRole(actor, target.roomId)
    if (!isModerator(role)) throw new AppError('forbidden', 'only hosts and cohosts may do that')
    if (role === 'cohost' && target.role === 'host') throw new AppError('forbidden', 'a cohost cannot act on a host')
  }

  async #update(roomId: RoomId, participantId: ParticipantId, patch: ParticipantPatch): Promise<ParticipantRecord> {
    const updated = await this.#store.updateParticipant(roomId, participantId, patch)
    if (updated === undefined) throw new AppError('participant_not_found', `${participantId} is not in room ${roomId}`)
    await this.#bus.publish({ type: 'participant-updated', roomId, participant: updated })
    return updated
  }

  async #waitingIds(roomId: RoomId, only: readonly ParticipantId[] | undefined): Promise<ParticipantId[]> {
    const waiting = (await this.#store.listParticipants(roomId)).filter((participant) => participant.state === 'waiting')
    const ids = waiting.map((participant) => participant.participantId)
    if (only === undefined) return ids
    for (const id of only) {
      if (!ids.includes(id)) throw new AppError('participant_not_found', `${id} is not in the waiting room`)
    }
    return [...only]
  }

  /** Keeps the store's record of a local member's tracks in step with its media. */
  trackChanged(track: PublishedTrack, change: 'published' | 'ended'): void {
    this.sessions.trackChanged(track, change)
    const member = this.#local.get(track.owner.id)
    if (member === undefined || member.gone) return
    const others = member.record.tracks.filter((known) => known.trackId !== track.id)
    const tracks =
      change === 'ended'
        ? others
        : [...others, { trackId: track.id, kind: track.kind, muted: track.muted, ...(track.source ? { source: track.source } : {}) }]
    member.record = { ...member.record, tracks }
    this.#store
      .updateParticipant(member.record.roomId, member.record.participantId, { tracks })
      .catch((error: unknown) => this.#log.warn('recording a track failed', { participantId: track.owner.id, err: error }))
    if (change === 'published' && track.source !== undefined && member.remute?.delete(track.source)) {
      const { roomId, participantId } = member.record
      this.#bus
        .publish({ type: 'track-muted', roomId, participantId, trackId: track.id, by: undefined })
        .catch((error: unknown) => this.#log.warn('muting a moved track again failed', { participantId, err: error }))
    }
  }

  #forget(member: LocalMember): void {
    member.gone = true
    clearTimeout(member.graceTimer)
    this.#local.delete(member.record.participantId)
  }

  #deliver(member: LocalMember, event: ServerEvent): void {
    if (member.gone) return
    if (member.held !== undefined) member.held.push(event)
    else member.channel.send(event)
  }

  #membersOf(roomId: RoomId): LocalMember[] {
    return [...this.#local.values()].filter((member) => member.record.roomId === roomId && !member.gone)
  }

  #activeMembersOf(roomId: RoomId): LocalMember[] {
    return this.#membersOf(roomId).filter((member) => member.record.state === 'active' && member.media !== undefined)
  }

  /** Ends a local member's participation from the server side. */
  async #kick(member: LocalMember, event: ServerEvent, code: number, reason: string): Promise<void> {
    this.#deliver(member, event)
    this.#forget(member)
    member.channel.close(code, reason)
    if (member.media !== undefined) await this.#rooms.leave(member.media, reason)
  }

  async #apply(event: ClusterEvent): Promise<void> {
    switch (event.type) {
      case 'participant-joined': {
        if (!isListed(event.participant)) return
        for (const member of this.#activeMembersOf(event.roomId)) {
          if (member.record.participantId !== event.participant.participantId) {
            this.#deliver(member, { type: 'participant-joined', participant: participantInfo(event.participant) })
          }
        }
        return
      }
      case 'participant-left':
      case 'participant-removed': {
        const gone = event.participant
        const local = this.#local.get(gone.participantId)
        if (event.type === 'participant-removed' && local !== undefined) {
          await this.#kick(local, { type: 'removed', ...(event.by ? { by: event.by } : {}) }, CLOSE_CODES.removed, 'removed')
        }
        if (event.type === 'participant-left' && event.reason === LEASE_EXPIRED && local !== undefined && !local.gone) {
          // Its lease ran out while this node held it (renewals failed) and the others were told it
          // left: it ends here too. 1011, not a close code of ours, so the client tries `resume`
          // and learns the session expired.
          this.#forget(local)
          local.channel.close(1011, LEASE_EXPIRED)
          if (local.media !== undefined) await this.#rooms.leave(local.media, LEASE_EXPIRED)
        }
        if (gone.state !== 'active' || !isListed(gone)) return
        for (const member of this.#activeMembersOf(event.roomId)) this.#deliver(member, { type: 'participant-left', participantId: gone.participantId })
        return
      }
      case 'participant-updated': {
        const updated = event.participant
        const local = this.#local.get(updated.participantId)
        if (local !== undefined) await this.#applyToSelf(local, updated)
        if (updated.state !== 'active' || !isListed(updated)) return
        for (const member of this.#activeMembersOf(event.roomId)) {
          this.#deliver(member, { type: 'participant-updated', participant: participantInfo(updated) })
        }
        return
      }
      case 'participant-migrated': {
        const local = this.#local.get(event.participantId)
        if (local === undefined || event.toNode === this.#nodeId) return
        // Its session goes on at `toNode`: no leave for anyone; its peer closes, so its tracks end.
        this.#forget(local)
        local.channel.close(CLOSE_CODES.replaced, 'resumed on another node')
        if (local.media !== undefined) await this.#rooms.leave(local.media, 'migrated')
        this.#log.info('participant moved to another node', { roomId: event.roomId, participantId: event.participantId, toNode: event.toNode })
        return
      }
      case 'participant-admitted': {
        const local = this.#local.get(event.participantId)
        if (local === undefined || local.record.state !== 'waiting') return
        const room = await this.#store.getRoom(event.roomId)
        if (room === undefined || local.gone) return
        local.record = { ...local.record, state: 'active' }
        // The snapshot is the first thing it hears as a member; events that come meanwhile follow it.
        local.held ??= []
        const snapshot = await this.#activate(local, room)
        if (local.gone) return
        local.channel.send({ type: 'admitted', ...snapshot })
        this.release(event.participantId)
        this.#log.info('participant admitted', { roomId: event.roomId, participantId: event.participantId })
        return
      }
      case 'participant-denied': {
        const local = this.#local.get(event.participant.participantId)
        if (local !== undefined) await this.#kick(local, { type: 'denied' }, CLOSE_CODES.denied, 'denied')
        return
      }
      case 'waiting-room-changed': {
        const moderators = this.#activeMembersOf(event.roomId).filter((member) => isModerator(member.record.role))
        if (moderators.length === 0) return
        const waiting = waitingOf(await this.#store.listParticipants(event.roomId))
        for (const member of moderators) this.#deliver(member, { type: 'waiting-room-updated', waiting })
        return
      }
      case 'track-muted': {
        const owner = this.#local.get(event.participantId)
        if (owner?.media !== undefined) {
          this.#rooms.muteTrack(event.roomId, event.trackId)
          const tracks = owner.record.tracks.map((track) => (track.trackId === event.trackId ? { ...track, muted: true } : track))
          owner.record = { ...owner.record, tracks }
          await this.#store.updateParticipant(event.roomId, event.participantId, { tracks })
        }
        const muted: ServerEvent = { type: 'track-muted', trackId: event.trackId, participantId: event.participantId, ...(event.by ? { by: event.by } : {}) }
        for (const member of this.#activeMembersOf(event.roomId)) this.#deliver(member, muted)
        return
      }
      case 'track-unmuted': {
        const owner = this.#local.get(event.participantId)
        if (owner?.media !== undefined) {
          this.#rooms.unmuteTrack(event.roomId, event.trackId)
          const tracks = owner.record.tracks.map((track) => (track.trackId === event.trackId ? { ...track, muted: false } : track))
          owner.record = { ...owner.record, tracks }
          await this.#store.updateParticipant(event.roomId, event.participantId, { tracks })
        }
        for (const member of this.#activeMembersOf(event.roomId)) {
          this.#deliver(member, { type: 'track-unmuted', trackId: event.trackId, participantId: event.participantId })
        }
        return
      }
      case 'chat-posted': {
        const { message } = event
        for (const member of this.#activeMembersOf(event.roomId)) {
          const id = member.record.participantId
          if (event.audience !== undefined && !event.audience.includes(id)) continue
          if (message.to === undefined || id === message.to || id === message.from) this.#deliver(member, { type: 'chat-posted', message })
        }
        return
      }
      case 'breakouts-changed': {
        // Media first: when a member hears of its group, its peer is already in the partition.
        const members = this.#activeMembersOf(event.roomId)
        // WHIP publishers (and WHEP viewers) are moved like members: a host can put a stream in a group.
        const peers = [...members.map((member) => member.media as Participant), ...this.sessions.mediaIn(event.roomId)]
        await Promise.all(
          peers.map((participant) =>
            this.#rooms
              .setPartition(participant, partitionOf(event.breakouts, participant.id))
              .catch((error: unknown) => this.#log.warn('moving a peer to its breakout partition failed', { participantId: participant.id, err: error })),
          ),
        )
        for (const member of members) this.#deliver(member, { type: 'breakouts-updated', breakouts: event.breakouts ?? null })
        return
      }
      case 'room-updated': {
        for (const member of this.#activeMembersOf(event.roomId)) this.#deliver(member, { type: 'room-updated', room: roomInfo(event.room) })
        return
      }
      case 'room-closed': {
        this.#recordingsByRoom.delete(event.roomId)
        for (const member of this.#membersOf(event.roomId)) await this.#kick(member, { type: 'room-closed' }, CLOSE_CODES.roomClosed, 'room_closed')
        return
      }
      case 'recording-started': {
        const recordings = this.#recordingsByRoom.get(event.roomId) ?? new Map<RecordingId, RecordingInfo>()
        recordings.set(event.recording.recordingId, event.recording)
        this.#recordingsByRoom.set(event.roomId, recordings)
        for (const member of this.#activeMembersOf(event.roomId)) this.#deliver(member, { type: 'recording-started', recording: event.recording })
        return
      }
      case 'recording-stopped': {
        const { recordingId, partial, failed } = event
        const recordings = this.#recordingsByRoom.get(event.roomId)
        recordings?.delete(recordingId)
        if (recordings?.size === 0) this.#recordingsByRoom.delete(event.roomId)
        for (const member of this.#activeMembersOf(event.roomId)) this.#deliver(member, { type: 'recording-stopped', recordingId, partial, failed })
        return
      }
      case 'recording-stop-requested':
        // The RecordingService of the node that runs it acts; members hear `recording-stopped` later.
        return
      default:
        assertNever(event)
    }
  }

  /** A member's own record changed: it is told about its permissions, and its media follows them. */
  async #applyToSelf(member: LocalMember, updated: ParticipantRecord): Promise<void> {
    const before = member.record
    member.record = { ...updated, state: before.state === 'waiting' && updated.state === 'active' ? 'waiting' : updated.state }
    const changed = before.role !== updated.role || JSON.stringify(before.grants) !== JSON.stringify(updated.grants)
    if (!changed) return
    this.#deliver(member, { type: 'permissions-updated', role: updated.role, grants: updated.grants })
    const media = member.media
    if (media === undefined) return
    if (before.grants.canSubscribe !== updated.grants.canSubscribe) await this.#rooms.setCanSubscribe(media, updated.grants.canSubscribe)
    // Publishing no longer allowed (at all, or this source): its tracks stop being forwarded.
    for (const track of updated.tracks) {
      if (track.muted) continue
      const allowed = updated.grants.canPublish && (track.source === undefined || updated.grants.canPublishSources.includes(track.source))
      if (!allowed) await this.#bus.publish({ type: 'track-muted', roomId: updated.roomId, participantId: updated.participantId, trackId: track.trackId, by: undefined })
    }
  }

  async #refreshLeases(): Promise<void> {
    const byRoom = new Map<RoomId, ParticipantId[]>()
    for (const member of this.#local.values()) {
      const ids = byRoom.get(member.record.roomId) ?? []
      ids.push(member.record.participantId)
      byRoom.set(member.record.roomId, ids)
    }
    for (const [roomId, ids] of byRoom) {
      await this.#store.refresh(roomId, ids).catch((error: unknown) => this.#log.warn('renewing leases failed', { roomId, err: error }))
    }
    // Only rooms where this node holds someone: someone here must hear of the others' dead nodes.
    await announceExpiredLeases({ store: this.#store, bus: this.#bus, log: this.#log }, new Set([...byRoom.keys(), ...this.sessions.roomIds()]))
  }
}

/** Hidden participants (observers, recorders) are never listed to the others. */
function isListed(participant: ParticipantRecord): boolean {
  return !participant.grants.hidden && !participant.grants.recorder
}

export function participantInfo(record: ParticipantRecord): ParticipantInfo {
  // A WHIP publisher is not a person in the meeting: no role, no hand (see ParticipantInfo).
  if (record.kind === 'whip') return { participantId: record.participantId, name: record.name }
  const info: ParticipantInfo = { participantId: record.participantId, name: record.name, role: record.role, handRaised: record.handRaised }
  if (record.connection === 'reconnecting') info.state = 'reconnecting'
  else if (record.connection === 'connected') info.state = 'active'
  return info
}

export function roomInfo(room: RoomRecord): RoomInfo {
  return { waitingRoom: room.waitingRoom, locked: room.locked }
}

function waitingOf(participants: readonly ParticipantRecord[]): WaitingParticipant[] {
  return participants
    .filter((participant) => participant.state === 'waiting')
    .map((participant) => ({ participantId: participant.participantId, name: participant.name, since: participant.joinedAt }))
}

function assertNever(value: never): never {
  throw new Error(`unhandled cluster event ${JSON.stringify(value)}`)
}
