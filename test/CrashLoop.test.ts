/**
 * A handler that kills its process: the message that does it ends in `GLAM_DLQ` (through the server's
 * max-deliveries advisory), and every other message is handled, across restarts of a real child process
 * (`test/fixtures/crash-handler.ts`, run with tsx). The messages behind the killer must not pay for its
 * crashes: a delivery the handler never started must not count towards their max deliveries.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Option } from "effect"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Streams from "../src/glam/Streams.js"
import * as Publisher from "../src/Publisher.js"
import { CrashJob, durable, maxDeliveries, parseHandled } from "./support/CrashJob.js"
import { eventually } from "./support/Eventually.js"
import { consumerState, messaging, storedMessages } from "./support/Messaging.js"
import * as NatsServer from "./support/NatsServer.js"

const tsx = fileURLToPath(new URL("../node_modules/.bin/tsx", import.meta.url))
const handlerProgram = fileURLToPath(new URL("./fixtures/crash-handler.ts", import.meta.url))

const jobs = 10
const killer = 4
const maxStarts = 8

/** Everything the children printed, in order, across starts. */
interface Output {
  readonly lines: Array<string>
  readonly log: Array<string>
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

/** The exit code of the child (null when a signal ended it), once it has exited. */
const exited = (child: ChildProcess): Effect.Effect<number | null> =>
  Effect.callback<number | null>((resume) => {
    if (!isRunning(child)) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/**
 * SIGKILL to the child's process group: the tsx launcher and the node process it started, both started
 * by this test and nothing else.
 */
const killGroup = (child: ChildProcess) =>
  Effect.try(() => {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
  }).pipe(Effect.ignore)

/**
 * The handler program in a child process of its own (its own process group). Release stops it:
 * SIGTERM (tsx passes it on and the subscriber shuts down gracefully), then SIGKILL of the group if it
 * does not exit in time.
 */
const startChild = (url: string, output: Output, start: number, concurrency: number | undefined) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [tsx, handlerProgram], {
        env: {
          ...process.env,
          NATS_SERVERS: url,
          SERVICE_NAME: "crash-loop-service",
          ...(concurrency === undefined ? {} : { CONCURRENCY: String(concurrency) })
        },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true
      })
      let pending = ""
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        const text = pending + chunk
        const complete = text.split("\n")
        pending = complete.pop() ?? ""
        for (const line of complete) {
          output.lines.push(line)
          output.log.push(`[start ${start} out] ${line}`)
        }
      })
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        output.log.push(`[start ${start} err] ${chunk.trimEnd()}`)
      })
      return child
    }),
    (child) =>
      Effect.gen(function* () {
        if (isRunning(child)) yield* Effect.sync(() => child.kill("SIGTERM"))
        const stopped = yield* exited(child).pipe(Effect.timeout("10 seconds"), Effect.exit)
        if (Exit.isFailure(stopped)) yield* killGroup(child)
      })
  )

interface CrashLoopOptions {
  /** Runs after each crash, before the next start. */
  readonly afterCrash: Effect.Effect<void, unknown, Broker>
  /** The subscriber's concurrency; default its own. */
  readonly concurrency?: number
}

/**
 * Publishes the jobs, then starts the handler program again and again (at most `maxStarts` times) until
 * a start does not crash and the killer is dead-lettered and every other job is handled or dead-lettered.
 */
const crashLoop = (options: CrashLoopOptions) =>
  Effect.gen(function* () {
    const server = yield* NatsServer.NatsServerService
    const publisher = yield* Publisher.Publisher
    const receipts = yield* publisher.publishAll(
      Array.from({ length: jobs }, (_, i) => ({ event: CrashJob, payload: { n: i + 1, crash: i + 1 === killer } })),
      { concurrency: 1 }
    )
    const killerReceipt = receipts[killer - 1]
    assert(killerReceipt !== undefined)

    const output: Output = { lines: [], log: [] }
    const handled = () => output.lines.flatMap((line) => Option.toArray(Option.fromUndefinedOr(parseHandled(line))))
    const others = receipts.flatMap((receipt, i) => (i + 1 === killer ? [] : [{ n: i + 1, seq: receipt.seq }]))
    const finished = Effect.gen(function* () {
      const seen = new Set(handled())
      const deadLettered = new Set((yield* DeadLetter.list()).map((e) => e.record.streamSeq))
      if (!deadLettered.has(killerReceipt.seq)) return yield* Effect.fail("the killer is not dead-lettered yet")
      const open = others.filter(({ n, seq }) => !seen.has(n) && !deadLettered.has(seq))
      if (open.length > 0) return yield* Effect.fail(`neither handled nor dead-lettered: ${open.map((o) => o.n)}`)
    })

    const exitCodes: Array<number | null> = []
    let done = false
    for (let start = 1; start <= maxStarts && !done; start++) {
      done = yield* Effect.scoped(
        Effect.gen(function* () {
          const child = yield* startChild(server.url, output, start, options.concurrency)
          const outcome = yield* Effect.raceFirst(
            Effect.map(exited(child), (code) => ({ _tag: "Exited" as const, code })),
            Effect.as(eventually(finished, { timeout: "20 seconds", interval: "100 millis" }), {
              _tag: "Finished" as const
            })
          )
          if (outcome._tag === "Finished") return true
          exitCodes.push(outcome.code)
          return false
        })
      ).pipe(Effect.tapError(() => Effect.logError(`the children printed:\n${output.log.join("\n")}`)))
      if (!done) yield* options.afterCrash
    }
    // Shown only when the test fails.
    yield* Effect.log(`the children printed:\n${output.log.join("\n")}`)
    return { done, exitCodes, handled: handled(), killerReceipt, log: output.log }
  })

