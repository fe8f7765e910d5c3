// Media across the nodes of a cluster (cascading). A node with members in a room imports every
// track of that room published on another node: it asks the publishing node to export the track
// over the relay link between their engines (SRTP keyed through Redis, no ICE/DTLS), imports the
// stream as a track of its own engine and hands it to its members like a local one. One copy
// crosses per node pair however many members receive it there.

import { randomUUID } from 'node:crypto'
import type { Breakouts, ParticipantId, RoomId, TrackDetails, TrackId } from '@conclave/protocol'
import { AppError, hasCode } from '../app-error.js'
import type { Logger } from '../log.js'
import type { EngineTrackId, MediaEngine, PeerId, RelayedTrack, RtpForwardDestination } from '../media/media-engine.js'
import { partitionOf } from '../rooms/breakouts.js'
import type { PublishedTrack } from '../rooms/participant.js'
import type { RoomService } from '../rooms/room-service.js'
import type { RoomStore } from '../state/room-store.js'
import type { EventBus } from './event-bus.js'
import type { RelayMessage, RelayMessenger } from './relay-messenger.js'

export interface MediaRelayOptions {
  nodeId: string
  media: MediaEngine
  rooms: RoomService
  store: RoomStore
  bus: EventBus
  messenger: RelayMessenger
  /** Where other nodes reach this node's engine (its UDP port on the cluster's network). */
  address: RtpForwardDestination
  log: Logger
  /** How long an export request may wait for its reply. Default 5 s. */
  requestTimeoutMs?: number
  /** How often links are checked for nodes that stopped advertising (died). Default 10 s. */
  linkCheckIntervalMs?: number
}

/** A track of another node, imported here (or on its way). */
interface Import {
  roomId: RoomId
  trackId: TrackId
  node: string
  ownerId: ParticipantId
  link: PeerId | undefined
  engineId: EngineTrackId | undefined
  /** Ended (by its node, or this node no longer needs it) while the import was on its way. */
  cancelled: boolean
}

interface PendingRequest {
  resolve(relayed: RelayedTrack): void
  reject(error: Error): void
  timer: NodeJS.Timeout
}

export class MediaRelay {
  readonly #nodeId: string
  readonly #media: MediaEngine
  readonly #rooms: RoomService
  readonly #store: RoomStore
  readonly #messenger: RelayMessenger
  readonly #address: RtpForwardDestination
  readonly #log: Logger
  readonly #requestTimeoutMs: number
  /** The link to each other node's engine, once asked for. */
  #links = new Map<string, Promise<PeerId>>()
  /** Keyed by `roomId/trackId`. */
  readonly #imports = new Map<string, Import>()
  /** What this node exports, keyed by `node/roomId/trackId`. */
  readonly #exports = new Map<string, { link: PeerId; engineId: EngineTrackId }>()
  readonly #requests = new Map<string, PendingRequest>()
  readonly #unsubscribe: Array<() => void> = []
  #closed = false
  readonly #linkCheck: NodeJS.Timeout

  constructor({ nodeId, media, rooms, store, bus, messenger, address, log, requestTimeoutMs = 5000, linkCheckIntervalMs = 10_000 }: MediaRelayOptions) {
    this.#nodeId = nodeId
    this.#media = media
    this.#rooms = rooms
    this.#store = store
    this.#messenger = messenger
    this.#address = address
    this.#log = log
    this.#requestTimeoutMs = requestTimeoutMs
    this.#unsubscribe.push(
      messenger.onMessage((message) => this.#handle(message)),
      bus.subscribe((event) => {
        switch (event.type) {
          case 'breakouts-changed':
            return this.#repartition(event.roomId, event.breakouts)
          case 'participant-left':
          case 'participant-removed':
            return this.#ownerGone(event.roomId, event.participant.participantId)
          case 'track-muted':
            if (this.#imports.has(importKey(event.roomId, event.trackId))) this.#rooms.muteTrack(event.roomId, event.trackId)
            return
          case 'track-unmuted':
            if (this.#imports.has(importKey(event.roomId, event.trackId))) this.#rooms.unmuteTrack(event.roomId, event.trackId)
            return
          default:
            return
        }
      }),
      media.onEvents((events) => {
        if (events.some((event) => event.type === 'worker-restarted')) this.#engineLost()
        for (const event of events) if (event.type === 'layers-needed') this.#layersNeeded(event.peerId, event.trackId, event.active)
      }),
    )
    this.#linkCheck = setInterval(() => {
      this.#closeLinksToDeadNodes().catch((error: unknown) => this.#log.warn('checking relay links failed', { err: error }))
    }, linkCheckIntervalMs)
    this.#linkCheck.unref()
  }

