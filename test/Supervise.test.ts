import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import { supervise } from "../src/internal/supervise.js"
import * as Logs from "./support/Logs.js"

class Broken extends Error {}

describe("supervise (internal/supervise)", () => {
  it.effect(
    "a failing loop is logged once, started again with backoff, and its recovery logged with the outage's length",
    () =>
      Effect.gen(function* () {
        const logs = Logs.capture()
        const runs = yield* Ref.make(0)
        const loop = supervise({ name: "consume S/D" }, (up) =>
          Effect.gen(function* () {
            const run = yield* Ref.updateAndGet(runs, (n) => n + 1)
            // Runs 1-3 fail at start-up, run 4 works until it fails, run 5 fails, run 6 works for good.
            if (run <= 3 || run === 5) return yield* Effect.fail(new Broken(`boom ${run}`))
            yield* up
            if (run === 4) {
              yield* Effect.sleep("1 minute")
              return yield* Effect.fail(new Broken("lost it"))
            }
            return yield* Effect.never
          })
        )
        const fiber = yield* loop.pipe(Effect.provide(logs.layer), Effect.forkChild)
        yield* TestClock.adjust("10 seconds")
        expect(yield* Ref.get(runs)).toBe(4)
        expect(logs.matching("Error", "consume S/D stopped: boom 1; starting it again")).toHaveLength(1)
        expect(logs.lines.filter((line) => line.level === "Error")).toHaveLength(1)
        // 200 ms + 400 ms + 800 ms of backoff before the 4th run.
        expect(logs.matching("Info", "consume S/D: working again after 1400 ms (3 attempts)")).toHaveLength(1)

        yield* TestClock.adjust("1 minute")
        yield* TestClock.adjust("5 seconds")
        expect(yield* Ref.get(runs)).toBe(6)
        // A new outage after a recovery: logged again, and its backoff starts from the beginning (200 + 400 ms).
        expect(logs.matching("Error", "consume S/D stopped: lost it")).toHaveLength(1)
        expect(logs.matching("Info", "working again after 600 ms (2 attempts)")).toHaveLength(1)
        yield* Fiber.interrupt(fiber)
      })
  )

  it.effect("while a loop keeps failing: one summary at most every 30 s, backoff capped at 5 s, never giving up", () =>
    Effect.gen(function* () {
      const logs = Logs.capture()
      const runs = yield* Ref.make(0)
      const fiber = yield* supervise({ name: "advisory watcher" }, () =>
        Effect.andThen(
          Ref.update(runs, (n) => n + 1),
          Effect.fail(new Broken("stream GLAM_ADVISORIES not found"))
        )
      ).pipe(Effect.provide(logs.layer), Effect.forkChild)
      yield* TestClock.adjust("10 minutes")
      const errors = logs.lines.filter((line) => line.level === "Error")
      // The first failure, then a summary per 30 s (each counted at the first attempt past 30 s).
      expect(errors[0]?.message).toBe(
        "advisory watcher stopped: stream GLAM_ADVISORIES not found; starting it again until it works"
      )
      expect(errors.length).toBeGreaterThanOrEqual(18)
      expect(errors.length).toBeLessThanOrEqual(21)
      expect(errors[1]?.message).toMatch(
        /^advisory watcher still failing after 3\d(\.\d)? s \(\d+ attempts\): stream GLAM_ADVISORIES not found$/
      )
      // Capped at 5 s a wait: about 10 minutes / 5 s attempts, plus the short early ones.
      const attempts = yield* Ref.get(runs)
      expect(attempts).toBeGreaterThanOrEqual(118)
      expect(attempts).toBeLessThanOrEqual(126)
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* Fiber.interrupt(fiber)
    })
  )

  it.effect("interruption ends a supervised loop and nothing is logged as a failure", () =>
    Effect.gen(function* () {
      const logs = Logs.capture()
      const fiber = yield* supervise({ name: "keep-alive" }, () => Effect.never).pipe(
        Effect.provide(logs.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      expect(logs.lines).toStrictEqual([])
    })
  )

  it.effect("a loop that returns is a failure too", () =>
    Effect.gen(function* () {
      const logs = Logs.capture()
      const fiber = yield* supervise({ name: "check" }, () => Effect.void).pipe(
        Effect.provide(logs.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust("1 second")
      expect(logs.matching("Error", "check stopped: it returned, which it never should")).toHaveLength(1)
      yield* Fiber.interrupt(fiber)
    })
  )
})
