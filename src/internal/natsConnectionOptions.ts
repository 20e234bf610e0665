/**
 * Translates `NatsClient.Options` into nats.js `NodeConnectionOptions`: reads the credentials and
 * certificate files, builds the nats.js authenticators, and fixes the reconnect policy. Also the
 * other direction: nats.js status notifications into `NatsClient.ConnectionEvent`s.
 *
 * Everything that can be wrong in the options (a missing file, an unreadable creds file, a malformed
 * NKey seed) fails here, before any connect attempt. Secrets stay `Redacted` until an authenticator
 * asks for them, so the options object holds no plain secret. Not for users.
 */
import { readFile } from "node:fs/promises"
import {
  type Authenticator,
  credsAuthenticator,
  type NodeConnectionOptions,
  nkeyAuthenticator,
  nkeys,
  type Status,
  tokenAuthenticator,
  usernamePasswordAuthenticator
} from "@nats-io/transport-node"
import { Data, Duration, Effect, Predicate, Redacted, Schema, SchemaTransformation } from "effect"
import type { ConnectionEvent, Options } from "../NatsClient.js"
import * as NatsError from "../NatsError.js"
import { redactServer } from "./natsErrors.js"

/** Where nats-server listens by default. */
export const defaultServers: ReadonlyArray<string> = ["nats://127.0.0.1:4222"]

/** The defaults of the options that have one. */
export const defaults = {
  reconnectWait: Duration.seconds(2),
  connectTimeout: Duration.seconds(5),
  drainTimeout: Duration.seconds(5),
  healthTimeout: Duration.seconds(2)
} as const

/** The servers of the options, as a list. */
export const serversOf = (options: Options): ReadonlyArray<string> =>
  options.servers === undefined
    ? defaultServers
    : typeof options.servers === "string"
      ? [options.servers]
      : options.servers

/** The servers as they may appear in logs and errors. */
export const redactedServersOf = (options: Options): ReadonlyArray<string> => serversOf(options).map(redactServer)

const invalid = (message: string, cause?: unknown): NatsError.NatsError =>
  NatsError.make("connect", new NatsError.Other({ message, cause }))

