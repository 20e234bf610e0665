/**
 * What an operator reads from `Logging.layer`: one line per event with its annotations, spans and
 * cause, JSON that parses line by line, the level from `LOG_LEVEL`, and errors that name the variable
 * for values that are not accepted. Lines are read from a test console, under the test clock (so the
 * timestamps are the epoch).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Layer } from "effect"
import { TestConsole } from "effect/testing"
import * as Logging from "../src/Logging.js"

const events = Effect.gen(function* () {
  yield* Effect.logInfo("subscriber orders-billing started")
  yield* Effect.logDebug("pulled 8 messages")
  yield* Effect.logWarning(
    "TypeError: x is undefined: delivery 1 failed, redelivery in 1000 ms",
    Cause.die(new TypeError("x is undefined"))
  )
}).pipe(
  Effect.annotateLogs({ event_id: "e-1", subject: "evt.orders.created.v1", service: "billing service" }),
  Effect.withLogSpan("handle")
)

/** What `events` prints under `logging`, one string per console call. */
const printed = (logging: Layer.Layer<never, unknown>) =>
  Effect.gen(function* () {
    yield* events.pipe(Effect.provide(logging))
    return (yield* TestConsole.logLines).map(String)
  }).pipe(Effect.provide(Layer.fresh(TestConsole.layer)))

const fromEnv = (env: Record<string, string>) =>
  Logging.layerConfig().pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))

describe("Logging", () => {
  it.effect("text: one line per event, annotations and spans as key=value, the cause on the same line", () =>
    Effect.gen(function* () {
      const lines = yield* printed(Logging.layer())
      expect(lines).toStrictEqual([
        "1970-01-01T00:00:00.000Z INFO  subscriber orders-billing started event_id=e-1 subject=evt.orders.created.v1 " +
          'service="billing service" handle=0ms',
        "1970-01-01T00:00:00.000Z WARN  TypeError: x is undefined: delivery 1 failed, redelivery in 1000 ms " +
          'event_id=e-1 subject=evt.orders.created.v1 service="billing service" handle=0ms cause="TypeError: x is undefined"'
      ])
    })
  )

  it.effect("text at Debug: debug lines appear and a cause's stack follows its line", () =>
    Effect.gen(function* () {
      const lines = yield* printed(Logging.layer({ level: "Debug" }))
      expect(lines).toHaveLength(3)
      expect(lines[1]).toMatch(/^1970-01-01T00:00:00\.000Z DEBUG pulled 8 messages event_id=e-1 /)
      const [first, ...stack] = (lines[2] ?? "").split("\n")
      expect(first).toMatch(/ WARN {2}TypeError: x is undefined: .* cause="TypeError: x is undefined"$/)
      expect(stack.length).toBeGreaterThan(0)
      expect(stack.every((line) => line.startsWith("    at "))).toBe(true)
    })
  )

  it.effect("a message with line breaks and values with quotes stay on one line", () =>
    Effect.gen(function* () {
      yield* Effect.logInfo("first\nsecond", { orderId: "o-1" }).pipe(
        Effect.annotateLogs("reason", 'said "no"'),
        Effect.provide(Logging.layer())
      )
      expect((yield* TestConsole.logLines).map(String)).toStrictEqual([
        '1970-01-01T00:00:00.000Z INFO  first\\nsecond {"orderId":"o-1"} reason="said \\"no\\""'
      ])
    }).pipe(Effect.provide(TestConsole.layer))
  )

  it.effect("json: one object per line with the message, level, annotations, spans and the cause's first line", () =>
    Effect.gen(function* () {
      const lines = yield* printed(Logging.layer({ format: "json" }))
      expect(lines).toHaveLength(2)
      const [started, failed] = lines.map((line) => JSON.parse(line))
      expect(started).toMatchObject({
        message: "subscriber orders-billing started",
        level: "INFO",
        timestamp: "1970-01-01T00:00:00.000Z",
        annotations: { event_id: "e-1", subject: "evt.orders.created.v1", service: "billing service" },
        spans: { handle: 0 }
      })
      expect(started.cause).toBeUndefined()
      expect(failed).toMatchObject({ level: "WARN", cause: "TypeError: x is undefined" })
    })
  )

  it.effect("LOG_LEVEL, in any case, drops what is below it; LOG_FORMAT picks the format; unset: Info and text", () =>
    Effect.gen(function* () {
      const warnOnly = yield* printed(fromEnv({ LOG_LEVEL: "warn" }))
      expect(warnOnly).toHaveLength(1)
      expect(warnOnly[0]).toContain(" WARN  TypeError: x is undefined")
      expect(yield* printed(fromEnv({ LOG_LEVEL: "None" }))).toStrictEqual([])
      expect(yield* printed(fromEnv({ LOG_LEVEL: "DEBUG" }))).toHaveLength(3)
      const json = yield* printed(fromEnv({ LOG_LEVEL: "Error", LOG_FORMAT: "JSON" }))
      expect(json).toStrictEqual([])
      const jsonInfo = yield* printed(fromEnv({ LOG_FORMAT: "json" }))
      expect(jsonInfo.map((line) => JSON.parse(line).level)).toStrictEqual(["INFO", "WARN"])
      const defaults = yield* printed(fromEnv({}))
      expect(defaults.map((line) => line.split(" ")[1])).toStrictEqual(["INFO", "WARN"])
      // Overrides win over the environment.
      const overridden = yield* printed(
        Logging.layerConfig({ level: "Debug" }).pipe(
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { LOG_LEVEL: "Error" } })))
        )
      )
      expect(overridden).toHaveLength(3)
    })
  )

  it.effect("a value that is not accepted is a ConfigError naming the variable and the values accepted", () =>
    Effect.gen(function* () {
      const build = (env: Record<string, string>) => Effect.flip(Layer.build(fromEnv(env)))
      const level = yield* build({ LOG_LEVEL: "verbose" })
      expect(level._tag).toBe("ConfigError")
      expect(level.message).toContain(
        'LOG_LEVEL "verbose" is not a log level: use one of Trace, Debug, Info, Warn, Error, Fatal, None'
      )
      const format = yield* build({ LOG_FORMAT: "xml" })
      expect(format._tag).toBe("ConfigError")
      expect(format.message).toContain('LOG_FORMAT "xml" is not a log format: use one of text, json')
    })
  )
})
