// The recorder's configuration (the CLI reads it as JSON from CONCLAVE_RECORDER_CONFIG) and its defaults.

import * as z from 'zod'
import { RecorderError } from './errors.js'

export const LocalOutput = z.object({
  kind: z.literal('local'),
  /** Each recording goes to `<dir>/<recordingId>/`. */
  dir: z.string().min(1),
})

export const AzureOutput = z.object({
  kind: z.literal('azure'),
  /** An Azure Storage connection string (Azurite's works too). Never logged. */
  connectionString: z.string().min(1),
  container: z.string().min(3).max(63),
  /** Blob names start `<prefix>/<recordingId>/`. Default none. */
  prefix: z.string().optional(),
})

export const OutputConfig = z.discriminatedUnion('kind', [LocalOutput, AzureOutput])
export type OutputConfig = z.infer<typeof OutputConfig>

/** Recording ids become folder and blob names: no slashes, no dots first. */
const RecordingId = z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/, 'letters, digits, _ . - (up to 128)')

export const CompositeConfig = z.object({
  mode: z.literal('composite'),
  recordingId: RecordingId,
  room: z.string().min(1),
  /** The Conclave server, `http(s)://host:port`. */
  serverUrl: z.url(),
  /** A recorder token (`hidden: true, recorder: true`), or "" for a server in open mode. */
  token: z.string(),
  output: OutputConfig,
  /** Where files wait until they are uploaded. Default `<tmpdir>/conclave-recorder`. */
  spoolDir: z.string().min(1).optional(),
  /** HLS segment length in seconds. Default 2. */
  segmentSeconds: z.number().positive().max(30).default(2),
  /** One thumbnail every this many seconds. Default 5. */
  thumbnailEverySeconds: z.number().positive().max(3600).default(5),
  /** Captured size in pixels. Default 1280x720. */
  width: z.number().int().min(160).max(3840).default(1280),
  height: z.number().int().min(120).max(2160).default(720),
})
export type CompositeConfig = z.infer<typeof CompositeConfig>
export type CompositeConfigInput = z.input<typeof CompositeConfig>

/** The modes of the recording process; `tracks` is recorded by `src/tracks/`. */
export const RECORDING_MODES = ['composite', 'tracks'] as const

/** Validates a composite configuration, or throws `invalid_config` / `unsupported_mode`. */
export function parseCompositeConfig(input: unknown): CompositeConfig {
  const mode = typeof input === 'object' && input !== null ? (input as { mode?: unknown }).mode : undefined
  if (mode !== 'composite') {
    const known = (RECORDING_MODES as readonly unknown[]).includes(mode)
    throw new RecorderError('unsupported_mode', known ? `mode ${String(mode)} is not recorded by the composite recorder` : `unknown mode ${JSON.stringify(mode)}; expected one of ${RECORDING_MODES.join(', ')}`)
  }
  const parsed = CompositeConfig.safeParse(input)
  if (!parsed.success) throw new RecorderError('invalid_config', `invalid recorder configuration: ${z.prettifyError(parsed.error)}`)
  return parsed.data
}
