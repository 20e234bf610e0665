/**
 * Handlers as Effect programs: a `Layer` that consumes one or more events from a durable pull consumer,
 * runs a handler for each message and settles the message by the handler's outcome and a `Policy`.
 *
 * What a subscriber does around each message:
 * - decodes it once (a decode failure goes to the policy's `decodeFailure` rule: dead-letter by default);
 * - runs the handler with the Python package's log context (`event_id`, `event_type`, `correlation_id`,
 *   `source_service`, `service`, `entry_point`), a consumer span continuing the publisher's trace when a
 *   tracer records spans (otherwise the publisher's trace context as the parent, at no cost), and the
 *   message as `MessageContext.Current`, so events the handler publishes inherit its correlation id;
 * - sends `working` for messages held longer than half the ack-wait (running or waiting in the buffer),
 *   so the server never redelivers them behind the handler's back;
 * - settles: `ack` on success; on failure, in-process retries and then the policy's settlement (`nak` with
 *   a delay, `term`, `ack`, or a dead letter written and acknowledged by the server before the original
 *   is terminated; if writing it fails, the original is nak'ed with backoff, never dropped).
 *
 * Messages are handed over a chunk at a time and taken by N worker fibers (never one fiber per message),
 * so messages that arrive together are handled in one turn of the event loop and acked in one write.
 * It pulls up to `prefetch` (256) messages ahead while healthy and one at a time while a crash is
 * suspected (see `prefetch`), so speed and a crashing handler's neighbours need no trade-off.
 * Concurrency N means at most N handlers in flight. With N = 1 messages are handled in stream order;
 * `orderBy` keeps order per key at any N. When the layer's scope closes, the subscriber stops pulling,
 * naks what it holds but has not started, lets running handlers finish within `shutdownTimeout`, and
 * naks (without delay) those that did not; nothing unfinished is acknowledged.
 *
 * Nothing stops silently while the scope is open. The consume loop, the max-deliveries advisory
 * watcher, the keep-alive and a check of the durable consumer (every `checkConsumerEvery`) are
 * supervised: a failure is logged once at ERROR with its cause, the loop starts again on a capped
 * backoff for as long as it takes (a summary every 30 s while it fails), and its recovery is logged
 * with the outage's length. A durable deleted under a running subscriber is created again; a deleted
 * stream is reported until it is back. Within the consume loop, a pull lost with its consumer's leader
 * (two idle heartbeats of silence) or ended by the server (a leadership change) is sent again at once.
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Exit, Fiber, Layer, Option, Schema, type Scope } from "effect"
import { Broker, type Message } from "./Broker.js"
import * as DeadLetter from "./DeadLetter.js"
import * as Envelope from "./Envelope.js"
import * as Event from "./Event.js"
import * as Advisories from "./internal/deadLetter/advisories.js"
import * as SubscriberConsumer from "./internal/subscriber/consumer.js"
import * as SubscriberHandling from "./internal/subscriber/handling.js"
import { Held } from "./internal/subscriber/held.js"
import { InFlight } from "./internal/subscriber/inFlight.js"
import { commonPrefixFilter, groupName } from "./internal/subscriber/names.js"
import { requireStreams } from "./internal/subscriber/streams.js"
import * as SubscriberWindow from "./internal/subscriber/window.js"
import * as SubscriberWorkers from "./internal/subscriber/workers.js"
import { supervise } from "./internal/supervise.js"
import * as Telemetry from "./internal/telemetry.js"
import * as Metrics from "./Metrics.js"
import type * as NatsError from "./NatsError.js"
import * as Policy from "./Policy.js"
import { ServiceIdentity } from "./ServiceIdentity.js"
import * as SubscriberStatus from "./SubscriberStatus.js"
import type * as Topology from "./Topology.js"

/**
 * What a handler receives: the decoded envelope, whose `eventType` (checked equal to the NATS subject)
 * tells which event of the subscription it is and narrows `data`.
 *
 * @category models
 * @since 0.1.0
 */
