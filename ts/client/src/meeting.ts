// A meeting from the browser: publish local tracks, receive everyone else's, over one
// RTCPeerConnection where the server always answers.

import type {
  BreakoutGroup,
  BreakoutGroupId,
  BreakoutGroupRequest,
  Breakouts,
  ChatMessage,
  Grants,
  MediaKind,
  ParticipantId,
  ParticipantInfo,
  Role,
  RecordingInfo,
  RecordingMode,
  ResumedReply,
  RoomInfo,
  RoomSnapshot,
  ServerEvent,
  SubscriptionInfo,
  TrackId,
  TrackInfo,
  TrackSource,
  WaitingParticipant,
} from '@conclave/protocol'
import { breakoutGroupOf } from '@conclave/protocol'
import { Emitter } from './emitter.js'
import { DEFAULT_RESUME_WITHIN_MS, isResumable, resumeWithBackoff } from './reconnect.js'
import { type ControlRequest, SignalingClient, SignalingError } from './signaling-client.js'
import { applyEncodings } from './dynacast.js'
import { negotiateDependencyDescriptor, preferCodec, preferSvc, sendTransceiverInit, type SvcPublishing, type VideoCodec } from './simulcast.js'
import { VideoSizeReporter } from './video-size.js'

export interface RemoteTrack {
  trackId: TrackId
  participantId: ParticipantId
  /** The publisher's display name, when known. */
  name: string
  kind: MediaKind
  /** What the publisher said it is (`screen` for a screen share); absent for WHIP publishers. */
  source?: TrackSource
  /** The receive m-line that carries it. */
  mid: string
  track: MediaStreamTrack
}

export interface ScreenShareOptions {
  /** Share this stream's video instead of asking the browser (`getDisplayMedia`). */
  stream?: MediaStream
}

type MeetingEvents = {
  'participant-joined': ParticipantInfo
  'participant-left': ParticipantInfo
  /** A remote track started arriving (or moved to another m-line). */
  track: RemoteTrack
  'track-ended': { trackId: TrackId; participantId: ParticipantId; source?: TrackSource }
  /** Our screen share stopped: `stopScreenShare()`, or the browser's own "stop sharing". */
  'screen-share-ended': { trackId: string }
  /** The meeting ended without `leave()`: the server closed it or the connection dropped. */
  closed: { reason: string }
  /** A negotiation failed; the meeting goes on with what it had. */
  error: Error
  /** The room has a waiting room: `join()` resolves once a host admits this participant. */
  waiting: { participantId: ParticipantId }
  /** Someone's role or raised hand changed. */
  'participant-updated': ParticipantInfo
  /** A host or cohost muted a track: it is no longer forwarded (ours: we stopped sending it). */
  'track-muted': { trackId: TrackId; participantId: ParticipantId; mine: boolean }
  /** A muted track is forwarded again (we offer to receive it). */
  'track-unmuted': { trackId: TrackId; participantId: ParticipantId; mine: boolean }
  chat: ChatMessage
  /** Hosts and cohosts: the waiting room changed. */
  'waiting-room': WaitingParticipant[]
  /** Our own role or grants changed. */
  permissions: { role: Role; grants: Grants }
  room: RoomInfo
  /**
   * The participation ended: removed by a host, the room was closed, or the signaling dropped and
   * could not be resumed within the server's grace period (`closed` follows); then `code` says
   * why (`session_expired`, `resume_failed`, or `timed_out` when the server was never reached).
   */
  ended: { reason: 'removed' | 'room-closed' | 'session-expired'; code?: string }
  /** The signaling socket dropped; media goes on while the meeting resumes the session. */
  reconnecting: { reason: string }
  /**
   * The session was resumed on a new socket, `afterMs` after the drop; ICE was restarted if the
   * network had changed. `mediaRestarted`: it resumed on another server, so `pc` is a new peer
   * connection, negotiated anew (remote tracks ended and come back as `track` events).
   */
  reconnected: { afterMs: number; attempts: number; iceRestarted: boolean; mediaRestarted: boolean }
  /**
   * The room started or stopped being recorded. `recording` is the one in progress (none once it
   * stopped); `failed` and `partial` describe the one that stopped.
   */
  recording: { recording: RecordingInfo | undefined; failed?: boolean; partial?: boolean }
  /**
   * Breakouts started, changed or ended (`breakouts` undefined). `group` is ours (undefined: the
   * main room); we hear and see only its members, and room chat reaches only them.
   */
  breakouts: { breakouts: Breakouts | undefined; group: BreakoutGroup | undefined }
  /** The room's active speaker changed (undefined: nobody holds the floor). */
  'active-speaker': { participantId: ParticipantId | undefined }
}

