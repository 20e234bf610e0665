/**
 * What the connection tests look at when a connect fails: the log lines written meanwhile, the typed
 * failure of an exit, and that no secret leaked into either.
 */
import { expect } from "@effect/vitest"
import { Effect, Exit, Logger, References, Schedule } from "effect"
import type { NatsError } from "../../src/NatsError.js"

/** Every log line (as JSON, with annotations and causes) written while `effect` runs, at every level. */
export const withCapturedLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const capture = Logger.make((options) => {
      lines.push(Logger.formatJson.log(options))
    })
    const exit = yield* effect.pipe(
      Effect.provide(Logger.layer([capture])),
      Effect.provideService(References.MinimumLogLevel, "All"),
      Effect.exit
    )
    return { exit, lines }
  })

export const connectAttempts = (lines: ReadonlyArray<string>) =>
  lines.filter((line) => line.includes("NATS connect attempt")).length

export const failureOf = <A>(exit: Exit.Exit<A, NatsError>): NatsError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
  if (error === undefined || error._tag !== "Fail") throw new Error(`expected a typed failure: ${String(exit.cause)}`)
  return error.error
}

/** The secret appears nowhere a user could see it: message, `String`, JSON, logs. */
export const expectNoSecret = (secret: string, error: NatsError, lines: ReadonlyArray<string>) => {
  expect(error.message).not.toContain(secret)
  expect(String(error)).not.toContain(secret)
  expect(JSON.stringify(error)).not.toContain(secret)
  for (const line of lines) expect(line).not.toContain(secret)
}

export const noRetry = Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 5 }))
