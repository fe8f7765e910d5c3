// Turns errors into HTTP responses with the protocol's one code -> status table.

import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { ErrorBody } from '@conclave/protocol'
import { type AppError, toAppError } from '../app-error.js'
import type { Logger } from '../log.js'

export function errorResponse(c: Context, error: AppError): Response {
  const body: ErrorBody = { code: error.code, message: error.message }
  return c.json(body, error.httpStatus as ContentfulStatusCode)
}

/** Hono's `onError`: AppErrors keep their code; anything else is a bug in us and is logged. */
export function handleError(log: Logger) {
  return (error: unknown, c: Context): Response => {
    const appError = toAppError(error)
    if (appError.code === 'internal') log.error('request failed', { method: c.req.method, path: c.req.path, err: error })
    return errorResponse(c, appError)
  }
}
