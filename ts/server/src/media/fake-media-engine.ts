// A MediaEngine in memory for tests that need no packets: it reads m-lines, never touches a socket.

import { AppError } from '../app-error.js'
import type { MediaKind } from '@conclave/protocol'
import {
  type EngineTrackId,
  type LayerPreference,
  type MediaEngine,
  type MediaEvent,
  type MediaEventListener,
  type MediaStats,
  type MediaSubscription,
  type PeerId,
  type PeerStats,
  RELAY_KEYING_MATERIAL_BYTES,
  type RelayedTrack,
  type RtpForwardDestination,
  type RtpForwardId,
  type RtpForwardInfo,
} from './media-engine.js'
import { checkRtpForwardDestination } from './rtp-forward-destination.js'

interface FakePeer {
  /** Receive m-lines by mid, with the track each carries. */
  slots: Map<string, { kind: MediaKind; track: EngineTrackId | undefined }>
  /** Published tracks by the mid they arrive on. */
  published: Map<string, EngineTrackId>
  localOffer?: FakeLocalOffer
  /** A relay link to another node's engine. */
  relay?: true
}

/** An offer the fake made (`createOffer`) that waits for its answer: the mids and kinds it adds. */
type FakeLocalOffer = Map<string, MediaKind>

interface FakeTrack {
  owner: PeerId
  kind: MediaKind
}

/**
 * Follows the engine's contract (codes, ordering: replies first, events in a later macrotask)
 * closely enough for the control plane's tests. Offers are read only for `m=`, `a=mid` and the
 * direction; any text not starting with `v=0` is `invalid_sdp`.
 */
export class FakeMediaEngine implements MediaEngine {
  readonly udpPort: number
  readonly #peers = new Map<PeerId, FakePeer>()
  readonly #tracks = new Map<EngineTrackId, FakeTrack>()
  readonly #listeners = new Set<MediaEventListener>()
  #nextPeer = 1
  #nextTrack = 1
  readonly #rtpForwards = new Map<RtpForwardId, EngineTrackId>()
  #nextRtpForward = 1
  #closed = false
  /** Every command received, for assertions: `['subscribe', 2, 1]`. */
  readonly calls: unknown[][] = []
  /** Each peer's partition as last set (absent: the main room, 0). */
  readonly partitions = new Map<PeerId, number>()
  /** Each imported track's partition as last set. */
  readonly trackPartitions = new Map<EngineTrackId, number>()

  constructor({ udpPort = 40000 }: { udpPort?: number } = {}) {
    this.udpPort = udpPort
  }

  async createPeer(): Promise<PeerId> {
    this.#record('createPeer')
    this.#open()
    const id = this.#nextPeer++ as PeerId
    this.#peers.set(id, { slots: new Map(), published: new Map() })
    return id
  }

  async applyOffer(peerId: PeerId, sdp: string): Promise<string> {
    this.#record('applyOffer', peerId)
    const peer = this.#peer(peerId)
    if (!sdp.startsWith('v=0')) throw new AppError('invalid_sdp', 'invalid SDP: the first line must be v=0')
    if (peer.localOffer !== undefined) throw new AppError('invalid_state', `peer-${peerId} is have-local-offer`)
    const events: MediaEvent[] = []
    for (const line of readMediaSections(sdp)) {
      if (line.direction === 'recvonly') {
        if (!peer.slots.has(line.mid)) peer.slots.set(line.mid, { kind: line.kind, track: undefined })
      } else if (line.direction !== 'inactive' && !peer.published.has(line.mid)) {
        const trackId = this.#nextTrack++ as EngineTrackId
        peer.published.set(line.mid, trackId)
        this.#tracks.set(trackId, { owner: peerId, kind: line.kind })
        events.push({ type: 'track-published', peerId, trackId, kind: line.kind, mid: line.mid, streamId: 'stream' })
      }
    }
    this.#emitLater(events)
    return 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake answer\r\nt=0 0\r\n'
  }

  /** The offer's SDP lists only the new m-lines (`m=<kind>` and `a=mid:s<n>`). */
  async createOffer(peerId: PeerId, kinds: readonly MediaKind[]): Promise<string> {
    this.#record('createOffer', peerId, [...kinds])
    const peer = this.#peer(peerId)
    if (peer.localOffer !== undefined) throw new AppError('invalid_state', `peer-${peerId} is have-local-offer`)
    const offer: FakeLocalOffer = new Map()
    let next = 0
    for (const kind of kinds) {
      while (peer.slots.has(`s${next}`) || offer.has(`s${next}`)) next++
      offer.set(`s${next}`, kind)
    }
    peer.localOffer = offer
    const lines = [...offer].map(([mid, kind]) => `m=${kind} 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:${mid}\r\na=sendonly\r\n`)
    return `v=0\r\no=- 0 1 IN IP4 127.0.0.1\r\ns=fake offer\r\nt=0 0\r\n${lines.join('')}`
  }

