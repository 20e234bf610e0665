/**
 * Three `nats-server` processes on loopback forming one JetStream cluster, owned by one test: nodes
 * `n1`..`n3`, each with its own client, route and monitoring ports and its own store, every node routed to
 * all three. Release stops them all and deletes their directories.
 *
 * Each node is a `NatsServer` started with cluster arguments, so it keeps that module's behaviour: a log in
 * memory (printed when the owning scope fails), stop (SIGTERM), kill (SIGKILL) and start again on the same
 * ports and store. On top of that the cluster answers who leads what, by asking JetStream itself
 * (`$JS.API.STREAM.INFO` / `CONSUMER.INFO` are answered by the current leader), and can make a leader
 * step down. Every wait is bounded and fails with a `NatsServerError` that says what it waited for.
 */
import { connect } from "@nats-io/transport-node"
import { Clock, Context, Duration, Effect, Exit, Layer, Schedule, Schema, Scope } from "effect"
import * as NatsServer from "./NatsServer.js"
import { NatsServerError } from "./NatsServer.js"

export type NodeName = "n1" | "n2" | "n3"

export const nodeNames: ReadonlyArray<NodeName> = ["n1", "n2", "n3"]

export interface Options {
  /** The cluster's name (`--cluster_name`); `c1` unless told. */
  readonly name?: string
  /** Extra command-line arguments for every node. */
  readonly args?: ReadonlyArray<string>
  /** The bound of every wait: the cluster forming, a node rejoining, a leader being known. 30 s unless told. */
  readonly timeout?: Duration.Input
}

export interface StartOptions {
  /** Also wait until the node is back in the JetStream meta group (the meta leader sees it current). */
  readonly rejoin?: boolean
}

/** One node: its server's handles (`url`, `port`, `storeDir`, `log`, `stop`, `kill`, `isRunning`) and more. */
export interface Node
  extends Pick<NatsServer.NatsServer, "url" | "port" | "storeDir" | "log" | "stop" | "kill" | "isRunning"> {
  /** The server name, `n1`..`n3`: what JetStream reports as a leader or a replica. */
  readonly name: NodeName
  readonly routePort: number
  readonly monitorPort: number
  /**
   * Start again on the same ports and store (nothing to do if it runs); waits until the node accepts clients
   * and, if asked, until it has rejoined.
   */
  readonly start: (options?: StartOptions) => Effect.Effect<void, NatsServerError>
}

export interface NatsCluster {
  readonly name: string
  readonly nodes: ReadonlyArray<Node>
  /** The client URLs of all nodes, for a client of the whole cluster. */
  readonly urls: ReadonlyArray<string>
  readonly url: (name: NodeName) => string
  /** The node of a server name as JetStream reports it; fails for a name that is not one of the nodes. */
  readonly nodeOf: (name: string) => Effect.Effect<Node, NatsServerError>
  /** Waits until every running node sees the same JetStream meta leader; returns its name. */
  readonly ready: Effect.Effect<NodeName, NatsServerError>
  /** The node leading `stream` now, waiting until one is elected. */
  readonly streamLeader: (stream: string) => Effect.Effect<NodeName, NatsServerError>
  /** The node leading the consumer now, waiting until one is elected. */
  readonly consumerLeader: (stream: string, consumer: string) => Effect.Effect<NodeName, NatsServerError>
  /** Asks the stream's leader to step down; returns the node that leads after it. */
  readonly stepDownStreamLeader: (stream: string) => Effect.Effect<NodeName, NatsServerError>
  /** Asks the consumer's leader to step down; returns the node that leads after it. */
  readonly stepDownConsumerLeader: (stream: string, consumer: string) => Effect.Effect<NodeName, NatsServerError>
}

export class NatsClusterService extends Context.Service<NatsClusterService, NatsCluster>()("test/NatsCluster") {}

const Name = Schema.Literals(nodeNames)

