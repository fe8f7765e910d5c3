// Polling with a deadline, for tests that wait on something outside them.

export /** Retries `check` every 200 ms until it resolves or `timeoutMs` passes (then rethrows its last error). */
async function eventually<T>(what: string, check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${error instanceof Error ? error.message : String(error)}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}
