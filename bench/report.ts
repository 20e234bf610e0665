/**
 * The tables printed after each scenario: per contender the median and range over the rounds, then
 * the ratios ours ÷ raw per round with their median and target.
 */
import { type MemoryResult, meets, type Ratio, type ScenarioResult } from "./model.js"
import { format, max, median, min, table } from "./stats.js"

const ratioDigits = 2

const targetText = (ratio: Ratio): string =>
  ratio.target === undefined ? "" : `${ratio.target.kind === "atLeast" ? "≥" : "≤"} ${ratio.target.value.toFixed(2)}`

const verdict = (ratio: Ratio): string => {
  const met = meets(ratio)
  return met === undefined ? "" : met ? "met" : "NOT met"
}

const ratioTable = (ratios: ReadonlyArray<Ratio>, label: string): string =>
  table(
    [label, "per round", "median", "target", ""],
    ratios.map((ratio) => [
      `${ratio.ours} ÷ ${ratio.raw}`,
      ratio.perRound.map((value) => value.toFixed(ratioDigits)).join(" "),
      ratio.median.toFixed(ratioDigits),
      targetText(ratio),
      verdict(ratio)
    ])
  )

export const scenario = (result: ScenarioResult): string => {
  const header = `\n## ${result.title} — ${format(result.messages)} messages, ${result.rounds} round${result.rounds === 1 ? "" : "s"}`
  if (result.metric === "msgPerSec") {
    const rows = result.contenders.map((contender) => {
      const values = contender.rounds.map((round) => round.msgPerSec ?? Number.NaN)
      return [
        contender.name,
        format(median(values)),
        `${format(min(values))}–${format(max(values))}`,
        values.map((value) => format(value)).join(" ")
      ]
    })
    return [
      header,
      table(["contender", "median msg/s", "min–max", "per round"], rows),
      "",
      ratioTable(result.ratios, "ratio (msg/s)")
    ].join("\n")
  }
  const rows = result.contenders.map((contender) => {
    const of = (key: string) => contender.rounds.map((round) => round[key] ?? Number.NaN)
    const p99 = of("p99Ms")
    return [
      contender.name,
      format(median(of("p50Ms")), 2),
      format(median(p99), 2),
      `${format(min(p99), 2)}–${format(max(p99), 2)}`,
      format(median(of("maxMs")), 2)
    ]
  })
  return [
    header,
    table(
      ["contender", "p50 ms", "p99 ms", "p99 min–max", "max ms"],
      rows.map((row) => row)
    ),
    "(medians over the rounds)",
    "",
    ratioTable(result.ratios, "ratio (p99, lower is better)")
  ].join("\n")
}

export const memory = (result: MemoryResult): string =>
  [
    `\n## ${result.title} — ${format(result.messages)} messages`,
    table(
      ["contender", "msg/s", "RSS at 10–20 %", "RSS at 90–100 %", "peak after 10 %", "drift", "flat ±10 %"],
      result.contenders.map((contender) => [
        contender.name,
        format(contender.msgPerSec),
        `${format(contender.baselineRssMb, 1)} MB`,
        `${format(contender.finalRssMb, 1)} MB`,
        `${format(contender.peakRssMb, 1)} MB`,
        `${(contender.drift * 100).toFixed(1)} %`,
        Math.abs(contender.drift) <= 0.1 && contender.peakRssMb <= 1.1 * contender.baselineRssMb ? "yes" : "no"
      ])
    )
  ].join("\n")
