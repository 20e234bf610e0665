/**
 * `glam-messaging asyncapi`: the AsyncAPI 3.0 document of the GLAM catalogue on standard output, JSON
 * or YAML, for the teams that consume the events. Needs no server.
 */
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as AsyncApi from "../AsyncApi.js"
import * as Glam from "../glam/AsyncApi.js"

/** `glam-messaging asyncapi` */
export const asyncapi = Command.make(
  "asyncapi",
  {
    format: Flag.Literals("format", ["json", "yaml"]).pipe(
      Flag.withDescription("The document's format"),
      Flag.withDefault("json")
    ),
    server: Flag.String("server-url").pipe(
      Flag.withDescription("A server to list in the document, nats://host:port without credentials (default: none)"),
      Flag.optional
    ),
    version: Flag.String("doc-version").pipe(Flag.withDescription("The document's version"), Flag.withDefault("1.0.0"))
  },
  (given) =>
    Effect.gen(function* () {
      const document = yield* Glam.document({
        version: given.version,
        servers: Option.match(given.server, { onNone: () => undefined, onSome: (url) => [{ name: "production", url }] })
      })
      const text = given.format === "yaml" ? AsyncApi.toYaml(document) : AsyncApi.toJson(document)
      yield* Effect.sync(() => globalThis.process.stdout.write(text))
    })
).pipe(Command.withDescription("Print the AsyncAPI 3.0 document of the GLAM events"))
