// A meeting from the browser: publish local tracks, receive everyone else's, over one
// RTCPeerConnection where the server always answers.

import type {
  MediaKind,
  ParticipantId,
  ParticipantInfo,
  ServerEvent,
  SubscriptionInfo,
  TrackId,
  TrackInfo,
} from '@conclave/protocol'
import { Emitter } from './emitter.js'
import { SignalingClient } from './signaling-client.js'

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
}

export interface MeetingOptions {
  /** The server's signaling URL, `ws(s)://host/ws`. */
  url: string | URL
  room: string
  name: string
  /** Camera and microphone (or anything) to publish. */
  stream: MediaStream
  token?: string
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
  #negotiating = false
  #dirty = false
  #closed = false

  constructor(options: MeetingOptions) {
    super()
    this.#options = options
    // ICE-lite server with a host candidate in every answer: no STUN/TURN servers needed here.
    this.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' })
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
      const joined = await signaling.join(room, name)
      this.#participantId = joined.participantId
      for (const participant of joined.participants) this.participants.set(participant.participantId, participant)
      for (const track of stream.getTracks()) this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] })
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

  /** Leaves the room and closes everything. */
  async leave(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
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
    this.pc.close()
    this.emit('closed', { reason })
  }
}
