// `/whip.html?room=<room>`: publishes the camera and microphone with WHIP. A test and demo page.

import { publishWhip, type HttpMediaSession } from './whip.js'

const params = new URLSearchParams(location.search)
const status = document.getElementById('status') as HTMLElement
const preview = document.getElementById('preview') as HTMLVideoElement
const debug = { session: undefined as HttpMediaSession | undefined, error: undefined as string | undefined }
Object.assign(globalThis, { conclave: debug })

async function start(): Promise<void> {
  const room = params.get('room') ?? 'demo'
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } },
    audio: true,
  })
  preview.srcObject = stream
  const token = params.get('token') ?? undefined
  const name = params.get('name')
  const endpoint = `/whip/${encodeURIComponent(room)}${name ? `?name=${encodeURIComponent(name)}` : ''}`
  debug.session = await publishWhip(endpoint, stream, token ? { token } : {})
  status.textContent = `Publishing to ${room}.`
}

start().catch((error: unknown) => {
  debug.error = error instanceof Error ? error.message : String(error)
  status.textContent = `Failed: ${debug.error}`
})
