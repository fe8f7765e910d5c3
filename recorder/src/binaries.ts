// The programs a composite recording runs, where to find them, and the check that they are there.

import { constants } from 'node:fs'
import { access } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { RecorderError } from './errors.js'

export interface RecorderBinaries {
  /** `CONCLAVE_FFMPEG`, default `ffmpeg` on the PATH. */
  ffmpeg: string
  /** `CONCLAVE_XVFB`, default `Xvfb`. */
  xvfb: string
  /** `CONCLAVE_PULSEAUDIO`, default `pulseaudio`. */
  pulseaudio: string
  /** `CONCLAVE_CHROMIUM` or `CHROMIUM_PATH`, default `/usr/bin/chromium`. */
  chromium: string
}

/** What each binary is and how to get it, for the error message. */
const HINTS: Record<keyof RecorderBinaries, { env: string; install: string }> = {
  ffmpeg: { env: 'CONCLAVE_FFMPEG', install: 'apt-get install ffmpeg' },
  xvfb: { env: 'CONCLAVE_XVFB', install: 'apt-get install xvfb xauth' },
  pulseaudio: { env: 'CONCLAVE_PULSEAUDIO', install: 'apt-get install pulseaudio' },
  chromium: { env: 'CONCLAVE_CHROMIUM', install: 'apt-get install chromium' },
}

export function binariesFromEnv(env: NodeJS.ProcessEnv = process.env): RecorderBinaries {
  return {
    ffmpeg: env.CONCLAVE_FFMPEG ?? 'ffmpeg',
    xvfb: env.CONCLAVE_XVFB ?? 'Xvfb',
    pulseaudio: env.CONCLAVE_PULSEAUDIO ?? 'pulseaudio',
    chromium: env.CONCLAVE_CHROMIUM ?? env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  }
}

/** The absolute path of an executable (a path as given, or a name looked up on PATH), or undefined. */
export async function findExecutable(command: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  const candidates = command.includes('/') ? [command] : path.split(delimiter).filter(Boolean).map((dir) => join(dir, command))
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // next
    }
  }
  return undefined
}

/** Resolves every binary to a path, or throws `missing_dependency` naming all that are missing. */
export async function resolveBinaries(binaries: RecorderBinaries): Promise<RecorderBinaries> {
  const resolved = { ...binaries }
  const missing: string[] = []
  for (const key of Object.keys(HINTS) as (keyof RecorderBinaries)[]) {
    const found = await findExecutable(binaries[key])
    if (found === undefined) missing.push(`${key} (${binaries[key]}: not found or not executable; set ${HINTS[key].env} or ${HINTS[key].install})`)
    else resolved[key] = found
  }
  if (missing.length > 0) throw new RecorderError('missing_dependency', `cannot record, missing: ${missing.join('; ')}`)
  return resolved
}
