// One recorder child process: spawned with its JSON config in CONCLAVE_RECORDER_CONFIG, its stdout
// read as JSON lines, stopped with SIGTERM and killed after a timeout. Supervision only: what a
// recording is and how it is written is the recorder's business (recorder/).

import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import * as z from 'zod'
import type { Logger } from '../log.js'

/** What the recorder says on stdout, one JSON object per line. Unknown fields are ignored. */
export const RecorderMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), recordingId: z.string(), at: z.union([z.number(), z.string()]).optional() }),
  z.object({ type: z.literal('progress'), bytes: z.number().int().min(0), segments: z.number().int().min(0) }),
  z.object({
    type: z.literal('finalized'),
    recordingId: z.string(),
    partial: z.boolean(),
    index: z.record(z.string(), z.unknown()).optional(),
  }),
  z.object({ type: z.literal('failed'), code: z.string().max(200), message: z.string().max(10_000) }),
])
export type RecorderMessage = z.infer<typeof RecorderMessage>

/** How the process ended: an exit code, or the signal that ended it. */
export interface RecorderExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** The process never ran (the command was not found, not executable). */
  spawnError?: Error
  /** The last lines it wrote to stderr, for the report when it crashed. */
  stderrTail: string[]
}

export interface RecorderProcessOptions {
  /** The program and its arguments, e.g. `['node', '/srv/recorder/dist/src/cli.js']`. */
  command: readonly string[]
  /** Handed to the recorder as CONCLAVE_RECORDER_CONFIG (JSON). */
  config: Record<string, unknown>
  onMessage: (message: RecorderMessage) => void
  /** Called once, after every message. */
  onExit: (exit: RecorderExit) => void
  log: Logger
  /** Extra environment. The server's own environment is passed on. */
  env?: NodeJS.ProcessEnv
}

/** Lines longer than this are not a message; the recorder's messages are small. */
const MAX_LINE_CHARS = 1024 * 1024
const STDERR_TAIL_LINES = 20

export class RecorderProcess {
  readonly #child: ChildProcess
  readonly #log: Logger
  readonly #exited: Promise<RecorderExit>
  readonly #stderrTail: string[] = []
  #exit: RecorderExit | undefined
  #killTimer: NodeJS.Timeout | undefined
  /** Stdout lines that were not a recorder message. */
  malformedLines = 0

  constructor({ command, config, onMessage, onExit, log, env = {} }: RecorderProcessOptions) {
    const [program, ...args] = command
    if (program === undefined) throw new Error('the recorder command is empty')
    this.#log = log
    this.#child = spawn(program, args, {
      env: { ...process.env, ...env, CONCLAVE_RECORDER_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: what it started (ffmpeg, Xvfb, PulseAudio) can be ended with it.
      detached: true,
    })
    let resolveExit: (exit: RecorderExit) => void = () => undefined
    this.#exited = new Promise((resolve) => (resolveExit = resolve))

    // stdout and stderr are read to their end before 'close' fires, so every message precedes onExit.
    const stdout = createInterface({ input: this.#child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity })
    stdout.on('line', (line) => {
      const message = parseLine(line)
      if (message === undefined) {
        if (line.trim() === '') return
        this.malformedLines++
        this.#log.warn('recorder wrote a line that is not a message', { line: line.slice(0, 200) })
        return
      }
      try {
        onMessage(message)
      } catch (error) {
        this.#log.error('handling a recorder message failed', { type: message.type, err: error })
      }
    })
    const stderr = createInterface({ input: this.#child.stderr as NodeJS.ReadableStream, crlfDelay: Infinity })
    stderr.on('line', (line) => {
      this.#log.debug('recorder', { line: line.slice(0, 2000) })
      this.#stderrTail.push(line.slice(0, 500))
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift()
    })

    const finish = (exit: Omit<RecorderExit, 'stderrTail'>) => {
      if (this.#exit !== undefined) return
      clearTimeout(this.#killTimer)
      this.#exit = { ...exit, stderrTail: [...this.#stderrTail] }
      try {
        onExit(this.#exit)
      } finally {
        resolveExit(this.#exit)
      }
    }
    this.#child.once('error', (error) => {
      // 'error' without a pid: it never started, and 'close' may not follow.
      if (this.#child.pid === undefined) finish({ code: null, signal: null, spawnError: error })
      else this.#log.warn('recorder process error', { err: error })
    })
    // A recorder that died leaves its helpers running; a clean one has already ended them (then no one is left).
    this.#child.once('exit', () => this.#signalGroup('SIGKILL'))
    this.#child.once('close', (code, signal) => finish({ code, signal }))
  }

  get pid(): number | undefined {
    return this.#child.pid
  }

  /** Resolves once the process ended and every message it wrote was handled. */
  get exited(): Promise<RecorderExit> {
    return this.#exited
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  /** Asks the recorder to finalize and exit (SIGTERM); kills it and its group (SIGKILL) if it has not after `timeoutMs`. */
  stop(timeoutMs: number): Promise<RecorderExit> {
    if (this.#exit === undefined && this.#killTimer === undefined) {
      this.#signal('SIGTERM')
      this.#killTimer = setTimeout(() => {
        this.#log.warn('the recorder did not stop in time; killing it', { pid: this.#child.pid, timeoutMs })
        this.#signalGroup('SIGKILL')
      }, timeoutMs)
    }
    return this.#exited
  }

  /** Ends it and its group at once (SIGKILL). */
  kill(): Promise<RecorderExit> {
    this.#signalGroup('SIGKILL')
    return this.#exited
  }

  /** Signals every process of the recorder's group; nothing when the group is gone. */
  #signalGroup(signal: NodeJS.Signals): void {
    const pid = this.#child.pid
    if (pid === undefined) return
    try {
      process.kill(-pid, signal)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') this.#log.warn('signalling the recorder group failed', { signal, err: error })
    }
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#exit !== undefined) return
    try {
      this.#child.kill(signal)
    } catch (error) {
      this.#log.warn('signalling the recorder failed', { signal, err: error })
    }
  }
}

/** One stdout line as a recorder message, or undefined when it is not one. Never throws. */
export function parseLine(line: string): RecorderMessage | undefined {
  if (line.length > MAX_LINE_CHARS) return undefined
  let json: unknown
  try {
    json = JSON.parse(line)
  } catch {
    return undefined
  }
  const parsed = RecorderMessage.safeParse(json)
  return parsed.success ? parsed.data : undefined
}
