/**
 * What a `glam-messaging` command says when it fails: one line on standard error, no stack trace, and
 * exit code 1. `CliError` is a failure a command found itself (an unknown subject, a missing stream, a
 * refused plan); every other error is shown by its own message, which names what it is about.
 */
import { Cause, Schema } from "effect"
import { CliError as ParseErrors } from "effect/cli"
import { messageOf } from "../internal/errorText.js"

/** A command that cannot do what it was asked; `message` is the whole line shown. */
export class CliError extends Schema.TaggedError<CliError>()("CliError", {
  message: Schema.String
}) {}

/**
 * The line for a failed command, or `undefined` when the CLI module already printed it (a flag or an
 * argument it could not parse, with the help) or the command was interrupted (Ctrl-C).
 */
export const lineOf = (cause: Cause.Cause<unknown>): string | undefined => {
  if (Cause.hasInterruptsOnly(cause)) return undefined
  const error = Cause.squash(cause)
  if (ParseErrors.isCliError(error)) return undefined
  const message = messageOf(error).split("\n")[0] ?? ""
  return Cause.hasFails(cause) ? message : `unexpected failure: ${message}`
}
