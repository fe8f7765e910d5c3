// Reading a REST request's parameters and JSON body through zod schemas; a mismatch is a bad_request AppError.

import type { Context } from 'hono'
import type * as z from 'zod'
import { AppError } from '../app-error.js'

/** `value` (a path parameter or query value named `what`) read with `schema`. */
export function parseRequestValue<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new AppError('bad_request', `${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
  return parsed.data
}

/** The JSON body read with `schema`; a missing body is `{}` so optional-only bodies may be left out. */
export async function readJsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const text = await c.req.text()
  let json: unknown = {}
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text)
    } catch {
      throw new AppError('bad_request', 'the body is not valid JSON')
    }
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new AppError('bad_request', `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}
