// The meeting page at `/`: a room and a name, Join, then a tile per remote participant.
// `?simulcast=1` publishes the camera at 1280x720 in three simulcast layers; `?svc=VP9` (or AV1)
// publishes it at 1280x720 in one SVC encoding, `&mode=` its scalability mode (default L3T3_KEY);
// `&codec=H264` sends the camera in H.264; `?relay=1` sends media only through the TURN relays the server hands out.

import { Meeting, type RemoteTrack } from './meeting.js'
import { attachPanel } from './meeting-panel.js'
import type { SvcPublishing } from './simulcast.js'

interface Tile {
  figure: HTMLElement
  video: HTMLVideoElement
  stream: MediaStream
  caption: HTMLElement
}

const params = new URLSearchParams(location.search)
const form = element<HTMLFormElement>('join-form')
const roomInput = element<HTMLInputElement>('room')
const nameInput = element<HTMLInputElement>('name')
const joinButton = element<HTMLButtonElement>('join')
const leaveButton = element<HTMLButtonElement>('leave')
const status = element<HTMLElement>('status')
const tiles = element<HTMLElement>('tiles')
const panel = element<HTMLElement>('panel')
let detachPanel: (() => void) | undefined
/** Shown while the signaling is down and the meeting resumes its session; media keeps playing meanwhile. */
const reconnectingBanner = Object.assign(document.createElement('p'), { id: 'reconnecting', className: 'banner', hidden: true, textContent: 'Reconnecting…' })
reconnectingBanner.setAttribute('role', 'alert')
tiles.before(reconnectingBanner)

const simulcast = params.get('simulcast') === '1'
const svcCodec = params.get('svc')?.toUpperCase()
const svc: SvcPublishing | undefined =
  svcCodec === 'VP9' || svcCodec === 'AV1' ? { codec: svcCodec, scalabilityMode: params.get('mode') ?? 'L3T3_KEY' } : undefined
const videoCodec = params.get('codec')?.toUpperCase() === 'H264' ? ('H264' as const) : undefined
const relayOnly = params.get('relay') === '1'
const serverOffers = params.get('serverOffers') === '1'
roomInput.value = params.get('room') ?? ''
nameInput.value = params.get('name') ?? ''

let meeting: Meeting | undefined
let localStream: MediaStream | undefined
const remoteTiles = new Map<string, Tile>()
/** Screen shares get a tile of their own, by track. */
const screenTiles = new Map<string, Tile>()
const remoteTracks = new Map<string, MediaStreamTrack>()
/** Stops reporting a remote video's drawn size, by track. */
const sizeWatches = new Map<string, () => void>()

/** For tests and debugging: the live meeting. */
const debug = { meeting: undefined as Meeting | undefined }
Object.assign(globalThis, { conclave: debug })

form.addEventListener('submit', (event) => {
  event.preventDefault()
  void join()
})
leaveButton.addEventListener('click', () => void leave('You left the meeting.'))

async function join(): Promise<void> {
  joinButton.disabled = true
  setStatus('Starting camera and microphone…')
  try {
    // Simulcast and SVC need the resolution for three layers: Chromium drops the ones it cannot scale to.
    const video =
      simulcast || svc !== undefined
        ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } }
        : { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } }
    localStream = await navigator.mediaDevices.getUserMedia({ video, audio: true })
    addTile('local', `${nameInput.value} (you)`, localStream, true)
    setStatus('Joining…')
    const url = new URL('/ws', location.href)
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const token = params.get('token') ?? (await devToken(roomInput.value, nameInput.value))
    const joining = new Meeting({
      url,
      room: roomInput.value,
      name: nameInput.value,
      stream: localStream,
      simulcast,
      ...(svc !== undefined ? { svc } : {}),
      ...(videoCodec !== undefined ? { videoCodec } : {}),
      ...(relayOnly ? { iceTransportPolicy: 'relay' as const } : {}),
      ...(serverOffers ? { serverOffers } : {}),
      ...(token ? { token } : {}),
    })
    wire(joining)
    joining.on('waiting', () => setStatus('Waiting for a host to let you in…'))
    await joining.join()
    detachPanel = attachPanel(joining, panel, setStatus)
    meeting = joining
    debug.meeting = joining
    form.hidden = true
    leaveButton.hidden = false
    setStatus(`In ${roomInput.value} as ${nameInput.value}.`)
  } catch (error) {
    await leave(`Could not join: ${error instanceof Error ? error.message : String(error)}`)
  }
}

