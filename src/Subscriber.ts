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
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Result,
  Schedule,
  Schema,
  type Scope,
  Stream
} from "effect"
import { Broker, type Message } from "./Broker.js"
import * as Envelope from "./Envelope.js"
import * as Event from "./Event.js"
import { watch as watchAdvisories } from "./internal/deadLetter/advisories.js"
import { formatDuration } from "./internal/durations.js"
import * as SubscriberHandling from "./internal/subscriber/handling.js"
import { Held } from "./internal/subscriber/held.js"
import { InFlight } from "./internal/subscriber/inFlight.js"
import { Lane, laneOf } from "./internal/subscriber/lanes.js"
import { commonPrefixFilter, groupName } from "./internal/subscriber/names.js"
import { requireStreams } from "./internal/subscriber/streams.js"
import { supervise } from "./internal/supervise.js"
import { isTracing } from "./internal/tracing.js"
import * as NatsError from "./NatsError.js"
import * as Policy from "./Policy.js"
import { ServiceIdentity } from "./ServiceIdentity.js"
import * as Topology from "./Topology.js"

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
   * Messages held by the client at most (running or waiting to run). Default: `concurrency`, so that
   * only messages that can start at once are held. Every held message counts as delivered on the
   * server: when the process dies, each one is charged a delivery, and a message held behind a handler
   * that crashes the process every time would reach `maxDeliveries` without ever being handled. Raise
   * it for throughput only when handlers cannot crash the process.
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

type Item<E extends Event.Any> = SubscriberHandling.Item<Received<E>>

