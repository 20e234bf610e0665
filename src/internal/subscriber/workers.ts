/**
 * A subscriber's workers: the lanes its consume loop hands messages over to, the N fibers that take
 * them (never one fiber per message), what each one is handling, the keep-alive of what it holds, and
 * its shutdown.
 *
 * Lanes: one shared lane when order does not matter, one per worker when it does (`orderBy`, or a
 * single worker), each key always in the same lane. A chunk of deliveries is decoded and queued in one
 * synchronous step, so an interruption never finds part of a chunk handed over and the rest stranded.
 *
 * Not here: what is done with each message (`handling`), pulling them (`consumer`).
 */
import { Cause, type Clock, Duration, Effect, Exit, Fiber, Result, Schedule } from "effect"
import type { Message } from "../../Broker.js"
import type * as Envelope from "../../Envelope.js"
import { formatDuration } from "../durations.js"
import type { Item } from "./handling.js"
import type { Held } from "./held.js"
import type { InFlight } from "./inFlight.js"
import { Lane, laneOf } from "./lanes.js"

export interface Config<A extends Envelope.Envelope<unknown>, R> {
  readonly concurrency: number
  /** Messages with the same key are handled one at a time, in stream order. */
  readonly orderBy: ((envelope: A) => string) | undefined
  readonly decode: (message: Message) => Exit.Exit<A, Envelope.DecodeError>
  /** Settles every outcome and never fails. */
  readonly handle: (item: Item<A>) => Effect.Effect<void, never, R>
  readonly held: Held
  readonly inFlight: InFlight
  readonly clock: Clock.Clock
}

export interface Workers {
  /** Holds, decodes and queues a chunk of deliveries, then wakes the workers, in one synchronous step. */
  readonly accept: (chunk: ReadonlyArray<Message>) => void
  /**
   * Naks what is queued but not started, lets running handlers finish within `timeout`, then
   * interrupts those that did not and naks their messages (without delay): nothing unfinished is acked.
   */
  readonly stop: (timeout: Duration.Duration) => Effect.Effect<void>
}

/** Starts the workers, detached: only `stop` ends them. */
export const start = Effect.fnUntraced(function* <A extends Envelope.Envelope<unknown>, R>(config: Config<A, R>) {
  const { concurrency, orderBy, decode, handle, held, inFlight, clock } = config
  const ordered = orderBy !== undefined || concurrency === 1
  const lanes = Array.from({ length: ordered ? concurrency : 1 }, () => new Lane<Item<A>>())

  // Decodes a message and queues it in the lane of its key. An `orderBy` that throws makes the message
  // a defect for the policy (in the first lane) rather than ending the consume loop.
  const enqueue = (message: Message): void => {
    const decoded = decode(message)
    if (lanes.length === 1 || orderBy === undefined || Exit.isFailure(decoded)) {
      lanes[0]?.push({ message, decoded })
      return
    }
    const key = Result.try(() => orderBy(decoded.value))
    if (Result.isFailure(key)) lanes[0]?.push({ message, decoded, defect: key.failure })
    else lanes[laneOf(key.success, lanes.length)]?.push({ message, decoded })
  }

  const accept = (chunk: ReadonlyArray<Message>): void => {
    const now = clock.currentTimeMillisUnsafe()
    for (const message of chunk) {
      held.add(message, now)
      enqueue(message)
    }
    for (const lane of lanes) lane.wake()
  }

  // A worker takes the next message of its lane itself, and parks only when the lane is empty. What
  // each one is handling is kept, so that a worker interrupted at shutdown gives its message back.
  const giveBackInFlight = (index: number) =>
    Effect.sync(() => {
      const message = inFlight.take(index)
      if (message === undefined) return
      message.nak()
      held.release(message)
    })
  const now = () => clock.currentTimeMillisUnsafe()
  const work = (lane: Lane<Item<A>>, index: number): Effect.Effect<void, never, R> =>
    Effect.gen(function* () {
      while (true) {
        const item = lane.poll() ?? (yield* lane.wait)
        if (item === undefined) return
        const eventId = Exit.isSuccess(item.decoded) ? item.decoded.value.eventId : undefined
        inFlight.start(index, item.message, eventId, now())
        yield* handle(item)
        const finished = inFlight.finish(index, now)
        if (finished !== undefined) yield* Effect.logInfo(finished)
      }
    }).pipe(
      // `handle` settles every outcome; a defect here is a bug of ours, and must not cost a worker.
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logError("a subscriber worker failed; its message is given back", cause).pipe(
              Effect.andThen(giveBackInFlight(index)),
              Effect.andThen(Effect.suspend(() => work(lane, index)))
            )
      )
    )
  const fibers = yield* Effect.forEach(Array.from({ length: concurrency }), (_, index) =>
    Effect.forkDetach(work(lanes[ordered ? index : 0] as Lane<Item<A>>, index))
  )

  const stop = (timeout: Duration.Duration): Effect.Effect<void> =>
    Effect.gen(function* () {
      // What was received but not started goes back at once.
      for (const lane of lanes) {
        for (const item of lane.drain()) {
          item.message.nak()
          held.release(item.message)
        }
        lane.close()
      }
      const finished = yield* Fiber.joinAll(fibers).pipe(Effect.timeout(timeout), Effect.exit)
      if (Exit.isFailure(finished)) {
        yield* Effect.logWarning(
          `handlers still running after ${formatDuration(timeout)}: interrupting them; their messages are nak'ed`
        )
        yield* Fiber.interruptAll(fibers)
        // Interrupted handlers: their messages go back at once, never acked.
        for (let index = 0; index < concurrency; index++) yield* giveBackInFlight(index)
      }
    })

  const workers: Workers = { accept, stop }
  return workers
})

/**
 * `working` for everything held longer than half the ack-wait, and a WARN for handlers running long,
 * checked a few times per the shorter of the two.
 */
export const keepAlive = (
  held: Held,
  inFlight: InFlight,
  clock: Clock.Clock,
  ackWaitMillis: number,
  slowAfterMillis: number
) =>
  Effect.suspend(() => {
    const at = clock.currentTimeMillisUnsafe()
    held.keepAlive(at, ackWaitMillis / 2)
    const slow = inFlight.slow(at)
    return slow.length === 0 ? Effect.void : Effect.forEach(slow, (line) => Effect.logWarning(line))
  }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(Math.max(10, Math.min(ackWaitMillis, slowAfterMillis) / 4)))))
