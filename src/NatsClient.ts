/**
 * The NATS connection as a service: one nats.js connection with its JetStream client and manager,
 * a stream of connection events, a health check and the server's version, living as long as a `Scope`.
 *
 * The first connect is retried on a `Schedule` while the failure is transient (never when the server
 * refuses the credentials); once connected, nats.js reconnects forever. Closing the scope drains the
 * connection (pending publishes are flushed, subscriptions finish) within `drainTimeout`, then closes
 * it. Publishing and consuming are not here: they belong to the brokers.
 *
 * @since 0.1.0
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node"
import {
  Clock,
  Config,
  ConfigProvider,
  Context,
  Data,
  Duration,
  Effect,
  Layer,
  Metric,
  PubSub,
  Ref,
  Schedule,
  type Scope,
  Stream
} from "effect"
import { formatDuration, formatMillis } from "./internal/durations.js"
import * as ConnectionOptions from "./internal/nats/connectionOptions.js"
import { fromCause, redactServer } from "./internal/nats/errors.js"
import { withOverrides } from "./internal/overrides.js"
import { supervise } from "./internal/supervise.js"
import * as Metrics from "./Metrics.js"
import * as NatsError from "./NatsError.js"

/**
 * Files for a TLS connection: a CA to trust the server by, and a client certificate with its key
 * when the server verifies clients.
 *
 * @category models
 * @since 0.1.0
 */
export interface TlsOptions extends ConnectionOptions.TlsOptions {}

/**
 * How to reach and authenticate to NATS. Every field is optional; times are `Duration.Input`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options extends ConnectionOptions.Options {}

/**
 * The first-connect retry policy: 200 ms doubling, jittered, at most 5 s apart, 6 retries
 * (7 attempts over about 11 s), so a service started together with its NATS server waits for it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const defaultConnectRetry: Schedule.Schedule<Duration.Duration> = Schedule.min([
  Schedule.exponential("200 millis").pipe(Schedule.jittered),
  Schedule.spaced("5 seconds")
]).pipe(Schedule.upTo({ times: 6 }))

/**
 * What happened to the connection. `Closed` is the last event of a `status` stream.
 *
 * @category models
 * @since 0.1.0
 */
export type ConnectionEvent = Data.TaggedEnum<{
  Disconnected: { readonly server: string }
  Reconnecting: {}
  Reconnected: { readonly server: string }
  Error: { readonly message: string }
  ServersChanged: { readonly added: ReadonlyArray<string>; readonly deleted: ReadonlyArray<string> }
  LameDuckMode: { readonly server: string }
  Stale: {}
  SlowConsumer: { readonly subject: string; readonly pending: number }
  ForceReconnect: {}
  Ping: { readonly pendingPings: number }
  Closed: {}
}>

/**
 * Constructors and guards of `ConnectionEvent`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ConnectionEvent = Data.taggedEnum<ConnectionEvent>()

/**
 * The connection service.
 *
 * @category services
 * @since 0.1.0
 */
export class NatsClient extends Context.Service<
  NatsClient,
  {
    readonly connection: NatsConnection
    readonly jetstream: JetStreamClient
    readonly manager: JetStreamManager
    /** Connection events from the moment of subscribing; ends with `Closed`. Each subscriber gets every event. */
    readonly status: Stream.Stream<ConnectionEvent>
    /**
     * The round trip to the server once JetStream has answered too (its account info request), or a
     * `NatsError`: `Closed` or `Disconnected` when the connection is down; a reason of operation
     * `health (JetStream)` when JetStream does not answer (not enabled on the server, no quorum in a
     * cluster: `NoResponders`, `Unavailable`); `Timeout` when the two together take longer than
     * `healthTimeout`.
     */
    readonly health: Effect.Effect<Duration.Duration, NatsError.NatsError>
    /** Whether the connection is up now: `false` while nats.js reconnects and once it is closed. No round trip. */
    readonly connected: Effect.Effect<boolean>
    /** The version of the server connected to last, e.g. "2.9.10". */
    readonly serverVersion: Effect.Effect<string>
    /** Whether the server connected to last honours `term(reason)` (nats-server 2.11 and later). */
    readonly supportsTermReason: Effect.Effect<boolean>
  }
>()("@glam/messaging/NatsClient") {}

/**
 * Whether a nats-server of this version honours `term(reason)`; older ones redeliver the message.
 *
 * @category guards
 * @since 0.1.0
 */
export const supportsTermReason = (version: string): boolean => {
  const [major = 0, minor = 0] = version.split(".").map((part) => Number.parseInt(part, 10))
  return major > 2 || (major === 2 && minor >= 11)
}

