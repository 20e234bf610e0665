/**
 * The low level of consuming: a durable pull consumer as a `Stream` of `Delivery`s, each with its raw
 * bytes, its position in the stream, its decoded envelope, and the JetStream verbs (`ack`, `nak`,
 * `term`, `working`) as Effects.
 *
 * Use it when you want to decide yourself what happens to every message; `Subscriber` is the high level
 * that runs handlers and settles by a `Policy`. Written against `Broker` only, so it runs on any broker.
 *
 * The Stream holds at most `prefetch` deliveries that are not settled yet, buffered ones included:
 * settle every delivery (ack, nak or term), or the Stream stops once `prefetch` of them are held.
 *
 * @since 0.1.0
 */
import { DateTime, Duration, Effect, type Exit, Stream } from "effect"
import { Broker, type Headers, type Message } from "./Broker.js"
import * as Envelope from "./Envelope.js"
import * as Event from "./Event.js"
import type { NatsError } from "./NatsError.js"
import * as Topology from "./Topology.js"

/**
 * Bytes and subject to a decoded value, synchronously; `Event.decode` and `Group.decode`
 * are such functions.
 *
 * @category models
 * @since 0.1.0
 */
export type Decoder<A> = (payload: Uint8Array, subject: string) => Exit.Exit<A, Envelope.DecodeError>

/**
 * What a consumer may decode with: one event, or a group of events looked up by subject.
 *
 * @category models
 * @since 0.1.0
 */
export type Decodes = Event.Any | Event.Group<ReadonlyArray<Event.Any>>

/**
 * One delivery of a message.
 *
 * `decoded` is computed on first access and kept. The verbs are one to one those of JetStream: the
 * first of `ack`, `nak` and `term` settles the delivery and the others then do nothing; `working` restarts
 * the ack-wait clock of an unsettled one. They complete once the protocol message is sent; they do not
 * wait for the server. Call `nak` and `term` on the delivery, not detached.
 *
 * @category models
 * @since 0.1.0
 */
export interface Delivery<A> {
  /** The broker's delivery underneath. */
  readonly message: Message
  readonly stream: string
  readonly consumer: string
  readonly subject: string
  readonly payload: Uint8Array
  readonly headers: Headers
  /** 1 on the first delivery, incremented by every redelivery. */
  readonly deliveryCount: number
  readonly streamSeq: number
  readonly consumerSeq: number
  /** Messages left for the consumer after this one, as the server counted when delivering it. */
  readonly pending: number
  /** When the server stored the message. */
  readonly timestamp: DateTime.Utc
  readonly decoded: Exit.Exit<A, Envelope.DecodeError>
  /** Done: never deliver again. */
  readonly ack: Effect.Effect<void>
  /** Deliver again, after `delay` when given (the server keeps the delay). */
  nak(delay?: Duration.Input): Effect.Effect<void>
  /** Never deliver again; the reason reaches only servers that keep it (2.11 and newer). */
  term(reason?: string): Effect.Effect<void>
  /** Still being handled: restarts the ack-wait clock. */
  readonly working: Effect.Effect<void>
}

class DeliveryImpl<A> implements Delivery<A> {
  readonly message: Message
  private readonly decode: Decoder<A>
  private decodedOnce: Exit.Exit<A, Envelope.DecodeError> | undefined = undefined

  constructor(message: Message, decode: Decoder<A>) {
    this.message = message
    this.decode = decode
  }

  get stream(): string {
    return this.message.stream
  }
  get consumer(): string {
    return this.message.consumer
  }
  get subject(): string {
    return this.message.subject
  }
  get payload(): Uint8Array {
    return this.message.payload
  }
  get headers(): Headers {
    return this.message.headers
  }
  get deliveryCount(): number {
    return this.message.deliveryCount
  }
  get streamSeq(): number {
    return this.message.streamSeq
  }
  get consumerSeq(): number {
    return this.message.consumerSeq
  }
  get pending(): number {
    return this.message.pending
  }
  get timestamp(): DateTime.Utc {
    return DateTime.makeUnsafe(this.message.timestampMillis)
  }
  get decoded(): Exit.Exit<A, Envelope.DecodeError> {
    if (this.decodedOnce === undefined) this.decodedOnce = this.decode(this.message.payload, this.message.subject)
    return this.decodedOnce
  }
  get ack(): Effect.Effect<void> {
    return Effect.sync(() => this.message.ack())
  }
  nak(delay?: Duration.Input): Effect.Effect<void> {
    return Effect.sync(() =>
      this.message.nak(delay === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(delay)))
    )
  }
  term(reason?: string): Effect.Effect<void> {
    return Effect.sync(() => this.message.term(reason))
  }
  get working(): Effect.Effect<void> {
    return Effect.sync(() => this.message.working())
  }
}

