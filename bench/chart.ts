/**
 * An SVG chart of a run's ratios on a log scale: one bar per ratio from parity (1) to its median, a
 * whisker over its per-round range, and each target as a tick; green where the target is met, red where it
 * is not, grey where there is none. Memory adds one bar per contender: final RSS ÷ RSS at 10–20 %.
 */
import { meets, type RunResult, type Target } from "./model.js"

interface Row {
  readonly label: string
  readonly median: number
  readonly low: number
  readonly high: number
  readonly target: Target | undefined
  readonly met: boolean | undefined
}

interface Section {
  readonly title: string
  readonly rows: ReadonlyArray<Row>
}

const escapeXml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const sectionsOf = (run: RunResult): ReadonlyArray<Section> => {
  const sections: Array<Section> = run.scenarios
    .filter((scenario) => scenario.ratios.length > 0)
    .map((scenario) => ({
      title: `${scenario.title} (${scenario.metric === "msgPerSec" ? "msg/s, higher is better" : "p99, lower is better"})`,
      rows: scenario.ratios.map((ratio) => ({
        label: `${ratio.ours} ÷ ${ratio.raw}`,
        median: ratio.median,
        low: Math.min(...ratio.perRound),
        high: Math.max(...ratio.perRound),
        target: ratio.target,
        met: meets(ratio)
      }))
    }))
  if (run.memory !== undefined) {
    sections.push({
      title: `RSS at the end ÷ RSS at 10–20 %, ${run.memory.messages.toLocaleString("en-US")} messages (flat is 0.90–1.10)`,
      rows: run.memory.contenders.map((contender) => {
        const ratio = 1 + contender.drift
        return {
          label: contender.name,
          median: ratio,
          low: ratio,
          high: contender.peakRssMb / contender.baselineRssMb,
          target: { kind: "atMost", value: 1.1 },
          met: Math.abs(contender.drift) <= 0.1
        }
      })
    })
  }
  return sections
}

const colour = (met: boolean | undefined): string => (met === undefined ? "#9e9e9e" : met ? "#2e7d32" : "#c62828")

/** Ratios on a log₂ scale: 0.5 and 2 are equally far from parity. */
const scaleOf = (values: ReadonlyArray<number>) => {
  const finite = values.filter((value) => Number.isFinite(value) && value > 0)
  const low = Math.min(-2, Math.floor(Math.log2(Math.min(...finite))))
  const high = Math.max(1, Math.ceil(Math.log2(Math.max(...finite))))
  return { low, high }
}

export const ratiosSvg = (run: RunResult): string => {
  const sections = sectionsOf(run)
  const labelWidth = 330
  const plotWidth = 520
  const rowHeight = 22
  const titleHeight = 26
  const top = 56
  const { low, high } = scaleOf(
    sections.flatMap((section) =>
      section.rows.flatMap((row) => [row.low, row.high, row.median, row.target?.value ?? 1])
    )
  )
  const x = (value: number) => {
    const exponent = Math.log2(Math.max(2 ** low, Math.min(2 ** high, value)))
    return labelWidth + ((exponent - low) / (high - low)) * plotWidth
  }
  const height = top + sections.reduce((sum, section) => sum + titleHeight + section.rows.length * rowHeight, 0) + 40
  const width = labelWidth + plotWidth + 80
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">@glam/messaging ÷ raw nats.js, same-run ratios (${escapeXml(run.mode)} run)</text>`,
    `<text x="12" y="40" fill="#555">${escapeXml(`${run.startedAt} · node ${run.node} · nats-server ${run.natsServer} · ${run.machine.cpus} CPUs · log scale · bar = median, whisker = per-round range, black tick = target`)}</text>`
  ]
  let y = top
  for (const section of sections) {
    parts.push(`<text x="12" y="${y + 17}" font-weight="bold">${escapeXml(section.title)}</text>`)
    y += titleHeight
    for (const row of section.rows) {
      const middle = y + rowHeight / 2
      const from = Math.min(x(1), x(row.median))
      const to = Math.max(x(1), x(row.median))
      parts.push(
        `<text x="${labelWidth - 8}" y="${middle + 4}" text-anchor="end">${escapeXml(row.label)}</text>`,
        `<rect x="${from}" y="${y + 4}" width="${Math.max(1, to - from)}" height="${rowHeight - 8}" fill="${colour(row.met)}" fill-opacity="0.75"/>`,
        `<line x1="${x(1)}" x2="${x(1)}" y1="${y}" y2="${y + rowHeight}" stroke="#1565c0" stroke-dasharray="3 2"/>`,
        `<line x1="${x(row.low)}" x2="${x(row.high)}" y1="${middle}" y2="${middle}" stroke="#222"/>`,
        `<line x1="${x(row.low)}" x2="${x(row.low)}" y1="${middle - 4}" y2="${middle + 4}" stroke="#222"/>`,
        `<line x1="${x(row.high)}" x2="${x(row.high)}" y1="${middle - 4}" y2="${middle + 4}" stroke="#222"/>`,
        `<text x="${Math.max(to, x(row.high)) + 6}" y="${middle + 4}">${row.median.toFixed(2)}</text>`
      )
      if (row.target !== undefined) {
        parts.push(
          `<line x1="${x(row.target.value)}" x2="${x(row.target.value)}" y1="${y + 1}" y2="${y + rowHeight - 1}" stroke="#000" stroke-width="2"/>`
        )
      }
      y += rowHeight
    }
  }
  const axisY = y + 8
  parts.push(`<line x1="${labelWidth}" x2="${labelWidth + plotWidth}" y1="${axisY}" y2="${axisY}" stroke="#222"/>`)
  for (let exponent = low; exponent <= high; exponent++) {
    const at = x(2 ** exponent)
    const label = exponent >= 0 ? String(2 ** exponent) : `1/${2 ** -exponent}`
    parts.push(
      `<line x1="${at}" x2="${at}" y1="${axisY}" y2="${axisY + 4}" stroke="#222"/>`,
      `<text x="${at}" y="${axisY + 16}" text-anchor="middle">${label}</text>`
    )
  }
  parts.push("</svg>", "")
  return parts.join("\n")
}
