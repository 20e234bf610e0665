/**
 * The examples the README quotes, run as a user runs them: `tsx examples/<name>.ts` in a child process,
 * against a fresh nats-server given in `NATS_SERVERS`, checked by the lines they print.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import * as NatsServer from "./support/NatsServer.js"

class ExampleFailed extends Data.TaggedError("ExampleFailed")<{ readonly message: string }> {}

const root = fileURLToPath(new URL("..", import.meta.url))

/** The environment of the test process without any NATS_*, SERVICE_NAME or GLAM_* of the machine's. */
const cleanEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(NATS_|GLAM_|SERVICE_NAME$)/.test(name)))

/** Runs an example to its end; its stdout, or a failure with its exit code and stderr. */
const runExample = (file: string, env: Record<string, string>) =>
  Effect.callback<string, ExampleFailed>((resume) => {
    const child = spawn(`${root}node_modules/.bin/tsx`, [file], {
      cwd: root,
      env: { ...cleanEnv(), ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.once("error", (cause) => resume(Effect.fail(new ExampleFailed({ message: cause.message }))))
    child.once("close", (code) =>
      resume(
        code === 0
          ? Effect.succeed(stdout)
          : Effect.fail(new ExampleFailed({ message: `${file} exited with ${code}: ${stderr}${stdout}` }))
      )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("examples", () => {
  it.live(
    "examples/publish.ts provisions the GLAM streams on a fresh server and prints its receipt",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const stdout = yield* runExample("examples/publish.ts", {
          NATS_SERVERS: server.url,
          SERVICE_NAME: "billing-service"
        })
        expect(stdout).toMatch(/^evt\.credit\.balance\.low\.v1 stored as GLAM_EVENTS#1$/m)
      }),
    60_000
  )

  it.live(
    "examples/orders-service.ts provisions its own streams, handles its order once and says so",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const stdout = yield* runExample("examples/orders-service.ts", { NATS_SERVERS: server.url })
        expect(stdout).toMatch(/^evt\.orders\.placed\.v1 stored as ORDERS#1, charged once$/m)
      }),
    60_000
  )
})
