/**
 * `npm run bench`: @glam/messaging side by side with the raw nats.js client, on a nats-server of its
 * own, contenders alternating within each round so that every ratio compares numbers taken moments
 * apart.
 *
 *   npm run bench                     every scenario, full counts; writes bench/results/<time>.json,
 *                                     latest.json and ratios.svg
 *   npm run bench -- --soak           also memory over 1,000,000 messages
 *   npm run bench -- --quick          a smoke check with tiny counts (results in bench/results/quick/)
 *   npm run bench -- --profile        CPU profiles of the consume scenario (raw and ours), summarised;
 *                                     with --only=publish,publishInFlight those scenarios instead
 *   --only=publish,consume            scenarios by id (publish, publishInFlight, consume, latency, memory)
 *   --contenders=a,b  --rounds=N  --messages=N  --no-write
 *
 * Nothing here asserts a speed: the numbers are for people, as same-run ratios.
 */
import { execFileSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { cpus, loadavg } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, References } from "effect"
import { ratiosSvg } from "./chart.js"
import { deleteStream, environment, PAYLOAD_BYTES, RawClients } from "./fixture.js"
import * as Memory from "./memory.js"
import type { ContenderResult, MemoryResult, Ratio, RunResult, ScenarioResult } from "./model.js"
import { benchDir } from "./paths.js"
import * as Profile from "./profile.js"
import * as Report from "./report.js"
import * as Scenarios from "./scenarios.js"
import { median } from "./stats.js"

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    soak: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    only: { type: "string" },
    contenders: { type: "string" },
    rounds: { type: "string" },
    messages: { type: "string" },
    "no-write": { type: "boolean", default: false },
    windows: { type: "string" }
  }
})

const listOf = (value: string | undefined) =>
  value === undefined ? undefined : new Set(value.split(",").map((item) => item.trim()))
const numberOf = (value: string | undefined) => (value === undefined ? undefined : Number(value))

const only = listOf(args.only)
const contenderFilter = listOf(args.contenders)
const roundsOverride = numberOf(args.rounds)
const messagesOverride = numberOf(args.messages)
const quick = args.quick

// A full collection between runs, so that one contender's garbage is not collected on another's clock.
setFlagsFromString("--expose-gc")
const gc: unknown = runInNewContext("gc")
const collectGarbage = (): void => {
  if (typeof gc === "function") gc()
}

/** The measured stretches, in microseconds of the monotonic clock, for the profiler. */
const windows: Array<{ start: number; end: number }> = []
let measuredMessages = 0
let recording = false
const micros = () => Number(process.hrtime.bigint() / 1000n)
const clock: Scenarios.Timed = {
  start: () => {
    if (recording) windows.push({ start: micros(), end: Number.POSITIVE_INFINITY })
    return performance.now()
  },
  stop: () => {
    const now = performance.now()
    const last = windows[windows.length - 1]
    if (recording && last !== undefined) last.end = micros()
    return now
  }
}

const settle = Effect.gen(function* () {
  yield* deleteStream
  collectGarbage()
  yield* Effect.sleep(200)
})

const runScenario = <R>(scenario: Scenarios.Scenario<R>) =>
  Effect.gen(function* () {
    const messages = messagesOverride ?? (quick ? scenario.messages.quick : scenario.messages.full)
    const rounds = roundsOverride ?? (quick ? 1 : scenario.rounds)
    const contenders = scenario.contenders.filter(
      (contender) => contenderFilter === undefined || contenderFilter.has(contender.name)
    )
    if (!quick) {
      // Warm-up: every contender once at a tenth of the count, so that no round 1 pays for the JIT alone.
      for (const contender of contenders) {
        yield* contender.run(Math.max(100, Math.round(messages / 10)))
        yield* settle
      }
    }
    const measured = new Map<string, Array<Readonly<Record<string, number>>>>(
      contenders.map((contender) => [contender.name, []])
    )
    recording = true
    for (let round = 0; round < rounds; round++) {
      // Each round starts with a different contender.
      const shift = round % contenders.length
      for (const contender of [...contenders.slice(shift), ...contenders.slice(0, shift)]) {
        const result = yield* contender.run(messages)
        measured.get(contender.name)?.push(result)
        measuredMessages += messages
        yield* settle
      }
    }
    recording = false
    const results: Array<ContenderResult> = contenders.map((contender) => ({
      name: contender.name,
      role: contender.role,
      description: contender.description,
      rounds: measured.get(contender.name) ?? []
    }))
    const ratios: Array<Ratio> = scenario.ratios.flatMap((spec) => {
      const ours = measured.get(spec.ours)
      const raw = measured.get(spec.raw)
      if (ours === undefined || raw === undefined) return []
      const perRound = ours.map((round, i) => (round[scenario.metric] ?? Number.NaN) / (raw[i]?.[scenario.metric] ?? 1))
      return [
        {
          ours: spec.ours,
          raw: spec.raw,
          metric: scenario.metric,
          perRound,
          median: median(perRound),
          target: spec.target
        }
      ]
    })
    const result: ScenarioResult = {
      id: scenario.id,
      title: scenario.title,
      messages,
      rounds,
      metric: scenario.metric,
      unit: scenario.unit,
      higherIsBetter: scenario.higherIsBetter,
      contenders: results,
      ratios
    }
    console.log(Report.scenario(result))
    return result
  })

