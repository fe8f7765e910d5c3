// Runs async tasks one at a time, in order: one negotiation per participant, never two interleaved.

export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()

  /** Runs `task` after every task queued before it has settled; a failed task does not block the next. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => task())
    this.#tail = result.catch(() => undefined)
    return result
  }
}
