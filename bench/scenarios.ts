/**
 * The scenarios: for each, its contenders (each run does its own set-up on a fresh stream and times
 * only the work measured), the metric the ratios are taken on, and the targets.
 */
import { Effect, Fiber } from "effect"
import type { Broker, ServiceIdentity } from "../src/index.js"
import { Publisher } from "../src/index.js"
import {
  allAcknowledged,
  durable,
  fill,
  freshStream,
  Measured,
  payload,
  RawClients,
  SUBJECT,
  sample
} from "./fixture.js"
import type { Role, Target } from "./model.js"
import * as ours from "./ours.js"
import * as raw from "./raw.js"
import { max, percentile } from "./stats.js"

/** What the contenders run on: the raw connections, and our publisher, broker and identity. */
export type Env = RawClients | Publisher.Publisher | Broker.Broker | ServiceIdentity.ServiceIdentity

export interface Contender<R> {
  readonly name: string
  readonly role: Role
  readonly description: string
  readonly run: (count: number) => Effect.Effect<Readonly<Record<string, number>>, unknown, R>
}

export interface RatioSpec {
  readonly ours: string
  readonly raw: string
  readonly target?: Target | undefined
}

export interface Scenario<R> {
  readonly id: string
  readonly title: string
  readonly messages: { readonly full: number; readonly quick: number }
  readonly rounds: number
  readonly metric: string
  readonly unit: string
  readonly higherIsBetter: boolean
  readonly contenders: ReadonlyArray<Contender<R>>
  readonly ratios: ReadonlyArray<RatioSpec>
}

/** The hook the profiler uses to know which stretches of the process were measured work. */
export interface Timed {
  readonly start: () => number
  readonly stop: () => number
}

const rate = (count: number, start: number, end: number) => ({ msgPerSec: (count * 1000) / (end - start) })

const timed = <E, R>(clock: Timed, count: number, work: Effect.Effect<number, E, R>) =>
  Effect.gen(function* () {
    const start = clock.start()
    yield* work
    return rate(count, start, clock.stop())
  })

const IN_FLIGHT = 256
const PREFETCH = 256

const publishAwaited = (clock: Timed): Scenario<Env> => ({
  id: "publish",
  title: "publish, one at a time, awaited",
  messages: { full: 10_000, quick: 200 },
  rounds: 5,
  metric: "msgPerSec",
  unit: "msg/s",
  higherIsBetter: true,
  contenders: [
    {
      name: "raw",
      role: "raw",
      description: "await js.publish(subject, bytes)",
      run: (count) =>
        Effect.gen(function* () {
          const { js } = yield* RawClients
          yield* freshStream()
          return yield* timed(
            clock,
            count,
            Effect.promise(() => raw.publishAwaited(js, count, false))
          )
        })
    },
    {
      name: "raw + msgID",
      role: "reference",
      description: "await js.publish(subject, bytes, { msgID }): the Nats-Msg-Id ours always sends",
      run: (count) =>
        Effect.gen(function* () {
          const { js } = yield* RawClients
          yield* freshStream()
          return yield* timed(
            clock,
            count,
            Effect.promise(() => raw.publishAwaited(js, count, true))
          )
        })
    },
    {
      name: "ours",
      role: "ours",
      description: "yield* publisher.publish(event, payload) in a loop",
      run: (count) => Effect.andThen(freshStream(), timed(clock, count, ours.publishAwaited(count)))
    }
  ],
  ratios: [
    { ours: "ours", raw: "raw", target: { kind: "atLeast", value: 0.95 } },
    { ours: "ours", raw: "raw + msgID" }
  ]
})

const publishWindow = (clock: Timed): Scenario<Env> => ({
  id: "publishInFlight",
  title: `publish, ${IN_FLIGHT} in flight`,
  messages: { full: 50_000, quick: 2_000 },
  rounds: 5,
  metric: "msgPerSec",
  unit: "msg/s",
  higherIsBetter: true,
  contenders: [
    {
      name: "raw",
      role: "raw",
      description: `a window of ${IN_FLIGHT} js.publish promises`,
      run: (count) =>
        Effect.gen(function* () {
          const { js } = yield* RawClients
          yield* freshStream()
          return yield* timed(
            clock,
            count,
            Effect.promise(() => raw.publishWindow(js, count, IN_FLIGHT, false))
          )
        })
    },
    {
      name: "raw + msgID",
      role: "reference",
      description: `a window of ${IN_FLIGHT} js.publish promises, each with a msgID`,
      run: (count) =>
        Effect.gen(function* () {
          const { js } = yield* RawClients
          yield* freshStream()
          return yield* timed(
            clock,
            count,
            Effect.promise(() => raw.publishWindow(js, count, IN_FLIGHT, true))
          )
        })
    },
    {
      name: "ours",
      role: "ours",
      description: `publisher.publishAll(items, { concurrency: ${IN_FLIGHT} }) (items built before the clock starts)`,
      run: (count) =>
        Effect.andThen(
          freshStream(),
          Effect.suspend(() => timed(clock, count, ours.publishAll(ours.publishItems(count), IN_FLIGHT)))
        )
    }
  ],
  ratios: [
    { ours: "ours", raw: "raw", target: { kind: "atLeast", value: 1.0 } },
    { ours: "ours", raw: "raw + msgID" }
  ]
})