const natsVersion = async (): Promise<string> =>
  JSON.parse(await readFile(join(benchDir, "..", "node_modules", "@nats-io", "jetstream", "package.json"), "utf8"))
    .version

const git = (...gitArgs: ReadonlyArray<string>): string => {
  try {
    return execFileSync("git", gitArgs, { cwd: join(benchDir, ".."), encoding: "utf8" }).trim()
  } catch {
    return ""
  }
}

const source = () => ({
  commit: git("rev-parse", "HEAD") || "unknown",
  uncommittedSrc: git("status", "--porcelain", "--", "src")
    .split("\n")
    .filter((line) => line.length > 0)
})

const writeResults = (result: RunResult) =>
  Effect.promise(async () => {
    const dir = quick ? join(benchDir, "results", "quick") : join(benchDir, "results")
    await mkdir(dir, { recursive: true })
    const json = `${JSON.stringify(result, null, 2)}\n`
    if (!quick) await writeFile(join(dir, `${result.startedAt.replace(/[:.]/g, "-")}.json`), json)
    await writeFile(join(dir, "latest.json"), json)
    await writeFile(join(dir, "ratios.svg"), ratiosSvg(result))
    console.log(`\nresults: ${dir}/latest.json, ratios.svg`)
  })

const bench = Effect.gen(function* () {
  const startedAt = new Date().toISOString()
  const loadBefore = loadavg()
  const { admin } = yield* RawClients
  const natsServer = admin.info?.version ?? "unknown"
  const nats = yield* Effect.promise(natsVersion)
  const measured = source()
  console.log(
    `# @glam/messaging vs raw nats.js ${nats} — ${quick ? "quick smoke run (tiny counts: the numbers mean nothing)" : "full run"}\n` +
      `node ${process.version}, nats-server ${natsServer}, ${cpus().length} CPUs, load ${loadBefore.map((l) => l.toFixed(2)).join(" ")}, payload ${PAYLOAD_BYTES} bytes\n` +
      `commit ${measured.commit.slice(0, 10)}${measured.uncommittedSrc.length > 0 ? `, with uncommitted changes in src: ${measured.uncommittedSrc.join("; ")}` : ""}`
  )
  const selected = (id: string) => only === undefined || only.has(id)
  const scenarios: Array<ScenarioResult> = []
  for (const scenario of Scenarios.all(clock)) {
    if (selected(scenario.id)) scenarios.push(yield* runScenario(scenario))
  }
  let memory: MemoryResult | undefined
  if (selected("memory") && (quick || args.soak)) {
    memory = yield* Memory.run(messagesOverride ?? (quick ? 5_000 : 1_000_000), quick ? 50 : 250, collectGarbage)
    console.log(Report.memory(memory))
  }
  const result: RunResult = {
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    node: process.version,
    natsServer,
    nats,
    source: measured,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", loadBefore, loadAfter: loadavg() },
    payloadBytes: PAYLOAD_BYTES,
    scenarios,
    memory
  }
  if (!args["no-write"]) yield* writeResults(result)
  if (args.windows !== undefined) {
    writeFileSync(args.windows, JSON.stringify({ messages: measuredMessages, windows } satisfies Profile.Windows))
  }
}).pipe(Effect.provide(environment), Effect.provideService(References.MinimumLogLevel, "Warn"))

// Profiled by default: the consume path, ours and both raw styles.
const profiled: ReadonlyArray<Profile.Target> = [
  { scenario: "consume", name: "raw callback", top: 0 },
  { scenario: "consume", name: "raw for await", top: 0 },
  { scenario: "consume", name: "ours c64 p256", top: 20 },
  { scenario: "consume", name: "ours c1 p256", top: 20 },
  { scenario: "consume", name: "ours c1 p256 + metrics", top: 20 },
  { scenario: "consume", name: "ours c64 p256 + metrics", top: 20 },
  { scenario: "publish", name: "raw", top: 0 },
  { scenario: "publish", name: "raw + msgID", top: 0 },
  { scenario: "publish", name: "ours", top: 20 },
  { scenario: "publishInFlight", name: "raw", top: 0 },
  { scenario: "publishInFlight", name: "raw + msgID", top: 0 },
  { scenario: "publishInFlight", name: "ours", top: 20 }
]

if (args.profile) {
  Profile.run({
    targets: profiled.filter(
      (target) =>
        (only === undefined ? target.scenario === "consume" : only.has(target.scenario)) &&
        (contenderFilter === undefined || contenderFilter.has(target.name))
    ),
    messages: messagesOverride ?? (quick ? 2_000 : undefined),
    rounds: roundsOverride ?? (quick ? 1 : 3)
  })
} else {
  NodeRuntime.runMain(bench)
}