const decodeEnvelope: Decoder<Envelope.Envelope<unknown>> = Envelope.decodeEnvelopeExit

const anyDecoder = (decodes: Decodes | undefined): Decoder<unknown> => {
  if (decodes === undefined) return decodeEnvelope
  if (Event.isEvent(decodes)) return decodes.decode
  return (payload, subject) => decodes.decode(subject, payload)
}

/**
 * The decoder of an event or a group; with neither, the envelope with its payload left undecoded.
 *
 * @category constructors
 * @since 0.1.0
 */
export function decoderOf(decodes?: undefined): Decoder<Envelope.Envelope<unknown>>
export function decoderOf<E extends Event.Any>(event: E): Decoder<Envelope.Envelope<Event.Payload<E>>>
export function decoderOf<Events extends ReadonlyArray<Event.Any>>(
  group: Event.Group<Events>
): Decoder<Event.Decoded<Events[number]>>
export function decoderOf(decodes?: Decodes): Decoder<unknown> {
  return anyDecoder(decodes)
}

/**
 * A `Delivery` over a broker's message, decoding with `decode` (by default: the envelope, its payload
 * not decoded). For code that consumes `Broker.consume` directly.
 *
 * @category constructors
 * @since 0.1.0
 */
export function fromMessage(message: Message): Delivery<Envelope.Envelope<unknown>>
export function fromMessage<A>(message: Message, decode: Decoder<A>): Delivery<A>
export function fromMessage(message: Message, decode?: Decoder<unknown>): Delivery<unknown> {
  return new DeliveryImpl(message, decode ?? decodeEnvelope)
}

/**
 * How `stream` consumes.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamOptions {
  /** At most this many deliveries are held unsettled, buffered ones included. Default 64. */
  readonly prefetch?: number | undefined
  /** How often the server shows it is alive while nothing is delivered. Default 5 seconds. */
  readonly idleHeartbeat?: Duration.Input | undefined
}

const DEFAULT_PREFETCH = 64

/**
 * The deliveries of a durable pull consumer, provisioned first (created, or updated when it drifted),
 * decoded with `options.decode` (an event or `Event.group(...)`) when given. It keeps going across
 * server restarts and across the consumer being deleted and created again, until it is interrupted;
 * interrupting it stops pulling.
 *
 * @category constructors
 * @since 0.1.0
 */
export function stream(
  spec: Topology.ConsumerSpec,
  options?: StreamOptions
): Stream.Stream<Delivery<Envelope.Envelope<unknown>>, NatsError | Topology.TopologyError, Broker>
export function stream<E extends Event.Any>(
  spec: Topology.ConsumerSpec,
  options: StreamOptions & { readonly decode: E }
): Stream.Stream<Delivery<Envelope.Envelope<Event.Payload<E>>>, NatsError | Topology.TopologyError, Broker>
export function stream<Events extends ReadonlyArray<Event.Any>>(
  spec: Topology.ConsumerSpec,
  options: StreamOptions & { readonly decode: Event.Group<Events> }
): Stream.Stream<Delivery<Event.Decoded<Events[number]>>, NatsError | Topology.TopologyError, Broker>
export function stream(
  spec: Topology.ConsumerSpec,
  options: StreamOptions & { readonly decode?: Decodes } = {}
): Stream.Stream<Delivery<unknown>, NatsError | Topology.TopologyError, Broker> {
  const decode = anyDecoder(options.decode)
  const consumeOptions = {
    maxMessages: options.prefetch ?? DEFAULT_PREFETCH,
    idleHeartbeat: options.idleHeartbeat === undefined ? undefined : Duration.fromInputUnsafe(options.idleHeartbeat)
  }
  return Stream.unwrap(
    Effect.gen(function* () {
      const broker = yield* Broker
      yield* Topology.provision(Topology.make({ consumers: [spec] }))
      return broker
        .consume(spec.stream, spec.name, consumeOptions)
        .pipe(Stream.map((message): Delivery<unknown> => new DeliveryImpl(message, decode)))
    })
  )
}