/** What a user observes once the loop is over: one dead letter, every other job handled, nothing pending. */
const expectKillerDeadLetteredOthersHandled = (result: Effect.Success<ReturnType<typeof crashLoop>>) =>
  Effect.gen(function* () {
    const { done, exitCodes, handled, killerReceipt, log } = result
    expect(done).toBe(true)
    // The first start pulls ahead (nothing is unacknowledged); every later one starts one at a time.
    expect(log.filter((line) => line.includes("pulling one message at a time")).length).toBeGreaterThanOrEqual(
      exitCodes.length
    )
    // Every start before the last crashed on the killer; the server stops delivering it at max_deliver
    // (a delivery can also go to the pull request of a process that just died, so there may be fewer).
    expect(exitCodes.length).toBeGreaterThanOrEqual(1)
    expect(exitCodes.length).toBeLessThanOrEqual(maxDeliveries + 1)
    expect(exitCodes.every((code) => code === 1)).toBe(true)

    const entries = yield* DeadLetter.list()
    expect(entries.map((e) => e.record.streamSeq)).toStrictEqual([killerReceipt.seq])
    const others = Array.from({ length: jobs }, (_, i) => i + 1).filter((n) => n !== killer)
    expect([...new Set(handled)].sort((a, b) => a - b)).toStrictEqual(others)
    const [entry] = entries
    assert(entry !== undefined)
    expect(entry.record).toMatchObject({
      decision: "max deliveries",
      errorCode: "MaxDeliveriesExceeded",
      originalSubject: CrashJob.subject,
      stream: "GLAM_EVENTS",
      streamSeq: killerReceipt.seq,
      consumer: durable,
      deliveryCount: maxDeliveries + 1,
      eventId: killerReceipt.eventId
    })
    const original = (yield* storedMessages("GLAM_EVENTS")).find((m) => m.seq === killerReceipt.seq)
    assert(original !== undefined)
    const bytes = yield* DeadLetter.originalBytes(entry)
    assert(Option.isSome(bytes))
    expect(Buffer.compare(Buffer.from(bytes.value), Buffer.from(original.payload))).toBe(0)

    // The advisory was kept by GLAM_ADVISORIES and acknowledged once its dead letter was written.
    const broker = yield* Broker
    const advisories = yield* broker.streamInfo(Streams.advisoriesName)
    assert(Option.isSome(advisories))
    expect(advisories.value.state.messages).toBeGreaterThanOrEqual(1)
    const watcher = yield* consumerState(Streams.advisoriesName, `dlq-GLAM_EVENTS-${durable}`)
    expect(watcher?.numAckPending).toBe(0)
    expect(watcher?.numPending).toBe(0)
    const state = yield* consumerState("GLAM_EVENTS", durable)
    expect(state?.numAckPending).toBe(0)
    expect(state?.numPending).toBe(0)
  })

describe("Crash loop", () => {
  it.live(
    "a message whose handler kills the process every time is dead-lettered as max deliveries; the others are handled",
    () =>
      crashLoop({ afterCrash: Effect.void }).pipe(
        Effect.flatMap(expectKillerDeadLetteredOthersHandled),
        Effect.provide(messaging()),
        Effect.timeout(Duration.seconds(55))
      ),
    60_000
  )

  // Asking for the consumer's state right after a crash makes nats-server 2.9 drop the dead process's
  // pull request (it sweeps its waiting list), so nothing is delivered into the void; the next start
  // comes after the ack-wait, when every unsettled job is due again and is delivered in stream order.
  const afterTheAckWait = consumerState("GLAM_EVENTS", durable).pipe(Effect.andThen(Effect.sleep("1500 millis")))

  it.live(
    "the jobs prefetched behind the killer are not charged for its crashes (restarts after the ack-wait, in stream order)",
    () =>
      crashLoop({ afterCrash: afterTheAckWait }).pipe(
        Effect.flatMap(expectKillerDeadLetteredOthersHandled),
        Effect.provide(messaging()),
        Effect.timeout(Duration.seconds(55))
      ),
    60_000
  )

  it.live(
    "at concurrency 8 too, the jobs around the killer are not charged for its crashes (restarts after the ack-wait)",
    () =>
      crashLoop({ afterCrash: afterTheAckWait, concurrency: 8 }).pipe(
        Effect.flatMap(expectKillerDeadLetteredOthersHandled),
        Effect.provide(messaging()),
        Effect.timeout(Duration.seconds(55))
      ),
    60_000
  )
})
