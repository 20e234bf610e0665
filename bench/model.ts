/**
 * The shape of a bench run as it is written to `bench/results/*.json` and read back by the chart.
 */

/** Who a contender is: ours, the raw client the target is set against, or raw with a handicap for reference. */
export type Role = "ours" | "raw" | "reference"

export interface ContenderResult {
  readonly name: string
  readonly role: Role
  readonly description: string
  /** One entry per round, in round order: `msgPerSec`, or `p50Ms`/`p99Ms`/`maxMs` for latency. */
  readonly rounds: ReadonlyArray<Readonly<Record<string, number>>>
}

export interface Target {
  /** `atLeast`: the ratio should be this or more; `atMost`: this or less. */
  readonly kind: "atLeast" | "atMost"
  readonly value: number
}

export interface Ratio {
  readonly ours: string
  readonly raw: string
  readonly metric: string
  /** ours ÷ raw in each round, both measured in that round. */
  readonly perRound: ReadonlyArray<number>
  readonly median: number
  readonly target: Target | undefined
}

export interface ScenarioResult {
  readonly id: string
  readonly title: string
  readonly messages: number
  readonly rounds: number
  /** The metric the ratios are taken on. */
  readonly metric: string
  readonly unit: string
  readonly higherIsBetter: boolean
  readonly contenders: ReadonlyArray<ContenderResult>
  readonly ratios: ReadonlyArray<Ratio>
}

export interface MemorySample {
  readonly seconds: number
  readonly handled: number
  readonly rssMb: number
  readonly heapUsedMb: number
}

export interface MemoryContender {
  readonly name: string
  readonly role: Role
  readonly description: string
  readonly msgPerSec: number
  readonly samples: ReadonlyArray<MemorySample>
  /** Median RSS while 10–20 % of the messages were handled. */
  readonly baselineRssMb: number
  /** Median RSS over the last 10 % of the messages. */
  readonly finalRssMb: number
  /** Highest RSS after the first 10 %. */
  readonly peakRssMb: number
  /** final ÷ baseline − 1. */
  readonly drift: number
}

export interface MemoryResult {
  readonly id: "memory"
  readonly title: string
  readonly messages: number
  readonly contenders: ReadonlyArray<MemoryContender>
}

export interface RunResult {
  readonly startedAt: string
  readonly finishedAt: string
  readonly mode: "full" | "quick"
  readonly node: string
  readonly natsServer: string
  readonly nats: string
  /** The commit measured, and the files under src/ that differed from it (a run of uncommitted code says so). */
  readonly source: { readonly commit: string; readonly uncommittedSrc: ReadonlyArray<string> }
  readonly machine: {
    readonly cpus: number
    readonly cpuModel: string
    readonly loadBefore: ReadonlyArray<number>
    readonly loadAfter: ReadonlyArray<number>
  }
  readonly payloadBytes: number
  readonly scenarios: ReadonlyArray<ScenarioResult>
  readonly memory: MemoryResult | undefined
}

/** Whether a ratio meets its target (`undefined` when it has none). */
export const meets = (ratio: Pick<Ratio, "median" | "target">): boolean | undefined =>
  ratio.target === undefined
    ? undefined
    : ratio.target.kind === "atLeast"
      ? ratio.median >= ratio.target.value
      : ratio.median <= ratio.target.value
