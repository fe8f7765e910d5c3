// Server offers to members that joined with `serverOffers`: the receive m-lines they lack, offered
// by the server, one offer at a time per member, answered or timed out. The server is the impolite
// side of perfect negotiation: while its offer waits, the member's own offers get `glare`.

import { type MediaKind, SERVER_OFFER_TIMEOUT_MS } from '@conclave/protocol'
import { AppError } from '../app-error.js'
import type { Logger } from '../log.js'
import type { MediaEngine } from '../media/media-engine.js'
import type { Participant } from './participant.js'

export interface ServerOffersOptions {
  media: MediaEngine
  log: Logger
  /** Subscribes the member to what its m-lines can carry now and tells it. Called inside its queue. */
  fillSlots: (participant: Participant) => Promise<void>
  /** Ends the participation (its offer went unanswered). */
  end: (participant: Participant, reason: string) => void
  /** How long an offer may wait for its answer. Default `SERVER_OFFER_TIMEOUT_MS` (10 s). */
  timeoutMs?: number
}

export class ServerOffers {
  readonly #media: MediaEngine
  readonly #log: Logger
  readonly #fillSlots: ServerOffersOptions['fillSlots']
  readonly #end: ServerOffersOptions['end']
  readonly #timeoutMs: number
  /**
   * Members with an offer out: the offer (sent again after a reconnect) and the timer that ends them
   * if it stays unanswered; no timer while the member is away.
   */
  readonly #pending = new Map<Participant, { sdp: string; timer: NodeJS.Timeout | undefined }>()
  /** Members with an offer to make: the kinds of the m-lines they lack, as last counted. */
  readonly #wanted = new Map<Participant, readonly MediaKind[]>()

  constructor({ media, log, fillSlots, end, timeoutMs = SERVER_OFFER_TIMEOUT_MS }: ServerOffersOptions) {
    this.#media = media
    this.#log = log
    this.#fillSlots = fillSlots
    this.#end = end
    this.#timeoutMs = timeoutMs
  }

  /** Whether an offer of ours waits for `participant`'s answer. */
  isPending(participant: Participant): boolean {
    return this.#pending.has(participant)
  }

  /**
   * `participant` lacks one receive m-line per entry of `kinds`. Offered once no offer is out: a
   * waiting offer's answer fills slots again, which counts what is still missing (coalescing).
   */
  wants(participant: Participant, kinds: readonly MediaKind[]): void {
    if (this.#pending.has(participant)) return
    const scheduled = this.#wanted.has(participant)
    this.#wanted.set(participant, kinds)
    if (scheduled) return
    // Queued behind the running negotiation and made in a later macrotask: the answer to the
    // member's own offer must reach it first, or it would roll back an offer we already applied.
    setImmediate(() => {
      participant.queue
        .run(() => this.#offer(participant))
        .catch((error: unknown) => this.#log.warn('a server offer failed', { participantId: participant.id, err: error }))
    })
  }

  /** Applies the member's answer to our offer, then fills the m-lines it accepted. Serialized per member. */
  answer(participant: Participant, sdp: string): Promise<void> {
    return participant.queue.run(async () => {
      const pending = this.#pending.get(participant)
      const peerId = participant.peerId
      if (pending === undefined || peerId === undefined) throw new AppError('invalid_state', 'no server offer waits for an answer')
      clearTimeout(pending.timer)
      this.#pending.delete(participant)
      // The engine settles its offer even when it refuses the answer.
      await this.#media.applyAnswer(peerId, sdp)
      this.#log.debug('server offer answered', { participantId: participant.id })
      await this.#fillSlots(participant)
    })
  }

  /** The member left: its offer is no longer waited for. */
  forget(participant: Participant): void {
    clearTimeout(this.#pending.get(participant)?.timer)
    this.#pending.delete(participant)
    this.#wanted.delete(participant)
  }

  /**
   * The member's signaling dropped (it may resume): an offer it cannot receive must not time it out.
   * The engine cannot withdraw its offer, so the same offer is sent again on `reconnected`.
   */
  disconnected(participant: Participant): void {
    const pending = this.#pending.get(participant)
    if (pending === undefined) return
    clearTimeout(pending.timer)
    pending.timer = undefined
  }

  /** The member resumed: the offer it may have missed is sent again, with a fresh deadline. */
  reconnected(participant: Participant): void {
    const pending = this.#pending.get(participant)
    if (pending === undefined) return
    clearTimeout(pending.timer)
    pending.timer = this.#deadline(participant)
    participant.sink?.send({ type: 'offer', sdp: pending.sdp })
  }

  #deadline(participant: Participant): NodeJS.Timeout {
    const timer = setTimeout(() => {
      if (this.#pending.get(participant)?.timer !== timer) return
      this.#pending.delete(participant)
      this.#log.warn('a server offer went unanswered; ending the participation', { participantId: participant.id, timeoutMs: this.#timeoutMs })
      this.#end(participant, 'offer_timeout')
    }, this.#timeoutMs)
    timer.unref()
    return timer
  }

  async #offer(participant: Participant): Promise<void> {
    const kinds = this.#wanted.get(participant)
    this.#wanted.delete(participant)
    const peerId = participant.peerId
    if (kinds === undefined || kinds.length === 0 || peerId === undefined || participant.state !== 'active') return
    if (this.#pending.has(participant)) return
    const sdp = await this.#media.createOffer(peerId, kinds)
    if (participant.state !== 'active') return
    this.#pending.set(participant, { sdp, timer: this.#deadline(participant) })
    this.#log.debug('server offer sent', { participantId: participant.id, kinds })
    participant.sink?.send({ type: 'offer', sdp })
  }
}
