// Members of one room on in-process control planes, joining and resuming over signaling: shared
// by the same-node resume tests and the resume-on-another-node (migration) tests.

import assert from 'node:assert/strict'
import { PROTOCOL_VERSION, type ParticipantId, type Role, type RoomId, type ServerMessage } from '@conclave/protocol'
import type { createControlPlane } from './control-plane.js'
import { SignalingSocket } from './signaling-socket.js'

export const ROOM = 'daily' as RoomId
/** Sends audio and video. */
export const PUBLISH = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n'
/** Receives one audio and one video track. */
export const RECEIVE = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n'

export type Plane = ReturnType<typeof createControlPlane>

/** One signaling socket of a person (identity) on one node, in the test's room. */
export class Socket extends SignalingSocket {
  constructor(plane: Plane, identity: string, role: Role = 'guest') {
    super(plane, ROOM, identity, role)
  }
}

export interface Member {
  socket: Socket
  id: ParticipantId
  resumeId: string
}

/** Joins on `plane`; the reply must carry a resume id. */
export async function join(plane: Plane, identity: string, role: Role = 'guest'): Promise<Member> {
  const socket = new Socket(plane, identity, role)
  const reply = await socket.request({ type: 'join', protocolVersion: PROTOCOL_VERSION, room: ROOM })
  assert.ok(reply.type === 'joined' && reply.resumeId !== undefined, `joined carries a resume id: ${JSON.stringify(reply)}`)
  return { socket, id: reply.participantId, resumeId: reply.resumeId }
}

export function resume(socket: Socket, member: Member, resumeId = member.resumeId): Promise<ServerMessage> {
  return socket.request({ type: 'resume', protocolVersion: PROTOCOL_VERSION, room: ROOM, participantId: member.id, resumeId })
}

/** The error code of a reply, or its type when it is not an error. */
export const codeOf = (reply: ServerMessage) => (reply.type === 'error' ? reply.code : reply.type)

/** The states `observer` was told `id` went through. */
export const stateSeen = (observer: Socket, id: ParticipantId) =>
  observer.events('participant-updated').filter((event) => event.participant.participantId === id).map((event) => event.participant.state)
