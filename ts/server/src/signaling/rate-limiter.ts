// A token bucket: `capacity` messages at once, refilled at `perSecond`. Time is passed in.

export class RateLimiter {
  #tokens: number
  #last: number

  constructor(
    readonly capacity: number,
    readonly perSecond: number,
    now: number,
  ) {
    this.#tokens = capacity
    this.#last = now
  }

  /** Takes one token if there is one; `now` in milliseconds. */
  take(now: number): boolean {
    this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#last) / 1000) * this.perSecond)
    this.#last = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}