/** Our connection event for a nats.js status; server names lose any credentials. */
const toConnectionEvent = (status: Status): ConnectionEvent => {
  switch (status.type) {
    case "disconnect":
      return ConnectionEvent.Disconnected({ server: redactServer(status.server) })
    case "reconnecting":
      return ConnectionEvent.Reconnecting()
    case "reconnect":
      return ConnectionEvent.Reconnected({ server: redactServer(status.server) })
    case "error":
      return ConnectionEvent.Error({ message: status.error.message })
    case "update":
      return ConnectionEvent.ServersChanged({ added: status.added ?? [], deleted: status.deleted ?? [] })
    case "ldm":
      return ConnectionEvent.LameDuckMode({ server: redactServer(status.server) })
    case "staleConnection":
      return ConnectionEvent.Stale()
    case "slowConsumer":
      return ConnectionEvent.SlowConsumer({ subject: status.sub.getSubject(), pending: status.pending })
    case "forceReconnect":
      return ConnectionEvent.ForceReconnect()
    case "ping":
      return ConnectionEvent.Ping({ pendingPings: status.pendingPings })
    case "close":
      return ConnectionEvent.Closed()
  }
}

const logEvent = ConnectionEvent.$match({
  Disconnected: ({ server }) => Effect.logWarning(`NATS disconnected from ${server}`),
  Reconnecting: () => Effect.logDebug("NATS reconnecting"),
  Reconnected: ({ server }) => Effect.logInfo(`NATS reconnected to ${server}`),
  Error: ({ message }) => Effect.logWarning(`NATS error: ${message}`),
  ServersChanged: ({ added, deleted }) =>
    // nats.js reports an update with both lists empty on each reconnect: a line that says nothing changed.
    added.length === 0 && deleted.length === 0
      ? Effect.void
      : Effect.logInfo(`NATS servers changed: added [${added.join(", ")}], deleted [${deleted.join(", ")}]`),
  LameDuckMode: ({ server }) => Effect.logWarning(`NATS server ${server} entered lame duck mode`),
  Stale: () => Effect.logWarning("NATS connection is stale (no PONG); reconnecting"),
  SlowConsumer: ({ subject, pending }) => Effect.logWarning(`NATS slow consumer on ${subject}: ${pending} pending`),
  ForceReconnect: () => Effect.logInfo("NATS reconnect forced"),
  Ping: ({ pendingPings }) => Effect.logDebug(`NATS ping, ${pendingPings} pending`),
  Closed: () => Effect.logInfo("NATS connection closed")
})

/** The operation a failure of the JetStream half of `health` is reported under. */
const jetStreamHealth = "health (JetStream)"

/**
 * The service over a connection, with the status fiber in the current scope. `events` is ended
 * with `Closed` by whoever owns the connection.
 */
