// A room's dominant speaker from its participants' voice activity, with hysteresis. Pure: time
// is an argument, the caller runs the timer.

import type { ParticipantId } from '@conclave/protocol'

export interface ActiveSpeakerOptions {
  /** With nobody holding the floor, this much continuous speech takes it. Default 1000 ms. */
  minSpeechMs?: number
  /** Someone else takes the floor from the current speaker after this much continuous speech. Default 1500 ms. */
  takeoverMs?: number
}

/**
 * Picks the active speaker: the first to speak for `minSpeechMs`; after that, whoever speaks
 * without a pause for `takeoverMs` while the current speaker is silent. Crosstalk does not move
 * the floor: while the current speaker talks, the others' speech does not count. The speaker keeps
 * the floor while silent (the room still looks at the last one who spoke) until someone takes it
 * or it leaves.
 */
export class ActiveSpeakerDetector {
  readonly #minSpeechMs: number
  readonly #takeoverMs: number
  /** Who speaks now, and since when (ms). */
  readonly #speakingSince = new Map<ParticipantId, number>()
  #current: ParticipantId | undefined
  /** When the current speaker last fell silent (ms). */
  #currentQuietSince = 0

  constructor({ minSpeechMs = 1000, takeoverMs = 1500 }: ActiveSpeakerOptions = {}) {
    this.#minSpeechMs = minSpeechMs
    this.#takeoverMs = takeoverMs
  }

  get current(): ParticipantId | undefined {
    return this.#current
  }

  /** Records a change of voice activity at `atMs`. Call {@link decide} after. */
  setSpeaking(participantId: ParticipantId, speaking: boolean, atMs: number): void {
    if (!speaking) {
      if (participantId === this.#current && this.#speakingSince.has(participantId)) this.#currentQuietSince = atMs
      this.#speakingSince.delete(participantId)
    } else if (!this.#speakingSince.has(participantId)) {
      this.#speakingSince.set(participantId, atMs)
    }
  }

  /** The participant left: it speaks no more, and loses the floor. */
  remove(participantId: ParticipantId): void {
    this.#speakingSince.delete(participantId)
    if (this.#current === participantId) this.#current = undefined
  }

  /** Hands the floor to whoever earned it by `atMs`; true when the active speaker changed. */
  decide(atMs: number): boolean {
    let best: [ParticipantId, number] | undefined
    for (const [participantId, earnedAt] of this.#candidates()) {
      if (atMs < earnedAt) continue
      if (best === undefined || earnedAt < best[1]) best = [participantId, earnedAt]
    }
    if (best === undefined) return false
    this.#current = best[0]
    this.#currentQuietSince = atMs
    return true
  }

  /** When {@link decide} may next change something (ms), if someone is on the way to the floor. */
  nextDecisionAt(): number | undefined {
    let next: number | undefined
    for (const [, earnedAt] of this.#candidates()) {
      if (next === undefined || earnedAt < next) next = earnedAt
    }
    return next
  }

  /** Everyone who could take the floor, with the time they would have earned it by. */
  *#candidates(): Generator<[ParticipantId, number]> {
    if (this.#current === undefined) {
      for (const [participantId, since] of this.#speakingSince) yield [participantId, since + this.#minSpeechMs]
      return
    }
    if (this.#speakingSince.has(this.#current)) return
    for (const [participantId, since] of this.#speakingSince) {
      if (participantId !== this.#current) yield [participantId, Math.max(since, this.#currentQuietSince) + this.#takeoverMs]
    }
  }
}
