// The media plane as the control plane sees it. Implementations: the native addon, a fake for tests.

import type { MediaKind } from '@conclave/protocol'

declare const peerIdBrand: unique symbol
declare const engineTrackIdBrand: unique symbol

/** One WebRTC connection inside the engine, assigned by the engine. */
export type PeerId = number & { readonly [peerIdBrand]: true }
/** One published track inside the engine, assigned by the engine. Rooms give it a wire id. */
export type EngineTrackId = number & { readonly [engineTrackIdBrand]: true }

declare const rtpForwardIdBrand: unique symbol
/** One RTP forward (a track teed as plain RTP to a recorder), assigned by the engine. */
export type RtpForwardId = number & { readonly [rtpForwardIdBrand]: true }

/** A fact from the engine, in the past tense. Events arrive in batches, in engine order. */
export type MediaEvent =
  | { type: 'peer-connected'; peerId: PeerId; remote: string }
  /** The peer's tracks end too; the peer still has to be closed to free it. */
  | { type: 'peer-disconnected'; peerId: PeerId; reason: string }
  | { type: 'track-published'; peerId: PeerId; trackId: EngineTrackId; kind: MediaKind; mid: string; streamId: string }
  | { type: 'track-ended'; peerId: PeerId; trackId: EngineTrackId }
  | { type: 'keyframe-requested'; trackId: EngineTrackId; by: PeerId | undefined }
  /**
   * The layer `peerId` should receive of a simulcast track changed; it takes over at its next
   * keyframe. `layer` indexes the track's encodings in the order the publisher's offer lists them.
   */
  | { type: 'layer-switched'; peerId: PeerId; trackId: EngineTrackId; layer: number }
  /** An audio track's voice activity changed (audio-level extension, with the engine's hysteresis). */
  | { type: 'speaking-changed'; peerId: PeerId; trackId: EngineTrackId; speaking: boolean }
  /**
   * Dynacast: which encodings of `peerId`'s simulcast track some subscriber needs, in the order
   * of its offer's RIDs. The publisher's client should set `encodings[i].active` to match.
   */
  | { type: 'layers-needed'; peerId: PeerId; trackId: EngineTrackId; active: boolean[] }
  /** The engine was rebuilt after a fault: every peer is gone (`peer-disconnected` follows for each). */
  | { type: 'worker-restarted'; reason: string }

export type MediaEventListener = (events: readonly MediaEvent[]) => void

/** The result of a subscription: the subscriber's m-line that now carries the track. */
export interface MediaSubscription {
  mid: string
  ssrc: number
}

/** What a subscriber wants of a simulcast track. An absent field lifts that limit. */
export interface LayerPreference {
  /** The highest spatial layer to receive, 0 being the lowest quality. */
  maxSpatialLayer?: number
  /** The tallest picture worth receiving, in pixels; the engine falls back to the lowest layer when none is that small. */
  maxHeight?: number
}

/** Where an RTP forward sends plain RTP: a recorder on this machine or the private network. */
export interface RtpForwardDestination {
  /** An IP address, e.g. "127.0.0.1". */
  address: string
  port: number
}

/** A started RTP forward: what the receiver's SDP needs to describe the stream. */
export interface RtpForwardInfo {
  id: RtpForwardId
  trackId: EngineTrackId
  kind: MediaKind
  /** "ip:port" */
  destination: string
  /** The forward's own SSRC (not the publisher's). */
  ssrc: number
  payloadType: number
  /** The rtpmap name: "opus", "VP8", "H264", "VP9" or "AV1". */
  codec: string
  clockRate: number
  /** 2 for Opus; absent for video. */
  channels?: number
}

/** One codec of a relayed stream: its payload type on the link. */
export interface RelayPayloadType {
  /** The rtpmap name: "opus", "red", "VP8", "H264", "VP9" or "AV1". */
  codec: string
  payloadType: number
  rtxPayloadType?: number
}

/**
 * What one node's engine exports on a relay link and another node's engine imports (cascading):
 * carried between nodes as JSON, read by neither control plane.
 */
export interface RelayedTrack {
  kind: MediaKind
  /** One stream per simulcast layer (in the publisher's order), so the importing engine picks per viewer. */
  layers: Array<{ ssrc: number; rtxSsrc?: number }>
  payloadTypes: RelayPayloadType[]
}

/** Bytes of keying material a relay link needs; both ends get the same. */
export const RELAY_KEYING_MATERIAL_BYTES = 56

export interface PeerStats {
  peerId: PeerId
  connected: boolean
  packetsReceived: number
  bytesReceived: number
  packetsSent: number
  bytesSent: number
  nacksReceived: number
  retransmissionsSent: number
  keyframeRequestsSent: number
  publishedTracks: number
  subscriptions: number
  /** The engine's bandwidth estimate towards the peer, in bit/s; 0 before any congestion feedback. */
  availableOutgoingBitrateBps: number
}

/** Engine-wide counters; `dropped*` count bad datagrams that were discarded. */
export interface MediaStats {
  peers: number
  connectedPeers: number
  tracks: number
  subscriptions: number
  packetsReceived: number
  packetsForwarded: number
  droppedUnknownSource: number
  droppedMalformed: number
  droppedSrtpAuth: number
  droppedReplay: number
  stunRequests: number
  stunRejected: number
  workerRestarts: number
}

/**
 * One media engine on one UDP port. Every method rejects with an `AppError` whose code is one of
 * the engine's stable codes (`invalid_sdp`, `no_free_slot`, `peer_not_found`, ...).
 *
 * Ordering guarantee: a command's reply is delivered before any event it caused. After
 * `await applyOffer(...)` resumes, the caller can register what it needs (which room a peer is in)
 * before the `track-published` events of that offer reach any listener.
 */
