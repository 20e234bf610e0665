/**
 * Testing handlers without a NATS server: the in-memory broker with a fixed service identity, a
 * topology and a publisher, plus a recorder that tells what became of each message (acknowledged,
 * redelivered with a delay, terminated, dead-lettered with its record) and what was published.
 *
 * Time is the Effect `Clock`: under `it.effect`, `TestClock.adjust` (re-exported as `advance`) drives
 * redelivery delays and ack-wait expiry, so a test of a five-minute backoff takes no time.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Broker, type Headers, type Message, type PublishAck } from "./Broker.js"
import * as DeadLetter from "./DeadLetter.js"
import * as Envelope from "./Envelope.js"
import type * as Event from "./Event.js"
import * as MemoryBroker from "./MemoryBroker.js"
import type { NatsError } from "./NatsError.js"
import * as Publisher from "./Publisher.js"
import * as ServiceIdentity from "./ServiceIdentity.js"
import * as Topology from "./Topology.js"

/**
 * What became of one delivery of a message.
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome =
  | { readonly _tag: "Acked"; readonly deliveryCount: number }
  | { readonly _tag: "Redelivered"; readonly deliveryCount: number; readonly delay: Duration.Duration }
  | { readonly _tag: "Termed"; readonly deliveryCount: number; readonly reason: string | undefined }
  | { readonly _tag: "DeadLettered"; readonly deliveryCount: number; readonly record: DeadLetter.Record }

/**
 * A message published through the broker.
 *
 * @category models
 * @since 0.1.0
 */
export interface Published {
  readonly stream: string
  readonly seq: number
  readonly subject: string
  readonly headers: Headers
  readonly payload: Uint8Array
  /** The envelope, when the bytes are one. */
  readonly envelope: Option.Option<Envelope.Envelope<unknown>>
}

/**
 * Records publishes and settlements on the broker it wraps.
 *
 * @category services
 * @since 0.1.0
 */
export class Recorder extends Context.Service<
  Recorder,
  {
    /** Everything published so far, oldest first (dead-letter records included). */
    readonly published: Effect.Effect<ReadonlyArray<Published>>
    /**
     * Waits for the settlement of a delivery of the message at `stream`/`seq` (the first by default; pass
     * `deliveryCount` to wait for a later one).
     */
    readonly outcome: (stream: string, seq: number, deliveryCount?: number) => Effect.Effect<Outcome>
  }
>()("@glam/messaging/testing/Recorder") {}

type SettleCall =
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Nak"; readonly delay: Duration.Duration }
  | { readonly _tag: "Term"; readonly reason: string | undefined }

/** A delivery whose settle verbs are recorded before they reach the broker. */
class RecordedMessage implements Message {
  constructor(
    private readonly inner: Message,
    private readonly record: (message: Message, settlement: SettleCall) => void
  ) {}
  get stream() {
    return this.inner.stream
  }
  get consumer() {
    return this.inner.consumer
  }
  get subject() {
    return this.inner.subject
  }
  get payload() {
    return this.inner.payload
  }
  get headers() {
    return this.inner.headers
  }
  get streamSeq() {
    return this.inner.streamSeq
  }
  get consumerSeq() {
    return this.inner.consumerSeq
  }
  get deliveryCount() {
    return this.inner.deliveryCount
  }
  get pending() {
    return this.inner.pending
  }
  get timestampMillis() {
    return this.inner.timestampMillis
  }
  ack(): void {
    this.record(this.inner, { _tag: "Ack" })
    this.inner.ack()
  }
  nak(delayMillis?: number): void {
    this.record(this.inner, { _tag: "Nak", delay: Duration.millis(delayMillis ?? 0) })
    this.inner.nak(delayMillis)
  }
  term(reason?: string): void {
    this.record(this.inner, { _tag: "Term", reason })
    this.inner.term(reason)
  }
  working(): void {
    this.inner.working()
  }
}

const decodeRecord = Schema.decodeUnknownOption(DeadLetter.Record)

const keyOf = (stream: string, seq: number, deliveryCount: number) => `${stream}:${seq}:${deliveryCount}`

