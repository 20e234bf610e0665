/**
 * The library on a 3-node JetStream cluster (three nats-server 2.9.10 processes on loopback, R3
 * streams): quorum loss under a running publisher and subscriber, a consumer leader killed, a
 * consumer leader stepping down, and three subscriber processes on one durable with one killed.
 *
 * Every scenario has a cluster of its own and is bounded. Figures the README quotes (stalls,
 * duplicates, retries) are appended to `.tmp/cluster-figures.jsonl`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { appendFileSync, mkdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Clock, DateTime, Duration, Effect, Exit, Fiber, Layer, Schedule, Schema, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { ClusterJob, parseHandled, durable as sharedDurable } from "./support/ClusterJob.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import { storedMessages } from "./support/Messaging.js"
import * as NatsCluster from "./support/NatsCluster.js"

const Tick = Event.make("evt.cluster.tick.v1", Schema.Struct({ n: Schema.Number }))

const glamR3 = Topology.make({
  streams: Streams.topology.streams.map((stream) => ({ ...stream, replicas: 3 }))
})

/** A client of the whole cluster, the broker over it, the GLAM topology at R3, a publisher. */
const onCluster = (cluster: NatsCluster.NatsCluster) =>
  Publisher.layer().pipe(
    Layer.provideMerge(Topology.layer(glamR3)),
    Layer.provideMerge(ServiceIdentity.layer("cluster-test")),
    Layer.provideMerge(NatsBroker.layerFromClient),
    Layer.provideMerge(NatsClient.layer({ servers: cluster.urls, name: "cluster-test", reconnectWait: "250 millis" }))
  )

const now = Clock.currentTimeMillis

const figure = (scenario: string, values: Record<string, unknown>) =>
  Effect.sync(() => {
    mkdirSync(".tmp", { recursive: true })
    appendFileSync(".tmp/cluster-figures.jsonl", `${JSON.stringify({ scenario, ...values })}\n`)
  })

/** The server the client is connected to. */
const connectedNode = Effect.map(NatsClient.NatsClient, (client) => client.connection.info?.server_name ?? "")

/**
 * Handled ticks, with when each was handled; `publishing` publishes a tick every `everyMillis` (a few
 * at once), keeping the receipts, until interrupted.
 */
const traffic = Effect.gen(function* () {
  const handled = new Map<number, Array<number>>()
  const published = new Map<number, number>()
  // When each tick's publish was acknowledged (stored by the stream).
  const stored = new Map<number, number>()
  const publisher = yield* Publisher.Publisher
  let next = 1
  const publishing = (perRound: number, everyMillis: number) =>
    Effect.gen(function* () {
      while (true) {
        const round = Array.from({ length: perRound }, () => next++)
        yield* Effect.forEach(
          round,
          (n) =>
            Effect.flatMap(now, (at) =>
              publisher.publish(Tick, { n }).pipe(
                Effect.andThen(now),
                Effect.tap((done) =>
                  Effect.sync(() => {
                    published.set(n, at)
                    stored.set(n, done)
                  })
                )
              )
            ),
          { concurrency: "unbounded", discard: true }
        )
        yield* Effect.sleep(Duration.millis(everyMillis))
      }
    })
  const handler = (envelope: Subscriber.Received<typeof Tick>) =>
    Effect.flatMap(now, (at) =>
      Effect.sync(() => {
        const list = handled.get(envelope.data.n) ?? []
        list.push(at)
        handled.set(envelope.data.n, list)
      })
    )
  const unhandled = Effect.sync(() => [...published.keys()].filter((n) => !handled.has(n)))
  const allHandled = Effect.flatMap(unhandled, (missing) =>
    missing.length === 0 ? Effect.void : Effect.fail(`${missing.length} published ticks not handled yet`)
  )
  /** The first time a tick published at or after `since` was handled, if any. */
  const firstHandledAfter = (since: number) =>
    Effect.sync(() => {
      let first: number | undefined
      for (const [n, at] of published) {
        if (at < since) continue
        const times = handled.get(n)
        const when = times?.[0]
        if (when !== undefined && (first === undefined || when < first)) first = when
      }
      return first
    })
  /** The first time a tick published at or after `since` was stored, if any. */
  const firstStoredAfter = (since: number) =>
    Effect.sync(() => {
      let first: number | undefined
      for (const [n, at] of published) {
        const when = stored.get(n)
        if (at >= since && when !== undefined && (first === undefined || when < first)) first = when
      }
      return first
    })
  const duplicates = Effect.sync(() => [...handled.values()].filter((times) => times.length > 1).length)
  return { handled, published, publishing, handler, allHandled, firstHandledAfter, firstStoredAfter, duplicates }
})