export interface MediaEngine {
  /** The bound UDP port. */
  readonly udpPort: number
  createPeer(): Promise<PeerId>
  /** Applies an offer (initial or renegotiation) and resolves with the answer SDP. */
  applyOffer(peerId: PeerId, sdp: string): Promise<string>
  /**
   * Offers the negotiated peer one new m-line we send on per entry of `kinds`, after all it has.
   * Rejects with `invalid_state` while an offer of ours waits for its answer. While it waits, the
   * peer's own offers are refused (`invalid_state`): the engine is the impolite side.
   */
  createOffer(peerId: PeerId, kinds: readonly MediaKind[]): Promise<string>
  /**
   * Applies the peer's answer to our offer: each new m-line it accepts becomes a free receive slot
   * for `subscribe`. The offer is settled either way (an answer that does not fit is `invalid_sdp`).
   */
  applyAnswer(peerId: PeerId, sdp: string): Promise<void>
  /** Frees the peer and everything it published or received. */
  closePeer(peerId: PeerId): Promise<void>
  /** Sends `trackId` to `peerId` on a free receive m-line of the track's kind. */
  subscribe(peerId: PeerId, trackId: EngineTrackId): Promise<MediaSubscription>
  unsubscribe(peerId: PeerId, trackId: EngineTrackId): Promise<void>
  requestKeyframe(trackId: EngineTrackId): Promise<void>
  /**
   * Limits what `peerId` receives of `trackId` (a track it is subscribed to); replaces the previous
   * preference. Without simulcast there is one layer and nothing changes. Rejects with `not_subscribed`.
   */
  setLayerPreference(peerId: PeerId, trackId: EngineTrackId, preference: LayerPreference): Promise<void>
  /**
   * How `peerId`'s downlink favours `trackId` over its other video subscriptions: higher first
   * (default 1, 0..255). When the estimate runs short the lowest drop to their low layer, or
   * pause. Rejects with `not_subscribed`.
   */
  setPriority(peerId: PeerId, trackId: EngineTrackId, priority: number): Promise<void>
  /**
   * Moves `peerId` into media partition `partition` (0 is the main room; breakout rooms): it then
   * exchanges media only with peers of that partition. Nothing is renegotiated; video it starts
   * receiving again resumes at a keyframe the engine asks for. Rejects with `peer_not_found`.
   */
  setPartition(peerId: PeerId, partition: number): Promise<void>
  /**
   * Tees `trackId`'s RTP, decrypted, as plain RTP to `destination` from the engine's UDP port (its
   * own SSRC, continuous sequence numbers, no header extensions). Video starts at a keyframe the
   * engine asks for, and another is asked for whenever none came for 10 s. The forward ends with
   * the track (`track-ended` says so) or with `removeRtpForward`. Only loopback and private
   * addresses are allowed (`forbidden`); an unknown track is `track_not_found`.
   */
  addRtpForward(trackId: EngineTrackId, destination: RtpForwardDestination): Promise<RtpForwardInfo>
  /** Stops a forward; resolves false if it had already ended (with its track, or removed before). */
  removeRtpForward(id: RtpForwardId): Promise<boolean>
  /**
   * Opens a relay link to another node's engine at `remote` (its UDP port): a peer without ICE,
   * DTLS or SDP whose SRTP keys are `keyingMaterial` (RELAY_KEYING_MATERIAL_BYTES random bytes
   * both ends share); `initiator` is true at exactly one end. `closePeer` closes it. Rejects with
   * `invalid_argument` (key length, an unspecified address, a link to that address already open).
   */
  createRelayLink(remote: RtpForwardDestination, keyingMaterial: Uint8Array, initiator: boolean): Promise<PeerId>
  /** Starts sending `trackId` (published on this engine) over `link`; resolves with what the other end imports. */
  relayExport(link: PeerId, trackId: EngineTrackId): Promise<RelayedTrack>
  /** Stops sending `trackId` over `link`. */
  relayUnexport(link: PeerId, trackId: EngineTrackId): Promise<void>
  /**
   * Takes a stream the other end exports on `link` as a track of this engine, which this engine's
   * peers subscribe to like any other, in media partition `partition` (its publisher's).
   */
  relayImport(link: PeerId, relayed: RelayedTrack, streamId: string, partition: number): Promise<EngineTrackId>
  /** Ends a track `relayImport` made; its subscribers' m-lines are freed. */
  relayEndImport(link: PeerId, trackId: EngineTrackId): Promise<void>
  /**
   * Dynacast across a link: which simulcast layers of `trackId` (exported on `link`) the other
   * node's viewers need, in layer order (that node's `layers-needed` for its import). Unwanted
   * layers stop crossing and stop keeping the publisher's encoder busy.
   */
  relaySetWantedLayers(link: PeerId, trackId: EngineTrackId, wanted: readonly boolean[]): Promise<void>
  /** Moves an imported track into `partition` (its publisher changed breakout room on its node). */
  setTrackPartition(trackId: EngineTrackId, partition: number): Promise<void>
  peerStats(peerId: PeerId): Promise<PeerStats>
  stats(): Promise<MediaStats>
  /** Adds a listener for event batches; returns the function that removes it. */
  onEvents(listener: MediaEventListener): () => void
  /** Stops the engine; pending and later commands reject with `worker_closed`. */
  close(): Promise<void>
}
