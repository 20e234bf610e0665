/**
 * Flags more than one `glam-messaging` command takes. A switch is off unless given (`Flag.Boolean`
 * alone would make it required).
 */
import { Flag } from "effect/cli"

/** A boolean flag, `false` unless given. */
export const switchOf = (name: string, description: string) =>
  Flag.Boolean(name).pipe(Flag.withDescription(description), Flag.withDefault(false))

/** `--json`: output for scripts. */
export const json = switchOf("json", "Print JSON for scripts")