/** The part of `/jsz` that says who leads the meta group and whether its followers are current. */
const Jsz = Schema.Struct({
  meta_cluster: Schema.optionalKey(
    Schema.Struct({
      leader: Schema.optionalKey(Schema.String),
      replicas: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.String, current: Schema.Boolean })))
    })
  )
})

/** The part of a JetStream API reply the cluster reads: the leader, or the error. */
const ApiReply = Schema.Struct({
  cluster: Schema.optionalKey(Schema.Struct({ leader: Schema.optionalKey(Schema.String) })),
  error: Schema.optionalKey(
    Schema.Struct({ code: Schema.Number, err_code: Schema.optionalKey(Schema.Number), description: Schema.String })
  )
})

const ATTEMPT_TIMEOUT = Duration.seconds(1)
const POLL_INTERVAL = Duration.millis(100)

/** The same failure, saying which node it comes from. */
const withNode =
  (name: NodeName) =>
  <A, R>(effect: Effect.Effect<A, NatsServerError, R>): Effect.Effect<A, NatsServerError, R> =>
    Effect.mapError(
      effect,
      (error) =>
        new NatsServerError({
          message: `node ${name}: ${error.message}`,
          ...(error.log === undefined ? {} : { log: error.log })
        })
    )

/** The waits run on the wall clock even under a `TestClock`: the processes they wait for do. */
const wallClock = Clock.Clock.defaultValue()

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Six distinct free ports: a route and a monitoring port per node. */
const freePorts = Effect.gen(function* () {
  const ports = new Set<number>()
  while (ports.size < 6) ports.add(yield* NatsServer.freePort)
  return [...ports]
})

