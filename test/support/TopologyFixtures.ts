import { Clock, Duration, Effect, Layer, Logger, Option, References } from "effect"
import { Broker, type StreamConfig, type StreamInfo } from "../../src/Broker.js"
import * as MemoryBroker from "../../src/MemoryBroker.js"
import * as NatsBroker from "../../src/NatsBroker.js"
import * as NatsClient from "../../src/NatsClient.js"
import * as NatsError from "../../src/NatsError.js"
import * as NatsServer from "./NatsServer.js"

export const Env = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
  ),
  Layer.provideMerge(NatsServer.layer())
)

export const bytes = (text: string) => new TextEncoder().encode(text)

export const streamConfigOf = (name: string) =>
  Broker.use((broker) => broker.streamInfo(name)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.config)
  )

export const consumerConfigOf = (stream: string, name: string) =>
  Broker.use((broker) => broker.consumerInfo(stream, name)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.config)
  )

export const publish = (subject: string, text: string) =>
  Broker.use((broker) => broker.publish({ subject, payload: bytes(text), headers: [], timeout: Duration.seconds(5) }))

export interface LogLine {
  readonly level: string
  readonly message: string
}

/** Runs `effect` with every log line (any level) kept; the lines are read after it ends. */
export const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const lines: Array<LogLine> = []
    const capture = Logger.make((options) => {
      lines.push({ level: options.logLevel, message: String(options.message) })
    })
    const exit = yield* effect.pipe(
      Effect.provide(Logger.layer([capture])),
      Effect.provideService(References.MinimumLogLevel, "All"),
      Effect.exit
    )
    return { exit, lines }
  })

export const topologyLines = (lines: ReadonlyArray<LogLine>) =>
  lines.filter((line) => line.message.startsWith("Topology:"))

/**
 * The in-memory broker with replicas kept as a cluster keeps them: a single server (and so the memory
 * broker) refuses more than one, so the stream is stored with one and the replicas asked for are
 * remembered and reported back. `updates` lists every stream update that reached it.
 */
export const clusterLike = Effect.gen(function* () {
  const memory = yield* MemoryBroker.make
  const replicas = new Map<string, number>()
  const updates: Array<StreamConfig> = []
  const reported = (info: StreamInfo): StreamInfo => ({
    ...info,
    config: { ...info.config, replicas: replicas.get(info.config.name) ?? 1 }
  })
  const stored =
    (operation: (config: StreamConfig) => Effect.Effect<StreamInfo, NatsError.NatsError>) => (config: StreamConfig) =>
      operation({ ...config, replicas: 1 }).pipe(
        Effect.tap(() => Effect.sync(() => replicas.set(config.name, config.replicas))),
        Effect.map(reported)
      )
  const broker = Broker.of({
    ...memory,
    streamInfo: (name) => Effect.map(memory.streamInfo(name), Option.map(reported)),
    addStream: stored(memory.addStream),
    updateStream: (config) =>
      Effect.andThen(
        Effect.sync(() => updates.push(config)),
        stored(memory.updateStream)(config)
      )
  })
  return { broker, updates }
})

export const unavailable = (operation: string) =>
  NatsError.make(
    operation,
    new NatsError.Unavailable({ message: "JetStream system temporarily unavailable", code: 10008 })
  )

/**
 * The in-memory broker whose `streamInfo` fails for each stream with what `failure` says (the stream's
 * attempt, counted from 1, and the clock), and counts the attempts.
 */
export const flaky = (failure: (attempt: number, now: number) => NatsError.NatsError | undefined) =>
  Effect.gen(function* () {
    const memory = yield* MemoryBroker.make
    const attempts = new Map<string, number>()
    const broker = Broker.of({
      ...memory,
      streamInfo: (name) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const attempt = (attempts.get(name) ?? 0) + 1
          attempts.set(name, attempt)
          const error = failure(attempt, now)
          return error === undefined ? memory.streamInfo(name) : Effect.fail(error)
        })
    })
    return { broker, attempts }
  })