  /** Every new m-line the answer does not mark `inactive` becomes a free receive slot. */
  async applyAnswer(peerId: PeerId, sdp: string): Promise<void> {
    this.#record('applyAnswer', peerId)
    const peer = this.#peer(peerId)
    const offer = peer.localOffer
    if (offer === undefined) throw new AppError('invalid_state', `peer-${peerId} is stable`)
    peer.localOffer = undefined
    if (!sdp.startsWith('v=0')) throw new AppError('invalid_sdp', 'invalid SDP: the first line must be v=0')
    const inactive = new Set(readMediaSections(sdp).filter((line) => line.direction === 'inactive').map((line) => line.mid))
    for (const [mid, kind] of offer) if (!inactive.has(mid)) peer.slots.set(mid, { kind, track: undefined })
  }

  async closePeer(peerId: PeerId): Promise<void> {
    this.#record('closePeer', peerId)
    const peer = this.#peer(peerId)
    this.#peers.delete(peerId)
    const events: MediaEvent[] = []
    for (const trackId of peer.published.values()) {
      this.#dropTrack(trackId)
      events.push({ type: 'track-ended', peerId, trackId })
    }
    this.#emitLater(events)
  }

  async subscribe(peerId: PeerId, trackId: EngineTrackId): Promise<MediaSubscription> {
    this.#record('subscribe', peerId, trackId)
    const peer = this.#peer(peerId)
    const track = this.#tracks.get(trackId)
    if (track === undefined) throw new AppError('track_not_found', `track-${trackId} does not exist`)
    for (const slot of peer.slots.values()) {
      if (slot.track === trackId) throw new AppError('already_subscribed', `peer-${peerId} already receives track-${trackId}`)
    }
    for (const [mid, slot] of peer.slots) {
      if (slot.kind === track.kind && slot.track === undefined) {
        slot.track = trackId
        return { mid, ssrc: 1000 + trackId }
      }
    }
    throw new AppError('no_free_slot', `peer-${peerId} has no free receive m-line for track-${trackId}; renegotiate first`)
  }

  async unsubscribe(peerId: PeerId, trackId: EngineTrackId): Promise<void> {
    this.#record('unsubscribe', peerId, trackId)
    const peer = this.#peer(peerId)
    for (const slot of peer.slots.values()) {
      if (slot.track === trackId) {
        slot.track = undefined
        return
      }
    }
    throw new AppError('not_subscribed', `peer-${peerId} does not receive track-${trackId}`)
  }

