// A private PulseAudio per recording: a null sink Chromium plays into and ffmpeg records from its
// monitor. It runs as whoever we are (root in containers) with its own runtime folder.

import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RecorderError } from './errors.js'
import { type Child, type LogLine, startChild, waitFor } from './child-process.js'

export const RECORDING_SINK = 'conclave_recording'

export interface SoundServer {
  /** For PULSE_SERVER: `unix:/…/native`. */
  server: string
  /** The null sink's name, for PULSE_SINK. */
  sink: string
  /** What ffmpeg records: the sink's monitor source. */
  monitor: string
  child: Child
  stop(): Promise<void>
}

export async function startSoundServer({ pulseaudio, log }: { pulseaudio: string; log?: LogLine }): Promise<SoundServer> {
  // Short path: unix socket paths are limited to 108 bytes.
  const runtimeDir = await mkdtemp(join(tmpdir(), 'conclave-pulse-'))
  const socket = join(runtimeDir, 'native')
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: runtimeDir, XDG_RUNTIME_DIR: runtimeDir, PULSE_RUNTIME_PATH: runtimeDir, PULSE_STATE_PATH: runtimeDir, XDG_CONFIG_HOME: runtimeDir }
  delete env.DISPLAY
  delete env.PULSE_SERVER
  // The sink is loaded before the socket, so a socket on disk means the sink exists.
  const child = startChild(
    'pulseaudio',
    pulseaudio,
    [
      '--daemonize=no',
      '--exit-idle-time=-1',
      '--system=false',
      '--use-pid-file=no',
      '--disable-shm=yes',
      '-n',
      `--load=module-null-sink sink_name=${RECORDING_SINK} rate=48000 channels=2`,
      `--load=module-native-protocol-unix socket=${socket} auth-anonymous=1`,
    ],
    { env, ...(log ? { log: (line) => !/not intended to be run as root|cookie|D-Bus/.test(line) && log(line) } : {}) },
  )
  const ready = await waitFor(async () => child.hasExited() || (await stat(socket).then(() => true, () => false)), 10_000)
  if (!ready || child.hasExited()) {
    await child.stop('SIGKILL')
    await rm(runtimeDir, { recursive: true, force: true })
    throw new RecorderError('environment_failed', `pulseaudio did not start: ${child.stderrTail() || 'no socket within 10 s'}`)
  }
  return {
    server: `unix:${socket}`,
    sink: RECORDING_SINK,
    monitor: `${RECORDING_SINK}.monitor`,
    child,
    async stop() {
      await child.stop('SIGTERM', 3000)
      await rm(runtimeDir, { recursive: true, force: true })
    },
  }
}
