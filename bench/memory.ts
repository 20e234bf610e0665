/**
 * Memory over a long consume: the process's RSS and heap sampled while a subscriber handles a
 * pre-filled stream (1,000,000 messages with `--soak`), with the raw callback consumer for reference.
 * A flat line is the goal: the subscriber holds at most `prefetch` messages, so nothing should grow
 * with the number handled.
 */
import { Effect } from "effect"
import { durable, fill, freshStream, RawClients } from "./fixture.js"
import type { MemoryContender, MemoryResult, MemorySample } from "./model.js"
import * as ours from "./ours.js"
import * as raw from "./raw.js"
import { max, median } from "./stats.js"

const MB = 1024 * 1024

/** The median RSS of the samples taken while `from`–`to` (fractions) of the messages were handled. */
const rssBetween = (samples: ReadonlyArray<MemorySample>, total: number, from: number, to: number): number => {
  const inside = samples.filter((sample) => sample.handled >= from * total && sample.handled <= to * total)
  if (inside.length > 0) return median(inside.map((sample) => sample.rssMb))
  // Too few samples (a short run): the one closest to the middle of the stretch.
  const middle = ((from + to) / 2) * total
  const closest = [...samples].sort((a, b) => Math.abs(a.handled - middle) - Math.abs(b.handled - middle))[0]
  return closest?.rssMb ?? Number.NaN
}

const measure = <E, R>(
  name: string,
  role: MemoryContender["role"],
  description: string,
  count: number,
  sampleEveryMs: number,
  run: (onMessage: () => void) => Effect.Effect<number, E, R>,
  collectGarbage: () => void
) =>
  Effect.gen(function* () {
    let handled = 0
    const samples: Array<MemorySample> = []
    collectGarbage()
    const start = performance.now()
    const sample = () => {
      const usage = process.memoryUsage()
      samples.push({
        seconds: (performance.now() - start) / 1000,
        handled,
        rssMb: usage.rss / MB,
        heapUsedMb: usage.heapUsed / MB
      })
    }
    sample()
    const timer = setInterval(sample, sampleEveryMs)
    const end = yield* run(() => {
      handled++
    }).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
    sample()
    const baselineRssMb = rssBetween(samples, count, 0.1, 0.2)
    const finalRssMb = rssBetween(samples, count, 0.9, 1)
    return {
      name,
      role,
      description,
      msgPerSec: (count * 1000) / (end - start),
      samples,
      baselineRssMb,
      finalRssMb,
      peakRssMb: max(samples.filter((s) => s.handled >= 0.1 * count).map((s) => s.rssMb)),
      drift: finalRssMb / baselineRssMb - 1
    } satisfies MemoryContender
  })

export const run = (count: number, sampleEveryMs: number, collectGarbage: () => void) =>
  Effect.gen(function* () {
    const { js } = yield* RawClients
    const contenders: Array<MemoryContender> = []
    const shape = { concurrency: 64, prefetch: 256 }

    yield* freshStream()
    yield* fill(count)
    yield* durable("ours", 256)
    contenders.push(
      yield* measure(
        "ours c64 p256",
        "ours",
        "Subscriber, concurrency 64, prefetch 256, no-op handler",
        count,
        sampleEveryMs,
        (onMessage) => ours.consume("ours", count, shape, onMessage),
        collectGarbage
      )
    )

    yield* freshStream()
    yield* fill(count)
    yield* durable("raw", 256)
    contenders.push(
      yield* measure(
        "raw callback",
        "raw",
        "consume({ max_messages: 256, callback }) with ack",
        count,
        sampleEveryMs,
        (onMessage) => Effect.promise(() => raw.consume(js, "BENCH", "raw", count, "callback", onMessage)),
        collectGarbage
      )
    )
    return {
      id: "memory",
      title: "memory while consuming",
      messages: count,
      contenders
    } satisfies MemoryResult
  })