export interface MeetingOptions {
  /** The server's signaling URL, `ws(s)://host/ws`. */
  url: string | URL
  room: string
  name: string
  /** Camera and microphone (or anything) to publish. */
  stream: MediaStream
  token?: string
  /** Publish video as three simulcast layers (`SIMULCAST_ENCODINGS`). Default false. */
  simulcast?: boolean
  /** Publish video as one SVC encoding instead (VP9/AV1 with a scalability mode). Default none. */
  svc?: SvcPublishing
  /** Send the camera in this codec only (simulcast or not; SVC picks its own). Default: VP8, the server's choice. */
  videoCodec?: VideoCodec
  /** `'relay'` sends everything through the TURN servers the join response carries (tests, strict networks). Default `'all'`. */
  iceTransportPolicy?: RTCIceTransportPolicy
  /** How long to keep trying to resume after the signaling drops (the server's grace period). Default 15 000 ms. */
  resumeWithinMs?: number
  /**
   * Let the server add receive m-lines by offering them itself; this client is then the polite
   * side of perfect negotiation (it rolls its own offer back for the server's). Default false:
   * the client adds one per remote track and offers.
   */
  serverOffers?: boolean
}

/** One step of the offer/answer exchanges, in order: for diagnostics and tests. */
export interface NegotiationStep {
  step: 'offer-sent' | 'answer-applied' | 'glare' | 'server-offer' | 'rollback' | 'answer-sent'
  /** Date.now() when it happened. */
  at: number
}

/**
 * One participation in a room. Create it, attach listeners, then `join()`: every remote track is
 * reported through `track` events, including the ones the first answer already carries.
 */
export class Meeting extends Emitter<MeetingEvents> {
  /** Replaced by a new one when the session resumes on another server (`reconnected` says so). */
  pc: RTCPeerConnection
  readonly participants = new Map<ParticipantId, ParticipantInfo>()
  /** Every remote track the room has, received or not yet. */
  readonly tracks = new Map<TrackId, TrackInfo>()
  /** Which track each receive m-line carries. */
  readonly #byMid = new Map<string, SubscriptionInfo>()
  readonly #options: MeetingOptions
  #signaling: SignalingClient | undefined
  #participantId: ParticipantId | undefined
  /** Our role, grants and the room, from the snapshot and later updates. */
  self: { name: string; role: Role; grants: Grants } | undefined
  room: RoomInfo | undefined
  /** Hosts and cohosts: who waits to be admitted. */
  waiting: WaitingParticipant[] = []
  /** Who holds the floor, as the server last said. */
  activeSpeaker: ParticipantId | undefined
  /** The recording in progress in the room, if any: show everyone an indicator. */
  recording: RecordingInfo | undefined
  /** The breakouts running in the room, if any (`breakoutGroup` is ours). */
  breakouts: Breakouts | undefined
  /** Our own tracks that a host muted; `unmuteTrack` forwards one again. */
  readonly mutedOwnTracks = new Set<TrackId>()
  readonly #sizes: VideoSizeReporter
  /** The running offer/answer loop, which every negotiation request joins. */
  #negotiation: Promise<void> | undefined
  #dirty = false
  /** Every step of every offer/answer exchange (server offers included). */
  readonly negotiationLog: NegotiationStep[] = []
  /** Tests: while set, incoming server offers wait for it (to make offers collide on purpose). */
  serverOfferHold: Promise<void> | undefined
  /** The server's offers, answered one at a time in arrival order; never rejects. */
  #serverOffers: Promise<void> = Promise.resolve()
  /**
   * While we make an offer (until it is sent) or apply the answer to it: a server offer waits, then
   * rolls back an offer of ours that is out.
   */
  #localStep: Promise<unknown> | undefined
  /** While we apply a server offer and make the answer: our next offer waits. */
  #answering: Promise<unknown> | undefined
  /** What our sending transceivers carry, when not what their kind says (camera, microphone). */
  readonly #sources = new Map<RTCRtpTransceiver, TrackSource>()
  #screen: { transceiver: RTCRtpTransceiver; track: MediaStreamTrack } | undefined
  #closed = false
  /** Every recording in progress, oldest first; `recording` is the latest. */
  readonly #recordings = new Map<string, RecordingInfo>()
  /** From the snapshot: what `resume` proves the session with. */
  #resumeId: string | undefined

  constructor(options: MeetingOptions) {
    super()
    this.#options = options
    this.pc = this.#newPeerConnection()
    this.#sizes = new VideoSizeReporter((trackId, { width, height }) => this.setPreferredSize(trackId, width, height))
  }

  #newPeerConnection(): RTCPeerConnection {
    // The server is ICE-lite with a host candidate in every answer; TURN servers, if any, come with the join response.
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceTransportPolicy: this.#options.iceTransportPolicy ?? 'all' })
    // A path that failed for good (a network change it did not survive): new credentials, new checks.
    pc.addEventListener('iceconnectionstatechange', () => {
      if (pc === this.pc && pc.iceConnectionState === 'failed' && this.#resumeId !== undefined) this.restartIce().catch((error: unknown) => this.#report(error))
    })
    return pc
  }

