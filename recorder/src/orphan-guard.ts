// Takes the recorder's helpers down with it: if this process dies without stopping them (SIGKILL,
// out of memory), a small detached shell notices within a second and terminates them, so no
// Chromium, ffmpeg, Xvfb or PulseAudio outlives its recorder. SIGTERM lets ffmpeg close its MP4.

import { spawn } from 'node:child_process'

export interface OrphanGuard {
  /** The recorder stopped its helpers itself: the guard goes away. */
  stop(): void
}

export function startOrphanGuard(pids: number[]): OrphanGuard {
  const targets = pids.filter((pid) => Number.isInteger(pid) && pid > 0).join(' ')
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -TERM ${targets} 2>/dev/null; sleep 5; kill -KILL ${targets} 2>/dev/null`
  const guard = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
  guard.on('error', () => undefined)
  guard.unref()
  return {
    stop: () => {
      if (guard.exitCode === null) guard.kill('SIGKILL')
    },
  }
}
