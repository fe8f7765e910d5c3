// The recorder's failures: a stable `code` the orchestrator can branch on, plus a message for people.

/** Stable codes, also printed in the CLI's `failed` line. Changing one is a breaking change. */
export const RECORDER_ERROR_CODES = [
  /** The configuration is not valid JSON or misses a field. */
  'invalid_config',
  /** `mode` is not one this process records. */
  'unsupported_mode',
  /** ffmpeg, ffprobe, Xvfb, pulseaudio or Chromium is not installed where expected. */
  'missing_dependency',
  /** Xvfb or PulseAudio did not come up. */
  'environment_failed',
  /** The recorder page could not join the room. */
  'join_failed',
  /** Chromium exited or lost its page while recording. */
  'browser_crashed',
  /** ffmpeg exited on its own while recording. */
  'ffmpeg_crashed',
  /** The virtual display or sound server died while recording. */
  'environment_crashed',
  /** Storage stayed unreachable past the final flush; the files wait in the spool. */
  'storage_unreachable',
  /** The recorder process died without finalizing; `finalizePartial` marked what storage had. */
  'recorder_lost',
  /** Anything else: a bug in us. */
  'internal',
] as const
export type RecorderErrorCode = (typeof RECORDER_ERROR_CODES)[number]

export class RecorderError extends Error {
  readonly code: RecorderErrorCode

  constructor(code: RecorderErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RecorderError'
    this.code = code
  }
}

/** Any thrown value as a `RecorderError` (unknown ones become `internal`). */
export function toRecorderError(error: unknown): RecorderError {
  if (error instanceof RecorderError) return error
  return new RecorderError('internal', error instanceof Error ? error.message : String(error), { cause: error })
}