  /** Says where this node's engine takes links; call once the engine runs. */
  async start(): Promise<void> {
    await this.#messenger.advertise(this.#address)
  }

  /** A track published or ended on this node: the other nodes hear of it. */
  trackChanged(track: PublishedTrack, change: 'published' | 'ended'): void {
    if (track.imported || this.#closed) return
    const roomId = track.owner.room.id
    const message: RelayMessage =
      change === 'published'
        ? {
            type: 'track-published',
            from: this.#nodeId,
            roomId,
            participantId: track.owner.id,
            participantName: track.owner.name,
            track: { trackId: track.id, kind: track.kind, muted: track.muted, ...(track.source ? { source: track.source } : {}) },
          }
        : { type: 'track-ended', from: this.#nodeId, roomId, trackId: track.id }
    if (change === 'ended') {
      // The engine freed the track's link slots with it.
      for (const key of [...this.#exports.keys()]) if (key.endsWith(`/${roomId}/${track.id}`)) this.#exports.delete(key)
    }
    this.#messenger.announce(message).catch((error: unknown) => this.#log.warn('announcing a track failed', { trackId: track.id, err: error }))
  }

  /** This node got its first participant of a room (import what other nodes publish there) or lost its last. */
  roomChanged(roomId: RoomId, change: 'opened' | 'closed'): void {
    if (this.#closed) return
    if (change === 'opened') {
      this.#importRoom(roomId).catch((error: unknown) => this.#log.warn('importing a room failed', { roomId, err: error }))
      return
    }
    for (const entry of [...this.#imports.values()]) if (entry.roomId === roomId) this.#drop(entry, true)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#linkCheck)
    for (const stop of this.#unsubscribe) stop()
    for (const request of this.#requests.values()) {
      clearTimeout(request.timer)
      request.reject(new AppError('worker_closed', 'the relay closed'))
    }
    this.#requests.clear()
    await this.#messenger.close()
  }

  async #importRoom(roomId: RoomId): Promise<void> {
    const records = await this.#store.listParticipants(roomId)
    for (const record of records) {
      if (record.nodeId === this.#nodeId || record.state !== 'active') continue
      for (const track of record.tracks) this.#import(roomId, record.nodeId, record.participantId, record.name, track)
    }
  }

  #import(roomId: RoomId, node: string, ownerId: ParticipantId, ownerName: string, track: TrackDetails): void {
    const key = importKey(roomId, track.trackId)
    if (this.#closed || this.#imports.has(key) || this.#rooms.room(roomId) === undefined) return
    const entry: Import = { roomId, trackId: track.trackId, node, ownerId, link: undefined, engineId: undefined, cancelled: false }
    this.#imports.set(key, entry)
    const started = performance.now()
    const run = async () => {
      const link = await this.#link(node)
      entry.link = link
      const relayed = await this.#request(node, roomId, track.trackId)
      if (entry.cancelled) return this.#tellUnexport(entry)
      const partition = partitionOf(await this.#store.getBreakouts(roomId), ownerId)
      const engineId = await this.#media.relayImport(link, relayed, ownerId, partition)
      entry.engineId = engineId
      const added =
        !entry.cancelled &&
        this.#rooms.addImportedTrack(roomId, {
          engineId,
          id: track.trackId,
          kind: track.kind,
          source: track.source,
          muted: track.muted,
          owner: { id: ownerId, name: ownerName },
        }) !== undefined
      if (!added) {
        this.#imports.delete(key)
        await this.#endImport(link, engineId)
        return this.#tellUnexport(entry)
      }
      this.#log.info('track imported', { roomId, trackId: track.trackId, from: node, ms: Math.round(performance.now() - started) })
    }
    run().catch((error: unknown) => {
      if (this.#imports.get(key) === entry) this.#imports.delete(key)
      this.#log.warn('importing a track failed', { roomId, trackId: track.trackId, from: node, err: error })
    })
  }

  /** Ends an import here; `unexport` also tells its node to stop sending it. */
  #drop(entry: Import, unexport: boolean): void {
    const key = importKey(entry.roomId, entry.trackId)
    if (this.#imports.get(key) === entry) this.#imports.delete(key)
    entry.cancelled = true
    if (entry.engineId === undefined || entry.link === undefined) return
    this.#rooms.endImportedTrack(entry.roomId, entry.engineId)
    void this.#endImport(entry.link, entry.engineId)
    if (unexport) void this.#tellUnexport(entry)
  }

  async #endImport(link: PeerId, engineId: EngineTrackId): Promise<void> {
    try {
      await this.#media.relayEndImport(link, engineId)
    } catch (error) {
      if (!hasCode(error, 'track_not_found', 'peer_not_found', 'worker_closed')) this.#log.warn('ending an import failed', { err: error })
    }
  }

  async #tellUnexport(entry: Import): Promise<void> {
    await this.#messenger
      .send(entry.node, { type: 'unexport', from: this.#nodeId, roomId: entry.roomId, trackId: entry.trackId })
      .catch((error: unknown) => this.#log.warn('asking a node to stop a relay failed', { node: entry.node, err: error }))
  }

  /** Dynacast across links: what this node's viewers need of an import goes back to its node. */
  #layersNeeded(peerId: PeerId, engineId: EngineTrackId, active: boolean[]): void {
    for (const entry of this.#imports.values()) {
      if (entry.link !== peerId || entry.engineId !== engineId) continue
      this.#messenger
        .send(entry.node, { type: 'layers-wanted', from: this.#nodeId, roomId: entry.roomId, trackId: entry.trackId, active })
        .catch((error: unknown) => this.#log.warn('telling a node which layers are needed failed', { node: entry.node, err: error }))
      return
    }
  }

  #repartition(roomId: RoomId, breakouts: Breakouts | undefined): void {
    for (const entry of this.#imports.values()) {
      if (entry.roomId !== roomId || entry.engineId === undefined) continue
      this.#media
        .setTrackPartition(entry.engineId, partitionOf(breakouts, entry.ownerId))
        .catch((error: unknown) => this.#log.warn('moving an imported track to its partition failed', { trackId: entry.trackId, err: error }))
    }
  }

  #ownerGone(roomId: RoomId, participantId: ParticipantId): void {
    for (const entry of [...this.#imports.values()]) {
      if (entry.roomId === roomId && entry.ownerId === participantId) this.#drop(entry, false)
    }
  }

  /** Every peer of the engine is gone, the links too: forget them; members rejoin and import anew. */
  #engineLost(): void {
    this.#links = new Map()
    this.#exports.clear()
    for (const entry of [...this.#imports.values()]) {
      entry.cancelled = true
      if (entry.engineId !== undefined) this.#rooms.endImportedTrack(entry.roomId, entry.engineId)
    }
    this.#imports.clear()
  }

  /**
   * A node that stopped advertising its address died (or left): its link is closed, which ends
   * what was imported from it and stops what was exported to it. Members hear of its participants
   * leaving through the store's lease.
   */
  async #closeLinksToDeadNodes(): Promise<void> {
    for (const [node, pending] of [...this.#links]) {
      if ((await this.#messenger.addressOf(node)) !== undefined || this.#links.get(node) !== pending) continue
      this.#links.delete(node)
      for (const entry of [...this.#imports.values()]) if (entry.node === node) this.#drop(entry, false)
      for (const key of [...this.#exports.keys()]) if (key.startsWith(`${node}/`)) this.#exports.delete(key)
      const link = await pending.catch(() => undefined)
      if (link === undefined) continue
      await this.#media.closePeer(link).catch((error: unknown) => {
        if (!hasCode(error, 'peer_not_found', 'worker_closed')) throw error
      })
      this.#log.info('relay link to a node that stopped advertising closed', { node })
    }
  }

  #link(node: string): Promise<PeerId> {
    let link = this.#links.get(node)
    if (link === undefined) {
      link = (async () => {
        const address = await this.#messenger.addressOf(node)
        if (address === undefined) throw new AppError('internal', `node ${node} advertises no relay address`)
        const keys = await this.#messenger.linkKey(node)
        const peer = await this.#media.createRelayLink(address, keys, this.#nodeId < node)
        this.#log.info('relay link opened', { node, address: `${address.address}:${address.port}` })
        return peer
      })()
      const links = this.#links
      links.set(node, link)
      // A failed attempt is not kept: the next import tries again.
      link.catch(() => {
        if (links.get(node) === link) links.delete(node)
      })
    }
    return link
  }

  #request(node: string, roomId: RoomId, trackId: TrackId): Promise<RelayedTrack> {
    const requestId = randomUUID()
    return new Promise<RelayedTrack>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(requestId)
        reject(new AppError('internal', `node ${node} did not answer the export of ${trackId} in time`))
      }, this.#requestTimeoutMs)
      this.#requests.set(requestId, { resolve, reject, timer })
      this.#messenger.send(node, { type: 'export-request', from: this.#nodeId, requestId, roomId, trackId }).catch((error: unknown) => {
        clearTimeout(timer)
        this.#requests.delete(requestId)
        reject(error instanceof Error ? error : new Error(String(error)))
      })
    })
  }

  #handle(message: RelayMessage): void {
    if (this.#closed) return
    switch (message.type) {
      case 'track-published':
        this.#import(message.roomId as RoomId, message.from, message.participantId as ParticipantId, message.participantName, message.track)
        return
      case 'track-ended': {
        const entry = this.#imports.get(importKey(message.roomId as RoomId, message.trackId as TrackId))
        if (entry !== undefined) this.#drop(entry, false)
        return
      }
      case 'export-request':
        this.#export(message.from, message.requestId, message.roomId as RoomId, message.trackId as TrackId).catch((error: unknown) =>
          this.#log.warn('answering an export request failed', { node: message.from, err: error }),
        )
        return
      case 'export-reply': {
        const request = this.#requests.get(message.requestId)
        if (request === undefined) return
        this.#requests.delete(message.requestId)
        clearTimeout(request.timer)
        if (message.relayed !== undefined) request.resolve(withoutUndefined(message.relayed))
        else request.reject(new AppError('internal', `${message.from} refused the export: ${message.error?.message ?? 'no reason given'}`))
        return
      }
      case 'layers-wanted': {
        const exported = this.#exports.get(exportKey(message.from, message.roomId as RoomId, message.trackId as TrackId))
        if (exported === undefined) return
        this.#media.relaySetWantedLayers(exported.link, exported.engineId, message.active).catch((error: unknown) => {
          if (!hasCode(error, 'not_subscribed', 'track_not_found', 'peer_not_found', 'worker_closed')) this.#log.warn('applying wanted layers failed', { err: error })
        })
        return
      }
      case 'unexport': {
        const key = exportKey(message.from, message.roomId as RoomId, message.trackId as TrackId)
        const exported = this.#exports.get(key)
        if (exported === undefined) return
        this.#exports.delete(key)
        this.#media.relayUnexport(exported.link, exported.engineId).catch((error: unknown) => {
          if (!hasCode(error, 'not_subscribed', 'track_not_found', 'peer_not_found', 'worker_closed')) this.#log.warn('stopping a relay failed', { err: error })
        })
        return
      }
    }
  }

  async #export(node: string, requestId: string, roomId: RoomId, trackId: TrackId): Promise<void> {
    const reply = (body: Pick<Extract<RelayMessage, { type: 'export-reply' }>, 'relayed' | 'error'>) =>
      this.#messenger.send(node, { type: 'export-reply', from: this.#nodeId, requestId, ...body })
    const track = [...(this.#rooms.room(roomId)?.tracks.values() ?? [])].find((candidate) => candidate.id === trackId && !candidate.imported)
    if (track === undefined) return reply({ error: { code: 'track_not_found', message: `${trackId} is not published on ${this.#nodeId}` } })
    try {
      const link = await this.#link(node)
      let relayed: RelayedTrack
      try {
        relayed = await this.#media.relayExport(link, track.engineId)
      } catch (error) {
        // The other node asks again (it lost its import): send it anew.
        if (!hasCode(error, 'already_subscribed')) throw error
        await this.#media.relayUnexport(link, track.engineId)
        relayed = await this.#media.relayExport(link, track.engineId)
      }
      this.#exports.set(exportKey(node, roomId, trackId), { link, engineId: track.engineId })
      await reply({ relayed })
    } catch (error) {
      const code = error instanceof AppError ? error.code : 'internal'
      await reply({ error: { code, message: error instanceof Error ? error.message : String(error) } })
    }
  }
}

function importKey(roomId: RoomId, trackId: TrackId): string {
  return `${roomId}/${trackId}`
}

function exportKey(node: string, roomId: RoomId, trackId: TrackId): string {
  return `${node}/${roomId}/${trackId}`
}

/** zod leaves absent optionals out; the engine's type wants them absent, not undefined. */
function withoutUndefined(relayed: RelayedTrack): RelayedTrack {
  return JSON.parse(JSON.stringify(relayed)) as RelayedTrack
}