interface SubscriberVariant {
  readonly name: string
  readonly description: string
  readonly shape: ours.SubscriberShape
}

const subscriberVariants: ReadonlyArray<SubscriberVariant> = [
  {
    name: "ours c1 p256",
    description: `Subscriber, default concurrency (1), prefetch ${PREFETCH}`,
    shape: { prefetch: PREFETCH }
  },
  {
    name: "ours c64 p256",
    description: `Subscriber, concurrency 64, prefetch ${PREFETCH}`,
    shape: { concurrency: 64, prefetch: PREFETCH }
  },
  {
    name: "ours c1 (defaults)",
    description: "Subscriber with its defaults: concurrency 1, prefetch 256 (the window adapts)",
    shape: {}
  },
  {
    name: "ours c8 (default prefetch)",
    description: "Subscriber, concurrency 8, default prefetch (256, the window adapts)",
    shape: { concurrency: 8 }
  },
  {
    name: "ours c1 p256 + metrics",
    description: `Subscriber, concurrency 1, prefetch ${PREFETCH}, Metrics.layer provided`,
    shape: { prefetch: PREFETCH, observed: "metrics" }
  },
  {
    name: "ours c64 p256 + metrics",
    description: `Subscriber, concurrency 64, prefetch ${PREFETCH}, Metrics.layer provided`,
    shape: { concurrency: 64, prefetch: PREFETCH, observed: "metrics" }
  },
  {
    name: "ours c64 p256 + tracer",
    description: `Subscriber, concurrency 64, prefetch ${PREFETCH}, a tracer that builds every span`,
    shape: { concurrency: 64, prefetch: PREFETCH, observed: "tracer" }
  }
]

// As the Subscriber resolves it: at least the concurrency, 256 unless given.
const prefetchOf = (shape: ours.SubscriberShape): number =>
  Math.max(shape.concurrency ?? 1, shape.prefetch ?? Math.max(PREFETCH, shape.concurrency ?? 1))

const durableName = (name: string) => name.replace(/[^a-z0-9]+/gi, "-").replace(/-+$/, "")

const consumeAck = (clock: Timed): Scenario<Env> => {
  const rawContender = (style: raw.ConsumeStyle, name: string, description: string): Contender<RawClients> => ({
    name,
    role: "raw",
    description,
    run: (count) =>
      Effect.gen(function* () {
        const { js } = yield* RawClients
        const consumer = durableName(name)
        yield* freshStream()
        yield* fill(count)
        yield* durable(consumer, PREFETCH)
        const result = yield* timed(
          clock,
          count,
          Effect.promise(() => raw.consume(js, "BENCH", consumer, count, style))
        )
        yield* allAcknowledged(consumer, count)
        return result
      })
  })
  return {
    id: "consume",
    title: "consume + ack, no-op handler",
    messages: { full: 50_000, quick: 2_000 },
    rounds: 5,
    metric: "msgPerSec",
    unit: "msg/s",
    higherIsBetter: true,
    contenders: [
      rawContender(
        "iterator",
        "raw for await",
        `for await (const m of await consumer.consume({ max_messages: ${PREFETCH} })) m.ack()`
      ),
      rawContender(
        "callback",
        "raw callback",
        `consumer.consume({ max_messages: ${PREFETCH}, callback: (m) => m.ack() })`
      ),
      ...subscriberVariants.map(
        (variant): Contender<Env> => ({
          name: variant.name,
          role: "ours",
          description: variant.description,
          run: (count) =>
            Effect.gen(function* () {
              const consumer = durableName(variant.name)
              yield* freshStream()
              yield* fill(count)
              yield* durable(consumer, prefetchOf(variant.shape))
              const result = yield* timed(clock, count, ours.consume(consumer, count, variant.shape))
              yield* allAcknowledged(consumer, count)
              return result
            })
        })
      )
    ],
    ratios: [
      { ours: "ours c64 p256", raw: "raw for await", target: { kind: "atLeast", value: 1.0 } },
      { ours: "ours c64 p256", raw: "raw callback", target: { kind: "atLeast", value: 0.7 } },
      { ours: "ours c1 p256", raw: "raw for await", target: { kind: "atLeast", value: 1.0 } },
      { ours: "ours c1 p256", raw: "raw callback", target: { kind: "atLeast", value: 0.7 } },
      // What a user writes first, with the window that adapts: on a fresh durable it starts wide.
      { ours: "ours c1 (defaults)", raw: "raw callback", target: { kind: "atLeast", value: 0.6 } },
      { ours: "ours c8 (default prefetch)", raw: "raw callback", target: { kind: "atLeast", value: 0.65 } },
      { ours: "ours c1 (defaults)", raw: "raw for await" },
      // What watching costs, in the same run: metrics on must keep 0.9 of metrics off.
      { ours: "ours c1 p256 + metrics", raw: "ours c1 p256", target: { kind: "atLeast", value: 0.9 } },
      { ours: "ours c64 p256 + metrics", raw: "ours c64 p256", target: { kind: "atLeast", value: 0.9 } },
      { ours: "ours c64 p256 + tracer", raw: "ours c64 p256" }
    ]
  }
}

