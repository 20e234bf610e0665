/**
 * The layers most integration tests need: an own nats-server, a client, the NATS broker, the GLAM
 * topology, a publisher and a service identity; and readers of what the server holds.
 */
import { Effect, Layer, Option } from "effect"
import { Broker, type StoredMessage } from "../../src/Broker.js"
import * as Streams from "../../src/glam/Streams.js"
import * as NatsBroker from "../../src/NatsBroker.js"
import * as NatsClient from "../../src/NatsClient.js"
import * as Publisher from "../../src/Publisher.js"
import * as ServiceIdentity from "../../src/ServiceIdentity.js"
import * as Topology from "../../src/Topology.js"
import * as NatsServer from "./NatsServer.js"

/** NatsBroker and NatsClient over the `NatsServerService` in context. */
export const natsBroker = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
  )
)

/** Everything on a fresh server of its own, with `Streams.topology` provisioned. */
export const messaging = (options: { readonly service?: string; readonly topology?: Topology.Topology } = {}) =>
  Publisher.layer().pipe(
    Layer.provideMerge(Topology.layer(options.topology ?? Streams.topology)),
    Layer.provideMerge(ServiceIdentity.layer(options.service ?? "test-service")),
    Layer.provideMerge(natsBroker),
    Layer.provideMerge(NatsServer.layer())
  )

/** Every message a stream holds, in order. */
export const storedMessages = (stream: string) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const info = yield* broker.streamInfo(stream)
    if (Option.isNone(info) || info.value.state.messages === 0) return []
    const messages: Array<StoredMessage> = []
    for (let seq = info.value.state.firstSeq; seq <= info.value.state.lastSeq; seq++) {
      const message = yield* broker.getMessage(stream, seq)
      if (Option.isSome(message)) messages.push(message.value)
    }
    return messages
  })

/** The dead-letter records in GLAM_DLQ (not the replay markers), parsed. */
export const deadLetters = Effect.map(storedMessages(Streams.deadLettersName), (messages) =>
  messages
    .filter((m) => !m.subject.startsWith("dlq._"))
    .map((m) => ({ subject: m.subject, envelope: JSON.parse(new TextDecoder().decode(m.payload)) }))
)

/** A consumer's state on the server. */
export const consumerState = (stream: string, consumer: string) =>
  Effect.flatMap(Broker, (broker) =>
    Effect.map(broker.consumerInfo(stream, consumer), (info) =>
      Option.match(info, { onNone: () => undefined, onSome: (i) => i.state })
    )
  )
