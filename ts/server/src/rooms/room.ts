// A room: who is in it and what they publish. In memory, one node.

import type { RoomId, ServerEvent } from '@conclave/protocol'
import type { EngineTrackId } from '../media/media-engine.js'
import type { Participant, PublishedTrack } from './participant.js'

export class Room {
  readonly participants = new Map<string, Participant>()
  readonly tracks = new Map<EngineTrackId, PublishedTrack>()

  constructor(readonly id: RoomId) {}

  /** Sends `event` to every member with a channel, except `except`. */
  broadcast(event: ServerEvent, except?: Participant): void {
    for (const participant of this.participants.values()) {
      if (participant !== except) participant.sink?.send(event)
    }
  }

  /** What a newcomer learns: everyone announced and every track, except its own. */
  snapshotFor(participant: Participant) {
    const participants = [...this.participants.values()]
      .filter((other) => other !== participant && other.announced)
      .map((other) => other.info())
    const tracks = [...this.tracks.values()].filter((track) => track.owner !== participant).map((track) => track.info())
    return { participants, tracks }
  }
}