/** Every published tick stored exactly once in GLAM_EVENTS. */
const storedOnce = (published: ReadonlyMap<number, number>) =>
  Effect.gen(function* () {
    const stored = yield* storedMessages("GLAM_EVENTS")
    const ticks = stored
      .filter((message) => message.subject === Tick.subject)
      .map((message) => JSON.parse(new TextDecoder().decode(message.payload)).data.n as number)
    expect(new Set(ticks).size).toBe(ticks.length)
    for (const n of published.keys()) expect(ticks).toContain(n)
  })

const runSubscriber = (options: Subscriber.Options<typeof Tick, never, never>, logs: Logs.Captured) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Subscriber.make(Tick, options).pipe(Effect.provide(logs.layer), Scope.provide(scope))
    return scope
  })

/**
 * A cluster of its own with the GLAM topology at R3; a subscriber on `durable` (concurrency 8, prefetch
 * 64) handling ticks that a fiber publishes (`perRound` every `everyMillis`); `body` runs once 20 ticks
 * were handled.
 */
const underTraffic = <A, E, R>(
  durable: string,
  publishing: { readonly perRound: number; readonly everyMillis: number },
  body: (context: {
    readonly cluster: NatsCluster.NatsCluster
    readonly logs: Logs.Captured
    readonly load: Effect.Success<typeof traffic>
    readonly publishing: Fiber.Fiber<never, unknown>
  }) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function* () {
    const cluster = yield* NatsCluster.make()
    return yield* Effect.gen(function* () {
      const logs = Logs.capture()
      const load = yield* traffic
      const subscriber = yield* runSubscriber({ durable, concurrency: 8, prefetch: 64, handler: load.handler }, logs)
      const publisher = yield* load
        .publishing(publishing.perRound, publishing.everyMillis)
        .pipe(Effect.provide(logs.layer), Effect.forkChild)
      yield* eventually(
        Effect.suspend(() => (load.handled.size >= 20 ? Effect.void : Effect.fail("warming up"))),
        { timeout: "20 seconds" }
      )
      // A scenario that fails prints what the library logged, so that a failure in CI tells its story.
      const result = yield* body({ cluster, logs, load, publishing: publisher }).pipe(
        Effect.tapCause(() =>
          Effect.sync(() => {
            const story = logs.lines.map((line) => `${line.level} ${line.message}`).join("\n")
            process.stderr.write(`--- ${durable}: the library's log ---\n${story}\n`)
          })
        )
      )
      yield* Scope.close(subscriber, Exit.void)
      return result
    }).pipe(Effect.provide(onCluster(cluster)))
  })

