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
  tokenAuthenticator,
  usernamePasswordAuthenticator
} from "@nats-io/transport-node"
import {
  ConfigProvider,
  Duration,
  Effect,
  Predicate,
  Redacted,
  type Schedule,
  Schema,
  SchemaTransformation
} from "effect"
import * as NatsError from "../../NatsError.js"
import { redactServer } from "./errors.js"

/**
 * Files for a TLS connection: a CA to trust the server by, and a client certificate with its key
 * when the server verifies clients.
 */
export interface TlsOptions {
  readonly caFile?: string | undefined
  readonly certFile?: string | undefined
  readonly keyFile?: string | undefined
}

/**
 * How to reach and authenticate to NATS. Every field is optional; times are `Duration.Input`.
 */
export interface Options {
  /** `nats://host:port` or `tls://host:port`, one or many (a cluster). Default `nats://127.0.0.1:4222`. */
  readonly servers?: string | ReadonlyArray<string> | undefined
  readonly user?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  readonly token?: Redacted.Redacted<string> | undefined
  /** The text of a user NKey seed (`SU...`). */
  readonly nkeySeed?: Redacted.Redacted<string> | undefined
  /** Path of a `.creds` file (user JWT and NKey seed). */
  readonly credsFile?: string | undefined
  /** Set (even to `{}`) to require TLS. */
  readonly tls?: TlsOptions | undefined
  /** The client name the server shows in its monitoring. */
  readonly name?: string | undefined
  /** When to try the first connect again after a transient failure. Default `defaultConnectRetry`. */
  readonly connectRetry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
  /** Pause between reconnect attempts once connected; they never stop. Default 2 seconds. */
  readonly reconnectWait?: Duration.Input | undefined
  /** Bound of one connect attempt (TCP, TLS and handshake). Default 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** Bound of the drain on release, after which the connection is closed anyway. Default 5 seconds. */
  readonly drainTimeout?: Duration.Input | undefined
  /** Bound of one `health` check. Default 2 seconds. */
  readonly healthTimeout?: Duration.Input | undefined
}

/** Where nats-server listens by default. */
export const defaultServers: ReadonlyArray<string> = ["nats://127.0.0.1:4222"]

/** The defaults of the options that have one. */
export const defaults = {
  reconnectWait: Duration.seconds(2),
  connectTimeout: Duration.seconds(5),
  drainTimeout: Duration.seconds(5),
  healthTimeout: Duration.seconds(2)
} as const

/** What error messages call each option that can be wrong. */
export interface Names {
  readonly user: string
  readonly password: string
  readonly nkeySeed: string
  readonly credsFile: string
  readonly caFile: string
  readonly certFile: string
  readonly keyFile: string
}

/** The names of `NatsClient.Options` fields, for options given in code. */
export const fieldNames: Names = {
  user: "user",
  password: "password",
  nkeySeed: "nkeySeed",
  credsFile: "credsFile",
  caFile: "tls.caFile",
  certFile: "tls.certFile",
  keyFile: "tls.keyFile"
}

/** The environment variables the options are read from, so that an operator knows what to fix. */
export const variableNames: Names = {
  user: "NATS_USER",
  password: "NATS_PASSWORD",
  nkeySeed: "NATS_NKEY_SEED",
  credsFile: "NATS_CREDS_FILE",
  caFile: "NATS_TLS_CA_FILE",
  certFile: "NATS_TLS_CERT_FILE",
  keyFile: "NATS_TLS_KEY_FILE"
}

/** The names for options read from the environment with `overrides` on top: an overridden option came from code. */
export const namesOf = (overrides: Options): Names => {
  const pick = (key: keyof Names, overridden: boolean) => (overridden ? fieldNames : variableNames)[key]
  // An overriding `tls` replaces all three files read from the environment.
  const tls = overrides.tls !== undefined
  return {
    user: pick("user", overrides.user !== undefined),
    password: pick("password", overrides.password !== undefined),
    nkeySeed: pick("nkeySeed", overrides.nkeySeed !== undefined),
    credsFile: pick("credsFile", overrides.credsFile !== undefined),
    caFile: pick("caFile", tls),
    certFile: pick("certFile", tls),
    keyFile: pick("keyFile", tls)
  }
}

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

/** Reads the file `name` gives; the error says which option it was and what it should hold. */
const readBytes = (name: string, path: string, expected: string): Effect.Effect<Uint8Array, NatsError.NatsError> =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (cause) =>
      invalid(
        `cannot read ${name} ${path} (${cause instanceof Error ? cause.message : String(cause)}): give the path of ${expected}`,
        cause
      )
  })

const readText = (
  name: string,
  path: string | undefined,
  expected: string
): Effect.Effect<string | undefined, NatsError.NatsError> =>
  path === undefined
    ? Effect.undefined
    : Effect.map(readBytes(name, path, expected), (bytes) => Buffer.from(bytes).toString("utf8"))

const encoder = new TextEncoder()