const makeService = Effect.fnUntraced(function* (
  connection: NatsConnection,
  events: PubSub.PubSub<ConnectionEvent>,
  healthTimeout: Duration.Input
) {
  // The iterator being read; a new one replaces it when the watcher starts again.
  let statusIterable: AsyncIterable<unknown> | undefined
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (statusIterable !== undefined) ConnectionOptions.stopStatusIterator(statusIterable)
    })
  )
  // Read once: a client made without `Metrics.layer` pays nothing per connection event.
  const metricsEnabled = yield* Metrics.Enabled
  const connected = yield* Ref.make(!connection.isClosed())
  const version = yield* Ref.make(connection.info?.version ?? "")
  // Computed once per server connected to, not at every term.
  const termReason = yield* Ref.make(supportsTermReason(connection.info?.version ?? ""))
  // When the connection dropped, so that the reconnect says how long it was gone.
  let disconnectedAt: number | undefined
  const track = (event: ConnectionEvent) => {
    switch (event._tag) {
      case "Disconnected":
        return Effect.andThen(
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              disconnectedAt ??= now
            })
          ),
          Ref.set(connected, false)
        )
      case "Closed":
        return Ref.set(connected, false)
      case "Reconnected":
        // Another server of a cluster may run another version.
        return Effect.all([
          Ref.set(connected, true),
          metricsEnabled ? Metric.update(Metrics.reconnects, 1) : Effect.void,
          Effect.flatMap(
            Ref.updateAndGet(version, (last) => connection.info?.version ?? last),
            (current) => Ref.set(termReason, supportsTermReason(current))
          )
        ])
      default:
        return Effect.void
    }
  }
  const log = (event: ConnectionEvent) => {
    if (event._tag !== "Reconnected" || disconnectedAt === undefined) return logEvent(event)
    const since = disconnectedAt
    disconnectedAt = undefined
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.logInfo(`NATS reconnected to ${event.server} after ${formatMillis(now - since)}`)
    )
  }
  // Supervised: a watcher that fails is logged and started again on a fresh iterator, so that the
  // connection's state (and `health`) never goes stale. Its iterator ends when the connection is
  // closed for good; then there is nothing left to watch.
  const watch = Effect.suspend(() => {
    const iterable = connection.status()
    statusIterable = iterable
    return Stream.fromAsyncIterable(iterable, (cause) => cause).pipe(
      Stream.map(toConnectionEvent),
      Stream.runForEach((event) => Effect.all([track(event), log(event), PubSub.publish(events, event)]))
    )
  }).pipe(
    Effect.andThen(() =>
      connection.isClosed() ? Effect.never : Effect.fail("its status iterator ended while the connection is open")
    )
  )
  yield* supervise({ name: "NATS status watcher" }, (up) => Effect.andThen(up, watch)).pipe(Effect.forkScoped)

  const manager = yield* Effect.tryPromise({
    // Checking the JetStream API here would fail the whole connection while JetStream is still starting.
    try: () => jetstreamManager(connection, { checkAPI: false }),
    catch: fromCause("jetstreamManager")
  })

  const unhealthy = (reason: NatsError.NatsErrorReason, operation = "health") =>
    Effect.fail(NatsError.make(operation, reason))
  const health = Effect.suspend(() => {
    // Which half of this check the timeout cut: the round trip, or JetStream's answer.
    let waitingForJetStream = false
    return Effect.gen(function* () {
      if (connection.isClosed()) {
        return yield* unhealthy(new NatsError.Closed({ message: "the connection is closed" }))
      }
      if (!(yield* Ref.get(connected))) {
        return yield* unhealthy(new NatsError.Disconnected({ message: "disconnected; reconnecting" }))
      }
      const millis = yield* Effect.tryPromise({ try: () => connection.rtt(), catch: fromCause("health") })
      // A connection round trip alone stays fine while a cluster has lost its JetStream quorum.
      waitingForJetStream = true
      yield* Effect.tryPromise({
        try: () => manager.getAccountInfo(),
        catch: fromCause(jetStreamHealth, { subject: "$JS.API.INFO" })
      })
      return Duration.millis(millis)
    }).pipe(
      Effect.timeoutOrElse({
        duration: healthTimeout,
        orElse: () =>
          waitingForJetStream
            ? unhealthy(
                new NatsError.Timeout({ message: `JetStream did not answer within ${formatDuration(healthTimeout)}` }),
                jetStreamHealth
              )
            : unhealthy(new NatsError.Timeout({ message: `no answer within ${formatDuration(healthTimeout)}` }))
      })
    )
  }).pipe(Effect.withSpan("NatsClient.health"))

  return NatsClient.of({
    connection,
    jetstream: jetstream(connection),
    manager,
    status: Stream.fromPubSub(events).pipe(Stream.takeUntil(ConnectionEvent.$is("Closed"))),
    health,
    connected: Effect.map(Ref.get(connected), (up) => up && !connection.isClosed()),
    serverVersion: Ref.get(version),
    supportsTermReason: Ref.get(termReason)
  })
})

const drainThenClose = (connection: NatsConnection, drainTimeout: Duration.Input) =>
  Effect.gen(function* () {
    if (connection.isClosed()) return
    const drained = yield* Effect.tryPromise({ try: () => connection.drain(), catch: fromCause("drain") }).pipe(
      Effect.timeout(drainTimeout),
      Effect.result
    )
    if (drained._tag === "Success") return yield* Effect.logInfo("NATS connection drained and closed")
    yield* Effect.logWarning(`NATS drain did not finish (${drained.failure.message}); closing the connection`)
    yield* Effect.tryPromise(() => connection.close()).pipe(Effect.timeout(drainTimeout), Effect.ignore)
  })

/** `make`, with errors about the options calling them by `names`. */
const makeNamed = Effect.fnUntraced(function* (
  options: Options,
  names: ConnectionOptions.Names
): Effect.fn.Return<NatsClient["Service"], NatsError.NatsError, Scope.Scope> {
  const connectionOptions = yield* ConnectionOptions.toConnectionOptions(options, names)
  const servers = ConnectionOptions.redactedServersOf(options)
  const events = yield* PubSub.sliding<ConnectionEvent>(256)
  const attempts = yield* Ref.make(0)
  const connectOnce = Effect.gen(function* () {
    const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
    yield* Effect.logDebug(`NATS connect attempt ${attempt} to ${servers.join(", ")}`)
    return yield* Effect.tryPromise({ try: () => connect(connectionOptions), catch: fromCause("connect", { servers }) })
  }).pipe(Effect.tapError((error) => Effect.logWarning(`NATS connect failed: ${error.message}`)))

  const connection = yield* Effect.acquireRelease(connectOnce, (connection) =>
    Effect.andThen(
      drainThenClose(connection, options.drainTimeout ?? ConnectionOptions.defaults.drainTimeout),
      PubSub.end(events, ConnectionEvent.Closed())
    )
  ).pipe(Effect.retry({ while: (error) => error.isRetryable, schedule: options.connectRetry ?? defaultConnectRetry }))
  yield* Effect.logInfo(
    `NATS connected to ${redactServer(connection.getServer())} (server ${connection.info?.version})`
  )
  return yield* makeService(connection, events, options.healthTimeout ?? ConnectionOptions.defaults.healthTimeout)
})

