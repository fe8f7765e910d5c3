// `/whip.html?room=<room>`: publishes the camera and microphone with WHIP. A test and demo page.
// `&simulcast=1` publishes the camera at 1280x720 in three simulcast layers.

import { publishWhip, type HttpMediaSession } from './whip.js'

const params = new URLSearchParams(location.search)
const status = document.getElementById('status') as HTMLElement
const preview = document.getElementById('preview') as HTMLVideoElement
const debug = { session: undefined as HttpMediaSession | undefined, error: undefined as string | undefined }
Object.assign(globalThis, { conclave: debug })

async function start(): Promise<void> {
  const room = params.get('room') ?? 'demo'
  const simulcast = params.get('simulcast') === '1'
  // Simulcast needs the resolution for three layers: Chromium drops the ones it cannot scale to.
  const video = simulcast
    ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } }
    : { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } }
  const stream = await navigator.mediaDevices.getUserMedia({ video, audio: true })
  preview.srcObject = stream
  const token = params.get('token') ?? undefined
  const name = params.get('name')
  const endpoint = `/whip/${encodeURIComponent(room)}${name ? `?name=${encodeURIComponent(name)}` : ''}`
  debug.session = await publishWhip(endpoint, stream, { simulcast, ...(token ? { token } : {}) })
  status.textContent = `Publishing to ${room}.`
}

start().catch((error: unknown) => {
  debug.error = error instanceof Error ? error.message : String(error)
  status.textContent = `Failed: ${debug.error}`
})
