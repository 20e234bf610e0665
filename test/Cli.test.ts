/**
 * The `glam-messaging` executable, built as it ships and run as a process against a nats-server of the
 * test's own: what each command prints, its exit code, `--json` parsed, and what it leaves on the server.
 */
import { execFile } from "node:child_process"
import { copyFileSync, mkdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Stream } from "effect"
import { Broker } from "../src/Broker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import { deadLettered } from "./support/DeadLetters.js"
import * as NatsServer from "./support/NatsServer.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const out = `${root}.tmp/cli-test`
const main = `${out}/dist/cli/main.js`

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (url: string, ...args: ReadonlyArray<string>): Effect.Effect<Run> =>
  Effect.callback<Run>((resume) => {
    execFile(
      process.execPath,
      [main, ...args],
      { env: { PATH: process.env.PATH ?? "", NATS_SERVERS: url }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
  })

const build = Effect.callback<void, Error>((resume) => {
  execFile(
    process.execPath,
    [`${root}node_modules/typescript/bin/tsc`, "-p", `${root}tsconfig.build.json`, "--outDir", `${out}/dist`],
    { timeout: 120_000 },
    (error, stdout) => {
      if (error !== null) return resume(Effect.fail(new Error(`tsc failed: ${stdout}`)))
      mkdirSync(out, { recursive: true })
      copyFileSync(`${root}package.json`, `${out}/package.json`)
      resume(Effect.void)
    }
  )
})

const payload = (balance: unknown) =>
  JSON.stringify({
    identifiers: {
      merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1001",
      domain: "demo-shop.myshopify.com"
    },
    balance,
    email: "owner@demo-shop.example"
  })

const serverLayer = Layer.merge(NatsServer.layer(), Layer.effectDiscard(build))

layer(serverLayer, { timeout: 240_000 })("glam-messaging", (it) => {
  it.effect(
    "health fails on a bare server, provision --dry-run changes nothing, provision creates, health passes",
    () =>
      Effect.gen(function* () {
        const { url } = yield* NatsServer.NatsServerService
        const bare = yield* run(url, "health", "--json")
        expect(bare.code).toBe(1)
        const report = JSON.parse(bare.stdout)
        expect(report.ok).toBe(false)
        expect(report.checks.map((check: { name: string; ok: boolean }) => [check.name, check.ok])).toEqual([
          ["connection", true],
          ["JetStream", true],
          ["GLAM_EVENTS", false],
          ["GLAM_DLQ", false],
          ["GLAM_ADVISORIES", false]
        ])
        expect(bare.stderr.trim()).toBe("error: unhealthy: GLAM_EVENTS, GLAM_DLQ, GLAM_ADVISORIES")

        const dry = yield* run(url, "streams", "provision", "--dry-run")
        expect(dry.code).toBe(0)
        expect(dry.stdout).toMatch(/^create\s+GLAM_EVENTS/m)
        expect(dry.stdout).toContain("dry run: nothing changed")
        expect(JSON.parse((yield* run(url, "streams", "list", "--json")).stdout)).toEqual([])

        const applied = yield* run(url, "streams", "provision")
        expect(applied.code).toBe(0)
        expect(applied.stdout).toContain("applied: created GLAM_EVENTS, created GLAM_DLQ, created GLAM_ADVISORIES")
        const listed = JSON.parse((yield* run(url, "streams", "list", "--json")).stdout)
        expect(listed.map((stream: { name: string }) => stream.name)).toEqual([
          "GLAM_ADVISORIES",
          "GLAM_DLQ",
          "GLAM_EVENTS"
        ])

        const info = yield* run(url, "streams", "info", "GLAM_DLQ", "--json")
        expect(JSON.parse(info.stdout)).toMatchObject({
          name: "GLAM_DLQ",
          subjects: ["dlq.>"],
          replicas: 1,
          cluster: null
        })
        const missing = yield* run(url, "streams", "info", "NOPE")
        expect([missing.code, missing.stderr.trim()]).toEqual([1, "error: stream NOPE not found"])

        const healthy = yield* run(url, "health")
        expect(healthy.code).toBe(0)
        expect(healthy.stdout).toMatch(/^GLAM_DLQ\s+ok/m)
      })
  )

  it.effect("publish checks the payload by field; tail prints it and leaves no consumer behind", () =>
    Effect.gen(function* () {
      const { url } = yield* NatsServer.NatsServerService
      const bad = yield* run(url, "publish", "evt.credit.balance.low.v1", payload("lots"))
      expect(bad.code).toBe(1)
      expect(bad.stdout).toBe("")
      expect(bad.stderr.trim()).toBe("error: evt.credit.balance.low.v1: Expected number at data.balance")

      const good = yield* run(url, "publish", "evt.credit.balance.low.v1", payload(12.5), "--json")
      expect(good.code).toBe(0)
      const receipt = JSON.parse(good.stdout)
      expect(receipt).toMatchObject({ subject: "evt.credit.balance.low.v1", stream: "GLAM_EVENTS", duplicate: false })

      const tailed = yield* run(url, "tail", "evt.credit.>", "--from", "all", "--count", "1", "--json")
      expect(tailed.code).toBe(0)
      const line = JSON.parse(tailed.stdout.trim())
      expect(line.seq).toBe(receipt.seq)
      expect(line.envelope.event_id).toBe(receipt.eventId)
      expect(line.envelope.data.balance).toBe(12.5)

      const consumers = yield* run(url, "consumers", "list", "GLAM_EVENTS", "--json")
      expect(JSON.parse(consumers.stdout)).toEqual([])
    })
  )

  it.effect("consumers list shows each durable's lag and when it last delivered", () =>
    Effect.gen(function* () {
      const { url } = yield* NatsServer.NatsServerService
      yield* Effect.gen(function* () {
        const broker = yield* Broker
        const durable = (name: string, filterSubject: string) =>
          broker.addConsumer({
            stream: "GLAM_EVENTS",
            name,
            description: undefined,
            filterSubject,
            deliverPolicy: "all",
            ackWait: Duration.seconds(30),
            maxDeliver: undefined,
            maxAckPending: 1000
          })
        yield* durable("lagging", "evt.lag.>")
        yield* durable("idle", "evt.none.>")
        const bytes = new TextEncoder().encode("{}")
        for (let n = 0; n < 3; n++) {
          yield* broker.publish({
            subject: "evt.lag.item.v1",
            payload: bytes,
            headers: [],
            timeout: Duration.seconds(5)
          })
        }
        yield* broker.consume("GLAM_EVENTS", "lagging", { maxMessages: 1 }).pipe(
          Stream.tap((message) => Effect.sync(() => message.ack())),
          Stream.take(1),
          Stream.runDrain
        )
      }).pipe(Effect.provide(NatsBroker.layer({ servers: [url] })))

      const listed = yield* run(url, "consumers", "list", "GLAM_EVENTS", "--json")
      expect(listed.code).toBe(0)
      const byName = new Map<string, { state: { numPending: number; lastDelivered: string | null } }>(
        JSON.parse(listed.stdout).map((consumer: { durable: string }) => [consumer.durable, consumer])
      )
      expect(byName.get("idle")?.state.lastDelivered).toBeNull()
      const lagging = byName.get("lagging")?.state
      expect(lagging?.numPending).toBe(2)
      const sinceDelivery = Date.now() - Date.parse(lagging?.lastDelivered ?? "")
      expect(sinceDelivery).toBeGreaterThanOrEqual(-1000)
      expect(sinceDelivery).toBeLessThan(60_000)

      const table = yield* run(url, "consumers", "list", "GLAM_EVENTS")
      expect(table.stdout).toMatch(
        /^DURABLE\s+FILTER\s+PENDING\s+ACK PENDING\s+REDELIVERED\s+WAITING\s+LAST ACTIVE\s+LEADER/m
      )
      expect(table.stdout).toMatch(/^lagging\s+evt\.lag\.>\s+2\s+0\s+0\s+\d+\s+\d+s ago\s+-$/m)
      expect(table.stdout).toMatch(/^idle\s+evt\.none\.>\s+0\s+0\s+0\s+\d+\s+-\s+-$/m)
    })
  )

  it.effect("dlq replay of 500 records prints one summary line; list, show and a second replay agree", () =>
    Effect.gen(function* () {
      const { url } = yield* NatsServer.NatsServerService
      yield* Effect.forEach(
        Array.from({ length: 500 }, (_, n) => n),
        (n) => deadLettered("evt.credit.balance.low.v1", `e-${n}`, { n }, "billing"),
        { concurrency: 16 }
      ).pipe(Effect.provide(Layer.merge(NatsBroker.layer({ servers: [url] }), ServiceIdentity.layer("billing"))))

      const listed = JSON.parse((yield* run(url, "dlq", "list", "--error-code", "PaymentDeclined", "--json")).stdout)
      expect(listed).toHaveLength(500)
      const first = listed[0]
      expect(first.record.error_code).toBe("PaymentDeclined")

      const shown = yield* run(url, "dlq", "show", String(first.seq))
      expect(shown.code).toBe(0)
      expect(shown.stdout).toContain("card declined")
      expect(shown.stdout).toMatch(/Original bytes \(\d+\)\n\{"event_id":"e-\d+"/)

      const none = yield* run(url, "dlq", "replay")
      expect(none.code).toBe(1)
      expect(none.stderr.trim()).toBe("error: dlq replay: give the sequences to replay, or --all (with filters)")

      const replayed = yield* run(url, "dlq", "replay", "--all")
      expect(replayed.code).toBe(0)
      expect(replayed.stdout).toBe("replayed 500, skipped 0, failed 0 (dead letters of GLAM_DLQ)\n")
      expect(replayed.stderr).toBe("")

      const again = yield* run(url, "dlq", "replay", "--all", "--json")
      expect(JSON.parse(again.stdout)).toMatchObject({ stream: "GLAM_DLQ", replayed: 0, skipped: 500, failed: 0 })

      const refused = yield* run(url, "dlq", "purge", "--older-than", "1s")
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain("pass --yes")
      const kept = yield* run(url, "dlq", "purge", "--older-than", "1h", "--yes", "--json")
      expect(kept.code).toBe(0)
      expect(JSON.parse(kept.stdout)).toMatchObject({ stream: "GLAM_DLQ", removed: 0, before: 1 })
      expect(JSON.parse((yield* run(url, "dlq", "list", "--json")).stdout)).toHaveLength(500)
      // Every record and replay marker was stored more than half a second ago by now (a process per step).
      const purged = yield* run(url, "dlq", "purge", "--older-than", "500ms", "--yes", "--json")
      expect(JSON.parse(purged.stdout)).toMatchObject({ stream: "GLAM_DLQ", removed: 1000, before: 1001 })
      expect(JSON.parse((yield* run(url, "dlq", "list", "--json")).stdout)).toEqual([])
    })
  )

  it.effect("asyncapi prints the document without a server", () =>
    Effect.gen(function* () {
      const printed = yield* run("nats://127.0.0.1:1", "asyncapi")
      expect(printed.code).toBe(0)
      const document = JSON.parse(printed.stdout)
      expect(document.asyncapi).toBe("3.0.0")
      expect(Object.keys(document.channels).length).toBeGreaterThan(20)
      const yaml = yield* run("nats://127.0.0.1:1", "asyncapi", "--format", "yaml")
      expect(yaml.stdout.startsWith('asyncapi: "3.0.0"\n')).toBe(true)
    })
  )

  it.effect("a wrong server URL is one line and exit code 1", () =>
    Effect.gen(function* () {
      const port = yield* NatsServer.freePort
      const failed = yield* run(`nats://127.0.0.1:${port}`, "streams", "list")
      expect(failed.code).toBe(1)
      expect(failed.stdout).toBe("")
      expect(failed.stderr.trim().split("\n")).toEqual([
        `error: connect: connection refused (servers tried: nats://127.0.0.1:${port})`
      ])
    })
  )
})