export type Received<E extends Event.Any> = E extends Event.Any
  ? Envelope.Envelope<Event.Payload<E>> & { readonly eventType: E["subject"] }
  : never

/**
 * A handler that ran longer than `handlerTimeout`; the policy treats it as a defect.
 *
 * @category errors
 * @since 0.1.0
 */
export class HandlerTimeout extends Schema.TaggedError<HandlerTimeout>()("HandlerTimeout", {
  subject: Schema.String,
  streamSeq: Schema.Number,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `handler for ${this.subject} #${this.streamSeq} ran longer than ${this.timeoutMillis} ms`
  }
}

/**
 * Subscriber options. Only `handler` is required (and `policy` when the handler can fail).
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<E extends Event.Any, Err, R> {
  readonly handler: (envelope: Received<E>) => Effect.Effect<void, Err, R>
  /**
   * The rules for the handler's errors (see `Policy.make`), checked against the handler's error type.
   * Required when the handler can fail (`make` and `layer` add `PolicyRequirement`). Default, for a
   * handler that cannot, `Policy.defaults`: defects are redelivered with backoff, decode failures are
   * dead-lettered, and a message is dead-lettered at its 5th delivery.
   */
  readonly policy?: Policy.Policy<NoInfer<Err>> | undefined
  /**
   * The stream to consume. Default: the stream that captures the events' subjects, asked of the broker
   * at start-up (waiting for it as for the other streams, see `waitForStreams`).
   */
  readonly stream?: string | undefined
  /** The durable consumer name. Default `<service>-<queueGroup>`, as the Python package names them. */
  readonly durable?: string | undefined
  /** Default: the filter subject with `.` as `-` and wildcards dropped (`evt-merchant-created-v1`). */
  readonly queueGroup?: string | undefined
  /** Default: the one subject, or the common prefix of the subjects followed by `>`. */
  readonly filterSubject?: string | undefined
  /** Where a new durable starts. Default `all` (it reads the stream's history). */
  readonly deliverPolicy?: Topology.ConsumerSpec["deliverPolicy"]
  /** Handlers in flight at most. Default 1 (stream order). */
  readonly concurrency?: number | undefined
  /** Default 30 seconds. */
  readonly ackWait?: Duration.Input | undefined
  /** Unacknowledged messages the server lets this durable have. Default `max(1000, 2 × prefetch)`. */
  readonly maxAckPending?: number | undefined
  /**
   * Messages held by the client at most (running or waiting to run): the ceiling of the pull window.
   * Default `max(256, concurrency)`. The window is the ceiling while things are healthy and one message
   * while a crash is suspected: at start-up when the durable has messages delivered and unacknowledged,
   * and whenever a message comes back that this process did not give back (a process holding it may
   * have died), until a full ack-wait passes without another. So a message whose handler kills the
   * process on every delivery is delivered alone, and the messages behind it are not charged for its
   * crashes. `prefetch: 1` pulls one message at a time always.
   */
  readonly prefetch?: number | undefined
  /** A handler running longer is interrupted and its message goes to the policy's `defect` rule. */
  readonly handlerTimeout?: Duration.Input | undefined
  /**
   * A handler still running this long after it started is logged at WARN (subject, sequence, event id,
   * elapsed time), again after twice as long, four times, ..., and at INFO when it finishes. Default: the
   * ack-wait.
   */
  readonly slowHandlerAfter?: Duration.Input | undefined
  /** Messages with the same key are handled one at a time, in stream order. */
  readonly orderBy?: ((envelope: Received<E>) => string) | undefined
  /** How long running handlers may take to finish when the scope closes. Default 10 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /**
   * How often the server must show it is alive while nothing is delivered. Two intervals of silence
   * mean the pull was lost (its consumer's leader died, on a cluster) and it is sent again. Default 2
   * seconds: a lost consumer leader is noticed within about 5 s.
   */
  readonly idleHeartbeat?: Duration.Input | undefined
  /**
   * How often the durable consumer is looked up on the server. One that was deleted is created again
   * (reading from its deliver policy: with `all`, what the stream still holds is delivered again); a
   * stream that is gone is reported at ERROR until it is back. Default 5 seconds.
   */
  readonly checkConsumerEvery?: Duration.Input | undefined
  /**
   * How long the subscriber waits at start-up for its stream, a stream on `dlq.<subject>` for the dead
   * letters of each of its subjects, and one capturing its max-deliveries advisories (a topology
   * provisioned beside it may still be creating them); then it fails with a `TopologyError` naming what
   * is missing. Default 30 seconds.
   */
  readonly waitForStreams?: Duration.Input | undefined
}

