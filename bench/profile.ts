/**
 * CPU profiles of scenarios (consume by default), one child process per contender under `node --cpu-prof`, and
 * a summary of each `.cpuprofile`: self time by function (top 20) and by area (effect, nats.js, our
 * src, Node and V8), counting only the samples taken while a measured run was on the clock (the
 * child writes those stretches, on the same monotonic clock V8 stamps its samples with). Profiles stay
 * in `bench/.profiles/` (ignored by git).
 */
import { spawnSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { benchDir, repository, sourcePath } from "./paths.js"
import { format, table } from "./stats.js"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame }>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** The stretches a child measured, in microseconds of the monotonic clock, and the messages they handled. */
export interface Windows {
  readonly messages: number
  readonly windows: ReadonlyArray<{ readonly start: number; readonly end: number }>
}

const where = (url: string): string => {
  if (url === "") return "(native)"
  const path = url.startsWith("file://") ? new URL(url).pathname : url
  const modules = path.lastIndexOf("/node_modules/")
  return modules >= 0 ? path.slice(modules + "/node_modules/".length) : sourcePath(path)
}

const areaOf = (frame: CallFrame): string => {
  if (frame.functionName === "(garbage collector)") return "GC"
  if (frame.functionName === "(program)" || frame.functionName === "(idle)") return frame.functionName
  const path = where(frame.url)
  if (path.startsWith("effect/")) return "effect"
  if (path.startsWith("@nats-io/")) return "nats.js"
  if (path.startsWith("src/")) return "@glam/messaging src"
  if (path.startsWith("bench/") || path.startsWith("test/")) return "bench"
  if (path.startsWith("node:") || path === "(native)") return "Node and V8 built-ins"
  return "other"
}

export interface Summary {
  readonly messages: number
  readonly measuredMs: number
  readonly busyMs: number
  readonly cpuMicrosPerMessage: number
  readonly byArea: ReadonlyArray<{ readonly area: string; readonly ms: number }>
  readonly byFunction: ReadonlyArray<{ readonly name: string; readonly where: string; readonly ms: number }>
}

/** Self time inside the measured windows, by area and by function. */
export const summarise = (profile: CpuProfile, windows: Windows): Summary => {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]))
  const inWindow = (at: number) => windows.windows.some((window) => at >= window.start && at <= window.end)
  const byKey = new Map<string, { name: string; where: string; ms: number }>()
  const byArea = new Map<string, number>()
  let at = profile.startTime
  let measured = 0
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    const next = i + 1 < profile.samples.length ? at + (profile.timeDeltas[i + 1] ?? 0) : profile.endTime
    if (!inWindow(at)) continue
    const frame = frames.get(profile.samples[i] ?? -1)
    if (frame === undefined) continue
    const ms = (next - at) / 1000
    measured += ms
    const area = areaOf(frame)
    byArea.set(area, (byArea.get(area) ?? 0) + ms)
    const key = `${frame.functionName}|${frame.url}|${frame.lineNumber}|${frame.columnNumber}`
    const entry = byKey.get(key) ?? {
      name: frame.functionName === "" ? "(anonymous)" : frame.functionName,
      where: `${where(frame.url)}:${frame.lineNumber + 1}`,
      ms: 0
    }
    entry.ms += ms
    byKey.set(key, entry)
  }
  const busy = measured - (byArea.get("(idle)") ?? 0)
  return {
    messages: windows.messages,
    measuredMs: measured,
    busyMs: busy,
    cpuMicrosPerMessage: (busy * 1000) / windows.messages,
    byArea: [...byArea].map(([area, ms]) => ({ area, ms })).sort((a, b) => b.ms - a.ms),
    byFunction: [...byKey.values()].sort((a, b) => b.ms - a.ms)
  }
}

export const print = (name: string, summary: Summary, top: number): string => {
  const percent = (ms: number) => `${((ms / summary.busyMs) * 100).toFixed(1)} %`
  const lines = [
    `\n## CPU profile: ${name} — ${format(summary.messages)} messages measured`,
    `on the clock ${format(summary.measuredMs)} ms, busy (not idle) ${format(summary.busyMs)} ms: ${summary.cpuMicrosPerMessage.toFixed(1)} µs of this process's CPU per message`,
    "",
    table(
      ["area", "self ms", "of busy"],
      summary.byArea.map((entry) => [entry.area, format(entry.ms, 1), entry.area === "(idle)" ? "" : percent(entry.ms)])
    )
  ]
  if (top > 0) {
    lines.push(
      "",
      table(
        ["function (self time)", "where", "self ms", "of busy"],
        summary.byFunction
          .filter((entry) => entry.name !== "(idle)")
          .slice(0, top)
          .map((entry) => [entry.name, entry.where, format(entry.ms, 1), percent(entry.ms)])
      )
    )
  }
  return lines.join("\n")
}

/** A contender of a scenario to profile, and how many functions of its profile to print. */
export interface Target {
  readonly scenario: string
  readonly name: string
  readonly top: number
}

/** Profiles each target in a child process of its own and prints the summaries. */
export const run = (options: {
  readonly targets: ReadonlyArray<Target>
  readonly messages: number | undefined
  readonly rounds: number
}): void => {
  const root = join(benchDir, ".profiles")
  const summaries: Array<{ readonly name: string; readonly summary: Summary }> = []
  for (const contender of options.targets) {
    const dir = join(root, `${contender.scenario}-${contender.name.replace(/[^a-z0-9]+/gi, "-")}`)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const windowsFile = join(dir, "windows.json")
    const child = spawnSync(
      process.execPath,
      [
        "--cpu-prof",
        `--cpu-prof-dir=${dir}`,
        "--cpu-prof-interval=250",
        join(import.meta.dirname, "run.js"),
        `--only=${contender.scenario}`,
        `--contenders=${contender.name}`,
        ...(options.messages === undefined ? [] : [`--messages=${options.messages}`]),
        `--rounds=${options.rounds}`,
        "--no-write",
        `--windows=${windowsFile}`
      ],
      { cwd: repository, stdio: "inherit" }
    )
    if (child.status !== 0) throw new Error(`profiling ${contender.name} failed (exit ${child.status})`)
    const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"))
    if (file === undefined) throw new Error(`no .cpuprofile written in ${dir}`)
    const profile: CpuProfile = JSON.parse(readFileSync(join(dir, file), "utf8"))
    const windows: Windows = JSON.parse(readFileSync(windowsFile, "utf8"))
    const summary = summarise(profile, windows)
    const name = `${contender.scenario}: ${contender.name}`
    summaries.push({ name, summary })
    console.log(print(name, summary, contender.top))
  }
  console.log(
    `\n## CPU of this process per message, profiled\n${table(
      ["contender", "µs per message", "busy ms", "messages"],
      summaries.map(({ name, summary }) => [
        name,
        summary.cpuMicrosPerMessage.toFixed(1),
        format(summary.busyMs),
        format(summary.messages)
      ])
    )}`
  )
}
