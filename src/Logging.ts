/**
 * Log lines a person can read: one line per event, in text (the default) or JSON, and the minimum
 * level, as one layer that replaces Effect's default logger. Built on Effect's own `Logger` and
 * `References.MinimumLogLevel`, so every `Effect.log*` of the service and of this library goes through it.
 *
 * Text: `2026-12-03T15:01:52.123Z WARN  <message> key=value ... span=12ms cause="TypeError: x is undefined"`.
 * The log annotations (`event_id`, `subject`, ...) and spans follow the message as `key=value`, values
 * with spaces or quotes in double quotes; a cause gives the first line of each of its errors on the same
 * line. Its stack follows, indented on the next lines, only when the minimum level is `Debug` or lower.
 * JSON: one object per line, Effect's structured form (`message`, `level`, `timestamp`, `annotations`,
 * `spans`, `cause`, `fiberId`), the cause shortened the same way.
 *
 * Not here: where lines go besides standard output (add your own `Logger` with
 * `Logger.layer([...], { mergeWithExisting: true })`), tracing, metrics.
 *
 * @since 0.1.0
 */
import { Cause, Config, Effect, Formatter, Layer, Logger, LogLevel, References, Schema } from "effect"

/**
 * `text`: one `key=value` line per event, for people and `grep`; `json`: one JSON object per line, for
 * log collectors.
 *
 * @category models
 * @since 0.1.0
 */
export type Format = "text" | "json"

/**
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Events below this level are dropped. Default `Info`. */
  readonly level?: LogLevel.LogLevel | undefined
  /** Default `text`. */
  readonly format?: Format | undefined
}

// Whether a line carries its cause's stack: when the service is being debugged.
const withStack = (level: LogLevel.LogLevel): boolean => LogLevel.isLessThanOrEqualTo(level, "Debug")

// Each error of a cause as its first line: `TypeError: x is undefined`.
const causeSummary = (cause: Cause.Cause<unknown>): string =>
  Cause.prettyErrors(cause)
    .map((error) => (error.message === "" ? error.name : `${error.name}: ${error.message}`))
    .join("; ")

// The pretty cause without its first line: the stack, and the causes of the causes.
const causeDetail = (cause: Cause.Cause<unknown>): string => {
  const pretty = Cause.pretty(cause)
  const newline = pretty.indexOf("\n")
  return newline === -1 ? "" : pretty.slice(newline)
}

const plain = /^[^\s"=\\]+$/

const quoted = (value: string): string => (plain.test(value) ? value : JSON.stringify(value))

const textOf = (value: unknown): string => (typeof value === "string" ? value : Formatter.format(value))

const oneLine = (text: string): string => text.replace(/\r?\n/g, "\\n")

/**
 * The text line of a log event, without printing it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const formatText: Logger.Logger<unknown, string> = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const messages = Array.isArray(message) ? message : [message]
  let line = `${date.toISOString()} ${logLevel.toUpperCase().padEnd(5)} ${oneLine(messages.map(textOf).join(" "))}`
  for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
    line += ` ${key}=${quoted(textOf(value))}`
  }
  const now = date.getTime()
  for (const [label, startedAt] of fiber.getRef(References.CurrentLogSpans)) {
    line += ` ${quoted(label)}=${now - startedAt}ms`
  }
  if (cause.reasons.length === 0) return line
  line += ` cause=${quoted(causeSummary(cause))}`
  return withStack(fiber.getRef(References.MinimumLogLevel)) ? line + causeDetail(cause) : line
})

/**
 * The JSON line of a log event (Effect's `Logger.formatStructured`), without printing it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const formatJson: Logger.Logger<unknown, string> = Logger.make((options) => {
  const structured = Logger.formatStructured.log(options)
  const { cause, fiber } = options
  return Formatter.formatJson({
    ...structured,
    cause:
      cause.reasons.length === 0
        ? undefined
        : withStack(fiber.getRef(References.MinimumLogLevel))
          ? Cause.pretty(cause)
          : causeSummary(cause)
  })
})

/**
 * Logs in `format` to standard output, one line per event, from `level` up; replaces the loggers in
 * place (Effect's default one included).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<never> =>
  Layer.merge(
    Logger.layer([Logger.withConsoleLog(options.format === "json" ? formatJson : formatText)]),
    Layer.succeed(References.MinimumLogLevel, options.level ?? "Info")
  )

const levels: ReadonlyArray<LogLevel.LogLevel> = ["Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None", "All"]
const levelByName = new Map<string, LogLevel.LogLevel>(levels.map((level) => [level.toLowerCase(), level]))
const formats: ReadonlyArray<Format> = ["text", "json"]
const formatByName = new Map<string, Format>(formats.map((format) => [format, format]))

const oneOf = (variable: string, what: string, accepted: string, known: ReadonlyMap<string, unknown>) =>
  Schema.String.check(
    Schema.makeFilter(
      (value: string) =>
        known.has(value.toLowerCase()) ||
        `${variable} ${JSON.stringify(value)} is not ${what}: use one of ${accepted} (case does not matter)`
    )
  )

/**
 * `LOG_LEVEL` (`Trace`, `Debug`, `Info`, `Warn`, `Error`, `Fatal` or `None`, in any case; default
 * `Info`) and `LOG_FORMAT` (`text` or `json`; default `text`). Any other value is a `ConfigError` naming
 * the variable and the values it accepts.
 *
 * @category constructors
 * @since 0.1.0
 */
export const config: Config.Config<Required<Options>> = Config.all({
  level: Config.schema(
    oneOf("LOG_LEVEL", "a log level", "Trace, Debug, Info, Warn, Error, Fatal, None", levelByName),
    "LOG_LEVEL"
  ).pipe(
    Config.map((name): LogLevel.LogLevel => levelByName.get(name.toLowerCase()) ?? "Info"),
    Config.withDefault<LogLevel.LogLevel>("Info")
  ),
  format: Config.schema(oneOf("LOG_FORMAT", "a log format", "text, json", formatByName), "LOG_FORMAT").pipe(
    Config.map((name): Format => formatByName.get(name.toLowerCase()) ?? "text"),
    Config.withDefault<Format>("text")
  )
})

/**
 * `layer` configured from `LOG_LEVEL` and `LOG_FORMAT` (see `config`); `overrides` win over them.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (overrides: Options = {}): Layer.Layer<never, Config.ConfigError> =>
  Layer.unwrap(Effect.map(config, (options) => layer({ ...options, ...definedOnly(overrides) })))

const definedOnly = (options: Options): Options => ({
  ...(options.level === undefined ? {} : { level: options.level }),
  ...(options.format === undefined ? {} : { format: options.format })
})