/**
 * What `make` and `layer` add to `Options`: a handler that can fail needs a `policy` for its errors; one
 * whose error type is `never` needs none. A function that passes its own generic options on to `make`
 * takes `Options<E, Err, R> & PolicyRequirement<Err>` too.
 *
 * @category models
 * @since 0.1.0
 */
export type PolicyRequirement<Err> = [Err] extends [never] ? unknown : { readonly policy: Policy.Policy<NoInfer<Err>> }

// The options with their defaults applied, once, when the subscriber starts: the names of its durable
// consumer, its bounds (concurrency, prefetch, max ack pending) and its times.
type Given = Omit<Options<Event.Any, never, never>, "handler" | "policy" | "orderBy">

// The default ceiling of the pull window: where consume throughput levels off on one server.
const DEFAULT_PREFETCH = 256

const resolve = (options: Given, subjects: ReadonlyArray<string>, service: string) => {
  const filterSubject = options.filterSubject ?? commonPrefixFilter(subjects)
  const concurrency = Math.max(1, options.concurrency ?? 1)
  const ackWait = Duration.fromInputUnsafe(options.ackWait ?? "30 seconds")
  const ackWaitMillis = Duration.toMillis(ackWait)
  const prefetchWanted = Math.max(concurrency, options.prefetch ?? Math.max(DEFAULT_PREFETCH, concurrency))
  const maxAckPending = options.maxAckPending ?? Math.max(1000, 2 * prefetchWanted)
  return {
    filterSubject,
    durable: options.durable ?? `${service}-${options.queueGroup ?? groupName(filterSubject)}`,
    concurrency,
    ackWait,
    ackWaitMillis,
    maxAckPending,
    prefetch: Math.min(prefetchWanted, maxAckPending),
    handlerTimeout: Option.map(Option.fromUndefinedOr(options.handlerTimeout), Duration.fromInputUnsafe),
    shutdownTimeout: Duration.fromInputUnsafe(options.shutdownTimeout ?? "10 seconds"),
    idleHeartbeat: options.idleHeartbeat === undefined ? undefined : Duration.fromInputUnsafe(options.idleHeartbeat),
    checkConsumerEvery: Duration.fromInputUnsafe(options.checkConsumerEvery ?? "5 seconds"),
    slowHandlerAfterMillis:
      options.slowHandlerAfter === undefined
        ? ackWaitMillis
        : Duration.toMillis(Duration.fromInputUnsafe(options.slowHandlerAfter)),
    waitForStreams: Duration.fromInputUnsafe(options.waitForStreams ?? "30 seconds")
  }
}