/**
 * Runs a subscriber in the current scope; see the module documentation.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <const E extends Event.Any, Err = never, R = never>(
  events: E | ReadonlyArray<E>,
  options: Options<E, Err, R> & PolicyRequirement<Err>
): Effect.Effect<void, Topology.TopologyError | NatsError.NatsError, Broker | ServiceIdentity | R | Scope.Scope> =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const identity = yield* ServiceIdentity
    const clock = yield* Clock.Clock
    // Asked once: spans per message only when something records them.
    const tracing = yield* isTracing
    const list: ReadonlyArray<E> = Event.isEvent(events) ? [events] : events
    const group = Event.group(...list)
    const policy: Policy.Policy<Err> = options.policy ?? Policy.defaults
    const compiled = Policy.compile(policy)
    const filterSubject = options.filterSubject ?? commonPrefixFilter(group.subjects)
    const durable = options.durable ?? `${identity.name}-${options.queueGroup ?? groupName(filterSubject)}`
    const concurrency = Math.max(1, options.concurrency ?? 1)
    const ackWait = Duration.fromInputUnsafe(options.ackWait ?? "30 seconds")
    const ackWaitMillis = Duration.toMillis(ackWait)
    const prefetchWanted = Math.max(concurrency, options.prefetch ?? concurrency)
    const maxAckPending = options.maxAckPending ?? Math.max(1000, 2 * prefetchWanted)
    const prefetch = Math.min(prefetchWanted, maxAckPending)
    const handlerTimeout = Option.map(Option.fromUndefinedOr(options.handlerTimeout), Duration.fromInputUnsafe)
    const shutdownTimeout = Duration.fromInputUnsafe(options.shutdownTimeout ?? "10 seconds")

    const idleHeartbeat =
      options.idleHeartbeat === undefined ? undefined : Duration.fromInputUnsafe(options.idleHeartbeat)
    const checkConsumerEvery = Duration.fromInputUnsafe(options.checkConsumerEvery ?? "5 seconds")
    const slowHandlerAfterMillis =
      options.slowHandlerAfter === undefined
        ? ackWaitMillis
        : Duration.toMillis(Duration.fromInputUnsafe(options.slowHandlerAfter))

    // Its stream (the one that captures its subjects, unless named), and where its dead letters and
    // advisories go, must exist before it consumes.
    const { stream, advisoryStream } = yield* requireStreams(
      broker,
      { stream: options.stream, durable, subjects: group.subjects },
      Duration.fromInputUnsafe(options.waitForStreams ?? "30 seconds")
    )

    // The server gives up one delivery after the policy would, so the policy decides whenever it runs at all;
    // the server's max-deliveries advisory covers messages whose handler never got to decide.
    const provisionConsumer = Topology.provision(
      Topology.make({
        consumers: [
          {
            stream,
            name: durable,
            filterSubject,
            deliverPolicy: options.deliverPolicy,
            ackWait,
            maxAckPending,
            maxDeliver: compiled.maxDeliveries + 1
          }
        ]
      })
    )
    yield* provisionConsumer

    const bySubject = new Map<string, E>(list.map((event) => [event.subject, event]))
    const decode = (message: Message): Exit.Exit<Received<E>, Envelope.DecodeError> => {
      const event = bySubject.get(message.subject)
      if (event === undefined) {
        // No event of the subscription has the subject: the group's error says so and lists the known ones.
        const unknown = group.decodeExit(message.subject, message.payload)
        return Exit.isFailure(unknown) ? Exit.failCause(unknown.cause) : Exit.die(`no event for ${message.subject}`)
      }
      const decoded = event.decodeExit(message.payload, message.subject)
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

    const held = new Held()

    const attempt = (message: Message, envelope: Received<E>): Effect.Effect<void, Err, R> =>
      Option.isNone(handlerTimeout)
        ? options.handler(envelope)
        : options.handler(envelope).pipe(
            Effect.timeoutOrElse({
              duration: handlerTimeout.value,
              orElse: () =>
                Effect.die(
                  new HandlerTimeout({
                    subject: message.subject,
                    streamSeq: message.streamSeq,
                    timeoutMillis: Duration.toMillis(handlerTimeout.value)
                  })
                )
            })
          )

    // What each worker is handling and since when (see `work` below).
    const inFlight = new InFlight(concurrency, slowHandlerAfterMillis)
    const handle = SubscriberHandling.make<Received<E>, Err, R>({
      attempt,
      policy: compiled,
      held,
      broker,
      identity,
      clock,
      tracing,
      durable,
      settling: (message) => inFlight.settling(message)
    })

    // Lanes: one shared lane when order does not matter, one lane per worker when it does.
    const ordered = options.orderBy !== undefined || concurrency === 1
    const lanes = Array.from({ length: ordered ? concurrency : 1 }, () => new Lane<Item<E>>())
    const orderBy = options.orderBy
    // Decodes a message and queues it in the lane of its key. An `orderBy` that throws makes the message
    // a defect for the policy (in the first lane) rather than ending the consume loop.
    const enqueue = (message: Message): void => {
      const decoded = decode(message)
      if (lanes.length === 1 || orderBy === undefined || Exit.isFailure(decoded)) {
        lanes[0]?.push({ message, decoded })
        return
      }
      const key = Result.try(() => orderBy(decoded.value))
      if (Result.isFailure(key)) lanes[0]?.push({ message, decoded, defect: key.failure })
      else lanes[laneOf(key.success, lanes.length)]?.push({ message, decoded })
    }

    // A worker takes the next message of its lane itself, and parks only when the lane is empty. What
    // each one is handling is kept, so that a worker interrupted at shutdown gives its message back.
    const giveBackInFlight = (index: number) =>
      Effect.sync(() => {
        const message = inFlight.take(index)
        if (message === undefined) return
        message.nak()
        held.release(message)
      })
    const now = () => clock.currentTimeMillisUnsafe()
    const work = (lane: Lane<Item<E>>, index: number): Effect.Effect<void, never, R> =>
      Effect.gen(function* () {
        while (true) {
          const item = lane.poll() ?? (yield* lane.wait)
          if (item === undefined) return
          const eventId = Exit.isSuccess(item.decoded) ? item.decoded.value.eventId : undefined
          inFlight.start(index, item.message, eventId, now())
          yield* handle(item)
          const finished = inFlight.finish(index, now)
          if (finished !== undefined) yield* Effect.logInfo(finished)
        }
      }).pipe(
        // `handle` settles every outcome; a defect here is a bug of ours, and must not cost a worker.
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.failCause(cause)
            : Effect.logError("a subscriber worker failed; its message is given back", cause).pipe(
                Effect.andThen(giveBackInFlight(index)),
                Effect.andThen(Effect.suspend(() => work(lane, index)))
              )
        )
      )
    const workers = yield* Effect.forEach(Array.from({ length: concurrency }), (_, index) =>
      Effect.forkDetach(work(lanes[ordered ? index : 0] as Lane<Item<E>>, index))
    )

    // Each chunk the consume loop emits is decoded and handed to the lanes in one synchronous step, so an
    // interruption never finds part of a chunk handed over and the rest stranded. The loop is supervised:
    // whatever ends it is logged and it starts again, with its consumer provisioned again first (the
    // first run uses the one provisioned above). What the lanes hold meanwhile is handled and settled.
    const consumeOptions = { maxMessages: prefetch, chunked: true, idleHeartbeat }
    let consumeRuns = 0
    const dispatch = (up: Effect.Effect<void>) =>
      (consumeRuns++ === 0 ? up : Effect.andThen(provisionConsumer, up)).pipe(
        Effect.andThen(
          broker.consume(stream, durable, consumeOptions).pipe(
            Stream.runForEachArray((chunk) =>
              Effect.sync(() => {
                const now = clock.currentTimeMillisUnsafe()
                for (const message of chunk) {
                  held.add(message, now)
                  enqueue(message)
                }
                for (const lane of lanes) lane.wake()
              })
            )
          )
        )
      )
    const dispatcher = yield* supervise({ name: `subscriber ${durable}: consume ${stream}/${durable}` }, dispatch).pipe(
      // Started here and now, so that the consume is set up (as far as that takes no waiting) before
      // `make` returns, and a subscriber started first is first in line for messages.
      Effect.forkDetach({ startImmediately: true })
    )

    // `working` for everything held longer than half the ack-wait, and a WARN for handlers running long.
    const keepAliveEvery = Duration.millis(Math.max(10, Math.min(ackWaitMillis, slowHandlerAfterMillis) / 4))
    const keepAlive = yield* supervise({ name: `subscriber ${durable}: keep-alive` }, () =>
      Effect.suspend(() => {
        const at = now()
        held.keepAlive(at, ackWaitMillis / 2)
        const slow = inFlight.slow(at)
        return slow.length === 0 ? Effect.void : Effect.forEach(slow, (line) => Effect.logWarning(line))
      }).pipe(Effect.repeat(Schedule.spaced(keepAliveEvery)))
    ).pipe(Effect.forkDetach)

    const advisories = yield* supervise(
      { name: `subscriber ${durable}: max-deliveries advisory watcher for ${stream}/${durable}` },
      (up) => watchAdvisories({ stream, consumer: durable, advisoryStream }, up)
    ).pipe(Effect.forkDetach)

    // The durable, looked up at intervals: created again when deleted; a missing stream fails the watch,
    // which its supervisor reports at ERROR until the stream is back.
    const checkConsumer = Effect.gen(function* () {
      const info = yield* broker.consumerInfo(stream, durable)
      if (Option.isSome(info)) return
      if (Option.isNone(yield* broker.streamInfo(stream))) {
        return yield* Effect.fail(
          NatsError.make(
            "checkConsumer",
            new NatsError.StreamNotFound({
              message: `stream ${stream} does not exist: ${durable} receives nothing until it is created again`,
              stream
            })
          )
        )
      }
      yield* provisionConsumer
      yield* Effect.logWarning(
        `consumer ${stream}/${durable} was deleted; created it again (deliver policy ${options.deliverPolicy ?? "all"})`
      )
    })
    const watcher = yield* supervise({ name: `subscriber ${durable}: consumer check` }, (up) =>
      checkConsumer.pipe(
        // JetStream not answering for now is the consume loop's to report, not this check's.
        Effect.catchIf(
          (error) => NatsError.isNatsError(error) && error.isRetryable,
          (error) => Effect.logDebug(`consumer check: ${error.message}`)
        ),
        Effect.andThen(up),
        Effect.andThen(Effect.sleep(checkConsumerEvery)),
        Effect.forever
      )
    ).pipe(Effect.forkDetach)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Fiber.interrupt(dispatcher)
        // What was received but not started goes back at once.
        for (const lane of lanes) {
          for (const item of lane.drain()) {
            item.message.nak()
            held.release(item.message)
          }
          lane.close()
        }
        const finished = yield* Fiber.joinAll(workers).pipe(Effect.timeout(shutdownTimeout), Effect.exit)
        if (Exit.isFailure(finished)) {
          yield* Effect.logWarning(
            `handlers still running after ${formatDuration(shutdownTimeout)}: interrupting them; their messages are nak'ed`
          )
          yield* Fiber.interruptAll(workers)
          // Interrupted handlers: their messages go back at once, never acked.
          for (let index = 0; index < concurrency; index++) yield* giveBackInFlight(index)
        }
        yield* Fiber.interruptAll([keepAlive, advisories, watcher])
        yield* Effect.logInfo(`subscriber ${durable} stopped`)
      })
    )
    yield* Effect.logInfo(
      `subscriber ${durable} consuming ${filterSubject} from ${stream} (concurrency ${concurrency}, prefetch ${prefetch})`
    )
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
