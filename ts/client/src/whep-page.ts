// `/whep.html?room=<room>`: plays a room with WHEP (one video and one audio track by default).

import { playWhep, type HttpMediaSession } from './whip.js'

const params = new URLSearchParams(location.search)
const status = document.getElementById('status') as HTMLElement
const player = document.getElementById('player') as HTMLVideoElement
const debug = { session: undefined as HttpMediaSession | undefined, error: undefined as string | undefined }
Object.assign(globalThis, { conclave: debug })

async function start(): Promise<void> {
  const room = params.get('room') ?? 'demo'
  const token = params.get('token') ?? undefined
  const session = await playWhep(`/whep/${encodeURIComponent(room)}`, {
    audio: Number(params.get('audio') ?? 1),
    video: Number(params.get('video') ?? 1),
    ...(token ? { token } : {}),
  })
  debug.session = session
  player.srcObject = session.stream
  status.textContent = `Playing ${room}.`
}

start().catch((error: unknown) => {
  debug.error = error instanceof Error ? error.message : String(error)
  status.textContent = `Failed: ${debug.error}`
})
