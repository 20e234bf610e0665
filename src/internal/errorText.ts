/**
 * What log lines and error messages say of a failure: its tag, its message, the message of a cause.
 */
import { Cause } from "effect"

/** The `_tag` of a tagged error, if it has one. */
export const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : undefined

/** An `Error`'s message; anything else as text. */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** The message of what a cause failed with first, or died with. */
export const causeMessageOf = (cause: Cause.Cause<unknown>): string => messageOf(Cause.squash(cause))
