// An Xvfb display per recording, on a display number Xvfb picks itself (-displayfd), so recordings
// and other programs on the machine never collide.

import { RecorderError } from './errors.js'
import { type Child, type LogLine, startChild } from './child-process.js'

export interface VirtualDisplay {
  /** `:N`, for DISPLAY and x11grab. */
  display: string
  child: Child
  stop(): Promise<void>
}

export async function startVirtualDisplay({ xvfb, width, height, log }: { xvfb: string; width: number; height: number; log?: LogLine }): Promise<VirtualDisplay> {
  const child = startChild('Xvfb', xvfb, ['-displayfd', '3', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp', '-nocursor'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    ...(log ? { log } : {}),
  })
  const displayPipe = child.process.stdio[3]
  const number = await new Promise<string | undefined>((resolve) => {
    let text = ''
    const timer = setTimeout(() => resolve(undefined), 10_000)
    displayPipe?.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      if (text.includes('\n')) {
        clearTimeout(timer)
        resolve(text.trim())
      }
    })
    void child.exited.then(() => {
      clearTimeout(timer)
      resolve(undefined)
    })
  })
  if (number === undefined || !/^\d+$/.test(number)) {
    await child.stop('SIGKILL')
    throw new RecorderError('environment_failed', `Xvfb did not start: ${child.stderrTail() || 'no display number within 10 s'}`)
  }
  return { display: `:${number}`, child, stop: async () => void (await child.stop('SIGTERM', 3000)) }
}