const startCluster = Effect.fnUntraced(function* (options: Options) {
  const clusterName = options.name ?? "c1"
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.seconds(30))
  const ports = yield* freePorts
  const routePortOf = (index: number) => ports[index] ?? 0
  const monitorPortOf = (index: number) => ports[index + 3] ?? 0
  const routes = nodeNames.map((_, index) => `nats://127.0.0.1:${routePortOf(index)}`).join(",")

  /**
   * Retries `attempt` every 100 ms while it fails with a string (not yet), for at most `timeout`; then fails
   * with what it waited for and the last string. A `NatsServerError` (never will) ends the wait at once.
   */
  const poll = <A>(attempt: Effect.Effect<A, string | NatsServerError>, waitingFor: string) =>
    attempt.pipe(
      Effect.timeoutOrElse({ duration: ATTEMPT_TIMEOUT, orElse: () => Effect.fail("no answer in 1 s") }),
      Effect.retry({
        while: (error) => typeof error === "string",
        schedule: Schedule.spaced(POLL_INTERVAL).pipe(Schedule.upTo({ duration: timeout }))
      }),
      Effect.mapError((last) =>
        typeof last === "string"
          ? new NatsServerError({ message: `${waitingFor}: not within ${Duration.format(timeout)} (${last})` })
          : last
      ),
      Effect.provideService(Clock.Clock, wallClock)
    )

  /**
   * Waits until the node's log says its route port listens for the `count`-th time. nats-server says it is
   * ready before it binds that port, and exits right after if the port is taken.
   */
  const routesListening = (name: NodeName, server: NatsServer.NatsServer, routePort: number, count: number) =>
    poll(
      Effect.gen(function* () {
        const log = yield* server.log
        if (log.split(`Listening for route connections on 127.0.0.1:${routePort}`).length > count) return
        if (yield* server.isRunning) return yield* Effect.fail(`route port ${routePort} not listening yet`)
        const lastLine = log.trimEnd().split("\n").at(-1) ?? ""
        return yield* Effect.fail(new NatsServerError({ message: `node ${name} exited: ${lastLine}`, log }))
      }),
      `node ${name} listening for routes`
    )

  const jsz = (monitorPort: number) =>
    Effect.tryPromise({
      try: (signal) => fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal }).then((reply) => reply.json()),
      catch: messageOf
    }).pipe(Effect.flatMap((body) => Schema.decodeUnknownEffect(Jsz)(body).pipe(Effect.mapError(messageOf))))

  const metaLeaderSeenBy = (node: { readonly name: NodeName; readonly monitorPort: number }) =>
    jsz(node.monitorPort).pipe(
      Effect.flatMap((reply) => {
        const leader = reply.meta_cluster?.leader ?? ""
        return Schema.is(Name)(leader) ? Effect.succeed(leader) : Effect.fail(`${node.name} sees no meta leader`)
      })
    )

  const started = yield* Effect.forEach(
    nodeNames,
    (name, index) =>
      NatsServer.make({
        args: [
          "--server_name",
          name,
          "--cluster_name",
          clusterName,
          "--cluster",
          `nats://127.0.0.1:${routePortOf(index)}`,
          "--routes",
          routes,
          "-m",
          String(monitorPortOf(index)),
          ...(options.args ?? [])
        ]
      }).pipe(
        withNode(name),
        Effect.tap((server) => routesListening(name, server, routePortOf(index), 1)),
        Effect.map((server) => ({ name, server, monitorPort: monitorPortOf(index), routePort: routePortOf(index) }))
      ),
    { concurrency: "unbounded" }
  )

  const running = Effect.filter(started, ({ server }) => server.isRunning)

  const rejoined = (name: NodeName, monitorPort: number) =>
    poll(
      Effect.gen(function* () {
        const leader = yield* metaLeaderSeenBy({ name, monitorPort })
        if (leader === name) return
        const leaderNode = started.find((node) => node.name === leader)
        const replicas =
          leaderNode === undefined ? [] : ((yield* jsz(leaderNode.monitorPort)).meta_cluster?.replicas ?? [])
        if (!replicas.some((replica) => replica.name === name && replica.current)) {
          return yield* Effect.fail(`meta leader ${leader} does not see ${name} current`)
        }
      }),
      `node ${name} rejoining the cluster`
    )

  const nodes: ReadonlyArray<Node> = started.map(({ name, server, monitorPort, routePort }) => ({
    name,
    url: server.url,
    port: server.port,
    routePort,
    monitorPort,
    storeDir: server.storeDir,
    log: server.log,
    stop: withNode(name)(server.stop),
    kill: withNode(name)(server.kill),
    start: (startOptions = {}) =>
      Effect.gen(function* () {
        if (yield* server.isRunning) return
        const starts = (yield* server.log).split(`Listening for route connections on 127.0.0.1:${routePort}`).length
        yield* withNode(name)(server.start)
        yield* routesListening(name, server, routePort, starts)
      }).pipe(Effect.andThen(startOptions.rejoin === true ? rejoined(name, monitorPort) : Effect.void)),
    isRunning: server.isRunning
  }))

  const ready = poll(
    Effect.gen(function* () {
      const up = yield* running
      if (up.length === 0) return yield* Effect.fail("no node is running")
      const leaders = yield* Effect.forEach(up, metaLeaderSeenBy, { concurrency: "unbounded" })
      const [first] = leaders
      if (first === undefined || leaders.some((leader) => leader !== first)) {
        return yield* Effect.fail(`running nodes see different meta leaders: ${leaders.join(", ")}`)
      }
      return first
    }),
    `cluster ${clusterName} forming with a JetStream meta leader`
  )

  /** One JetStream API request through a fresh connection to the running nodes. */
  const api = (subject: string) =>
    Effect.gen(function* () {
      const servers = (yield* running).map(({ server }) => server.url)
      if (servers.length === 0) return yield* Effect.fail("no node is running")
      const connection = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => connect({ servers, timeout: Duration.toMillis(ATTEMPT_TIMEOUT), reconnect: false }),
          catch: messageOf
        }),
        (connection) => Effect.ignore(Effect.tryPromise(() => connection.close()))
      )
      const body = yield* Effect.tryPromise({
        try: () =>
          connection
            .request(subject, "", { timeout: Duration.toMillis(ATTEMPT_TIMEOUT) })
            .then((reply) => reply.json()),
        catch: messageOf
      })
      const reply = yield* Schema.decodeUnknownEffect(ApiReply)(body).pipe(Effect.mapError(messageOf))
      if (reply.error !== undefined) {
        const { code, err_code, description } = reply.error
        const message = `${subject}: ${code}${err_code === undefined ? "" : `/${err_code}`} ${description}`
        // Not found will not change by waiting; anything else (503, 10008 no quorum...) may.
        return yield* Effect.fail(code === 404 ? new NatsServerError({ message }) : message)
      }
      return reply
    }).pipe(Effect.scoped)

  /** The leader named in the reply to `infoSubject`, once there is one other than `previous`. */
  const leaderOf = (infoSubject: string, what: string, previous?: NodeName) =>
    poll(
      Effect.flatMap(api(infoSubject), (reply) => {
        const leader = reply.cluster?.leader ?? ""
        if (!Schema.is(Name)(leader)) return Effect.fail(`no leader yet`)
        return leader === previous ? Effect.fail(`${previous} still leads`) : Effect.succeed(leader)
      }),
      previous === undefined ? `a leader for ${what}` : `a leader for ${what} other than ${previous}`
    )

  const stepDown = (stepDownSubject: string, infoSubject: string, what: string) =>
    Effect.gen(function* () {
      const previous = yield* leaderOf(infoSubject, what)
      // Once only: a second request would move the leadership again.
      yield* api(stepDownSubject).pipe(
        Effect.mapError(
          (cause) =>
            new NatsServerError({
              message: `stepdown of ${previous} for ${what}: ${typeof cause === "string" ? cause : cause.message}`
            })
        )
      )
      return yield* leaderOf(infoSubject, what, previous)
    })

  const nodeOf = (name: string) => {
    const node = nodes.find((candidate) => candidate.name === name)
    return node === undefined
      ? Effect.fail(new NatsServerError({ message: `no node ${JSON.stringify(name)} in cluster ${clusterName}` }))
      : Effect.succeed(node)
  }

  const cluster: NatsCluster = {
    name: clusterName,
    nodes,
    urls: nodes.map((node) => node.url),
    url: (name) => nodes.find((node) => node.name === name)?.url ?? "",
    nodeOf,
    ready,
    streamLeader: (stream) => leaderOf(`$JS.API.STREAM.INFO.${stream}`, `stream ${stream}`),
    consumerLeader: (stream, consumer) =>
      leaderOf(`$JS.API.CONSUMER.INFO.${stream}.${consumer}`, `consumer ${stream}/${consumer}`),
    stepDownStreamLeader: (stream) =>
      stepDown(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, `$JS.API.STREAM.INFO.${stream}`, `stream ${stream}`),
    stepDownConsumerLeader: (stream, consumer) =>
      stepDown(
        `$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.${consumer}`,
        `$JS.API.CONSUMER.INFO.${stream}.${consumer}`,
        `consumer ${stream}/${consumer}`
      )
  }
  yield* ready
  return cluster
})

/** A port taken by someone else between `freePort` and the node binding it. */
const portTaken = (error: NatsServerError): boolean =>
  `${error.message}\n${error.log ?? ""}`.includes("address already in use")

/**
 * Starts the three nodes in the current scope and waits until the cluster has a meta leader; a port taken
 * meanwhile by another process starts it again on fresh ports (three tries). Release stops every node
 * (SIGKILL if one does not exit in time) and deletes its directory.
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const outer = yield* Effect.scope
  const attempt = Effect.gen(function* () {
    const scope = yield* Scope.fork(outer, "parallel")
    return yield* startCluster(options).pipe(
      Scope.provide(scope),
      // A retried attempt's logs are noise; the last failure shows them.
      Effect.tapError((error) => Scope.close(scope, portTaken(error) ? Exit.void : Exit.fail(error)))
    )
  })
  return yield* Effect.retry(attempt, { times: 2, while: portTaken })
})

/** A scoped layer with one cluster for a whole `layer(...)` block. */
export const layer = (options: Options = {}): Layer.Layer<NatsClusterService, NatsServerError> =>
  Layer.effect(NatsClusterService, make(options))
