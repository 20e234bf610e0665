/**
 * Our contenders, written as a user of `@glam/messaging` writes them: `Publisher.publish` in a loop,
 * `Publisher.publishAll` with a window, and a `Subscriber` with a no-op handler. Each returns the time
 * of its last message (milliseconds from `performance.now()`).
 */
import { Deferred, Effect, Exit, Tracer } from "effect"
import { Metrics, Publisher, Subscriber } from "../src/index.js"
import { Measured, payload, STREAM } from "./fixture.js"

export const publishAwaited = (count: number) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    for (let i = 0; i < count; i++) yield* publisher.publish(Measured, payload(i))
    return performance.now()
  })

/** The items of a `publishAll`, built before the clock starts. */
export const publishItems = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ event: Measured, payload: payload(i) }))

export const publishAll = (items: ReturnType<typeof publishItems>, concurrency: number) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    yield* publisher.publishAll(items, { concurrency })
    return performance.now()
  })

/** How a subscriber is configured; `undefined` fields keep the library's defaults. */
export interface SubscriberShape {
  readonly concurrency?: number | undefined
  readonly prefetch?: number | undefined
  /**
   * What watches it: `Metrics.layer` (every metric recorded), or a tracer that builds every span and
   * keeps none (the cost of the spans without an exporter's).
   */
  readonly observed?: "metrics" | "tracer" | undefined
}

const buildingTracer = Tracer.make({ span: (options) => Tracer.nativeTracer.span(options) })

const observedBy =
  (shape: SubscriberShape) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    shape.observed === "metrics"
      ? Effect.provide(effect, Metrics.layer)
      : shape.observed === "tracer"
        ? Effect.withTracer(effect, buildingTracer)
        : effect

/**
 * Runs a subscriber with a handler that only counts until `count` messages were handled, then closes
 * it; `onMessage` sees each payload's sequence number at handler entry (the latency scenario).
 */
export const consume = (durable: string, count: number, shape: SubscriberShape, onMessage?: (seq: number) => void) =>
  Effect.scoped(
    Effect.gen(function* () {
      const done = yield* Deferred.make<number>()
      let handled = 0
      yield* Subscriber.make(Measured, {
        stream: STREAM,
        durable,
        concurrency: shape.concurrency,
        prefetch: shape.prefetch,
        handler: (envelope) =>
          Effect.sync(() => {
            onMessage?.(envelope.data.seq)
            if (++handled === count) Deferred.doneUnsafe(done, Exit.succeed(performance.now()))
          })
      }).pipe(observedBy(shape))
      return yield* Deferred.await(done)
    })
  )
