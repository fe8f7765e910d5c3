// MediaEngine over the native addon (@conclave/media). The only module that loads the addon.

import type { MediaKind } from '@conclave/protocol'
import { AppError, toAppError } from '../app-error.js'
import type { Logger } from '../log.js'
import type {
  EngineTrackId,
  LayerPreference,
  MediaEngine,
  MediaEvent,
  MediaEventListener,
  MediaStats,
  MediaSubscription,
  PeerId,
  PeerStats,
  RelayedTrack,
  RtpForwardDestination,
  RtpForwardId,
  RtpForwardInfo,
} from './media-engine.js'
import { checkRtpForwardDestination } from './rtp-forward-destination.js'

/** The addon's generated typings (bindings/node/index.d.ts): a drift there fails this build. */
type AddonModule = typeof import('@conclave/media')
type AddonWorker = import('@conclave/media').MediaWorker
type AddonEvent = import('@conclave/media').MediaEvent

export interface NativeMediaEngineOptions {
  /** UDP port to bind; 0 picks a free one. */
  port: number
  /** Address to bind. Default "0.0.0.0". */
  bindAddress?: string
  /** The IP put in answers' ICE candidate: what browsers send media to. */
  announcedAddress: string
  /** The port put in answers. Default the bound port. */
  announcedPort?: number
  /** Audio last-N: each subscriber is sent only this many of its loudest audio tracks. Default 0: all. */
  audioLastN?: number
  log: Logger
}

/** Loads the addon; rejects with a clear message when it has not been built. */
export async function loadMediaAddon(): Promise<AddonModule> {
  try {
    return await import('@conclave/media')
  } catch (error) {
    throw new AppError(
      'internal',
      `the media addon @conclave/media could not be loaded (run \`npm run build\`): ${String(error)}`,
      { cause: error },
    )
  }
}

export async function createNativeMediaEngine(options: NativeMediaEngineOptions): Promise<MediaEngine> {
  const addon = await loadMediaAddon()
  return new NativeMediaEngine(addon, options)
}

class NativeMediaEngine implements MediaEngine {
  readonly #worker: AddonWorker
  readonly #listeners = new Set<MediaEventListener>()
  readonly #log: Logger

  constructor(addon: AddonModule, { port, bindAddress = '0.0.0.0', announcedAddress, announcedPort, audioLastN, log }: NativeMediaEngineOptions) {
    this.#log = log
    const workerOptions: import('@conclave/media').WorkerOptions = { port, bindAddress, announcedAddress }
    if (announcedPort !== undefined) workerOptions.announcedPort = announcedPort
    if (audioLastN !== undefined) workerOptions.audioLastN = audioLastN
    try {
      this.#worker = addon.MediaWorker.start(workerOptions, (err, events) => this.#deliver(err, events))
    } catch (error) {
      throw toAppError(error)
    }
  }

  get udpPort(): number {
    return this.#worker.port
  }