function wire(current: Meeting): void {
  current.on('track', (remote: RemoteTrack) => {
    if (remote.source === 'screen') {
      showScreen(current, remote)
      return
    }
    const tile = remoteTiles.get(remote.participantId) ?? addTile(remote.participantId, remote.name, new MediaStream(), false)
    remoteTiles.set(remote.participantId, tile)
    const previous = remoteTracks.get(remote.trackId)
    if (previous !== undefined) tile.stream.removeTrack(previous)
    remoteTracks.set(remote.trackId, remote.track)
    tile.stream.addTrack(remote.track)
    if (remote.kind === 'video') {
      sizeWatches.get(remote.trackId)?.()
      sizeWatches.set(remote.trackId, current.watchVideoSize(remote.trackId, tile.video))
    }
  })
  current.on('track-ended', ({ trackId, participantId }) => {
    const screen = screenTiles.get(trackId)
    screenTiles.delete(trackId)
    screen?.figure.remove()
    const track = remoteTracks.get(trackId)
    remoteTracks.delete(trackId)
    sizeWatches.get(trackId)?.()
    sizeWatches.delete(trackId)
    if (track !== undefined) remoteTiles.get(participantId)?.stream.removeTrack(track)
  })
  current.on('participant-joined', (participant) => {
    const tile = remoteTiles.get(participant.participantId)
    if (tile !== undefined) tile.caption.textContent = participant.name
  })
  current.on('participant-left', (participant) => {
    for (const [trackId, tile] of screenTiles) {
      if (tile.figure.dataset.participantId !== participant.participantId) continue
      tile.figure.remove()
      screenTiles.delete(trackId)
    }
    remoteTiles.get(participant.participantId)?.figure.remove()
    remoteTiles.delete(participant.participantId)
  })
  current.on('reconnecting', () => {
    reconnectingBanner.hidden = false
  })
  current.on('reconnected', () => {
    reconnectingBanner.hidden = true
  })
  current.on('participant-updated', (participant) => {
    remoteTiles.get(participant.participantId)?.figure.classList.toggle('reconnecting', participant.state === 'reconnecting')
  })
  current.on('ended', ({ reason }) => void leave(ENDED_MESSAGES[reason]))
  current.on('closed', ({ reason }) => void leave(`The meeting ended: ${reason}.`))
  current.on('error', (error) => setStatus(`Negotiation failed: ${error.message}`))
}

const ENDED_MESSAGES = {
  removed: 'A host removed you from the meeting.',
  'room-closed': 'The room was closed.',
  'session-expired': 'The connection was lost and could not be restored.',
} as const

async function leave(message: string): Promise<void> {
  reconnectingBanner.hidden = true
  const current = meeting
  meeting = undefined
  debug.meeting = undefined
  detachPanel?.()
  detachPanel = undefined
  await current?.leave()
  for (const track of localStream?.getTracks() ?? []) track.stop()
  localStream = undefined
  tiles.replaceChildren()
  remoteTiles.clear()
  screenTiles.clear()
  remoteTracks.clear()
  for (const stop of sizeWatches.values()) stop()
  sizeWatches.clear()
  form.hidden = false
  joinButton.disabled = false
  leaveButton.hidden = true
  setStatus(message)
}

/** A remote screen share: a wide tile of its own, first in the grid. */
function showScreen(current: Meeting, remote: RemoteTrack): void {
  screenTiles.get(remote.trackId)?.figure.remove()
  const tile = addTile(remote.participantId, `${remote.name}'s screen`, new MediaStream([remote.track]), false)
  tile.figure.classList.add('screen')
  tile.figure.dataset.trackId = remote.trackId
  tiles.prepend(tile.figure)
  screenTiles.set(remote.trackId, tile)
  sizeWatches.get(remote.trackId)?.()
  sizeWatches.set(remote.trackId, current.watchVideoSize(remote.trackId, tile.video))
}

function addTile(id: string, name: string, stream: MediaStream, local: boolean): Tile {
  const figure = document.createElement('figure')
  figure.dataset.participantId = id
  const video = document.createElement('video')
  video.autoplay = true
  video.playsInline = true
  // Our own microphone must not play back to us.
  video.muted = local
  video.srcObject = stream
  const caption = document.createElement('figcaption')
  caption.textContent = name
  figure.append(video, caption)
  tiles.append(figure)
  return { figure, video, stream, caption }
}

/**
 * Without `?token=`, a server in open dev mode hands out a token (`?role=` picks the role, host by
 * default); a server with a secret answers 404 and the page joins without one, to be refused.
 */
async function devToken(room: string, name: string): Promise<string | undefined> {
  const query = new URLSearchParams({ room, name, role: params.get('role') ?? 'host' })
  try {
    const response = await fetch(`/v1/dev-token?${query}`)
    if (!response.ok) return undefined
    const body = (await response.json()) as { token?: unknown }
    return typeof body.token === 'string' ? body.token : undefined
  } catch {
    return undefined
  }
}

function setStatus(text: string): void {
  status.textContent = text
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`the page has no #${id}`)
  return found as T
}