/**
 * Sends `total` messages at `perSecond`, as evenly as a 1 ms timer allows, and resolves with the
 * time each was sent.
 */
const pace = (perSecond: number, total: number, send: (index: number) => void): Promise<Float64Array> =>
  new Promise((resolve) => {
    const sentAt = new Float64Array(total)
    const start = performance.now()
    let next = 0
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * perSecond) / 1000) + 1)
      while (next < due) {
        sentAt[next] = performance.now()
        send(next++)
      }
      if (next < total) setTimeout(tick, 1)
      else resolve(sentAt)
    }
    tick()
  })

const latencyOf = (sentAt: Float64Array, receivedAt: Float64Array) => {
  const latencies = Array.from(receivedAt, (received, i) => received - (sentAt[i] ?? 0))
  return { p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), maxMs: max(latencies) }
}

const LATENCY_RATE = 1_000
// The consumer's first pull must be in place before the first message, or the first latencies measure start-up.
const CONSUMER_READY_MS = 300

const latency = (): Scenario<Env> => {
  const rawContender = (style: raw.ConsumeStyle, name: string, description: string): Contender<RawClients> => ({
    name,
    role: "raw",
    description,
    run: (count) =>
      Effect.gen(function* () {
        const { js } = yield* RawClients
        const consumer = durableName(name)
        yield* freshStream()
        yield* durable(consumer, PREFETCH)
        return yield* Effect.promise(async () => {
          const receivedAt = new Float64Array(count)
          // A fresh stream and one publishing connection: stream sequence n is the n-th message sent.
          const consuming = raw.consume(js, "BENCH", consumer, count, style, (seq) => {
            receivedAt[seq - 1] = performance.now()
          })
          await new Promise((resolve) => setTimeout(resolve, CONSUMER_READY_MS))
          const sentAt = await pace(LATENCY_RATE, count, () => {
            js.publish(SUBJECT, sample).catch((error: unknown) => console.error("publish failed", error))
          })
          await consuming
          return latencyOf(sentAt, receivedAt)
        })
      })
  })
  const oursContender = (variant: SubscriberVariant): Contender<Env> => ({
    name: variant.name,
    role: "ours",
    description: `publisher.publish (forked at each tick) → ${variant.description}`,
    run: (count) =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const consumer = durableName(variant.name)
        yield* freshStream()
        yield* durable(consumer, prefetchOf(variant.shape))
        const receivedAt = new Float64Array(count)
        const consuming = yield* ours
          .consume(consumer, count, variant.shape, (seq) => {
            receivedAt[seq] = performance.now()
          })
          .pipe(Effect.forkChild)
        yield* Effect.sleep(CONSUMER_READY_MS)
        const context = yield* Effect.context<never>()
        const fork = Effect.runForkWith(context)
        const sentAt = yield* Effect.promise(() =>
          pace(LATENCY_RATE, count, (index) => {
            fork(publisher.publish(Measured, payload(index)))
          })
        )
        yield* Fiber.join(consuming)
        return latencyOf(sentAt, receivedAt)
      })
  })
  const [single, fair, defaults] = [subscriberVariants[0], subscriberVariants[1], subscriberVariants[2]]
  if (single === undefined || fair === undefined || defaults === undefined) {
    throw new Error("subscriber variants are missing")
  }
  // The targets compare like with like: the raw contenders pull 256 at a time, so do these two of ours.
  // The defaults pull up to 256 too (the window adapts), with a looser target of their own.
  const target: Target = { kind: "atMost", value: 1.2 }
  return {
    id: "latency",
    title: `publish → handler latency at ${LATENCY_RATE.toLocaleString("en-US")} msg/s`,
    messages: { full: 10 * LATENCY_RATE, quick: LATENCY_RATE },
    // A p99 over 10 s moves with every pause of the machine: five rounds give a steadier median.
    rounds: 5,
    metric: "p99Ms",
    unit: "ms",
    higherIsBetter: false,
    contenders: [
      rawContender(
        "iterator",
        "raw for await",
        "js.publish at each tick → for await (const m of consumer.consume({ max_messages: 256 }))"
      ),
      rawContender("callback", "raw callback", "js.publish at each tick → consume({ max_messages: 256, callback })"),
      oursContender(single),
      oursContender(fair),
      oursContender(defaults)
    ],
    ratios: [
      { ours: single.name, raw: "raw for await", target },
      { ours: single.name, raw: "raw callback", target },
      { ours: fair.name, raw: "raw for await", target },
      { ours: fair.name, raw: "raw callback", target },
      { ours: defaults.name, raw: "raw for await" },
      { ours: defaults.name, raw: "raw callback", target: { kind: "atMost", value: 1.5 } }
    ]
  }
}

/** Every scenario but memory, in the order they run. */
export const all = (clock: Timed) => [publishAwaited(clock), publishWindow(clock), consumeAck(clock), latency()]