const authenticatorsOf = Effect.fnUntraced(function* (options: Options, names: Names) {
  const authenticators: Array<Authenticator> = []
  const { user, password, token, nkeySeed, credsFile } = options
  if (user !== undefined) {
    authenticators.push(
      usernamePasswordAuthenticator(user, password === undefined ? undefined : () => Redacted.value(password))
    )
  } else if (password !== undefined) {
    return yield* invalid(`${names.password} is set without ${names.user}: a password goes with its user`)
  }
  if (token !== undefined) authenticators.push(tokenAuthenticator(() => Redacted.value(token)))
  if (nkeySeed !== undefined) {
    const seed = () => encoder.encode(Redacted.value(nkeySeed))
    yield* Effect.try({
      try: () => nkeys.fromSeed(seed()),
      // The parser's message may quote the seed: keep it out of the error.
      catch: () => invalid(`${names.nkeySeed} is not a valid NKey seed: give the text of a user seed (SU...)`)
    })
    authenticators.push(nkeyAuthenticator(seed))
  }
  if (credsFile !== undefined) {
    const creds = yield* readBytes(names.credsFile, credsFile, "a .creds file (user JWT and NKey seed)")
    const authenticator = credsAuthenticator(creds)
    // Signing a probe parses the JWT and the seed now, so a bad file fails before any connect attempt.
    yield* Effect.try({
      try: () => authenticator("probe"),
      catch: () =>
        invalid(`${names.credsFile} ${credsFile} holds no user JWT and NKey seed: give a .creds file as nsc writes it`)
    })
    authenticators.push(authenticator)
  }
  return authenticators
})

const tlsOf = Effect.fnUntraced(function* (options: Options, names: Names) {
  const tls = options.tls
  if (tls === undefined) return undefined
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    return yield* invalid(
      `${names.certFile} and ${names.keyFile} go together: set both (a client certificate and its key) or neither`
    )
  }
  const [ca, cert, key] = yield* Effect.all([
    readText(names.caFile, tls.caFile, "a CA certificate (PEM)"),
    readText(names.certFile, tls.certFile, "a client certificate (PEM)"),
    readText(names.keyFile, tls.keyFile, "the client certificate's private key (PEM)")
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
 * `Error` connection events meanwhile. Errors call the options by `names`.
 */
export const toConnectionOptions = Effect.fnUntraced(function* (options: Options, names: Names = fieldNames) {
  const servers = serversOf(options)
  if (servers.length === 0) return yield* invalid("no NATS server given")
  const authenticators = yield* authenticatorsOf(options, names)
  const tls = yield* tlsOf(options, names)
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

const serversExample = "e.g. nats://host:4222 or nats://n1:4222,nats://n2:4222"

/** `nats://` or `tls://`, a host, an optional port, and nothing after them. */
const isServerUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  const parsed = new URL(url)
  return (
    (parsed.protocol === "nats:" || parsed.protocol === "tls:") &&
    parsed.hostname !== "" &&
    (parsed.pathname === "" || parsed.pathname === "/") &&
    parsed.search === "" &&
    parsed.hash === ""
  )
}

const ServerUrl = Schema.String.check(
  Schema.makeFilter((url: string) =>
    url === ""
      ? `NATS_SERVERS has an empty entry: give server URLs separated by single commas, ${serversExample}`
      : isServerUrl(url) ||
        `NATS_SERVERS entry ${JSON.stringify(redactServer(url))} is not a server URL: give nats://host:port or tls://host:port`
  )
)

/**
 * `NATS_SERVERS`: a comma-separated string (as in the environment) or a list, of at least one
 * `nats://` or `tls://` URL. A value with no URL at all (empty, or only commas and spaces) is refused
 * rather than read as unset, which would mean localhost.
 */
export const ServerList = Schema.Union([Schema.String, Schema.Array(Schema.String)]).pipe(
  Schema.decodeTo(
    Schema.Array(ServerUrl).check(
      Schema.isMinLength(1, {
        message: `NATS_SERVERS is empty: give one or more server URLs separated by commas, ${serversExample}`
      })
    ),
    SchemaTransformation.transform<ReadonlyArray<string>, string | ReadonlyArray<string>>({
      decode: (raw) => {
        const entries = (typeof raw === "string" ? raw.split(",") : raw).map((entry) => entry.trim())
        return entries.every((entry) => entry === "") ? [] : entries
      },
      encode: (servers) => servers
    })
  )
)

/**
 * `provider`, except that the variable `name` set to an empty string reads as `""` instead of as
 * unset. Effect's environment provider drops empty values unless built with `preserveEmptyStrings`,
 * so `NATS_SERVERS=` would silently mean the default server. The variable still shows among its
 * parent's keys: at the root for a flat record, under its first segments for the environment
 * (which splits names on `_`).
 */
export const keepingEmpty = (provider: ConfigProvider.ConfigProvider, name: string): ConfigProvider.ConfigProvider => {
  const segments = name.split("_")
  const listedUnder = (parent: ConfigProvider.Path, key: string) =>
    Effect.map(provider.load(parent), (node) => node?._tag === "Record" && node.keys.has(key))
  const isListed = Effect.map(
    Effect.all([listedUnder([], name), listedUnder(segments.slice(0, -1), segments.at(-1) ?? name)]),
    ([flat, nested]) => flat || nested
  ).pipe(
    // Only a probe: a provider that cannot list its keys keeps its own reading of the variable.
    Effect.orElseSucceed(() => false)
  )
  return ConfigProvider.make((path) =>
    Effect.flatMap(provider.load(path), (node) =>
      node !== undefined || path.length !== 1 || path[0] !== name
        ? Effect.succeed(node)
        : Effect.map(isListed, (listed) => (listed ? ConfigProvider.makeValue("") : undefined))
    )
  )
}
