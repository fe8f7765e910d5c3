// The one error type of the control plane: a stable protocol code plus a human message.

import { type ErrorCode, httpStatusFor, isErrorCode } from '@conclave/protocol'

export class AppError extends Error {
  override readonly name = 'AppError'

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }

  get httpStatus(): number {
    return httpStatusFor(this.code)
  }
}

/**
 * Rebuilds anything thrown (an addon `Error` with a `code`, a bug) as an AppError. Codes we do not
 * know become `internal` so a new engine code can never leak an unchecked string to clients.
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error
  if (error instanceof Error) {
    const code: unknown = (error as Error & { code?: unknown }).code
    if (isErrorCode(code)) return new AppError(code, error.message, { cause: error })
    return new AppError('internal', error.message, { cause: error })
  }
  return new AppError('internal', String(error), { cause: error })
}

/** True when `error` carries one of `codes`; for outcomes that are expected, not failures. */
export function hasCode(error: unknown, ...codes: ErrorCode[]): boolean {
  return error instanceof AppError && codes.includes(error.code)
}
