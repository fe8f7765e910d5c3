// WHIP (RFC 9725) publishing and WHEP playing from the browser: one offer POSTed, one answer back.

import { sendTransceiverInit } from './simulcast.js'

export class WhipError extends Error {
  override readonly name = 'WhipError'

  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

export interface SessionOptions {
  token?: string
}

export interface PublishOptions extends SessionOptions {
  /** Publish video as three simulcast layers (`SIMULCAST_ENCODINGS`). Default false. */
  simulcast?: boolean
}

export interface HttpMediaSession {
  pc: RTCPeerConnection
  /** The session's resource URL (from `Location`); DELETE ends it. */
  resourceUrl: URL
  /** Closes the connection and deletes the session on the server. */
  stop(): Promise<void>
}

/** Publishes every track of `stream` to a WHIP endpoint (`/whip/<room>`). */
export async function publishWhip(endpoint: string | URL, stream: MediaStream, options: PublishOptions = {}): Promise<HttpMediaSession> {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' })
  for (const track of stream.getTracks()) pc.addTransceiver(track, sendTransceiverInit(track, stream, options.simulcast === true))
  return exchange(pc, endpoint, options)
}

export interface PlayOptions extends SessionOptions {
  /** Receive m-lines per kind; each carries one published track. Default 1 each. */
  audio?: number
  video?: number
}

/** Plays a room from a WHEP endpoint (`/whep/<room>`); `stream` holds every receiving track. */
export async function playWhep(endpoint: string | URL, options: PlayOptions = {}): Promise<HttpMediaSession & { stream: MediaStream }> {
  const { audio = 1, video = 1 } = options
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' })
  for (let i = 0; i < video; i++) pc.addTransceiver('video', { direction: 'recvonly' })
  for (let i = 0; i < audio; i++) pc.addTransceiver('audio', { direction: 'recvonly' })
  const stream = new MediaStream(pc.getReceivers().map((receiver) => receiver.track))
  const session = await exchange(pc, endpoint, options)
  return { ...session, stream }
}

async function exchange(pc: RTCPeerConnection, endpoint: string | URL, { token }: SessionOptions): Promise<HttpMediaSession> {
  // The server is ICE-lite and learns our address from our connectivity checks, so the offer
  // need not wait for candidate gathering.
  const offer = await pc.createOffer()
  await pc.setLocalDescription(offer)
  const headers: Record<string, string> = { 'Content-Type': 'application/sdp' }
  if (token !== undefined) headers.Authorization = `Bearer ${token}`
  const base = new URL(endpoint, location.href)
  const response = await fetch(base, { method: 'POST', headers, body: offer.sdp ?? '' })
  if (response.status !== 201) {
    pc.close()
    throw new WhipError(response.status, await response.text())
  }
  const resourceUrl = new URL(response.headers.get('Location') ?? '', base)
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() })
  return {
    pc,
    resourceUrl,
    stop: async () => {
      pc.close()
      const deleteHeaders: Record<string, string> = {}
      if (token !== undefined) deleteHeaders.Authorization = `Bearer ${token}`
      await fetch(resourceUrl, { method: 'DELETE', headers: deleteHeaders })
    },
  }
}
