/**
 * How the `glam-messaging` commands write: tables and key/value blocks for people, JSON for scripts,
 * colour only when standard output is a terminal (and `NO_COLOR` is unset), log lines and progress on
 * standard error so that standard output stays parseable.
 *
 * Not here: what a command prints (each command module), the one-line error (`main.ts`).
 */
import { Buffer } from "node:buffer"
import { Config, Console, Effect, Logger, Option, Result, Stdio } from "effect"

/** Whether to colour standard output: a terminal, and no `NO_COLOR` in the environment. */
export const colours: Effect.Effect<boolean, never, Stdio.Stdio> = Effect.gen(function* () {
  const stdio = yield* Stdio.Stdio
  const terminal = yield* stdio.stdoutIsTerminal
  const noColor = yield* Config.option(Config.String("NO_COLOR")).pipe(Effect.orElseSucceed(() => Option.none()))
  return terminal && Option.isNone(noColor)
})

const paint = (code: number) => (on: boolean, text: string) => (on ? `\u001b[${code}m${text}\u001b[0m` : text)

/** Text styles that fall back to plain text when colour is off. */
export const style = {
  bold: paint(1),
  dim: paint(2),
  red: paint(31),
  green: paint(32),
  yellow: paint(33)
} as const

/** Writes one line to standard output. */
export const line = (text: string): Effect.Effect<void> => Console.log(text)

/** Writes a value as indented JSON to standard output. */
export const json = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

// ANSI escapes take no room on screen: widths are measured without them.
const escapes = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g")
const visible = (text: string): number => text.replace(escapes, "").length

const pad = (text: string, width: number): string => text + " ".repeat(Math.max(0, width - visible(text)))

/** Rows under a header, each column as wide as its widest cell; `(none)` when there are no rows. */
export const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>
): Effect.Effect<void, never, Stdio.Stdio> =>
  Effect.gen(function* () {
    const on = yield* colours
    if (rows.length === 0) return yield* line(style.dim(on, "(none)"))
    const widths = header.map((title, column) =>
      Math.max(visible(title), ...rows.map((row) => visible(row[column] ?? "")))
    )
    const render = (cells: ReadonlyArray<string>) =>
      cells
        .map((cell, column) => (column === cells.length - 1 ? cell : pad(cell, widths[column] ?? 0)))
        .join("  ")
        .trimEnd()
    yield* line(style.bold(on, render(header)))
    for (const row of rows) yield* line(render(row))
  })

/** `label  value` lines under an optional title, labels aligned. */
export const fields = (
  title: string | undefined,
  entries: ReadonlyArray<readonly [label: string, value: string]>
): Effect.Effect<void, never, Stdio.Stdio> =>
  Effect.gen(function* () {
    const on = yield* colours
    if (title !== undefined) yield* line(style.bold(on, title))
    const width = Math.max(0, ...entries.map(([label]) => label.length))
    for (const [label, value] of entries) yield* line(`  ${pad(label, width)}  ${value}`)
  })

/** Byte counts as people read them: `512 B`, `1.5 KiB`, `12.0 MiB`. */
export const bytes = (count: number): string => {
  if (count < 1024) return `${count} B`
  const units = ["KiB", "MiB", "GiB", "TiB"]
  let value = count / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

/** How long ago `then` was, in its largest whole unit (`42s ago`, `5m ago`, `3h ago`, `2d ago`); `-` for none. */
export const ago = (then: Date | undefined, nowMillis: number): string => {
  if (then === undefined) return "-"
  const seconds = Math.max(0, Math.floor((nowMillis - then.getTime()) / 1000))
  if (seconds < 60) return `${seconds}s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`
  return `${Math.floor(seconds / 86_400)}d ago`
}

/**
 * The library's log lines, on standard error in one line each (`WARN  <message>`), so that a command's
 * output stays clean for `--json` and pipes.
 */
export const stderrLogger = Logger.layer([
  Logger.make(({ logLevel, message }) => {
    const text = (Array.isArray(message) ? message : [message])
      .map((part) => (typeof part === "string" ? part : JSON.stringify(part)))
      .join(" ")
    globalThis.console.error(`${logLevel.toUpperCase().padEnd(5)} ${text}`)
  })
])

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The bytes as text when they are valid UTF-8. */
export const utf8Of = (bytes: Uint8Array): string | undefined => {
  const decoded = Result.try(() => utf8.decode(bytes))
  return Result.isSuccess(decoded) ? decoded.success : undefined
}

/** UTF-8 text as it is; anything else as `hex …`. */
export const printable = (bytes: Uint8Array): string => utf8Of(bytes) ?? `hex ${Buffer.from(bytes).toString("hex")}`
