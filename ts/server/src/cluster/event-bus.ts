// How nodes tell each other what happened to a room: one ordered stream of ClusterEvents that
// every node (the sender included) receives. In memory for one node, Redis pub/sub for a cluster.

import type { Breakouts, ChatMessage, ParticipantId, RecordingId, RecordingInfo, RoomId, TrackId } from '@conclave/protocol'
import type { ParticipantRecord, RoomRecord } from '../state/room-store.js'

/** Facts about a room, in the past tense. The store already holds the state they describe. */
export type ClusterEvent =
  | { type: 'participant-joined'; roomId: RoomId; participant: ParticipantRecord }
  | { type: 'participant-left'; roomId: RoomId; participant: ParticipantRecord; reason: string }
  | { type: 'participant-updated'; roomId: RoomId; participant: ParticipantRecord }
  /**
   * Its session resumed on node `toNode` (the store says so already): `fromNode` forgets it and
   * closes its peer without announcing a leave; its tracks end there, new ones come from `toNode`.
   */
  | { type: 'participant-migrated'; roomId: RoomId; participantId: ParticipantId; fromNode: string; toNode: string }
  | { type: 'participant-admitted'; roomId: RoomId; participantId: ParticipantId }
  | { type: 'participant-denied'; roomId: RoomId; participant: ParticipantRecord }
  | { type: 'participant-removed'; roomId: RoomId; participant: ParticipantRecord; by: ParticipantId | undefined }
  | { type: 'waiting-room-changed'; roomId: RoomId }
  | { type: 'track-muted'; roomId: RoomId; participantId: ParticipantId; trackId: TrackId; by: ParticipantId | undefined }
  | { type: 'track-unmuted'; roomId: RoomId; participantId: ParticipantId; trackId: TrackId }
  /** `audience`: while breakouts run, only these participants get a room message (the sender's group). */
  | { type: 'chat-posted'; roomId: RoomId; message: ChatMessage; audience?: ParticipantId[] }
  | { type: 'room-updated'; roomId: RoomId; room: RoomRecord }
  /** The room's breakouts were created, changed or (undefined) ended; the store holds the same. */
  | { type: 'breakouts-changed'; roomId: RoomId; breakouts: Breakouts | undefined }
  | { type: 'room-closed'; roomId: RoomId; participants: ParticipantRecord[] }
  | { type: 'recording-started'; roomId: RoomId; recording: RecordingInfo }
  | { type: 'recording-stopped'; roomId: RoomId; recordingId: RecordingId; partial: boolean; failed: boolean }
  /** Node `fromNode` was asked to stop a recording another node runs: that node stops it (a request, not a fact). */
  | { type: 'recording-stop-requested'; roomId: RoomId; recordingId: RecordingId; fromNode: string }

export type ClusterEventListener = (event: ClusterEvent) => void

export interface EventBus {
  /** Sends `event` to every node's listeners, this node's too, after this call returns. */
  publish(event: ClusterEvent): Promise<void>
  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: ClusterEventListener): () => void
  close(): Promise<void>
}

/** One node: events go to this process's listeners, in order, on a later microtask. */
export class MemoryEventBus implements EventBus {
  readonly #listeners = new Set<ClusterEventListener>()

  async publish(event: ClusterEvent): Promise<void> {
    // A copy, as a remote node would see it: no listener can change the publisher's objects.
    const copy = structuredClone(event)
    queueMicrotask(() => deliver(this.#listeners, copy))
  }

  subscribe(listener: ClusterEventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.#listeners.clear()
  }
}

export function deliver(listeners: Iterable<ClusterEventListener>, event: ClusterEvent): void {
  for (const listener of listeners) {
    try {
      listener(event)
    } catch (error) {
      // A throwing listener is a bug in us; the others still get the event.
      console.error('conclave: a cluster event listener threw', error)
    }
  }
}