const readBytes = (what: string, path: string): Effect.Effect<Uint8Array, NatsError.NatsError> =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (cause) =>
      invalid(`cannot read the ${what} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
  })

const readText = (what: string, path: string | undefined): Effect.Effect<string | undefined, NatsError.NatsError> =>
  path === undefined
    ? Effect.undefined
    : Effect.map(readBytes(what, path), (bytes) => Buffer.from(bytes).toString("utf8"))

const encoder = new TextEncoder()

const authenticatorsOf = Effect.fnUntraced(function* (options: Options) {
  const authenticators: Array<Authenticator> = []
  const { user, password, token, nkeySeed, credsFile } = options
  if (user !== undefined) {
    authenticators.push(
      usernamePasswordAuthenticator(user, password === undefined ? undefined : () => Redacted.value(password))
    )
  } else if (password !== undefined) {
    return yield* invalid("a password is set without a user")
  }
  if (token !== undefined) authenticators.push(tokenAuthenticator(() => Redacted.value(token)))
  if (nkeySeed !== undefined) {
    const seed = () => encoder.encode(Redacted.value(nkeySeed))
    yield* Effect.try({
      try: () => nkeys.fromSeed(seed()),
      // The parser's message may quote the seed: keep it out of the error.
      catch: () => invalid("the NKey seed is not a valid NKey seed (expected the SU... text of a user seed)")
    })
    authenticators.push(nkeyAuthenticator(seed))
  }
  if (credsFile !== undefined) {
    const creds = yield* readBytes("creds file", credsFile)
    const authenticator = credsAuthenticator(creds)
    // Signing a probe parses the JWT and the seed now, so a bad file fails before any connect attempt.
    yield* Effect.try({
      try: () => authenticator("probe"),
      catch: () => invalid(`the creds file ${credsFile} holds no user JWT and NKey seed`)
    })
    authenticators.push(authenticator)
  }
  return authenticators
})

const tlsOf = Effect.fnUntraced(function* (options: Options) {
  const tls = options.tls
  if (tls === undefined) return undefined
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    return yield* invalid("tls.certFile and tls.keyFile go together: set both or neither")
  }
  const [ca, cert, key] = yield* Effect.all([
    readText("TLS CA file", tls.caFile),
    readText("TLS certificate file", tls.certFile),
    readText("TLS key file", tls.keyFile)
  ])
  const out: NonNullable<NodeConnectionOptions["tls"]> = {}
  if (ca !== undefined) out.ca = ca
  if (cert !== undefined) out.cert = cert
  if (key !== undefined) out.key = key
  return out
})

/**
 * The nats.js options for `options`. Reconnects never stop (`maxReconnectAttempts: -1`), and
 * nats.js's habit of giving up after two authentication errors in a row is switched off: a service
 * whose credentials are fixed on the server recovers without a restart, and the failures show up as
 * `Error` connection events meanwhile.
 */
export const toConnectionOptions = Effect.fnUntraced(function* (options: Options) {
  const servers = serversOf(options)
  if (servers.length === 0) return yield* invalid("no NATS server given")
  const authenticators = yield* authenticatorsOf(options)
  const tls = yield* tlsOf(options)
  const connectionOptions: NodeConnectionOptions = {
    servers: [...servers],
    maxReconnectAttempts: -1,
    ignoreAuthErrorAbort: true,
    // nats.js builds an Error with a stack for every request, to report where a failure came from;
    // that was about a third of a publish's client CPU, and our spans and typed errors say it instead.
    noAsyncTraces: true,
    reconnectTimeWait: Duration.toMillis(options.reconnectWait ?? defaults.reconnectWait),
    timeout: Duration.toMillis(options.connectTimeout ?? defaults.connectTimeout)
  }
  if (options.name !== undefined) connectionOptions.name = options.name
  if (authenticators.length > 0) connectionOptions.authenticator = authenticators
  if (tls !== undefined) connectionOptions.tls = tls
  return connectionOptions
})

/**
 * Stops a nats.js status iterator. Its async generator cannot be returned while it waits for the
 * next status, so without this an abandoned iterator stays registered on the connection.
 */
export const stopStatusIterator = (iterable: AsyncIterable<unknown>): void => {
  if (Predicate.hasProperty(iterable, "stop") && typeof iterable.stop === "function") iterable.stop()
}

const ServerUrl = Schema.Trim.check(
  Schema.makeFilter(
    (url: string) =>
      /^(nats|tls):\/\/[^\s,]+$/.test(url) ||
      `${JSON.stringify(redactServer(url))} is not a NATS server URL (expected nats://host:port or tls://host:port)`
  )
)

/** A comma-separated string (as in the environment) or a list, of at least one `nats://` or `tls://` URL. */
export const ServerList = Schema.Union([Schema.String, Schema.Array(Schema.String)]).pipe(
  Schema.decodeTo(
    Schema.Array(ServerUrl).check(
      Schema.isMinLength(1, { message: "expected at least one NATS server URL (nats://host:port or tls://host:port)" })
    ),
    SchemaTransformation.transform<ReadonlyArray<string>, string | ReadonlyArray<string>>({
      decode: (raw) => (typeof raw !== "string" ? raw : raw.trim() === "" ? [] : raw.split(",")),
      encode: (servers) => servers
    })
  )
)

const Event = Data.taggedEnum<ConnectionEvent>()

/** Our connection event for a nats.js status; server names lose any credentials. */
export const toConnectionEvent = (status: Status): ConnectionEvent => {
  switch (status.type) {
    case "disconnect":
      return Event.Disconnected({ server: redactServer(status.server) })
    case "reconnecting":
      return Event.Reconnecting()
    case "reconnect":
      return Event.Reconnected({ server: redactServer(status.server) })
    case "error":
      return Event.Error({ message: status.error.message })
    case "update":
      return Event.ServersChanged({ added: status.added ?? [], deleted: status.deleted ?? [] })
    case "ldm":
      return Event.LameDuckMode({ server: redactServer(status.server) })
    case "staleConnection":
      return Event.Stale()
    case "slowConsumer":
      return Event.SlowConsumer({ subject: status.sub.getSubject(), pending: status.pending })
    case "forceReconnect":
      return Event.ForceReconnect()
    case "ping":
      return Event.Ping({ pendingPings: status.pendingPings })
    case "close":
      return Event.Closed()
  }
}
