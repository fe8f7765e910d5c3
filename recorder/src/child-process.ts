// Running the recorder's helper programs: spawn, keep the tail of stderr for error messages, stop.

import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface Child {
  readonly name: string
  readonly process: ChildProcess
  /** Resolves when the process has exited (never rejects; a failed spawn exits with code null). */
  readonly exited: Promise<Exit>
  readonly hasExited: () => boolean
  /** The last lines it wrote to stderr. */
  stderrTail(): string
  /** Signals it, then SIGKILL if it is still there after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>
}

export type LogLine = (message: string) => void

export function startChild(name: string, command: string, args: string[], options: SpawnOptions & { log?: LogLine } = {}): Child {
  const { log, ...spawnOptions } = options
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...spawnOptions })
  const tail: string[] = []
  let exit: Exit | undefined
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (text: string) => {
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      tail.push(line)
      if (tail.length > 20) tail.shift()
      log?.(`${name}: ${line}`)
    }
  })
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve((exit = { code, signal })))
    child.once('error', (error) => {
      tail.push(error.message)
      resolve((exit = { code: null, signal: null }))
    })
  })
  return {
    name,
    process: child,
    exited,
    hasExited: () => exit !== undefined,
    stderrTail: () => tail.join('\n'),
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (exit !== undefined) return exit
      child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      try {
        return await exited
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

/** Polls `check` every 50 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return check()
}
