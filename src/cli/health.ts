/**
 * `glam-messaging health`: whether the server answers, JetStream answers, and the GLAM streams are
 * there with a leader. Every check is shown, passed or not; the exit code is 0 when all pass, 1
 * otherwise, so that it can be a probe.
 */
import { Duration, Effect, Option } from "effect"
import { Command } from "effect/cli"
import { Broker } from "../Broker.js"
import * as Streams from "../glam/Streams.js"
import { messageOf } from "../internal/errorText.js"
import { NatsClient } from "../NatsClient.js"
import * as connection from "./connection.js"
import { CliError } from "./errors.js"
import * as flags from "./flags.js"
import * as output from "./output.js"

interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

const firstLine = (error: unknown): string => messageOf(error).split("\n")[0] ?? ""

const streamCheck = (broker: Broker["Service"], name: string): Effect.Effect<Check> =>
  broker.streamInfo(name).pipe(
    Effect.map((found): Check => {
      if (Option.isNone(found)) return { name, ok: false, detail: "missing: run glam-messaging streams provision" }
      const { state, cluster } = found.value
      const counts = `${state.messages} messages, ${state.consumerCount} consumers`
      if (cluster === undefined) return { name, ok: true, detail: counts }
      if (cluster.leader === undefined) return { name, ok: false, detail: `no leader elected (${counts})` }
      const offline = cluster.replicas.filter((replica) => replica.offline).map((replica) => replica.name)
      return {
        name,
        ok: true,
        detail: `${counts}, leader ${cluster.leader}${offline.length > 0 ? `, offline: ${offline.join(", ")}` : ""}`
      }
    }),
    Effect.catch((error) => Effect.succeed<Check>({ name, ok: false, detail: firstLine(error) }))
  )

const connected = Effect.gen(function* () {
  const client = yield* NatsClient
  const broker = yield* Broker
  const version = yield* client.serverVersion
  const checks: Array<Check> = [{ name: "connection", ok: true, detail: `nats-server ${version}` }]
  checks.push(
    yield* client.health.pipe(
      Effect.map((rtt): Check => ({ name: "JetStream", ok: true, detail: `answered, rtt ${Duration.format(rtt)}` })),
      Effect.catch((error) => Effect.succeed<Check>({ name: "JetStream", ok: false, detail: firstLine(error) }))
    )
  )
  for (const name of [Streams.eventsName, Streams.deadLettersName, Streams.advisoriesName]) {
    checks.push(yield* streamCheck(broker, name))
  }
  return checks
})

/** `glam-messaging health` */
export const health = Command.make("health", { ...connection.flags, json: flags.json }, (given) =>
  Effect.gen(function* () {
    const checks = yield* connected.pipe(
      connection.provide(given),
      Effect.catch((error) =>
        error instanceof CliError
          ? Effect.fail(error)
          : Effect.succeed<ReadonlyArray<Check>>([{ name: "connection", ok: false, detail: firstLine(error) }])
      )
    )
    const ok = checks.every((check) => check.ok)
    if (given.json) {
      yield* output.json({ ok, checks })
    } else {
      const on = yield* output.colours
      yield* output.table(
        ["CHECK", "STATUS", "DETAIL"],
        checks.map((check) => [
          check.name,
          check.ok ? output.style.green(on, "ok") : output.style.red(on, "FAILED"),
          check.detail
        ])
      )
    }
    if (!ok) {
      const failed = checks.filter((check) => !check.ok).map((check) => check.name)
      return yield* new CliError({ message: `unhealthy: ${failed.join(", ")}` })
    }
  })
).pipe(
  Command.withDescription("Check the connection, JetStream and the GLAM streams; exit code 0 when healthy, 1 otherwise")
)
