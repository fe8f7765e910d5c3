// The recorder view at `/recorder.html?room=…&token=…`: joins receive-only and shows every
// participant's video in a grid with names and plays all audio, nothing else. The recording process
// captures this window; it exposes `conclaveRecorderReport` to hear who came and went.

import { Meeting, type RemoteTrack } from './meeting.js'

/** What the page tells the recording process, as plain JSON. */
export type RecorderReport =
  | { type: 'joined'; participantId: string; participants: { participantId: string; name: string }[] }
  | { type: 'participant-joined' | 'participant-left'; participantId: string; name: string }
  | { type: 'track'; trackId: string; participantId: string; kind: string }
  | { type: 'track-ended'; trackId: string; participantId: string }
  | { type: 'failed'; message: string }
  | { type: 'closed'; reason: string }

interface Tile {
  figure: HTMLElement
  video: HTMLVideoElement
  stream: MediaStream
  caption: HTMLElement
}

const params = new URLSearchParams(location.search)
const grid = document.getElementById('grid') as HTMLElement
const tiles = new Map<string, Tile>()
const tracks = new Map<string, MediaStreamTrack>()
/** For tests and debugging: the live meeting. */
const debug = { meeting: undefined as Meeting | undefined }
Object.assign(globalThis, { conclave: debug })

function report(event: RecorderReport): void {
  const sink = (globalThis as { conclaveRecorderReport?: (json: string) => unknown }).conclaveRecorderReport
  // Outside the recorder (someone opened the page by hand) there is no one to tell.
  void sink?.(JSON.stringify(event))
}

async function join(): Promise<void> {
  const room = params.get('room') ?? ''
  const token = params.get('token') ?? ''
  const url = new URL('/ws', location.href)
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
  // Receive only: an empty stream publishes nothing, whatever the grants allow.
  const meeting = new Meeting({ url, room, name: params.get('name') ?? 'Recorder', stream: new MediaStream(), ...(token ? { token } : {}) })
  // In a room with no tracks yet the first offer would have no m-line, which Chromium refuses to
  // bundle: one receive-only audio m-line keeps it valid; the server may later use it for a track.
  meeting.pc.addTransceiver('audio', { direction: 'recvonly' })
  meeting.on('track', (remote) => addTrack(meeting, remote))
  meeting.on('track-ended', ({ trackId, participantId }) => {
    const track = tracks.get(trackId)
    tracks.delete(trackId)
    if (track !== undefined) tiles.get(participantId)?.stream.removeTrack(track)
    report({ type: 'track-ended', trackId, participantId })
  })
  meeting.on('participant-joined', ({ participantId, name }) => {
    const tile = tiles.get(participantId)
    if (tile !== undefined) tile.caption.textContent = name
    report({ type: 'participant-joined', participantId, name })
  })
  meeting.on('participant-left', ({ participantId, name }) => {
    tiles.get(participantId)?.figure.remove()
    tiles.delete(participantId)
    layout()
    report({ type: 'participant-left', participantId, name })
  })
  meeting.on('closed', ({ reason }) => report({ type: 'closed', reason }))
  meeting.on('ended', ({ reason }) => report({ type: 'closed', reason }))
  try {
    await meeting.join()
  } catch (error) {
    report({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    return
  }
  debug.meeting = meeting
  const participants = [...meeting.participants.values()].map(({ participantId, name }) => ({ participantId, name }))
  report({ type: 'joined', participantId: meeting.participantId ?? '', participants })
}

function addTrack(meeting: Meeting, remote: RemoteTrack): void {
  const tile = tiles.get(remote.participantId) ?? addTile(remote.participantId, remote.name)
  const previous = tracks.get(remote.trackId)
  if (previous !== undefined) tile.stream.removeTrack(previous)
  tracks.set(remote.trackId, remote.track)
  tile.stream.addTrack(remote.track)
  if (remote.kind === 'video') meeting.watchVideoSize(remote.trackId, tile.video)
  // A stream that gained a track after the element started may need a nudge to play it.
  void tile.video.play().catch(() => undefined)
  report({ type: 'track', trackId: remote.trackId, participantId: remote.participantId, kind: remote.kind })
}

function addTile(participantId: string, name: string): Tile {
  const figure = document.createElement('figure')
  const video = document.createElement('video')
  video.autoplay = true
  video.playsInline = true
  const stream = new MediaStream()
  video.srcObject = stream
  const caption = document.createElement('figcaption')
  caption.textContent = name
  figure.append(video, caption)
  grid.append(figure)
  const tile = { figure, video, stream, caption }
  tiles.set(participantId, tile)
  layout()
  return tile
}

/** The squarest grid that holds everyone: 1, 2 side by side, 2x2, 3x2, 3x3… */
function layout(): void {
  const count = Math.max(1, tiles.size)
  const columns = Math.ceil(Math.sqrt(count))
  const rows = Math.ceil(count / columns)
  grid.style.gridTemplateColumns = `repeat(${columns}, 1fr)`
  grid.style.gridTemplateRows = `repeat(${rows}, 1fr)`
}

void join()