describe("on a 3-node cluster", () => {
  it.live(
    "quorum loss for ~20 s, the client's node included: everything published before, during and after is handled, and the advisory watcher works again",
    () =>
      underTraffic("quorum", { perRound: 4, everyMillis: 100 }, ({ cluster, logs, load, publishing }) =>
        Effect.gen(function* () {
          const connected = yield* connectedNode
          const other = NatsCluster.nodeNames.find((name) => name !== connected) ?? "n1"
          const victims = yield* Effect.forEach([connected, other], cluster.nodeOf)
          const lostAt = yield* now
          yield* Effect.forEach(victims, (node) => node.kill, { concurrency: "unbounded", discard: true })
          yield* Effect.sleep("20 seconds")
          yield* Effect.forEach(victims, (node) => node.start(), { concurrency: "unbounded", discard: true })
          const restartedAt = yield* now
          yield* cluster.ready
          // Publishing goes on for a while after the recovery, then stops; everything must be handled.
          yield* eventually(
            Effect.flatMap(load.firstHandledAfter(restartedAt), (first) =>
              first === undefined ? Effect.fail("nothing published after the restart handled yet") : Effect.void
            ),
            { timeout: "60 seconds" }
          )
          const resumedAt = (yield* load.firstHandledAfter(restartedAt)) ?? 0
          yield* Effect.sleep("2 seconds")
          yield* Fiber.interrupt(publishing)
          yield* eventually(load.allHandled, { timeout: "45 seconds" })
          yield* storedOnce(load.published)

          // The advisory watcher consumes again: an advisory for a stored tick is dead-lettered.
          const stored = (yield* storedMessages("GLAM_EVENTS")).find((message) => message.subject === Tick.subject)
          if (stored === undefined) return yield* Effect.die("no tick stored")
          // Stored with an acknowledgement (retried while GLAM_ADVISORIES may still be electing its leader),
          // as the server's own advisory would be captured.
          const broker = yield* Broker
          yield* broker
            .publish({
              subject: DeadLetter.advisorySubject("GLAM_EVENTS", "quorum"),
              payload: new TextEncoder().encode(
                JSON.stringify({
                  type: "io.nats.jetstream.advisory.v1.max_deliver",
                  id: "advisory-after-recovery",
                  timestamp: DateTime.formatIso(yield* DateTime.now),
                  stream: "GLAM_EVENTS",
                  consumer: "quorum",
                  stream_seq: stored.seq,
                  deliveries: 6
                })
              ),
              headers: [],
              messageId: "advisory-after-recovery",
              timeout: Duration.seconds(2)
            })
            .pipe(
              Effect.retry({
                while: (error) => error.isRetryable,
                schedule: Schedule.spaced("250 millis").pipe(Schedule.upTo({ duration: "30 seconds" }))
              })
            )
          const entry = yield* eventually(
            DeadLetter.list({ subject: Tick.subject }).pipe(
              Effect.map((entries) => entries[0]),
              Effect.flatMap(Effect.fromNullishOr)
            ),
            // Its pulls are answered again, and GLAM_DLQ takes writes again, each a few seconds after the
            // advisory is stored on a quiet machine; on a loaded one each takes longer.
            { timeout: "45 seconds" }
          )
          expect(entry.record.streamSeq).toBe(stored.seq)

          // Nothing stopped for good: no "stopped" line is left without a "working again" after it.
          const errors = logs.lines.filter((line) => line.level === "Error").map((line) => line.message)
          const warnings = logs.lines.filter((line) => line.level === "Warn").length
          yield* figure("quorum loss", {
            outageMillis: restartedAt - lostAt,
            resumedAfterRestartMillis: resumedAt - restartedAt,
            published: load.published.size,
            duplicatesHandled: yield* load.duplicates,
            warnLines: warnings,
            errorLines: errors.length,
            log: logs.lines.map((line) => `${line.level} ${line.message}`)
          })
          expect(warnings).toBeLessThan(60)
        })
      ),
    { timeout: 150_000 }
  )

  /**
   * Kills the leader of the stream, or of the subscriber's consumer (then one that does not lead the
   * stream, whose loss would stop publishing too), on a node other than the client's: nothing
   * acknowledged is lost, nothing is stored twice, and delivery resumes within 8 s of the kill, or
   * within 3 s of the new leader's election, or of the stream storing publishes again, when that takes
   * longer (a subscriber cannot be handed what is not stored yet).
   */
  const leaderKilled = (what: "stream" | "consumer") =>
    underTraffic(`${what}-leaderless`, { perRound: 2, everyMillis: 50 }, ({ cluster, logs, load, publishing }) =>
      Effect.gen(function* () {
        const durable = `${what}-leaderless`
        const leaderOf =
          what === "stream" ? cluster.streamLeader("GLAM_EVENTS") : cluster.consumerLeader("GLAM_EVENTS", durable)
        const stepDown =
          what === "stream"
            ? cluster.stepDownStreamLeader("GLAM_EVENTS")
            : cluster.stepDownConsumerLeader("GLAM_EVENTS", durable)
        const spared = [
          yield* connectedNode,
          ...(what === "consumer" ? [yield* cluster.streamLeader("GLAM_EVENTS")] : [])
        ]
        let leader = yield* leaderOf
        for (let tries = 0; spared.includes(leader) && tries < 6; tries++) leader = yield* stepDown
        expect(spared).not.toContain(leader)
        const victim = yield* cluster.nodeOf(leader)
        const killedAt = yield* now
        yield* victim.kill
        const electedAt = yield* leaderOf.pipe(Effect.andThen(now), Effect.forkChild)
        yield* eventually(
          Effect.flatMap(load.firstHandledAfter(killedAt + 1), (first) =>
            first === undefined ? Effect.fail("nothing published after the kill handled yet") : Effect.void
          ),
          { timeout: "30 seconds" }
        )
        const resumedAt = (yield* load.firstHandledAfter(killedAt + 1)) ?? 0
        const storedAgainAt = (yield* load.firstStoredAfter(killedAt + 1)) ?? 0
        const elected = yield* Fiber.join(electedAt)
        yield* Effect.sleep("1 second")
        yield* Fiber.interrupt(publishing)
        yield* eventually(load.allHandled, { timeout: "45 seconds" })
        yield* storedOnce(load.published)
        yield* figure(`${what} leader kill -9`, {
          stallMillis: resumedAt - killedAt,
          published: load.published.size,
          duplicatesHandled: yield* load.duplicates,
          electedAfterMillis: elected - killedAt,
          resumedAfterElectionMillis: resumedAt - elected,
          storedAgainAfterMillis: storedAgainAt - killedAt,
          warnLines: logs.lines.filter((line) => line.level === "Warn").length,
          log: logs.lines.map((line) => `${line.level} ${line.message}`)
        })
        expect(resumedAt - killedAt).toBeLessThanOrEqual(
          Math.max(8_000, elected - killedAt + 3_000, storedAgainAt - killedAt + 3_000)
        )
        yield* victim.start()
      })
    )

  it.live(
    "kill -9 of the stream leader during publish and consume (client on a survivor): nothing acknowledged is lost, nothing stored twice, delivery resumes",
    () => leaderKilled("stream"),
    { timeout: 120_000 }
  )

  it.live(
    "kill -9 of the consumer leader (client on a survivor): nothing acknowledged is lost and delivery resumes within 8 s",
    () => leaderKilled("consumer"),
    { timeout: 120_000 }
  )

  it.live(
    "a consumer leader stepping down: delivery resumes within 1 s",
    () =>
      underTraffic("stepped", { perRound: 2, everyMillis: 50 }, ({ cluster, load, publishing }) =>
        Effect.gen(function* () {
          const steppedAt = yield* now
          yield* cluster.stepDownConsumerLeader("GLAM_EVENTS", "stepped")
          const elected = yield* now
          yield* eventually(
            Effect.flatMap(load.firstHandledAfter(elected), (first) =>
              first === undefined ? Effect.fail("nothing published after the stepdown handled yet") : Effect.void
            ),
            { timeout: "15 seconds" }
          )
          const resumedAt = (yield* load.firstHandledAfter(elected)) ?? 0
          yield* Fiber.interrupt(publishing)
          yield* eventually(load.allHandled, { timeout: "30 seconds" })
          yield* figure("consumer leader stepdown", {
            electedAfterMillis: elected - steppedAt,
            stallAfterElectionMillis: resumedAt - elected,
            duplicatesHandled: yield* load.duplicates
          })
          expect(resumedAt - elected).toBeLessThanOrEqual(1_000)
        })
      ),
    { timeout: 90_000 }
  )

  it.live(
    "three subscriber processes on one durable, one killed -9: every job handled, the work shared",
    () =>
      Effect.gen(function* () {
        const cluster = yield* NatsCluster.make()
        yield* Effect.gen(function* () {
          const lines: Array<string> = []
          const children = yield* Effect.forEach(["w1", "w2", "w3"], (worker) =>
            startSubscriberProcess(cluster.urls, worker, lines)
          )
          const jobs = 600
          const publisher = yield* Publisher.Publisher
          const handledBy = () => {
            const by = new Map<number, Set<string>>()
            for (const line of lines) {
              const parsed = parseHandled(line)
              if (parsed !== undefined) by.set(parsed.n, (by.get(parsed.n) ?? new Set()).add(parsed.worker))
            }
            return by
          }
          // Every process says it consumes before the jobs go out.
          yield* eventually(
            Effect.suspend(() => {
              const consuming = lines.filter((line) => line.includes(`subscriber ${sharedDurable} consuming`)).length
              return consuming >= 3 ? Effect.void : Effect.fail(`${consuming} of 3 processes consuming`)
            }),
            { timeout: "45 seconds" }
          ).pipe(Effect.tapError(() => Effect.logError(lines.join("\n"))))
          // Jobs go out over about 6 s, so that each process pulls some; one is killed once all three did.
          const publishing = yield* Effect.forEach(
            Array.from({ length: jobs / 10 }, (_, round) => round),
            (round) =>
              publisher
                .publishAll(
                  Array.from({ length: 10 }, (_, i) => ({ event: ClusterJob, payload: { n: round * 10 + i + 1 } }))
                )
                .pipe(Effect.andThen(Effect.sleep("100 millis"))),
            { discard: true }
          ).pipe(Effect.forkChild)
          const workersSeen = () => new Set([...handledBy().values()].flatMap((workers) => [...workers]))
          yield* eventually(
            Effect.suspend(() =>
              workersSeen().size === 3 ? Effect.void : Effect.fail(`${workersSeen().size} of 3 processes handled jobs`)
            ),
            { timeout: "30 seconds" }
          )
          const [victim] = children
          if (victim?.pid !== undefined) process.kill(-victim.pid, "SIGKILL")
          yield* Fiber.join(publishing)
          yield* eventually(
            Effect.suspend(() => {
              const missing = jobs - handledBy().size
              return missing === 0 ? Effect.void : Effect.fail(`${missing} jobs not handled yet`)
            }),
            { timeout: "45 seconds" }
          )
          const by = handledBy()
          const perWorker = new Map<string, number>()
          for (const workers of by.values())
            for (const worker of workers) perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1)
          yield* figure("three processes, one killed", {
            perWorker: Object.fromEntries(perWorker),
            handledTwice: [...by.values()].filter((workers) => workers.size > 1).length
          })
          for (const worker of ["w1", "w2", "w3"]) expect(perWorker.get(worker) ?? 0).toBeGreaterThan(0)
        }).pipe(Effect.provide(onCluster(cluster)))
      }),
    { timeout: 120_000 }
  )
})