  /** Sends a camera or microphone track, if the grants allow its source (the server refuses an offer that sends more). */
  #publishDevice(track: MediaStreamTrack, grants: Grants): void {
    const { stream, simulcast = false, svc, videoCodec } = this.#options
    const source = track.kind === 'audio' ? 'microphone' : 'camera'
    if (!grants.canPublish || !grants.canPublishSources.includes(source)) return
    const transceiver = this.pc.addTransceiver(track, sendTransceiverInit(track, stream, simulcast, svc))
    if (svc !== undefined && track.kind === 'video') preferSvc(transceiver, svc)
    else if (videoCodec !== undefined && track.kind === 'video') preferCodec(transceiver, videoCodec)
  }

  /** Set once joined. */
  get participantId(): ParticipantId | undefined {
    return this.#participantId
  }

  /** Connects, joins the room, publishes the stream and subscribes to everyone; rejects if any step fails. */
  async join(): Promise<void> {
    const { url, room, name, stream, token } = this.#options
    const wsUrl = new URL(url)
    if (token !== undefined) wsUrl.searchParams.set('token', token)
    try {
      const signaling = await SignalingClient.connect(wsUrl)
      this.#signaling = signaling
      const reply = await signaling.join(room, name, { serverOffers: this.#options.serverOffers === true })
      this.#participantId = reply.participantId
      const joined = reply.type === 'waiting' ? await this.#waitForAdmission(signaling) : reply
      this.self = { name: joined.name, role: joined.role, grants: joined.grants }
      this.#resumeId = joined.resumeId
      this.room = joined.room
      this.waiting = joined.waiting ?? []
      this.#setRecordings(joined)
      this.breakouts = joined.breakouts
      // Before the first offer, so ICE gathering already knows the relays.
      if (joined.iceServers) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: joined.iceServers })
      for (const participant of joined.participants) this.participants.set(participant.participantId, participant)
      for (const track of stream.getTracks()) this.#publishDevice(track, joined.grants)
      for (const track of joined.tracks) this.#expect(track)
      // Registered in the same task as the reply: no event can slip in between.
      this.#listen(signaling)
      await this.#negotiate()
    } catch (error) {
      await this.leave()
      throw error
    }
  }

  /** Waits in the waiting room until a host admits (the snapshot) or denies (rejects). */
  #waitForAdmission(signaling: SignalingClient): Promise<RoomSnapshot> {
    this.emit('waiting', { participantId: this.#participantId as ParticipantId })
    return new Promise((resolve, reject) => {
      const stop = () => {
        offEvent()
        offClosed()
      }
      const offEvent = signaling.on('event', (event) => {
        if (event.type === 'admitted') {
          stop()
          resolve(event)
        } else if (event.type === 'denied') {
          stop()
          reject(new SignalingError('denied', 'a host did not let you in'))
        }
      })
      const offClosed = signaling.on('closed', ({ code, reason }) => {
        stop()
        reject(new SignalingError('connection_closed', `signaling closed while waiting (${code} ${reason})`))
      })
    })
  }

  /** Sends a chat message to the room, or privately to `to`. */
  async chat(text: string, to?: ParticipantId): Promise<void> {
    await this.#control(to === undefined ? { type: 'chat', text } : { type: 'chat', text, to })
  }

  async raiseHand(): Promise<void> {
    await this.#control({ type: 'raise-hand' })
  }

  /** Lowers our hand, or (hosts and cohosts) someone else's. */
  async lowerHand(participantId?: ParticipantId): Promise<void> {
    await this.#control(participantId === undefined ? { type: 'lower-hand' } : { type: 'lower-hand', participantId })
  }

  /** Hosts and cohosts: admits one waiting participant, or everyone waiting. */
  async admit(participantId?: ParticipantId): Promise<void> {
    await this.#control(participantId === undefined ? { type: 'admit-all' } : { type: 'admit', participantId })
  }

  /** Hosts and cohosts: turns one waiting participant away, or everyone waiting. */
  async deny(participantId?: ParticipantId): Promise<void> {
    await this.#control(participantId === undefined ? { type: 'deny-all' } : { type: 'deny', participantId })
  }

  /** Hosts and cohosts: stops a track from being forwarded to anyone. */
  async muteTrack(trackId: TrackId): Promise<void> {
    await this.#control({ type: 'mute-track', trackId })
  }

  /** Hosts and cohosts: removes a participant for good. */
  async remove(participantId: ParticipantId): Promise<void> {
    await this.#control({ type: 'remove-participant', participantId })
  }

  /** Forwards one of our own muted tracks again. */
  async unmuteTrack(trackId: TrackId): Promise<void> {
    await this.#control({ type: 'unmute-track', trackId })
  }

  /** Hosts: promotes a guest to cohost, or demotes a cohost. */
  async setRole(participantId: ParticipantId, role: 'cohost' | 'guest'): Promise<void> {
    await this.#control({ type: 'set-role', participantId, role })
  }

  /** Hosts and cohosts: no one new may join (hosts still can). */
  async setLocked(locked: boolean): Promise<void> {
    await this.#control({ type: locked ? 'lock-room' : 'unlock-room' })
  }

  /** Hosts and cohosts: starts recording the room (everyone sees the indicator). Default `composite`. */
  async startRecording(mode?: RecordingMode): Promise<void> {
    await this.#control(mode === undefined ? { type: 'start-recording' } : { type: 'start-recording', mode })
  }

  /** Hosts and cohosts: stops the room's recording; it is finalized. */
  async stopRecording(): Promise<void> {
    await this.#control({ type: 'stop-recording' })
  }

  /** Hosts and cohosts: splits the room into named groups; everyone not named stays in the main room. */
  async createBreakouts(groups: BreakoutGroupRequest[]): Promise<void> {
    await this.#control({ type: 'create-breakouts', groups })
  }

  /** Hosts and cohosts: moves a participant into a group, or back to the main room with null. */
  async moveToBreakout(participantId: ParticipantId, groupId: BreakoutGroupId | null): Promise<void> {
    await this.#control({ type: 'move-to-breakout', participantId, groupId })
  }

  /** Hosts and cohosts: brings everyone back to the main room. */
  async endBreakouts(): Promise<void> {
    await this.#control({ type: 'end-breakouts' })
  }

  /** Our breakout group; undefined in the main room. */
  get breakoutGroup(): BreakoutGroup | undefined {
    return this.#participantId === undefined ? undefined : breakoutGroupOf(this.breakouts, this.#participantId)
  }

  /** Whether we see and hear `participantId`: with no breakouts everyone; else our group's members. */
  sharesBreakoutWith(participantId: ParticipantId): boolean {
    if (this.breakouts === undefined) return true
    return breakoutGroupOf(this.breakouts, participantId)?.groupId === this.breakoutGroup?.groupId
  }

  async #control(request: ControlRequest): Promise<void> {
    const signaling = this.#signaling
    if (signaling === undefined || this.#closed) throw new SignalingError('invalid_state', 'not in a meeting')
    await signaling.control(request)
  }

  /**
   * Reports the size `video` draws the remote video `trackId` at, now and whenever it changes
   * (debounced), so the server sends the simulcast layer that fits. Returns the stop function;
   * watching ends by itself with the meeting.
   */
  watchVideoSize(trackId: TrackId, video: HTMLVideoElement): () => void {
    return this.#sizes.watch(trackId, video)
  }

  /** Tells the server the size (device pixels) at which the remote video `trackId` is drawn. */
  async setPreferredSize(trackId: TrackId, width: number, height: number): Promise<void> {
    const signaling = this.#signaling
    if (signaling === undefined || this.#closed) return
    await signaling.setPreferredSize(trackId, width, height)
  }

  /**
   * Always receive the cameras of `participantIds` (at most `MAX_PINNED`), even when the server's
   * video last-N leaves them out; replaces earlier pins, `[]` unpins.
   */
  async pin(participantIds: readonly ParticipantId[]): Promise<void> {
    const signaling = this.#signaling
    if (signaling === undefined || this.#closed) throw new SignalingError('invalid_state', 'not in a meeting')
    await signaling.pin(participantIds)
  }

  /** Our screen share's track while sharing. */
  get screenShare(): MediaStreamTrack | undefined {
    return this.#screen?.track
  }

  /** Who shares a screen now (us included), if anyone: the meeting's active presenter. */
  get presenter(): ParticipantId | undefined {
    if (this.#screen !== undefined) return this.#participantId
    for (const track of this.tracks.values()) if (track.source === 'screen' && !track.muted) return track.participantId
    return undefined
  }

  /**
   * Shares the screen (the browser asks which one) as a second video track, published with
   * source `screen` by renegotiating. Resolves once the server accepted it; rejects with
   * `forbidden` when the grants do not allow `screen`, and then nothing is sent. Sharing again
   * while sharing returns the current track.
   */
  async startScreenShare({ stream }: ScreenShareOptions = {}): Promise<MediaStreamTrack> {
    if (this.#closed || this.#signaling === undefined) throw new SignalingError('invalid_state', 'not in a meeting')
    if (this.#screen !== undefined) return this.#screen.track
    const display = stream ?? (await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false }))
    const track = display.getVideoTracks()[0]
    if (track === undefined) throw new SignalingError('invalid_argument', 'the shared stream has no video track')
    // Text and edges stay sharp; the encoder drops frames rather than resolution.
    track.contentHint = 'detail'
    const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [display] })
    const screen = { transceiver, track }
    this.#screen = screen
    this.#sources.set(transceiver, 'screen')
    // The browser's own "stop sharing" ends the track.
    track.addEventListener('ended', () => {
      if (this.#screen === screen) this.stopScreenShare().catch((error: unknown) => this.#report(error))
    })
    try {
      await this.#negotiate()
    } catch (error) {
      if (this.#screen === screen) {
        this.#screen = undefined
        this.#sources.delete(transceiver)
        track.stop()
        // Never negotiated (the offer was rolled back): stopping removes it from later offers.
        if (!this.#closed) transceiver.stop()
        // Changes that waited behind the refused offer still need theirs.
        if (this.#dirty && !this.#closed) this.#negotiate().catch((later: unknown) => this.#report(later))
      }
      throw error
    }
    return track
  }

  /** Stops sharing the screen: its m-line is stopped by renegotiating, and the others see the track end. */
  async stopScreenShare(): Promise<void> {
    const screen = this.#screen
    if (screen === undefined) return
    this.#screen = undefined
    this.#sources.delete(screen.transceiver)
    screen.track.stop()
    this.emit('screen-share-ended', { trackId: screen.track.id })
    if (this.#closed) return
    screen.transceiver.stop()
    await this.#negotiate()
  }

  #report(error: unknown): void {
    if (!this.#closed) this.emit('error', error instanceof Error ? error : new Error(String(error)))
  }

  /** Leaves the room and closes everything. */
  async leave(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#sizes.close()
    const signaling = this.#signaling
    if (signaling !== undefined) {
      try {
        await signaling.leave()
      } catch {
        // Leaving a meeting whose connection already dropped (or never joined) is still leaving.
      }
      signaling.close()
    }
    this.pc.close()
  }

  /** Who publishes the track on `mid`, if anyone. */
  subscriptionOn(mid: string): SubscriptionInfo | undefined {
    return this.#byMid.get(mid)
  }

  #handleEvent(event: ServerEvent): void {
    switch (event.type) {
      case 'participant-joined':
        this.participants.set(event.participant.participantId, event.participant)
        this.emit('participant-joined', event.participant)
        return
      case 'participant-left': {
        const participant = this.participants.get(event.participantId)
        this.participants.delete(event.participantId)
        if (participant !== undefined) this.emit('participant-left', participant)
        return
      }
      case 'track-published':
        this.#expect(event.track)
        if (this.#options.serverOffers === true) return
        this.#negotiate().catch((error: unknown) => {
          if (!this.#closed) this.emit('error', error instanceof Error ? error : new Error(String(error)))
        })
        return
      case 'track-ended': {
        const track = this.tracks.get(event.trackId)
        this.tracks.delete(event.trackId)
        for (const [mid, subscription] of this.#byMid) {
          if (subscription.trackId === event.trackId) this.#byMid.delete(mid)
        }
        if (track !== undefined) {
          this.emit('track-ended', { trackId: track.trackId, participantId: track.participantId, ...(track.source ? { source: track.source } : {}) })
        }
        return
      }
      case 'participant-updated':
        // Our own record comes too (our raised hand); we are not one of `participants`.
        if (event.participant.participantId !== this.#participantId) this.participants.set(event.participant.participantId, event.participant)
        this.emit('participant-updated', event.participant)
        return
      case 'track-muted': {
        const mine = event.participantId === this.#participantId
        // The server stopped forwarding it; its m-line is free for the next track.
        for (const [mid, subscription] of this.#byMid) {
          if (subscription.trackId === event.trackId) this.#byMid.delete(mid)
        }
        const track = this.tracks.get(event.trackId)
        if (track !== undefined) this.tracks.set(event.trackId, { ...track, muted: true })
        if (mine) this.mutedOwnTracks.add(event.trackId)
        this.emit('track-muted', { trackId: event.trackId, participantId: event.participantId, mine })
        return
      }
      case 'track-unmuted': {
        const mine = event.participantId === this.#participantId
        this.mutedOwnTracks.delete(event.trackId)
        const track = this.tracks.get(event.trackId)
        if (track !== undefined) {
          const { muted: _muted, ...unmuted } = track
          this.tracks.set(event.trackId, unmuted)
          // The m-line it had is free again: the next answer puts it back on one.
          this.#negotiate().catch((error: unknown) => {
            if (!this.#closed) this.emit('error', error instanceof Error ? error : new Error(String(error)))
          })
        }
        this.emit('track-unmuted', { trackId: event.trackId, participantId: event.participantId, mine })
        return
      }
      case 'chat-posted':
        this.emit('chat', event.message)
        return
      case 'waiting-room-updated':
        this.waiting = event.waiting
        this.emit('waiting-room', event.waiting)
        return
      case 'permissions-updated':
        if (this.self !== undefined) this.self = { ...this.self, role: event.role, grants: event.grants }
        this.emit('permissions', { role: event.role, grants: event.grants })
        return
      case 'room-updated':
        this.room = event.room
        this.emit('room', event.room)
        return
      case 'removed':
        this.emit('ended', { reason: 'removed' })
        return
      case 'room-closed':
        this.emit('ended', { reason: 'room-closed' })
        return
      case 'recording-started':
        this.#recordings.set(event.recording.recordingId, event.recording)
        this.recording = event.recording
        this.emit('recording', { recording: event.recording })
        return
      case 'recording-stopped':
        // Another recording may still run (composite and per track at once): the indicator stays.
        this.#recordings.delete(event.recordingId)
        this.recording = [...this.#recordings.values()].at(-1)
        this.emit('recording', { recording: this.recording, failed: event.failed, partial: event.partial })
        return
      case 'set-encodings':
        // Dynacast: encodings nobody watches stop encoding; a later event restarts them.
        applyEncodings(this.pc, event.mid, event.active).catch((error: unknown) => {
          if (!this.#closed) this.emit('error', error instanceof Error ? error : new Error(String(error)))
        })
        return
      case 'active-speaker':
        this.activeSpeaker = event.participantId
        this.emit('active-speaker', { participantId: event.participantId })
        return
      case 'offer':
        this.#answerServerOffer(event.sdp)
        return
      case 'subscriptions-changed':
        this.#applySubscriptions(event.subscriptions)
        return
      case 'breakouts-updated':
        this.breakouts = event.breakouts ?? undefined
        this.emit('breakouts', { breakouts: this.breakouts, group: this.breakoutGroup })
        return
      default:
        return
    }
  }

  /** A remote track exists: add a receive m-line for it; the next answer says which one carries it. */
  #expect(track: TrackInfo): void {
    if (track.participantId === this.#participantId || this.tracks.has(track.trackId)) return
    this.tracks.set(track.trackId, track)
    // The server offers the m-line itself.
    if (this.#options.serverOffers === true) return
    const transceiver = this.pc.addTransceiver(track.kind, { direction: 'recvonly' })
    // The server forwards SVC layer information to decoders that take it (AV1 SVC needs it).
    if (track.kind === 'video') negotiateDependencyDescriptor(transceiver)
  }

  /**
   * Offers the current transceivers; runs one at a time and once more if something changed
   * meanwhile. Settles when an offer made after the call was answered; rejects when an offer is
   * refused or its answer cannot be applied.
   */
  #negotiate(): Promise<void> {
    if (this.#negotiation !== undefined) {
      this.#dirty = true
      return this.#negotiation
    }
    const negotiation = (async () => {
      try {
        do {
          this.#dirty = false
          await this.#negotiateOnce()
        } while (this.#dirty && !this.#closed)
      } finally {
        this.#negotiation = undefined
      }
    })()
    this.#negotiation = negotiation
    return negotiation
  }

  async #negotiateOnce(): Promise<void> {
    while (this.#answering !== undefined) await this.#answering
    if (this.#closed) return
    const offer = await this.#step(
      this.pc.createOffer().then(async (offer) => {
        await this.pc.setLocalDescription(offer)
        return offer
      }),
    )
    const signaling = this.#signaling
    if (signaling === undefined) return
    if (this.pc.signalingState !== 'have-local-offer') {
      // A server offer took our place before it went out: offer again after its exchange.
      this.#dirty = true
      return
    }
    // Mids exist only once the offer is set locally.
    const sources: Record<string, TrackSource> = {}
    for (const [transceiver, source] of this.#sources) if (transceiver.mid !== null) sources[transceiver.mid] = source
    let answer
    try {
      this.#logStep('offer-sent')
      answer = await signaling.offer(offer.sdp ?? '', sources)
    } catch (error) {
      if (error instanceof SignalingError && error.code === 'glare') {
        // The server's offer went out before ours arrived: it is here already, and answering it
        // rolls ours back. Ours goes again once that exchange is done.
        this.#logStep('glare')
        this.#dirty = true
        await this.#serverOffers
        return
      }
      // Back to stable so the next change can offer again.
      if (!this.#closed && this.pc.signalingState === 'have-local-offer') await this.pc.setLocalDescription({ type: 'rollback' })
      throw error
    }
    if (this.#closed) return
    await this.#step(this.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp }))
    this.#logStep('answer-applied')
    this.#applySubscriptions(answer.subscriptions)
  }

  /** The polite side of perfect negotiation: our own offer, if one is out, yields to the server's. */
  #answerServerOffer(sdp: string): void {
    this.#logStep('server-offer')
    this.#serverOffers = this.#serverOffers
      .then(async () => {
        await this.serverOfferHold
        while (this.#localStep !== undefined) await this.#localStep
        const signaling = this.#signaling
        if (this.#closed || signaling === undefined) return
        const answering = (async () => {
          if (this.pc.signalingState === 'have-local-offer') {
            await this.pc.setLocalDescription({ type: 'rollback' })
            this.#logStep('rollback')
          }
          await this.pc.setRemoteDescription({ type: 'offer', sdp })
          const answer = await this.pc.createAnswer()
          await this.pc.setLocalDescription(answer)
          return answer
        })()
        this.#answering = answering.catch(() => undefined)
        let answer
        try {
          answer = await answering
        } finally {
          this.#answering = undefined
        }
        this.#logStep('answer-sent')
        await signaling.answer(answer.sdp ?? '')
      })
      .catch((error: unknown) => this.#report(error))
  }

  /** Runs one local step of our own offer/answer exchange, which a server offer must not cut into. */
  async #step<T>(running: Promise<T>): Promise<T> {
    const marker = running.catch(() => undefined)
    this.#localStep = marker
    try {
      return await running
    } finally {
      if (this.#localStep === marker) this.#localStep = undefined
    }
  }

  #logStep(step: NegotiationStep['step']): void {
    this.negotiationLog.push({ step, at: Date.now() })
  }

  #applySubscriptions(subscriptions: SubscriptionInfo[]): void {
    for (const subscription of subscriptions) {
      if (this.#byMid.get(subscription.mid)?.trackId === subscription.trackId) continue
      const transceiver = this.pc.getTransceivers().find((candidate) => candidate.mid === subscription.mid)
      if (transceiver === undefined) continue
      this.#byMid.set(subscription.mid, subscription)
      const source = this.tracks.get(subscription.trackId)?.source
      this.emit('track', {
        ...subscription,
        ...(source ? { source } : {}),
        name: this.participants.get(subscription.participantId)?.name ?? subscription.participantId,
        track: transceiver.receiver.track,
      })
    }
  }

  #listen(signaling: SignalingClient): void {
    signaling.on('event', (event) => this.#handleEvent(event))
    signaling.on('closed', ({ code, reason }) => void this.#signalingLost(signaling, code, reason || 'signaling closed'))
  }

  /**
   * Restarts ICE (new credentials, then checks on whatever path works now) by renegotiating; the
   * server keeps DTLS and SRTP. Called by itself after a resume when ICE had dropped, and when
   * ICE fails; call it when the network changed (`online`, a new interface).
   */
  async restartIce(): Promise<void> {
    if (this.#closed) return
    this.pc.restartIce()
    await this.#negotiate()
  }

  /** The socket dropped: resume the session on a new one, within the grace period, or end. */
  async #signalingLost(signaling: SignalingClient, code: number, reason: string): Promise<void> {
    if (this.#closed || signaling !== this.#signaling) return
    const resumeId = this.#resumeId
    const participantId = this.#participantId
    if (resumeId === undefined || participantId === undefined || !isResumable(code)) {
      this.#close(reason)
      return
    }
    const droppedAt = performance.now()
    const pcBefore = this.pc
    this.emit('reconnecting', { reason })
    const outcome = await resumeWithBackoff({
      attempt: () => this.#resumeOnce(participantId, resumeId),
      withinMs: this.#options.resumeWithinMs ?? DEFAULT_RESUME_WITHIN_MS,
      cancelled: () => this.#closed,
    })
    if (!outcome.ok) {
      if (outcome.reason === 'cancelled' || this.#closed) return
      const code = outcome.error instanceof SignalingError ? outcome.error.code : 'timed_out'
      this.emit('ended', { reason: 'session-expired', code })
      this.#close(`could not resume (${code}): ${outcome.error?.message ?? 'the grace period is over'}`)
      return
    }
    const mediaRestarted = this.pc !== pcBefore
    const iceRestarted = !mediaRestarted && (this.pc.iceConnectionState === 'disconnected' || this.pc.iceConnectionState === 'failed')
    if (iceRestarted) this.pc.restartIce()
    // Whatever changed while away (tracks to receive, a restart, offers that failed) is offered now.
    if (iceRestarted || outcome.value) await this.#negotiate().catch((error: unknown) => this.#report(error))
    if (this.#closed) return
    this.emit('reconnected', { afterMs: Math.round(performance.now() - droppedAt), attempts: outcome.attempts, iceRestarted, mediaRestarted })
  }

  /** One attempt: a new socket, `resume`, and the room as it is now. Resolves whether an offer is needed. */
  async #resumeOnce(participantId: ParticipantId, resumeId: string): Promise<boolean> {
    const wsUrl = new URL(this.#options.url)
    if (this.#options.token !== undefined) wsUrl.searchParams.set('token', this.#options.token)
    const signaling = await SignalingClient.connect(wsUrl)
    let reply: ResumedReply
    try {
      reply = await signaling.resume(this.#options.room, participantId, resumeId)
    } catch (error) {
      signaling.close()
      throw error
    }
    if (this.#closed) {
      // Left while this attempt was under way: leave on the socket that has the session now.
      await signaling.leave().catch(() => undefined)
      signaling.close()
      return false
    }
    this.#signaling = signaling
    if (reply.media === 'new') this.#restartMedia(reply)
    const needsOffer = this.#applySnapshot(reply) || reply.media === 'new'
    // Same task as the reply, as after join: no event can slip in between.
    this.#listen(signaling)
    return needsOffer
  }

  /**
   * The session moved to another server, which has no peer for us: a new peer connection sends
   * what the old one sent (the same track objects, so a disabled microphone stays disabled, and
   * the screen share) and receives the room's tracks, negotiated as after a join. Every remote
   * track the old one received ends; `#applySnapshot` then expects the snapshot's anew.
   */
  #restartMedia(snapshot: ResumedReply): void {
    const old = this.pc
    const screen = this.#screen
    // What we sent, as the senders have it now (a camera swapped with replaceTrack included).
    const sent = old
      .getTransceivers()
      .filter((transceiver) => transceiver !== screen?.transceiver && (transceiver.direction === 'sendonly' || transceiver.direction === 'sendrecv'))
      .map((transceiver) => transceiver.sender.track)
      .filter((track): track is MediaStreamTrack => track !== null && track.readyState === 'live')
    this.pc = this.#newPeerConnection()
    old.close()
    if (snapshot.iceServers) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: snapshot.iceServers })
    this.#sources.clear()
    this.#byMid.clear()
    // Our tracks get new ids there; a host's mute is applied to the new ones again.
    this.mutedOwnTracks.clear()
    for (const track of sent) this.#publishDevice(track, snapshot.grants)
    if (screen !== undefined) {
      screen.transceiver = this.pc.addTransceiver(screen.track, { direction: 'sendonly', streams: [new MediaStream([screen.track])] })
      this.#sources.set(screen.transceiver, 'screen')
    }
    for (const [trackId, track] of this.tracks) {
      this.emit('track-ended', { trackId, participantId: track.participantId, ...(track.source ? { source: track.source } : {}) })
    }
    this.tracks.clear()
  }

  /** Brings what we know in line with a fresh snapshot; true when there are new tracks to receive. */
  #applySnapshot(snapshot: ResumedReply): boolean {
    this.self = { name: snapshot.name, role: snapshot.role, grants: snapshot.grants }
    this.room = snapshot.room
    this.waiting = snapshot.waiting ?? []
    this.#setRecordings(snapshot)
    this.breakouts = snapshot.breakouts
    this.breakouts = snapshot.breakouts
    const present = new Map(snapshot.participants.map((participant) => [participant.participantId, participant]))
    for (const [id, participant] of this.participants) {
      if (!present.has(id)) {
        this.participants.delete(id)
        this.emit('participant-left', participant)
      }
    }
    for (const [id, participant] of present) {
      const known = this.participants.has(id)
      this.participants.set(id, participant)
      this.emit(known ? 'participant-updated' : 'participant-joined', participant)
    }
    const published = new Set(snapshot.tracks.map((track) => track.trackId))
    for (const [trackId, track] of this.tracks) {
      if (published.has(trackId)) continue
      this.tracks.delete(trackId)
      this.emit('track-ended', { trackId, participantId: track.participantId })
    }
    const receiving = new Set(snapshot.subscriptions.map((subscription) => subscription.mid))
    for (const mid of [...this.#byMid.keys()]) if (!receiving.has(mid)) this.#byMid.delete(mid)
    const before = this.tracks.size
    for (const track of snapshot.tracks) {
      const known = this.tracks.get(track.trackId)
      if (known !== undefined) this.tracks.set(track.trackId, track)
      else this.#expect(track)
    }
    this.#applySubscriptions(snapshot.subscriptions)
    return this.tracks.size > before || snapshot.tracks.some((track) => !track.muted && !snapshot.subscriptions.some((s) => s.trackId === track.trackId))
  }

  #setRecordings({ recording, recordings }: RoomSnapshot): void {
    this.#recordings.clear()
    for (const info of recordings ?? (recording === undefined ? [] : [recording])) this.#recordings.set(info.recordingId, info)
    this.recording = [...this.#recordings.values()].at(-1)
  }

  #close(reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#sizes.close()
    this.pc.close()
    this.emit('closed', { reason })
  }
}
