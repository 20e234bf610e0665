/**
 * The examples the README quotes, run as a user runs them: `tsx examples/<name>.ts` in a child process,
 * against a fresh nats-server given in `NATS_SERVERS`, checked by the lines they print.
 */
import { spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import * as NatsServer from "./support/NatsServer.js"
import * as OtlpReceiver from "./support/OtlpReceiver.js"

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

/** Every file under examples/, with its text. */
const exampleFiles = (dir = join(root, "examples")): ReadonlyArray<{ readonly path: string; readonly text: string }> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? exampleFiles(join(dir, entry.name))
      : [{ path: join(dir, entry.name), text: readFileSync(join(dir, entry.name), "utf8") }]
  )

describe("examples", () => {
  // Compared line by line without indentation: a snippet may be cut out of a nested block.
  const lines = (text: string) =>
    text
      .split("\n")
      .map((line) => line.trim())
      .join("\n")

  it("every TypeScript snippet of the README is taken verbatim from an example (`// ...` marks a cut)", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8")
    const snippets = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? "")
    expect(snippets.length).toBeGreaterThan(3)
    const files = exampleFiles().map((file) => lines(file.text))
    for (const snippet of snippets) {
      for (const part of snippet.split(/^\/\/ \.\.\.$/m).map((text) => lines(text).trim())) {
        if (part === "") continue
        expect(
          files.some((file) => file.includes(part)),
          `not in any example:\n${part}`
        ).toBe(true)
      }
    }
  })

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
    "examples/observability.ts exports its trace to a collector and serves /readyz and /metrics",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const collector = yield* OtlpReceiver.make
        const port = yield* NatsServer.freePort
        const stdout = yield* runExample("examples/observability.ts", {
          NATS_SERVERS: server.url,
          ENDPOINTS_PORT: String(port),
          OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
          OTEL_SERVICE_NAME: "orders-observed"
        })
        expect(stdout).toMatch(/^\/readyz answered 200$/m)
        expect(stdout).toMatch(
          /^\/metrics: messaging_client_consumed_messages\{.*messaging_glam_outcome="acked".*\} 1$/m
        )
        const processed = yield* collector.span("process evt.orders.placed.v1")
        const sent = yield* collector.span("send evt.orders.placed.v1")
        expect(processed.parentSpanId).toBe(sent.spanId)
        expect(processed.resource["service.name"]).toBe("orders-observed")
        const charged = (yield* collector.logs).find((log) => String(log.body).startsWith("charged 42"))
        expect(charged?.traceId).toBe(processed.traceId)
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
