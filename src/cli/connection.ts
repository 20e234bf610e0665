/**
 * The connection flags of every `glam-messaging` command that talks to a server, and the broker they
 * build. The environment is read as the library reads it (`NATS_SERVERS`, `NATS_USER`,
 * `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_NKEY_SEED`, `NATS_CREDS_FILE`, `NATS_TLS_*`); a flag wins over
 * its variable. A command fails at once when the server does not answer: no retry, one line.
 */
import { Effect, Layer, Option, type Redacted, Schedule, Schema } from "effect"
import { Flag } from "effect/cli"
import { ServerList } from "../internal/nats/connectionOptions.js"
import { firstIssue } from "../internal/schemaIssues.js"
import * as NatsBroker from "../NatsBroker.js"
import type * as NatsClient from "../NatsClient.js"
import { CliError } from "./errors.js"

const text = (name: string, description: string) =>
  Flag.String(name).pipe(Flag.withDescription(description), Flag.optional)

const secret = (name: string, description: string) =>
  Flag.Redacted(name).pipe(Flag.withDescription(description), Flag.optional)

/** The flags, to spread into a command's configuration. */
export const flags = {
  server: Flag.String("server").pipe(
    Flag.withAlias("s"),
    Flag.withDescription("Server URLs, comma-separated (default: NATS_SERVERS)"),
    Flag.optional
  ),
  user: text("user", "User name (default: NATS_USER)"),
  password: secret("password", "Password (default: NATS_PASSWORD)"),
  token: secret("token", "Token (default: NATS_TOKEN)"),
  nkeySeed: secret("nkey-seed", "NKey seed (default: NATS_NKEY_SEED; prefer the variable, flags show in ps)"),
  creds: text("creds", "Credentials file (default: NATS_CREDS_FILE)"),
  tlsCa: text("tls-ca", "CA certificate file (default: NATS_TLS_CA_FILE)"),
  tlsCert: text("tls-cert", "Client certificate file (default: NATS_TLS_CERT_FILE)"),
  tlsKey: text("tls-key", "Client key file (default: NATS_TLS_KEY_FILE)")
} as const

/** What the flags parse to. */
export interface Flags {
  readonly server: Option.Option<string>
  readonly user: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly nkeySeed: Option.Option<Redacted.Redacted<string>>
  readonly creds: Option.Option<string>
  readonly tlsCa: Option.Option<string>
  readonly tlsCert: Option.Option<string>
  readonly tlsKey: Option.Option<string>
}

const decodeServers = Schema.decodeUnknownEffect(ServerList)

const servers = (flag: Option.Option<string>): Effect.Effect<ReadonlyArray<string> | undefined, CliError> =>
  Option.match(flag, {
    onNone: () => Effect.succeed(undefined),
    onSome: (value) =>
      decodeServers(value).pipe(
        Effect.mapError((error) => new CliError({ message: `--server: ${firstIssue(error).detail}` }))
      )
  })

/** The overrides of `NatsClient.layerConfig` that the flags ask for. */
export const overridesOf = Effect.fnUntraced(function* (given: Flags) {
  const tls =
    Option.isNone(given.tlsCa) && Option.isNone(given.tlsCert) && Option.isNone(given.tlsKey)
      ? undefined
      : {
          caFile: Option.getOrUndefined(given.tlsCa),
          certFile: Option.getOrUndefined(given.tlsCert),
          keyFile: Option.getOrUndefined(given.tlsKey)
        }
  const overrides: NatsClient.Options = {
    servers: yield* servers(given.server),
    user: Option.getOrUndefined(given.user),
    password: Option.getOrUndefined(given.password),
    token: Option.getOrUndefined(given.token),
    nkeySeed: Option.getOrUndefined(given.nkeySeed),
    credsFile: Option.getOrUndefined(given.creds),
    tls,
    name: "glam-messaging",
    // An operator waiting at a prompt wants the failure now, not a minute of retries.
    connectRetry: Schedule.recurs(0),
    connectTimeout: "5 seconds",
    drainTimeout: "2 seconds"
  }
  return overrides
})

/** The broker and connection of the flags, for one command. */
export const layer = (given: Flags) => Layer.unwrap(Effect.map(overridesOf(given), NatsBroker.layerConfig))

/** Runs `effect` connected as the flags say. */
export const provide =
  (given: Flags) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provide(effect, layer(given))