// A message to the envelope of its subject's event, checked to carry that subject as its `event_type`.
// Synchronous, once per message, before it is queued.
const decoder = <E extends Event.Any>(
  events: ReadonlyArray<E>,
  group: Pick<Event.Group<ReadonlyArray<Event.Any>>, "decode">
): ((message: Message) => Exit.Exit<Received<E>, Envelope.DecodeError>) => {
  const bySubject = new Map<string, E>(events.map((event) => [event.subject, event]))
  return (message) => {
    const event = bySubject.get(message.subject)
    if (event === undefined) {
      // No event of the subscription has the subject: the group's error says so and lists the known ones.
      const unknown = group.decode(message.subject, message.payload)
      return Exit.isFailure(unknown) ? Exit.failCause(unknown.cause) : Exit.die(`no event for ${message.subject}`)
    }
    const decoded = event.decode(message.payload, message.subject)
    if (Exit.isFailure(decoded)) return Exit.failCause(decoded.cause)
    const envelope = decoded.value
    if (envelope.eventType !== message.subject) {
      return Exit.fail(
        new Envelope.DecodeError({
          stage: "Envelope",
          path: "event_type",
          message: `Envelope: event_type "${envelope.eventType}" does not match the subject "${message.subject}"`,
          raw: message.payload,
          subject: message.subject,
          eventId: envelope.eventId,
          eventType: envelope.eventType,
          correlationId: envelope.correlationId
        })
      )
    }
    // Decoded with the event of this subject, and eventType equals that subject: the pairing
    // `Received<E>` describes, which the compiler cannot follow through the union.
    return decoded as Exit.Exit<Received<E>, Envelope.DecodeError>
  }
}

// The handler, bounded by `handlerTimeout` when one is set: past it, a `HandlerTimeout` defect.
const withTimeout =
  <A, Err, R>(handler: (envelope: A) => Effect.Effect<void, Err, R>, timeout: Option.Option<Duration.Duration>) =>
  (message: Message, envelope: A): Effect.Effect<void, Err, R> =>
    Option.isNone(timeout)
      ? handler(envelope)
      : handler(envelope).pipe(
          Effect.timeoutOrElse({
            duration: timeout.value,
            orElse: () =>
              Effect.die(
                new HandlerTimeout({
                  subject: message.subject,
                  streamSeq: message.streamSeq,
                  timeoutMillis: Duration.toMillis(timeout.value)
                })
              )
          })
        )

