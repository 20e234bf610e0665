/**
 * The consume loop of the in-memory broker: a `Stream` of `Broker.Message`s per `consume`, with the
 * slot rule of the seam. A consume is a `Puller` with `maxMessages` slots; a delivery holds one from
 * the moment it is taken from the consumer until its first ack, nak or term, and only free slots are
 * filled, in stream order, redeliveries first.
 *
 * Filling is synchronous and happens whenever something could be delivered: a publish to a subject the
 * consumer wants, a settle (a slot freed, a nak, room under `maxAckPending`), the consumer created
 * again. Those events `signal` the consumer's key; signals raised while others are being served (an
 * advisory published during a delivery) are queued and served after, so no consumer is ever entered
 * twice at once. What only time makes due (ack-wait expiry, a nak's delay) is the job of one fiber per
 * consume that sleeps on the broker's `Clock` until the consumer's next deadline, or until a signal
 * brings that deadline closer; under `TestClock`, `TestClock.adjust` drives it.
 *
 * Deliveries wait in the Stream's buffer until pulled, one per pull; interrupting the Stream closes the
 * puller and naks (without delay) what is still in the buffer, so it is redelivered at once. A consume
 * outlives its consumer: while the consumer (or its stream) is gone it delivers nothing, and carries on
 * once one of the same name exists again.
 */
import { type Clock, Duration, Effect, Queue, Stream } from "effect"
import type { ConsumeOptions, Headers, Message } from "../../Broker.js"
import * as NatsError from "../../NatsError.js"
import { slotsNow } from "../slots.js"
import type { DeliveredRecord, MemoryConsumer } from "./consumer.js"

/** The consumes of one broker, by consumer, and the signals that make them pull. */
export class Pullers {
  private readonly byKey = new Map<string, Array<Puller>>()
  private readonly signalled = new Set<string>()
  private draining = false
  /** Per key, which consume fills first at the next signal: they take turns, as pull requests do on a server. */
  private readonly turns = new Map<string, number>()

  constructor(
    readonly clock: Clock.Clock,
    readonly lookup: (stream: string, consumer: string) => MemoryConsumer | undefined
  ) {}

  add(puller: Puller): void {
    const list = this.byKey.get(puller.key) ?? []
    list.push(puller)
    this.byKey.set(puller.key, list)
  }

  remove(puller: Puller): void {
    const list = this.byKey.get(puller.key)
    if (list === undefined) return
    const index = list.indexOf(puller)
    if (index >= 0) list.splice(index, 1)
    if (list.length === 0) {
      this.byKey.delete(puller.key)
      this.turns.delete(puller.key)
    }
  }

  /**
   * The consumes of a consumer with a free slot: each stands for a pull request waiting at a server,
   * since a free slot is filled as soon as the consumer has something for it.
   */
  waiting(key: string): number {
    return (this.byKey.get(key) ?? []).filter((puller) => !puller.closed && puller.held < puller.limit()).length
  }

  /** Lets every consume of the consumer fill its free slots, now or right after the current signal. */
  signal(key: string): void {
    if (!this.byKey.has(key)) return
    this.signalled.add(key)
    if (this.draining) return
    this.draining = true
    for (let next = this.take(); next !== undefined; next = this.take()) {
      const list = this.byKey.get(next) ?? []
      const turn = this.turns.get(next) ?? 0
      this.turns.set(next, turn + 1)
      const first = turn % Math.max(1, list.length)
      for (let i = 0; i < list.length; i++) list[(first + i) % list.length]?.fill()
    }
    this.draining = false
  }

  private take(): string | undefined {
    const next = this.signalled.values().next()
    if (next.done === true) return undefined
    this.signalled.delete(next.value)
    return next.value
  }
}

/** One running consume. */
class Puller {
  held = 0
  closed = false
  /** The deadline the timer fiber sleeps until, if it sleeps on one. */
  armedFor: number | undefined = undefined
  readonly key: string

  constructor(
    readonly pullers: Pullers,
    readonly stream: string,
    readonly consumer: string,
    readonly maxMessages: number,
    readonly window: (() => number) | undefined,
    readonly buffer: Queue.Queue<Message>,
    readonly wakeups: Queue.Queue<void>
  ) {
    this.key = `${stream}/${consumer}`
  }

  /** The slots that may be held now. */
  limit(): number {
    return slotsNow(this.maxMessages, this.window)
  }