const tsx = fileURLToPath(new URL("../node_modules/.bin/tsx", import.meta.url))
const subscriberProgram = fileURLToPath(new URL("./fixtures/shared-durable-subscriber.ts", import.meta.url))

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

/** A subscriber process in its own process group; release ends it (SIGTERM, then SIGKILL of the group). */
const startSubscriberProcess = (servers: ReadonlyArray<string>, worker: string, lines: Array<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [tsx, subscriberProgram], {
        env: { ...process.env, NATS_SERVERS: servers.join(","), SERVICE_NAME: "cluster-workers", WORKER: worker },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true
      })
      let pending = ""
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        const complete = (pending + chunk).split("\n")
        pending = complete.pop() ?? ""
        lines.push(...complete)
      })
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        lines.push(...chunk.split("\n").map((line) => `${worker} stderr: ${line}`))
      })
      return child
    }),
    (child) =>
      Effect.gen(function* () {
        if (isRunning(child)) yield* Effect.sync(() => child.kill("SIGTERM"))
        const exited = yield* Effect.callback<void>((resume) => {
          if (!isRunning(child)) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
        }).pipe(Effect.timeout("10 seconds"), Effect.exit)
        if (Exit.isFailure(exited) && child.pid !== undefined) {
          yield* Effect.try(() => process.kill(-(child.pid ?? 0), "SIGKILL")).pipe(Effect.ignore)
        }
      })
  )