/**
 * Runs a subscriber in the current scope; see the module documentation. Its `SubscriberStatus.Handle`
 * tells what it is doing (it is also entered in the current `SubscriberStatus.Registry`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <const E extends Event.Any, Err = never, R = never>(
  events: E | ReadonlyArray<E>,
  options: Options<E, Err, R> & PolicyRequirement<Err>
): Effect.Effect<
  SubscriberStatus.Handle,
  Topology.TopologyError | NatsError.NatsError,
  Broker | ServiceIdentity | R | Scope.Scope
> =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const identity = yield* ServiceIdentity
    const clock = yield* Clock.Clock
    const list: ReadonlyArray<E> = Event.isEvent(events) ? [events] : events
    const group = Event.group(...list)
    const policy = Policy.compile<Err>(options.policy ?? Policy.defaults)
    const settings = resolve(options, group.subjects, identity.name)
    const { durable, concurrency } = settings
    const registry = yield* SubscriberStatus.Registry
    const slot = yield* Effect.acquireRelease(
      Effect.sync(() => registry.enterUnsafe({ durable, stream: options.stream, subjects: group.subjects })),
      (entered) => Effect.sync(entered.remove)
    )

    // Its stream (the one that captures its subjects, unless named), and where its dead letters and
    // advisories go, must exist before it consumes.
    const { stream, advisoryStream } = yield* requireStreams(
      broker,
      { stream: options.stream, durable, subjects: group.subjects },
      settings.waitForStreams
    )
    slot.setStream(stream)
    const consumer = SubscriberConsumer.make(broker, {
      stream,
      durable,
      filterSubject: settings.filterSubject,
      deliverPolicy: options.deliverPolicy,
      ackWait: settings.ackWait,
      maxAckPending: settings.maxAckPending,
      maxDeliveries: policy.maxDeliveries
    })
    yield* consumer.provision

    const held = new Held()
    const window = new SubscriberWindow.Window(
      `subscriber ${durable}`,
      settings.prefetch,
      settings.ackWaitMillis,
      held,
      clock
    )
    // Not known: taken as unacknowledged messages, the careful side.
    const unacknowledged = yield* broker.consumerInfo(stream, durable).pipe(
      Effect.map(
        Option.match({ onNone: () => "the durable was not found", onSome: (info) => info.state.numAckPending })
      ),
      Effect.catch((error) => Effect.succeed(error.message))
    )
    const started = window.start(unacknowledged)
    if (started !== undefined) yield* SubscriberWindow.log(started)
    if (yield* Metrics.Enabled) {
      const gauge = Telemetry.subscriberGauge(
        Metrics.pullWindow,
        durable,
        yield* Effect.context<never>(),
        () => window.limit
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => gauge.remove()))
    }
    const inFlight = new InFlight(concurrency, settings.slowHandlerAfterMillis)
    const handle = yield* SubscriberHandling.make<Received<E>, Err, R>({
      attempt: withTimeout(options.handler, settings.handlerTimeout),
      policy,
      held,
      inFlight,
      durable
    })
    const workers = yield* SubscriberWorkers.start<Received<E>, R>({
      concurrency,
      orderBy: options.orderBy,
      decode: decoder(list, group),
      handle,
      held,
      inFlight,
      clock
    })
    // Consuming while both the consume loop and the check of its consumer are up; restarting while
    // either fails (the check is what notices a stream deleted under a running consume).
    const failing = new Set<string>()
    const statusHooks = (loop: string) => ({
      onUp: () => {
        failing.delete(loop)
        if (failing.size === 0 && slot.current()._tag !== "Consuming") {
          slot.set({ _tag: "Consuming", since: clock.currentTimeMillisUnsafe() })
        }
      },
      onFailure: (attempts: number, lastError: string, since: number) => {
        failing.add(loop)
        slot.set({ _tag: "Restarting", attempts, lastError, since })
      }
    })
    const dispatcher = yield* consumer.consume(
      { ...settings, window: window.current, ...statusHooks("consume") },
      (chunk) => {
        const note = window.arrived(chunk)
        workers.accept(chunk)
        return note
      }
    )
    const keepAlive = yield* supervise({ name: `subscriber ${durable}: keep-alive` }, () =>
      SubscriberWorkers.keepAlive(held, inFlight, clock, settings.ackWaitMillis, settings.slowHandlerAfterMillis)
    ).pipe(Effect.forkDetach)
    const advisories = yield* supervise(
      { name: `subscriber ${durable}: max-deliveries advisory watcher for ${stream}/${durable}` },
      (up) =>
        Advisories.watch({ stream, consumer: durable, advisoryStream }, up, (input, outages) =>
          DeadLetter.publish(input, { outages })
        )
    ).pipe(Effect.forkDetach)
    const lag = (yield* Metrics.Enabled) ? Telemetry.sampleLag(stream, durable) : undefined
    const watcher = yield* consumer.watch(settings.checkConsumerEvery, statusHooks("check"), lag)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        slot.set({ _tag: "Stopping" })
        yield* Fiber.interrupt(dispatcher)
        yield* workers.stop(settings.shutdownTimeout)
        yield* Fiber.interruptAll([keepAlive, advisories, watcher])
        yield* Effect.logInfo(`subscriber ${durable} stopped`)
      })
    )
    yield* Effect.logInfo(
      `subscriber ${durable} consuming ${settings.filterSubject} from ${stream} (concurrency ${concurrency}, prefetch ${settings.prefetch})`
    )
    return slot.handle
  })

/**
 * A subscriber as a layer: it runs while the layer's scope is open.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <const E extends Event.Any, Err = never, R = never>(
  events: E | ReadonlyArray<E>,
  options: Options<E, Err, R> & PolicyRequirement<Err>
): Layer.Layer<never, Topology.TopologyError | NatsError.NatsError, Broker | ServiceIdentity | R> =>
  Layer.effectDiscard(make(events, options))