  fill(): void {
    const consumer = this.closed ? undefined : this.pullers.lookup(this.stream, this.consumer)
    if (consumer === undefined) return
    const now = this.pullers.clock.currentTimeMillisUnsafe()
    while (this.held < this.limit()) {
      const delivery = consumer.next(now)
      if (delivery === undefined) break
      this.held++
      Queue.offerUnsafe(this.buffer, new MemoryMessage(this, consumer, delivery))
    }
    const due = this.dueAt(consumer)
    if (due !== undefined && (this.armedFor === undefined || due < this.armedFor)) {
      Queue.offerUnsafe(this.wakeups, undefined)
    }
  }

  /** When the consumer next has something for this consume; never while every slot is held. */
  dueAt(consumer: MemoryConsumer | undefined): number | undefined {
    return consumer === undefined || this.held >= this.limit() ? undefined : consumer.nextDue()
  }

  release(): void {
    this.held--
    this.pullers.signal(this.key)
  }

  /**
   * Sleeps until the next deadline or a wake-up, then fills; forever. `armedFor` stays set while the
   * fill runs, so that the fill does not wake the timer for the deadline it is already armed for.
   */
  readonly timer: Effect.Effect<never> = Effect.suspend(() => {
    const { clock } = this.pullers
    const due = this.dueAt(this.pullers.lookup(this.stream, this.consumer))
    const now = clock.currentTimeMillisUnsafe()
    this.armedFor = due
    const wait =
      due === undefined
        ? Queue.take(this.wakeups)
        : due > now
          ? Effect.race(Queue.take(this.wakeups), clock.sleep(Duration.millis(due - now)))
          : Effect.yieldNow
    return Effect.andThen(
      wait,
      Effect.sync(() => this.pullers.signal(this.key))
    )
  }).pipe(Effect.forever)
}

/** One delivery; the settle verbs change the consumer's state at once and free the slot. */
class MemoryMessage implements Message {
  readonly stream: string
  readonly consumer: string
  readonly subject: string
  readonly payload: Uint8Array
  readonly headers: Headers
  readonly streamSeq: number
  readonly consumerSeq: number
  readonly deliveryCount: number
  readonly pending: number
  readonly timestampMillis: number
  private settled = false

  constructor(
    private readonly puller: Puller,
    private readonly owner: MemoryConsumer,
    delivery: DeliveredRecord
  ) {
    const { record } = delivery
    this.stream = record.stream
    this.consumer = puller.consumer
    this.subject = record.subject
    this.payload = record.payload
    this.headers = record.headers
    this.streamSeq = record.seq
    this.consumerSeq = delivery.consumerSeq
    this.deliveryCount = delivery.deliveryCount
    this.pending = delivery.pending
    this.timestampMillis = record.timestampMillis
  }

  ack(): void {
    if (!this.settle()) return
    this.owner.ack(this.streamSeq)
    this.puller.release()
  }

  nak(delayMillis?: number): void {
    if (!this.settle()) return
    this.owner.nak(this.streamSeq, this.now(), delayMillis)
    this.puller.release()
  }

  term(reason?: string): void {
    if (!this.settle()) return
    this.owner.term(this.streamSeq, this, reason)
    this.puller.release()
  }

  working(): void {
    if (!this.settled) this.owner.working(this.streamSeq, this.now())
  }

  private now(): number {
    return this.puller.pullers.clock.currentTimeMillisUnsafe()
  }

  private settle(): boolean {
    if (this.settled) return false
    this.settled = true
    return true
  }
}

/**
 * The deliveries of `consumer` on `stream`. Fails at once when the stream or the consumer does not
 * exist; once started, it waits for them whenever they are gone.
 */
export const consume = (
  pullers: Pullers,
  stream: string,
  consumer: string,
  options: ConsumeOptions,
  missing: (stream: string, consumer: string) => NatsError.NatsErrorReason | undefined
): Stream.Stream<Message, NatsError.NatsError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const reason = missing(stream, consumer)
      if (reason !== undefined) return yield* Effect.fail(NatsError.make("consume", reason))
      const buffer = yield* Queue.unbounded<Message>()
      const wakeups = yield* Queue.dropping<void>(1)
      const maxMessages = Math.max(1, Math.floor(options.maxMessages))
      const puller = new Puller(pullers, stream, consumer, maxMessages, options.window, buffer, wakeups)
      yield* Effect.acquireRelease(
        Effect.sync(() => pullers.add(puller)),
        () =>
          Effect.gen(function* () {
            puller.closed = true
            pullers.remove(puller)
            for (const message of yield* Queue.clear(buffer)) message.nak()
          })
      )
      yield* Effect.forkScoped(puller.timer)
      pullers.signal(puller.key)
      return options.chunked === true ? Stream.fromQueue(buffer) : Stream.fromEffectRepeat(Queue.take(buffer))
    })
  )