  async requestKeyframe(trackId: EngineTrackId): Promise<void> {
    this.#record('requestKeyframe', trackId)
    if (!this.#tracks.has(trackId)) throw new AppError('track_not_found', `track-${trackId} does not exist`)
  }

  async setLayerPreference(peerId: PeerId, trackId: EngineTrackId, preference: LayerPreference): Promise<void> {
    this.#record('setLayerPreference', peerId, trackId, preference)
    const peer = this.#peer(peerId)
    if (![...peer.slots.values()].some((slot) => slot.track === trackId)) {
      throw new AppError('not_subscribed', `peer-${peerId} does not receive track-${trackId}`)
    }
    // One layer per track here: nothing to switch, so no layer-switched event.
  }

  async setPriority(peerId: PeerId, trackId: EngineTrackId, priority: number): Promise<void> {
    this.#record('setPriority', peerId, trackId, priority)
    const peer = this.#peer(peerId)
    if (![...peer.slots.values()].some((slot) => slot.track === trackId)) {
      throw new AppError('not_subscribed', `peer-${peerId} does not receive track-${trackId}`)
    }
  }

  async setPartition(peerId: PeerId, partition: number): Promise<void> {
    this.#record('setPartition', peerId, partition)
    this.#peer(peerId)
    this.partitions.set(peerId, partition)
  }

  async addRtpForward(trackId: EngineTrackId, destination: RtpForwardDestination): Promise<RtpForwardInfo> {
    this.#record('addRtpForward', trackId, destination)
    this.#open()
    checkRtpForwardDestination(destination)
    const track = this.#tracks.get(trackId)
    if (track === undefined) throw new AppError('track_not_found', `track-${trackId} does not exist`)
    const id = this.#nextRtpForward++ as RtpForwardId
    this.#rtpForwards.set(id, trackId)
    const destinationText = destination.address.includes(':') ? `[${destination.address}]:${destination.port}` : `${destination.address}:${destination.port}`
    const codec = track.kind === 'audio' ? { codec: 'opus', payloadType: 111, clockRate: 48_000, channels: 2 } : { codec: 'VP8', payloadType: 96, clockRate: 90_000 }
    return { id, trackId, kind: track.kind, destination: destinationText, ssrc: 5000 + id, ...codec }
  }

  async removeRtpForward(id: RtpForwardId): Promise<boolean> {
    this.#record('removeRtpForward', id)
    this.#open()
    const trackId = this.#rtpForwards.get(id)
    this.#rtpForwards.delete(id)
    // A forward ends with its track, as in the engine.
    return trackId !== undefined && this.#tracks.has(trackId)
  }

  /** A link is a peer whose slots carry exports (`relay:<trackId>`) and whose tracks are imports. */
  async createRelayLink(remote: RtpForwardDestination, keyingMaterial: Uint8Array, initiator: boolean): Promise<PeerId> {
    this.#record('createRelayLink', `${remote.address}:${remote.port}`, initiator)
    this.#open()
    if (keyingMaterial.length !== RELAY_KEYING_MATERIAL_BYTES) {
      throw new AppError('invalid_argument', `a relay link needs ${RELAY_KEYING_MATERIAL_BYTES} bytes of keying material`)
    }
    const id = this.#nextPeer++ as PeerId
    this.#peers.set(id, { slots: new Map(), published: new Map(), relay: true })
    return id
  }

  async relayExport(link: PeerId, trackId: EngineTrackId): Promise<RelayedTrack> {
    this.#record('relayExport', link, trackId)
    const peer = this.#relay(link)
    const track = this.#tracks.get(trackId)
    if (track === undefined) throw new AppError('track_not_found', `track-${trackId} does not exist`)
    const mid = `relay:${trackId}`
    if (peer.slots.has(mid)) throw new AppError('already_subscribed', `peer-${link} already receives track-${trackId}`)
    peer.slots.set(mid, { kind: track.kind, track: trackId })
    const payloadTypes = track.kind === 'audio' ? [{ codec: 'opus', payloadType: 111 }] : [{ codec: 'VP8', payloadType: 96, rtxPayloadType: 97 }]
    return { kind: track.kind, layers: [{ ssrc: 7000 + trackId }], payloadTypes }
  }

  async relayUnexport(link: PeerId, trackId: EngineTrackId): Promise<void> {
    this.#record('relayUnexport', link, trackId)
    if (!this.#relay(link).slots.delete(`relay:${trackId}`)) throw new AppError('not_subscribed', `peer-${link} does not receive track-${trackId}`)
  }

  async relayImport(link: PeerId, relayed: RelayedTrack, streamId: string, partition: number): Promise<EngineTrackId> {
    const ssrc = relayed.layers[0]?.ssrc
    this.#record('relayImport', link, ssrc, streamId, partition)
    const peer = this.#relay(link)
    if (ssrc === undefined) throw new AppError('invalid_argument', 'a relayed track has at least one layer')
    const trackId = this.#nextTrack++ as EngineTrackId
    peer.published.set(`import:${ssrc}`, trackId)
    this.#tracks.set(trackId, { owner: link, kind: relayed.kind })
    this.trackPartitions.set(trackId, partition)
    return trackId
  }

  async relayEndImport(link: PeerId, trackId: EngineTrackId): Promise<void> {
    this.#record('relayEndImport', link, trackId)
    const peer = this.#relay(link)
    const mid = [...peer.published].find(([, id]) => id === trackId)?.[0]
    if (mid === undefined) throw new AppError('track_not_found', `track-${trackId} does not exist`)
    peer.published.delete(mid)
    this.#dropTrack(trackId)
    this.#emitLater([{ type: 'track-ended', peerId: link, trackId }])
  }

  async relaySetWantedLayers(link: PeerId, trackId: EngineTrackId, wanted: readonly boolean[]): Promise<void> {
    this.#record('relaySetWantedLayers', link, trackId, [...wanted])
    if (!this.#relay(link).slots.has(`relay:${trackId}`)) throw new AppError('not_subscribed', `peer-${link} does not receive track-${trackId}`)
  }

  async setTrackPartition(trackId: EngineTrackId, partition: number): Promise<void> {
    this.#record('setTrackPartition', trackId, partition)
    if (!this.#tracks.has(trackId)) throw new AppError('track_not_found', `track-${trackId} does not exist`)
    this.trackPartitions.set(trackId, partition)
  }

  #relay(link: PeerId): FakePeer {
    const peer = this.#peer(link)
    if (peer.relay !== true) throw new AppError('invalid_argument', `peer-${link} is not a relay link`)
    return peer
  }

  async peerStats(peerId: PeerId): Promise<PeerStats> {
    const peer = this.#peer(peerId)
    const subscriptions = [...peer.slots.values()].filter((slot) => slot.track !== undefined).length
    return {
      peerId,
      connected: false,
      packetsReceived: 0,
      bytesReceived: 0,
      packetsSent: 0,
      bytesSent: 0,
      nacksReceived: 0,
      retransmissionsSent: 0,
      keyframeRequestsSent: 0,
      publishedTracks: peer.published.size,
      subscriptions,
      availableOutgoingBitrateBps: 0,
    }
  }

  async stats(): Promise<MediaStats> {
    this.#open()
    let subscriptions = 0
    for (const peer of this.#peers.values()) {
      for (const slot of peer.slots.values()) if (slot.track !== undefined) subscriptions++
    }
    return {
      peers: this.#peers.size,
      connectedPeers: 0,
      tracks: this.#tracks.size,
      subscriptions,
      packetsReceived: 0,
      packetsForwarded: 0,
      droppedUnknownSource: 0,
      droppedMalformed: 0,
      droppedSrtpAuth: 0,
      droppedReplay: 0,
      stunRequests: 0,
      stunRejected: 0,
      workerRestarts: 0,
    }
  }

  onEvents(listener: MediaEventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  /** Test control: the peer's transport died (as on consent expiry); its tracks end. */
  disconnect(peerId: PeerId, reason = 'consent_expired'): void {
    const peer = this.#peer(peerId)
    const events: MediaEvent[] = [{ type: 'peer-disconnected', peerId, reason }]
    for (const trackId of peer.published.values()) {
      this.#dropTrack(trackId)
      events.push({ type: 'track-ended', peerId, trackId })
    }
    peer.published.clear()
    this.#emitLater(events)
  }

  /** Test control: the engine reports `events` (voice activity, dynacast), as it would decide them. */
  report(events: MediaEvent[]): void {
    this.#emitLater(events)
  }

  /** Test control: the mid -> track each receive m-line of `peerId` carries. */
  slotsOf(peerId: PeerId): Map<string, EngineTrackId | undefined> {
    const peer = this.#peer(peerId)
    return new Map([...peer.slots].map(([mid, slot]) => [mid, slot.track]))
  }

  #dropTrack(trackId: EngineTrackId): void {
    this.#tracks.delete(trackId)
    for (const peer of this.#peers.values()) {
      for (const slot of peer.slots.values()) if (slot.track === trackId) slot.track = undefined
    }
  }

  #peer(peerId: PeerId): FakePeer {
    this.#open()
    const peer = this.#peers.get(peerId)
    if (peer === undefined) throw new AppError('peer_not_found', `peer-${peerId} does not exist`)
    return peer
  }

  #open(): void {
    if (this.#closed) throw new AppError('worker_closed', 'the media worker is closed')
  }

  #record(...call: unknown[]): void {
    this.calls.push(call)
  }

  /** Events after the reply, in a later macrotask, as the addon delivers them. */
  #emitLater(events: MediaEvent[]): void {
    if (events.length === 0) return
    setImmediate(() => {
      for (const listener of this.#listeners) listener(events)
    })
  }
}

interface MediaSection {
  kind: MediaKind
  mid: string
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'
}

function readMediaSections(sdp: string): MediaSection[] {
  const sections: MediaSection[] = []
  let current: MediaSection | undefined
  for (const line of sdp.split(/\r?\n/)) {
    const media = /^m=(audio|video) /.exec(line)
    if (media !== null) {
      current = { kind: media[1] === 'audio' ? 'audio' : 'video', mid: String(sections.length), direction: 'sendrecv' }
      sections.push(current)
    } else if (current !== undefined && line.startsWith('a=mid:')) {
      current.mid = line.slice('a=mid:'.length)
    } else if (current !== undefined && /^a=(sendrecv|sendonly|recvonly|inactive)$/.test(line)) {
      current.direction = line.slice(2) as MediaSection['direction']
    }
  }
  return sections
}
