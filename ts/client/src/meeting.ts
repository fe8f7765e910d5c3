// A meeting from the browser: publish local tracks, receive everyone else's, over one
// RTCPeerConnection where the server always answers.

import type {
  ChatMessage,
  Grants,
  MediaKind,
  ParticipantId,
  ParticipantInfo,
  Role,
  RoomInfo,
  RoomSnapshot,
  ServerEvent,
  SubscriptionInfo,
  TrackId,
  TrackInfo,
  WaitingParticipant,
} from '@conclave/protocol'
import { Emitter } from './emitter.js'
import { type ControlRequest, SignalingClient, SignalingError } from './signaling-client.js'
import { sendTransceiverInit } from './simulcast.js'
import { VideoSizeReporter } from './video-size.js'

export interface RemoteTrack {
  trackId: TrackId
  participantId: ParticipantId
  /** The publisher's display name, when known. */
  name: string
  kind: MediaKind
  /** The receive m-line that carries it. */
  mid: string
  track: MediaStreamTrack
}

type MeetingEvents = {
  'participant-joined': ParticipantInfo
  'participant-left': ParticipantInfo
  /** A remote track started arriving (or moved to another m-line). */
  track: RemoteTrack
  'track-ended': { trackId: TrackId; participantId: ParticipantId }
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
  /** The server ended the participation: removed by a host, or the room was closed. */
  ended: { reason: 'removed' | 'room-closed' }
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
  /** `'relay'` sends everything through the TURN servers the join response carries (tests, strict networks). Default `'all'`. */
  iceTransportPolicy?: RTCIceTransportPolicy
}

/**
 * One participation in a room. Create it, attach listeners, then `join()`: every remote track is
 * reported through `track` events, including the ones the first answer already carries.
 */
export class Meeting extends Emitter<MeetingEvents> {
  readonly pc: RTCPeerConnection
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
  /** Our own tracks that a host muted; `unmuteTrack` forwards one again. */
  readonly mutedOwnTracks = new Set<TrackId>()
  readonly #sizes: VideoSizeReporter
  #negotiating = false
  #dirty = false
  #closed = false

  constructor(options: MeetingOptions) {
    super()
    this.#options = options
    // The server is ICE-lite with a host candidate in every answer; TURN servers, if any, come with the join response.
    this.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceTransportPolicy: options.iceTransportPolicy ?? 'all' })
    this.#sizes = new VideoSizeReporter((trackId, { width, height }) => this.setPreferredSize(trackId, width, height))
  }

  /** Set once joined. */
  get participantId(): ParticipantId | undefined {
    return this.#participantId
  }

  /** Connects, joins the room, publishes the stream and subscribes to everyone; rejects if any step fails. */
  async join(): Promise<void> {
    const { url, room, name, stream, token, simulcast = false } = this.#options
    const wsUrl = new URL(url)
    if (token !== undefined) wsUrl.searchParams.set('token', token)
    try {
      const signaling = await SignalingClient.connect(wsUrl)
      this.#signaling = signaling
      const reply = await signaling.join(room, name)
      this.#participantId = reply.participantId
      const joined = reply.type === 'waiting' ? await this.#waitForAdmission(signaling) : reply
      this.self = { name: joined.name, role: joined.role, grants: joined.grants }
      this.room = joined.room
      this.waiting = joined.waiting ?? []
      // Before the first offer, so ICE gathering already knows the relays.
      if (joined.iceServers) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: joined.iceServers })
      for (const participant of joined.participants) this.participants.set(participant.participantId, participant)
      for (const track of stream.getTracks()) {
        // Only what the grants allow is published: the server refuses an offer that sends more.
        const source = track.kind === 'audio' ? 'microphone' : 'camera'
        if (joined.grants.canPublish && joined.grants.canPublishSources.includes(source)) {
          this.pc.addTransceiver(track, sendTransceiverInit(track, stream, simulcast))
        }
      }
      for (const track of joined.tracks) this.#expect(track)
      // Registered in the same task as the reply: no event can slip in between.
      signaling.on('event', (event) => this.#handleEvent(event))
      signaling.on('closed', ({ reason }) => this.#close(reason || 'signaling closed'))
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
        if (track !== undefined) this.emit('track-ended', { trackId: track.trackId, participantId: track.participantId })
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
      default:
        return
    }
  }

  /** A remote track exists: add a receive m-line for it; the next answer says which one carries it. */
  #expect(track: TrackInfo): void {
    if (track.participantId === this.#participantId || this.tracks.has(track.trackId)) return
    this.tracks.set(track.trackId, track)
    this.pc.addTransceiver(track.kind, { direction: 'recvonly' })
  }

  /**
   * Offers the current transceivers; runs one at a time and once more if something changed
   * meanwhile. Rejects when the offer is refused or the answer cannot be applied.
   */
  async #negotiate(): Promise<void> {
    if (this.#negotiating) {
      this.#dirty = true
      return
    }
    this.#negotiating = true
    try {
      do {
        this.#dirty = false
        await this.#negotiateOnce()
      } while (this.#dirty && !this.#closed)
    } finally {
      this.#negotiating = false
    }
  }

  async #negotiateOnce(): Promise<void> {
    if (this.#closed) return
    const offer = await this.pc.createOffer()
    await this.pc.setLocalDescription(offer)
    const signaling = this.#signaling
    if (signaling === undefined) return
    let answer
    try {
      answer = await signaling.offer(offer.sdp ?? '')
    } catch (error) {
      // Back to stable so the next change can offer again.
      if (!this.#closed && this.pc.signalingState === 'have-local-offer') await this.pc.setLocalDescription({ type: 'rollback' })
      throw error
    }
    if (this.#closed) return
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp })
    this.#applySubscriptions(answer.subscriptions)
  }

  #applySubscriptions(subscriptions: SubscriptionInfo[]): void {
    for (const subscription of subscriptions) {
      if (this.#byMid.get(subscription.mid)?.trackId === subscription.trackId) continue
      const transceiver = this.pc.getTransceivers().find((candidate) => candidate.mid === subscription.mid)
      if (transceiver === undefined) continue
      this.#byMid.set(subscription.mid, subscription)
      this.emit('track', {
        ...subscription,
        name: this.participants.get(subscription.participantId)?.name ?? subscription.participantId,
        track: transceiver.receiver.track,
      })
    }
  }

  #close(reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#sizes.close()
    this.pc.close()
    this.emit('closed', { reason })
  }
}