  createPeer(): Promise<PeerId> {
    return call(this.#worker.createPeer()) as Promise<PeerId>
  }

  applyOffer(peerId: PeerId, sdp: string): Promise<string> {
    return call(this.#worker.applyOffer(peerId, sdp))
  }

  createOffer(peerId: PeerId, kinds: readonly MediaKind[]): Promise<string> {
    return call(this.#worker.createOffer(peerId, [...kinds]))
  }

  applyAnswer(peerId: PeerId, sdp: string): Promise<void> {
    return call(this.#worker.applyAnswer(peerId, sdp))
  }

  closePeer(peerId: PeerId): Promise<void> {
    return call(this.#worker.closePeer(peerId))
  }

  subscribe(peerId: PeerId, trackId: EngineTrackId): Promise<MediaSubscription> {
    return call(this.#worker.subscribe(peerId, trackId))
  }

  unsubscribe(peerId: PeerId, trackId: EngineTrackId): Promise<void> {
    return call(this.#worker.unsubscribe(peerId, trackId))
  }

  requestKeyframe(trackId: EngineTrackId): Promise<void> {
    return call(this.#worker.requestKeyframe(trackId))
  }

  setLayerPreference(peerId: PeerId, trackId: EngineTrackId, preference: LayerPreference): Promise<void> {
    return call(this.#worker.setLayerPreference(peerId, trackId, preference))
  }

  setPriority(peerId: PeerId, trackId: EngineTrackId, priority: number): Promise<void> {
    return call(this.#worker.setPriority(peerId, trackId, priority))
  }

  setPartition(peerId: PeerId, partition: number): Promise<void> {
    return call(this.#worker.setPartition(peerId, partition))
  }

  async addRtpForward(trackId: EngineTrackId, destination: RtpForwardDestination): Promise<RtpForwardInfo> {
    checkRtpForwardDestination(destination)
    const info = await call(this.#worker.addRtpForward(trackId, destination))
    const forward: RtpForwardInfo = {
      id: info.id as RtpForwardId,
      trackId: info.trackId as EngineTrackId,
      kind: info.kind,
      destination: info.destination,
      ssrc: info.ssrc,
      payloadType: info.payloadType,
      codec: info.codec,
      clockRate: info.clockRate,
    }
    if (info.channels !== undefined && info.channels !== null) forward.channels = info.channels
    return forward
  }

  removeRtpForward(id: RtpForwardId): Promise<boolean> {
    return call(this.#worker.removeRtpForward(id))
  }

  createRelayLink(remote: RtpForwardDestination, keyingMaterial: Uint8Array, initiator: boolean): Promise<PeerId> {
    return call(this.#worker.createRelayPeer(remote, Buffer.from(keyingMaterial), initiator)) as Promise<PeerId>
  }

  async relayExport(link: PeerId, trackId: EngineTrackId): Promise<RelayedTrack> {
    const relayed = await call(this.#worker.relayExport(link, trackId))
    return {
      kind: relayed.kind,
      layers: relayed.layers.map(({ ssrc, rtxSsrc }) => ({ ssrc, ...(rtxSsrc != null ? { rtxSsrc } : {}) })),
      payloadTypes: relayed.payloadTypes.map(({ codec, payloadType, rtxPayloadType }) => ({
        codec,
        payloadType,
        ...(rtxPayloadType != null ? { rtxPayloadType } : {}),
      })),
    }
  }

  relayUnexport(link: PeerId, trackId: EngineTrackId): Promise<void> {
    return call(this.#worker.relayUnexport(link, trackId))
  }

  relayImport(link: PeerId, relayed: RelayedTrack, streamId: string, partition: number): Promise<EngineTrackId> {
    return call(this.#worker.relayImport(link, relayed, streamId, partition)) as Promise<EngineTrackId>
  }

  relayEndImport(link: PeerId, trackId: EngineTrackId): Promise<void> {
    return call(this.#worker.relayEndImport(link, trackId))
  }

  relaySetWantedLayers(link: PeerId, trackId: EngineTrackId, wanted: readonly boolean[]): Promise<void> {
    return call(this.#worker.relaySetWantedLayers(link, trackId, [...wanted]))
  }

  setTrackPartition(trackId: EngineTrackId, partition: number): Promise<void> {
    return call(this.#worker.setTrackPartition(trackId, partition))
  }

  async peerStats(peerId: PeerId): Promise<PeerStats> {
    const stats = await call(this.#worker.peerStats(peerId))
    return { ...stats, peerId: stats.peerId as PeerId }
  }

  stats(): Promise<MediaStats> {
    return call(this.#worker.stats())
  }

  onEvents(listener: MediaEventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  close(): Promise<void> {
    return call(this.#worker.close())
  }

  #deliver(err: Error | null, raw: AddonEvent[]): void {
    if (err !== null) {
      this.#log.error('media event delivery failed', { err })
      return
    }
    const events: MediaEvent[] = []
    for (const event of raw) {
      const converted = fromAddonEvent(event)
      if (converted === undefined) this.#log.warn('media event with missing fields dropped', { event })
      else events.push(converted)
    }
    if (events.length === 0) return
    for (const listener of this.#listeners) {
      try {
        listener(events)
      } catch (error) {
        // A throwing listener is a bug in us; the others must still see the batch.
        this.#log.error('media event listener threw', { err: error })
      }
    }
  }
}

async function call<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending
  } catch (error) {
    throw toAppError(error)
  }
}

/** Turns the addon's flat event into the union; undefined when a field its type needs is missing. */
function fromAddonEvent(event: AddonEvent): MediaEvent | undefined {
  // napi leaves unset optional fields undefined; null is read the same way to be safe.
  const peerId = (event.peerId ?? undefined) as PeerId | undefined
  const trackId = (event.trackId ?? undefined) as EngineTrackId | undefined
  switch (event.type) {
    case 'peer-connected':
      return peerId === undefined ? undefined : { type: 'peer-connected', peerId, remote: event.remote ?? '' }
    case 'peer-disconnected':
      return peerId === undefined ? undefined : { type: 'peer-disconnected', peerId, reason: event.reason ?? 'unknown' }
    case 'track-published':
      if (peerId === undefined || trackId === undefined) return undefined
      if (event.kind !== 'audio' && event.kind !== 'video') return undefined
      return { type: 'track-published', peerId, trackId, kind: event.kind, mid: event.mid ?? '', streamId: event.streamId ?? '' }
    case 'track-ended':
      return peerId === undefined || trackId === undefined ? undefined : { type: 'track-ended', peerId, trackId }
    case 'keyframe-requested':
      return trackId === undefined ? undefined : { type: 'keyframe-requested', trackId, by: (event.by ?? undefined) as PeerId | undefined }
    case 'layer-switched':
      if (peerId === undefined || trackId === undefined || event.layer === undefined || event.layer === null) return undefined
      return { type: 'layer-switched', peerId, trackId, layer: event.layer }
    case 'speaking-changed':
      if (peerId === undefined || trackId === undefined || typeof event.speaking !== 'boolean') return undefined
      return { type: 'speaking-changed', peerId, trackId, speaking: event.speaking }
    case 'layers-needed':
      if (peerId === undefined || trackId === undefined || !Array.isArray(event.active)) return undefined
      return { type: 'layers-needed', peerId, trackId, active: event.active }
    case 'worker-restarted':
      return { type: 'worker-restarted', reason: event.reason ?? 'unknown' }
    default:
      return undefined
  }
}
