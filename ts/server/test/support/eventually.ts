// Polling with a deadline: tests wait for a condition, never for a fixed time.

export interface EventuallyOptions {
  /** Give up after this long. Default 10 s. */
  timeoutMs?: number
  /** Time between tries. Default 50 ms. */
  intervalMs?: number
}

/**
 * Calls `probe` until it returns something other than `undefined`/`false` (or stops throwing)
 * and resolves with it; rejects with `what` and the last value or error at the deadline.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 50 }: EventuallyOptions = {},
): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>
      last = value
    } catch (error) {
      last = error
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