/**
 * A `MemoryBroker` wrapped by a `Recorder`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRecordedBroker: Layer.Layer<Broker | Recorder> = Layer.effectContext(
  Effect.gen(function* () {
    const inner = yield* MemoryBroker.make
    const published: Array<Published> = []
    const settled = new Map<string, Deferred.Deferred<Outcome>>()
    const deadLetters = new Map<string, DeadLetter.Record>()

    const slot = (stream: string, seq: number, deliveryCount: number) => {
      const key = keyOf(stream, seq, deliveryCount)
      let deferred = settled.get(key)
      if (deferred === undefined) {
        deferred = Deferred.makeUnsafe<Outcome>()
        settled.set(key, deferred)
      }
      return deferred
    }

    const record = (message: Message, settlement: SettleCall) => {
      const deferred = slot(message.stream, message.streamSeq, message.deliveryCount)
      const deliveryCount = message.deliveryCount
      const outcome: Outcome =
        settlement._tag === "Ack"
          ? { _tag: "Acked", deliveryCount }
          : settlement._tag === "Nak"
            ? { _tag: "Redelivered", deliveryCount, delay: settlement.delay }
            : Option.match(Option.fromUndefinedOr(deadLetters.get(`${message.stream}:${message.streamSeq}`)), {
                onNone: (): Outcome => ({ _tag: "Termed", deliveryCount, reason: settlement.reason }),
                onSome: (deadLetter): Outcome => ({ _tag: "DeadLettered", deliveryCount, record: deadLetter })
              })
      Deferred.doneUnsafe(deferred, Effect.succeed(outcome))
    }

    const recordPublish = (request: Parameters<Broker["Service"]["publish"]>[0], ack: PublishAck) => {
      const decoded = Envelope.decodeEnvelopeExit(request.payload, request.subject)
      const envelope = decoded._tag === "Success" ? Option.some(decoded.value) : Option.none()
      published.push({
        stream: ack.stream,
        seq: ack.seq,
        subject: request.subject,
        headers: request.headers,
        payload: request.payload,
        envelope
      })
      if (request.subject.startsWith("dlq.") && !request.subject.startsWith("dlq._") && Option.isSome(envelope)) {
        const record = decodeRecord(envelope.value.data)
        if (Option.isSome(record)) deadLetters.set(`${record.value.stream}:${record.value.streamSeq}`, record.value)
      }
    }

    const broker = Broker.of({
      ...inner,
      publish: (request): Effect.Effect<PublishAck, NatsError> =>
        Effect.tap(inner.publish(request), (ack) => Effect.sync(() => recordPublish(request, ack))),
      consume: (stream, consumer, options) =>
        Stream.map(inner.consume(stream, consumer, options), (message) => new RecordedMessage(message, record))
    })
    const recorder = Recorder.of({
      published: Effect.sync(() => [...published]),
      outcome: (stream, seq, deliveryCount = 1) => Deferred.await(slot(stream, seq, deliveryCount))
    })
    return Context.make(Broker, broker).pipe(Context.add(Recorder, recorder))
  })
)

/**
 * Everything a handler test needs: the recorded in-memory broker, your topology provisioned on it
 * (`Streams.topology` of `@glam/messaging/glam` for a GLAM service), a publisher, and the service identity `test-service` (or yours). Add your `Subscriber.layer` on top.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: {
  readonly topology: Topology.Topology
  readonly service?: string | undefined
}): Layer.Layer<
  Broker | Recorder | Publisher.Publisher | ServiceIdentity.ServiceIdentity,
  Topology.TopologyError | NatsError | ServiceIdentity.InvalidServiceName
> =>
  Publisher.layer().pipe(
    Layer.provideMerge(Topology.layer(options.topology)),
    Layer.provideMerge(ServiceIdentity.layer(options.service ?? "test-service")),
    Layer.provideMerge(layerRecordedBroker)
  )

/**
 * Publishes an event and waits for what the subscriber did with its first delivery.
 *
 * @category testing
 * @since 0.1.0
 */
export const publishAndWait = <E extends Event.Any>(
  event: E,
  payload: Event.Payload<E>,
  options?: Publisher.PublishOptions
): Effect.Effect<
  { readonly receipt: Publisher.Receipt; readonly outcome: Outcome },
  Publisher.PublishError,
  Publisher.Publisher | Recorder
> =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const recorder = yield* Recorder
    const receipt = yield* publisher.publish(event, payload, options)
    const outcome = yield* recorder.outcome(receipt.stream, receipt.seq)
    return { receipt, outcome }
  })

/**
 * The envelopes published on `subject` (all subjects when left out), e.g. the follow-up events of a
 * handler; pass a correlation id to keep those of one flow.
 *
 * @category testing
 * @since 0.1.0
 */
export const publishedEnvelopes = (
  filter: { readonly subject?: string | undefined; readonly correlationId?: string | undefined } = {}
): Effect.Effect<ReadonlyArray<Envelope.Envelope<unknown>>, never, Recorder> =>
  Effect.map(
    Effect.flatMap(Recorder, (recorder) => recorder.published),
    (all) =>
      all.flatMap((message) =>
        Option.isSome(message.envelope) &&
        (filter.subject === undefined || message.subject === filter.subject) &&
        (filter.correlationId === undefined || message.envelope.value.correlationId === filter.correlationId)
          ? [message.envelope.value]
          : []
      )
  )

/** Lets every fiber that can run do so before the clock moves again. */
const settle = Effect.forEach(Array.from({ length: 25 }), () => Effect.yieldNow, { discard: true })

/**
 * Moves the test clock forward in steps of at most 10 ms, letting the broker and the handlers run
 * between steps, so that work scheduled during the advance (a retry after a failure that happens
 * meanwhile) still comes due within it.
 *
 * @category testing
 * @since 0.1.0
 */
export const advance = (duration: Duration.Input): Effect.Effect<void> =>
  Effect.gen(function* () {
    const total = Duration.toMillis(Duration.fromInputUnsafe(duration))
    yield* settle
    for (let elapsed = 0; elapsed < total; ) {
      const step = Math.min(10, total - elapsed)
      yield* TestClock.adjust(Duration.millis(step))
      yield* settle
      elapsed += step
    }
  })
