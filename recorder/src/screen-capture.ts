// The ffmpeg that records the display and the sound server's sink: H.264 + AAC, written at once as
// a fragmented MP4 and as HLS (one encode, two muxers through `tee`).

import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { type Child, type Exit, type LogLine, startChild, waitFor } from './child-process.js'
import { RecorderError } from './errors.js'

/** File names inside a recording, locally and in storage. */
export const RECORDING_FILES = {
  mp4: 'recording.mp4',
  hlsFolder: 'hls',
  playlist: 'hls/playlist.m3u8',
  thumbnailFolder: 'thumbnails',
  index: 'recording.json',
} as const

export interface ScreenCaptureOptions {
  ffmpeg: string
  display: string
  /** PULSE_SERVER of the sound server. */
  pulseServer: string
  /** The PulseAudio source to record. */
  audioSource: string
  width: number
  height: number
  /** Default 25. */
  framesPerSecond?: number
  segmentSeconds: number
  /** Where `recording.mp4` and `hls/` are written. */
  workDir: string
  log?: LogLine
}

export interface ScreenCapture {
  child: Child
  /** When the first frame was captured: the output's time 0. */
  startedAt: Date
  /** Seconds of media written so far. */
  readonly mediaSeconds: number
  /**
   * Asks ffmpeg to finish its files ('q' on stdin), then insists. With `drainUntilSeconds`, first
   * waits (up to `drainTimeoutMs`, default 30 000) until that much media is written.
   */
  stop(options?: { drainUntilSeconds?: number; drainTimeoutMs?: number }): Promise<Exit>
}

export async function startScreenCapture(options: ScreenCaptureOptions): Promise<ScreenCapture> {
  const { ffmpeg, display, pulseServer, audioSource, width, height, framesPerSecond = 25, segmentSeconds, workDir, log } = options
  const mp4 = join(workDir, RECORDING_FILES.mp4)
  const hls = join(workDir, RECORDING_FILES.hlsFolder)
  const gop = Math.max(1, Math.round(framesPerSecond * segmentSeconds))
  const outputs = [
    // Fragments at every keyframe (every segment length): a committed prefix always plays.
    `[f=mp4:movflags=frag_keyframe+empty_moov+default_base_moof]${mp4}`,
    `[f=hls:hls_time=${segmentSeconds}:hls_list_size=0:hls_playlist_type=event:hls_flags=temp_file+independent_segments:hls_segment_filename=${join(hls, 'segment_%05d.ts')}]${join(hls, 'playlist.m3u8')}`,
  ].join('|')
  const args = [
    // Info for the inputs' start times (parsed below); only warnings and errors reach the log.
    '-hide_banner', '-loglevel', 'level+info', '-nostats',
    // How far the output has got, twice a second: the start time and the drain at stop come from it.
    '-progress', 'pipe:1', '-stats_period', '0.5',
    // A short queue of raw frames: when the encoder falls behind (a busy machine), x11grab waits and
    // grabs a newer frame with the current time, so the recording keeps wall-clock length and
    // bounded memory instead of buffering seconds of raw video that a stop would throw away.
    '-thread_queue_size', '4', '-f', 'x11grab', '-draw_mouse', '0', '-framerate', String(framesPerSecond), '-video_size', `${width}x${height}`, '-i', `${display}.0+0,0`,
    '-thread_queue_size', '1024', '-f', 'pulse', '-sample_rate', '48000', '-channels', '2', '-i', audioSource,
    '-map', '0:v', '-map', '1:a',
    // ultrafast: a recorder shares its machine; it must keep up with real time before it looks good.
    // Frames keep their capture times (vfr: no duplicates to fill a constant rate, and of two frames
    // on one tick only the first): a starved encoder then records fewer frames instead of falling
    // behind the clock and losing the end at stop.
    '-fps_mode', 'vfr',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-crf', '25', '-pix_fmt', 'yuv420p',
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0',
    '-force_key_frames', `expr:gte(t,n_forced*${segmentSeconds})`,
    // Fills gaps the sound server left while ffmpeg was starved, so audio keeps pace with video.
    '-af', 'aresample=async=1000', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000',
    '-flags', '+global_header',
    '-f', 'tee', outputs,
  ]
  await mkdir(hls, { recursive: true })
  const child = startChild('ffmpeg', ffmpeg, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PULSE_SERVER: pulseServer },
    ...(log ? { log: (line: string) => !line.includes('[info]') && log(line) } : {}),
  })
  // Writing 'q' to an ffmpeg that already died must not take the recorder down with it.
  child.process.stdin?.on('error', () => undefined)
  /** Seconds of media written so far, from `-progress`; and when we first heard of any. */
  let mediaSeconds = 0
  let startedAt: Date | undefined
  let buffered = ''
  child.process.stdout?.setEncoding('utf8')
  child.process.stdout?.on('data', (text: string) => {
    buffered += text
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      const match = /^out_time_us=(\d+)$/.exec(line.trim())
      if (match === null) continue
      mediaSeconds = Number(match[1]) / 1e6
      // Without the capture's own start (below), count back from what is written now; late by
      // however far ffmpeg lags, which is why the start line is preferred.
      if (startedAt === undefined && mediaSeconds > 0) startedAt = new Date(Date.now() - mediaSeconds * 1000)
    }
  })
  // x11grab stamps frames with the monotonic clock, and the output's time 0 is its first frame:
  // "Input #0, x11grab … start: <seconds>" is when the recording really began.
  const spawnedAt = Date.now()
  let stderrText = ''
  child.process.stderr?.on('data', (text: string) => {
    if (startedAt !== undefined || stderrText.length > 65_536) return
    stderrText += text
    const match = /Input #0, x11grab[^]*?start: (\d+\.\d+)/.exec(stderrText)
    if (match === null) return
    const start = Number(match[1])
    // Builds that stamp with the wall clock give seconds since 1970 instead.
    const at = start > 1e9 ? start * 1000 : Date.now() - (Number(process.hrtime.bigint()) / 1e9 - start) * 1000
    if (at >= spawnedAt - 1000 && at <= Date.now()) startedAt = new Date(at)
  })
  const started = await waitFor(async () => child.hasExited() || (startedAt !== undefined && (await stat(mp4).then((info) => info.size > 0, () => false))), 30_000)
  if (!started || child.hasExited() || startedAt === undefined) {
    const exited = child.hasExited()
    await child.stop('SIGKILL')
    throw new RecorderError(exited ? 'ffmpeg_crashed' : 'environment_failed', `ffmpeg did not start recording: ${child.stderrTail() || 'no output within 30 s'}`)
  }
  return {
    child,
    startedAt,
    get mediaSeconds() {
      return mediaSeconds
    },
    async stop({ drainUntilSeconds, drainTimeoutMs = 30_000 } = {}) {
      if (child.hasExited()) return child.exited
      // A busy machine leaves ffmpeg behind the clock; what it has not written yet would be lost by 'q'.
      if (drainUntilSeconds !== undefined) await waitFor(() => child.hasExited() || mediaSeconds >= drainUntilSeconds, drainTimeoutMs)
      child.process.stdin?.end('q')
      const interrupt = setTimeout(() => child.process.kill('SIGINT'), 10_000)
      const kill = setTimeout(() => child.process.kill('SIGKILL'), 20_000)
      try {
        return await child.exited
      } finally {
        clearTimeout(interrupt)
        clearTimeout(kill)
      }
    },
  }
}