/**
 * Connects, retrying the first connect on `options.connectRetry`; closing the current scope drains
 * and closes the connection.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<NatsClient["Service"], NatsError.NatsError, Scope.Scope> =>
  makeNamed(options, ConnectionOptions.fieldNames)

/**
 * Adapts a connection made elsewhere. The caller keeps owning it: closing the scope stops watching
 * it and ends `status`, but neither drains nor closes it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromConnection = Effect.fnUntraced(function* (
  connection: NatsConnection,
  options: { readonly healthTimeout?: Duration.Input | undefined } = {}
): Effect.fn.Return<NatsClient["Service"], NatsError.NatsError, Scope.Scope> {
  const events = yield* PubSub.sliding<ConnectionEvent>(256)
  yield* Effect.addFinalizer(() => PubSub.end(events, ConnectionEvent.Closed()))
  return yield* makeService(connection, events, options.healthTimeout ?? ConnectionOptions.defaults.healthTimeout)
})

/**
 * The connection as a layer: connected when the layer is built, drained and closed when it is released.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<NatsClient, NatsError.NatsError> =>
  Layer.effect(NatsClient, make(options))

const optionalString = (name: string) => Config.String(name).pipe(Config.withDefault(undefined))
const optionalSecret = (name: string) => Config.Redacted(name).pipe(Config.withDefault(undefined))

/**
 * The options read from the environment: `NATS_SERVERS` (comma-separated `nats://` or `tls://`
 * URLs), `NATS_USER`, `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_NKEY_SEED`, `NATS_CREDS_FILE`,
 * `NATS_TLS_CA_FILE`, `NATS_TLS_CERT_FILE`, `NATS_TLS_KEY_FILE` and `NATS_NAME`. Secrets are read as
 * `Redacted`. An unset `NATS_SERVERS` leaves `servers` unset (`make` then uses
 * `nats://127.0.0.1:4222`); one without a valid URL is a `ConfigError` naming the variable.
 *
 * **Gotchas**
 *
 * Effect's environment provider reads an empty variable as unset. `layerConfig` still refuses an
 * empty `NATS_SERVERS`; parsing `config` yourself, use a provider with `preserveEmptyStrings: true`
 * for that.
 *
 * @category constructors
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  servers: Config.schema(ConnectionOptions.ServerList, "NATS_SERVERS").pipe(Config.withDefault(undefined)),
  user: optionalString("NATS_USER"),
  password: optionalSecret("NATS_PASSWORD"),
  token: optionalSecret("NATS_TOKEN"),
  nkeySeed: optionalSecret("NATS_NKEY_SEED"),
  credsFile: optionalString("NATS_CREDS_FILE"),
  caFile: optionalString("NATS_TLS_CA_FILE"),
  certFile: optionalString("NATS_TLS_CERT_FILE"),
  keyFile: optionalString("NATS_TLS_KEY_FILE"),
  name: optionalString("NATS_NAME")
}).pipe(
  Config.map(
    ({ caFile, certFile, keyFile, ...rest }): Options =>
      caFile === undefined && certFile === undefined && keyFile === undefined
        ? rest
        : { ...rest, tls: { caFile, certFile, keyFile } }
  )
)

/**
 * The connection as a layer configured from the environment (see `config`); `overrides` win over
 * what the environment says (e.g. `{ name, connectRetry }`) where they are set: an override whose
 * value is `undefined` leaves the environment's value in place. An empty `NATS_SERVERS` is a
 * `ConfigError` whatever the provider makes of empty values; an unset one is logged (INFO) with the
 * default server used instead. Errors about a file or a seed name the variable it came from.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  overrides: Options = {}
): Layer.Layer<NatsClient, NatsError.NatsError | Config.ConfigError> =>
  Layer.effect(
    NatsClient,
    Effect.gen(function* () {
      const provider = yield* ConfigProvider.ConfigProvider
      const fromConfig = yield* config.parse(ConnectionOptions.keepingEmpty(provider, "NATS_SERVERS"))
      // An override left `undefined` (`{ servers: process.env.X }`) keeps what the environment says.
      const options = withOverrides(fromConfig, overrides)
      if (options.servers === undefined) {
        yield* Effect.logWarning(
          `NATS_SERVERS is not set: connecting to ${ConnectionOptions.defaultServers.join(", ")}, the default`
        )
      }
      return yield* makeNamed(options, ConnectionOptions.namesOf(overrides))
    })
  )
