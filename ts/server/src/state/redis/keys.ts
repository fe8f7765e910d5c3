// Every Redis key and channel Conclave uses, declared once with its type. Never build a key inline.
//
// All keys of a deployment share one prefix (default `conclave:`). The Lua scripts touch a room's
// keys and the `rooms` index together, so the store needs one Redis (or one primary), not a Cluster.

import type { ParticipantId, RecordingId, RoomId } from '@conclave/protocol'

export function redisKeys(prefix = 'conclave:') {
  return {
    /** Sorted set: room id -> when the room's lease ends (ms since the epoch). The index `listRooms` reads. */
    rooms: () => `${prefix}rooms`,
    /**
     * Hash: the RoomRecord, one field per property, each value JSON, plus `breakouts` (JSON
     * Breakouts) while breakouts run. PEXPIRE: the room's lease.
     */
    room: (roomId: RoomId) => `${prefix}room:${roomId}`,
    /**
     * Sorted set: participant id -> when its lease ends (ms), the one truth of whether it is there.
     * Expired ids stay until a sweep removes (and announces) them. PEXPIRE: the room's lease.
     */
    participants: (roomId: RoomId) => `${prefix}room:${roomId}:participants`,
    /**
     * Hash: the ParticipantRecord, one field per property, each value JSON. PEXPIRE: twice the
     * participant's lease, so the sweep after the lease still has the record to announce.
     */
    participant: (roomId: RoomId, participantId: ParticipantId) => `${prefix}room:${roomId}:participant:${participantId}`,
    /** The `participant` key without its id, for scripts that walk a room's participants. */
    participantPrefix: (roomId: RoomId) => `${prefix}room:${roomId}:participant:`,
    /** Set: identities removed from the room, refused on join. PEXPIRE: the removal period. */
    removed: (roomId: RoomId) => `${prefix}room:${roomId}:removed`,
    /**
     * String: a RecordingRecord as JSON. No TTL: a recording outlives its room; the oldest ended
     * ones are deleted once more than the store's `maxEnded` have ended.
     */
    recording: (recordingId: RecordingId) => `${prefix}recording:${recordingId}`,
    /** The `recording` key without its id, for the script that trims ended recordings. */
    recordingPrefix: () => `${prefix}recording:`,
    /** Sorted set: recording id -> when it started (ms); every recording of every room. No TTL. */
    recordings: () => `${prefix}recordings`,
    /** Sorted set: recording id -> when it started (ms); the room's recordings. No TTL; emptied by the trim. */
    roomRecordings: (roomId: RoomId) => `${prefix}recordings:room:${roomId}`,
    /** The `roomRecordings` key without its room, for the trim script. */
    roomRecordingsPrefix: () => `${prefix}recordings:room:`,
    /** Sorted set: recording id -> when it ended (ms); the order the trim forgets them in. No TTL. */
    endedRecordings: () => `${prefix}recordings:ended`,
    /** Sorted set: unended recording id -> when its node's lease on it ends (ms). No TTL. */
    recordingLeases: () => `${prefix}recordings:leases`,
    /** Pub/sub channel: every ClusterEvent of every room, as JSON. */
    events: () => `${prefix}events`,
    /** String: JSON {address, port} where node `nodeId`'s engine takes relay links. PEXPIRE: refreshed while the node runs. */
    relayNode: (nodeId: string) => `${prefix}relay:node:${nodeId}`,
    /** String: hex keying material of the relay link between two nodes (ids sorted). EXPIRE: a day, set once. */
    relayLinkKey: (a: string, b: string) => `${prefix}relay:link:${a < b ? `${a}|${b}` : `${b}|${a}`}`,
    /** Pub/sub channel: relay messages to one node (export requests, replies, unexports), as JSON. */
    relayInbox: (nodeId: string) => `${prefix}relay:inbox:${nodeId}`,
    /** Pub/sub channel: relay messages to every node (tracks published and ended), as JSON. */
    relayAnnouncements: () => `${prefix}relay:announcements`,
  }
}

export type RedisKeys = ReturnType<typeof redisKeys>
