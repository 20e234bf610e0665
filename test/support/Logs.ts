/**
 * Log lines captured in memory, for tests that assert on what an operator would read: the level and
 * the message of each line, in order, alongside the usual loggers.
 */
import { type Layer, Logger } from "effect"
import * as Logging from "../../src/Logging.js"

export interface Line {
  readonly level: string
  readonly message: string
}

export interface Captured {
  readonly lines: Array<Line>
  /** Adds the capturing logger next to the existing ones. */
  readonly layer: Layer.Layer<never>
  /** The lines at `level` whose message contains `text`. */
  readonly matching: (level: string, text: string) => ReadonlyArray<Line>
}

const textOf = (message: unknown): string => {
  const first = Array.isArray(message) ? message[0] : message
  return typeof first === "string" ? first : String(first)
}

export const capture = (): Captured => {
  const lines: Array<Line> = []
  const logger = Logger.make((options) => {
    lines.push({ level: options.logLevel, message: textOf(options.message) })
  })
  return {
    lines,
    layer: Logger.layer([logger], { mergeWithExisting: true }),
    matching: (level, text) => lines.filter((line) => line.level === level && line.message.includes(text))
  }
}

/** The lines as `Logging.layer` prints them in text (a cause's stack included at Debug), in order. */
export const captureText = (): { readonly lines: Array<string>; readonly layer: Layer.Layer<never> } => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    lines.push(Logging.formatText.log(options))
  })
  return { lines, layer: Logger.layer([logger], { mergeWithExisting: true }) }
}
