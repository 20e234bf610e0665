/**
 * What every scenario shares: the event measured and its 256-byte envelope, the nats-server and the
 * connections, a fresh stream per run, durable consumers with the configuration our subscriber gives
 * its own, and the pre-fill of a stream.
 *
 * Three connections, so that no contender shares a socket with another or with the set-up: `admin`
 * creates streams and fills them, `raw` carries the raw nats.js contenders, and our `NatsClient`
 * carries ours.
 */
import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType
} from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Context, DateTime, Effect, Exit, Layer, Schema } from "effect"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import { NatsBroker, NatsClient, Publisher, ServiceIdentity, Topology } from "../src/index.js"
import * as NatsServer from "../test/support/NatsServer.js"

export const STREAM = "BENCH"
export const SUBJECT = "evt.bench.measured.v1"
export const PAYLOAD_BYTES = 256

/** The event measured: a sequence number (read back by the latency scenario) and padding. */
export const Measured = Event.make(SUBJECT, Schema.Struct({ seq: Schema.Number, note: Schema.String }))

const envelopeLength = (note: string, seq: number): number => {
  const encoded = Measured.encode({
    eventId: crypto.randomUUID(),
    eventType: SUBJECT,
    correlationId: crypto.randomUUID(),
    sourceService: "bench",
    timestamp: DateTime.makeUnsafe(Date.UTC(2026, 10, 26, 12, 33, 37, 123)),
    data: { seq, note }
  })
  if (Exit.isFailure(encoded)) throw new Error("the bench envelope does not encode")
  return encoded.value.length
}

/** Padding that makes an envelope with a five-digit sequence exactly 256 bytes. */
export const note = "x".repeat(PAYLOAD_BYTES - envelopeLength("", 10_000))

/** The bytes the raw contenders send: one of our envelopes, so both sides move the same bytes. */
export const sample: Uint8Array = (() => {
  const encoded = Measured.encode({
    eventId: crypto.randomUUID(),
    eventType: SUBJECT,
    correlationId: crypto.randomUUID(),
    sourceService: "bench",
    timestamp: DateTime.makeUnsafe(Date.UTC(2026, 10, 26, 12, 33, 37, 123)),
    data: { seq: 10_000, note }
  })
  if (Exit.isFailure(encoded) || encoded.value.length !== PAYLOAD_BYTES) throw new Error("the sample is not 256 bytes")
  return encoded.value
})()

/** The payload of message `seq`, for ours. */
export const payload = (seq: number) => ({ seq, note })

/** Connections outside the library: set-up and the raw contenders. */
export class RawClients extends Context.Service<
  RawClients,
  {
    readonly admin: NatsConnection
    readonly manager: JetStreamManager
    readonly raw: NatsConnection
    readonly js: JetStreamClient
  }
>()("bench/RawClients") {}

const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(() => connect({ servers: url, name: "bench" })),
    (nc) => Effect.promise(() => nc.close())
  )

const rawClients = Layer.effect(
  RawClients,
  Effect.gen(function* () {
    const server = yield* NatsServer.NatsServerService
    const admin = yield* connection(server.url)
    const raw = yield* connection(server.url)
    const manager = yield* Effect.promise(() => jetstreamManager(admin))
    return { admin, manager, raw, js: jetstream(raw) }
  })
)

// The streams a subscriber relies on besides its own: dead letters, and the advisories it watches.
const glamSupport = Topology.make({ streams: [Streams.deadLetters, Streams.advisories] })

const ours = Publisher.layer().pipe(
  Layer.provideMerge(Topology.layer(glamSupport)),
  Layer.provideMerge(ServiceIdentity.layer("bench")),
  Layer.provideMerge(NatsBroker.layerFromClient),
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(NatsServer.NatsServerService, (server) =>
        NatsClient.layer({ servers: server.url, name: "bench-ours" })
      )
    )
  )
)

/** An own nats-server, the raw connections and our publisher on a client of its own. */
export const environment = Layer.mergeAll(rawClients, ours).pipe(Layer.provideMerge(NatsServer.layer()))

/** Deletes the bench stream (if any) and creates it empty. */
export const freshStream = (options: { readonly workQueue?: boolean } = {}) =>
  Effect.flatMap(RawClients, ({ manager }) =>
    Effect.promise(async () => {
      await manager.streams.delete(STREAM).catch(() => false)
      await manager.streams.add({
        name: STREAM,
        subjects: ["evt.bench.>"],
        storage: StorageType.File,
        retention: options.workQueue === true ? RetentionPolicy.Workqueue : RetentionPolicy.Limits
      })
    })
  )

export const deleteStream = Effect.flatMap(RawClients, ({ manager }) =>
  Effect.promise(() => manager.streams.delete(STREAM).catch(() => false))
)

/**
 * A durable with the configuration `Subscriber` provisions for its own (ack-wait 30 s, 6 deliveries,
 * `max(1000, 2 × prefetch)` pending): created for the raw contenders and, ahead of time, for ours, so
 * that both start by reading an existing consumer.
 */
export const durable = (name: string, prefetch: number) =>
  Effect.flatMap(RawClients, ({ manager }) =>
    Effect.promise(() =>
      manager.consumers.add(STREAM, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        filter_subject: SUBJECT,
        ack_wait: 30_000_000_000,
        max_deliver: 6,
        max_ack_pending: Math.max(1000, 2 * prefetch)
      })
    )
  )

/** Stores `count` copies of the sample (core publishes, flushed in batches) and waits until all are stored. */
export const fill = (count: number) =>
  Effect.flatMap(RawClients, ({ admin, manager }) =>
    Effect.promise(async () => {
      for (let sent = 0; sent < count; ) {
        const batch = Math.min(2_000, count - sent)
        for (let i = 0; i < batch; i++) admin.publish(SUBJECT, sample)
        sent += batch
        await admin.flush()
      }
      const deadline = performance.now() + 30_000 + count / 10
      for (;;) {
        const { state } = await manager.streams.info(STREAM)
        if (state.messages >= count) return
        if (performance.now() > deadline) throw new Error(`stored ${state.messages} of ${count} messages`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })
  )

/** Waits until the consumer has every one of `count` messages acknowledged (a check that acks were sent, not timed). */
export const allAcknowledged = (name: string, count: number) =>
  Effect.flatMap(RawClients, ({ manager }) =>
    Effect.promise(async () => {
      const deadline = performance.now() + 10_000
      for (;;) {
        const info = await manager.consumers.info(STREAM, name)
        if (info.ack_floor.stream_seq >= count && info.num_ack_pending === 0) return
        if (performance.now() > deadline) {
          throw new Error(
            `${name}: ack floor ${info.ack_floor.stream_seq} of ${count}, ${info.num_ack_pending} pending`
          )
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })
  )
