// Structured logs: one JSON object per line, with roomId/participantId/peerId as fields.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export function isLogLevel(value: string): value is LogLevel {
  return value in RANK
}

export interface LoggerOptions {
  /** Lines below this level are dropped. Default `info`. */
  level?: LogLevel
  /** Where lines go. Default stdout. */
  write?: (line: string) => void
}

export function createLogger(
  { level = 'info', write = (line) => process.stdout.write(line + '\n') }: LoggerOptions = {},
  base: LogFields = {},
): Logger {
  const threshold = RANK[level]
  const emit = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields): void => {
    if (RANK[at] < threshold) return
    write(JSON.stringify({ time: new Date().toISOString(), level: at, message, ...base, ...fields }, errorReplacer))
  }
  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => createLogger({ level, write }, { ...base, ...fields }),
  }
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code: unknown = (value as Error & { code?: unknown }).code
    return { name: value.name, message: value.message, ...(code === undefined ? {} : { code }) }
  }
  return value
}

/** Keeps a remote address out of logs while still telling loopback from the rest. */
export function redactAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined
  return address.startsWith('127.') || address.startsWith('[::1]') ? address : 'redacted'
}
