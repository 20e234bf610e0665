/**
 * What a subscriber does with one decoded message: run the handler in the message's context (the
 * message for follow-up publishes, the Python package's log fields, and a consumer span when a tracer
 * records spans), retry in process while the policy says so, and settle the message by the outcome:
 * `ack`, `nak` with a delay, `term`, or a dead letter written (and acknowledged by the server) before
 * the original is terminated. When writing it fails, the original is nak'ed with the policy's
 * `redeliveryDelay`, never dropped; at the server's last delivery (past which a nak would leave it to the max-deliveries
 * advisory) it is kept in process and written again on a backoff until the write goes through. The log
 * tells such an outage once, with a summary every 30 s, not once per failed write.
 *
 * Not here: pulling (`consumer`), decoding (`decode`), lanes, workers and shutdown (`workers`).
 */
import { Cause, Clock, Context, DateTime, Duration, Effect, Exit, Option, References, Schedule } from "effect"
import { Broker, type Message } from "../../Broker.js"
import * as DeadLetter from "../../DeadLetter.js"
import * as Envelope from "../../Envelope.js"
import * as MessageContext from "../../MessageContext.js"
import * as Metrics from "../../Metrics.js"
import type * as Policy from "../../Policy.js"
import { ServiceIdentity } from "../../ServiceIdentity.js"
import { WriteOutages } from "../deadLetter/writeOutages.js"
import { formatDuration } from "../durations.js"
import * as PublishOutages from "../publisher/outages.js"
import * as Telemetry from "../telemetry.js"
import { hasTraceContext, isTracing } from "../tracing.js"
import { describeFailure } from "./failures.js"
import type { Held } from "./held.js"
import type { InFlight } from "./inFlight.js"

/** A delivery and what decoding it gave. */
export interface Item<A> {
  readonly message: Message
  readonly decoded: Exit.Exit<A, Envelope.DecodeError>
  /** Set when preparing the message failed before its handler could run (an `orderBy` that threw). */
  readonly defect?: unknown
}

/** What the handling of a subscriber's messages is given; the services it needs it takes once, in `make`. */
export interface Config<A extends Envelope.Envelope<unknown>, Err, R> {
  /** The handler, with its timeout when one is set. */
  readonly attempt: (message: Message, envelope: A) => Effect.Effect<void, Err, R>
  readonly policy: Policy.Compiled<Err>
  readonly held: Held
  /** Told when a message's handler is done and its dead letter is being written again (its slot held). */
  readonly inFlight: InFlight
  readonly durable: string
}

// A failure as its log line opens, the same for a typed error and a defect: `TypeError: x is undefined`,
// `Declined: {"n":1}`. The cause goes with the line, so that its stack is there when debugging.
const failed = (failure: Policy.Failure<unknown>): string => {
  const { code, message } = describeFailure(failure)
  return message === "" || message === code ? code : `${code}: ${message}`
}

const causeOf = (failure: Policy.Failure<unknown>): Cause.Cause<unknown> =>
  failure._tag === "Defect" ? Cause.die(failure.defect) : Cause.fail(failure.error)

/** The handling of one message, which settles every outcome and never fails. */
export const make = Effect.fnUntraced(function* <A extends Envelope.Envelope<unknown>, Err, R>(
  config: Config<A, Err, R>
) {
  const { attempt, policy: compiled, held, inFlight, durable } = config
  const broker = yield* Broker
  const identity = yield* ServiceIdentity
  const { system } = broker
  const service = identity.name
  const clock = yield* Clock.Clock
  // Asked once: spans per message only when something records them.
  const tracing = yield* isTracing
  const metrics = (yield* Metrics.Enabled)
    ? new Telemetry.ConsumeMetrics(system, durable, clock, yield* Effect.context<never>())
    : undefined
  if (metrics !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => metrics.close()))

  // How a delivery was settled, on its span and in the metrics; nothing at all when neither records.
  // Metrics alone need no fiber: counted when `observe` is called (so call it only where the settlement
  // has happened), no effect run per message.
  type Observe = (
    message: Message,
    outcome: Metrics.Outcome,
    failure?: Policy.Failure<Err>,
    delay?: number
  ) => Effect.Effect<void>
  const traced: Observe = (message, outcome, failure, delay) =>
    Effect.withFiber((fiber) => {
      const span = Telemetry.ownSpan(fiber)
      if (span !== undefined) {
        const errorType = failure === undefined ? undefined : describeFailure(failure).code
        Telemetry.recordSettlement(span, outcome, errorType, delay)
      }
      metrics?.settled(message, outcome)
      return Effect.void
    })
  const counted: Observe = (message, outcome) => {
    metrics?.settled(message, outcome)
    return Effect.void
  }
  const observe: Observe = tracing ? traced : metrics === undefined ? () => Effect.void : counted

  // The server gives up after one delivery more than the policy allows (`consumer` sets the durable's
  // `maxDeliver` so): a message nak'ed at that delivery would be left to the max-deliveries advisory.
  const lastDelivery = compiled.maxDeliveries + 1
  const writes = new WriteOutages(`subscriber ${durable}`)
  // The dead-letter writer, with its services and its outage log, made once.
  const services = Context.make(Broker, broker).pipe(Context.add(ServiceIdentity, identity))
  const publishOptions = { outages: new PublishOutages.Outages() }
  const writeDeadLetter = (input: DeadLetter.PublishInput) =>
    Effect.provideContext(DeadLetter.publish(input, publishOptions), services)

  const deadLetter = (
    message: Message,
    failure: Policy.Failure<Err>,
    decision: DeadLetter.Decision,
    envelope: Envelope.Envelope<unknown> | undefined
  ) =>
    Effect.gen(function* () {
      const now = clock.currentTimeMillisUnsafe()
      const firstFailureAt = held.failed(message, now)
      const where = `${message.stream}#${message.streamSeq}`
      const write = writeDeadLetter({
        message,
        consumer: durable,
        failure: describeFailure(failure),
        decision,
        retryCount: message.deliveryCount - 1,
        maxRetries: compiled.maxDeliveries - 1,
        firstFailureAt: DateTime.makeUnsafe(firstFailureAt),
        lastFailureAt: DateTime.makeUnsafe(now),
        envelope
      })
      const settle = Effect.andThen(
        writes.succeeded,
        Effect.logError(`dead-lettered (${decision}) after ${failed(failure)}`, causeOf(failure))
      ).pipe(
        Effect.andThen(
          Effect.sync(() => {
            message.term(decision)
            held.forget(message)
          })
        ),
        Effect.andThen(() =>
          observe(message, decision === "decode failure" ? "decode_failure" : "dead_lettered", failure)
        )
      )
      const written = yield* Effect.exit(write)
      if (Exit.isSuccess(written)) return yield* settle
      if (message.deliveryCount < lastDelivery) {
        const delay = Duration.toMillis(yield* compiled.redeliveryDelay(message.deliveryCount))
        yield* writes.failed(where, written.cause, `delivery ${message.deliveryCount} redelivered in ${delay} ms`)
        message.nak(delay)
        held.release(message)
        return yield* observe(message, "redelivered", failure, delay)
      }
      // The server's last delivery of it: kept here (the keep-alive sends `working`) and written again on a
      // backoff until its stream takes it; shutdown gives it back, to the advisory path.
      yield* writes.failed(where, written.cause, "its last delivery: kept here and written again every few seconds")
      inFlight.settling(message)
      const again = write.pipe(
        Effect.tapCause((cause) => writes.failed(where, cause, "kept here and written again")),
        Effect.retry(Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("30 seconds")]))
      )
      const retried = yield* Effect.exit(Effect.delay(again, "1 second"))
      if (Exit.isSuccess(retried)) return yield* settle
      yield* Effect.logError(`${where}: its dead letter could not be written; given back to the server`, retried.cause)
      message.nak()
      held.release(message)
      return yield* observe(message, "redelivered", failure, 0)
    })

  const settleFailure = (
    message: Message,
    failure: Policy.Failure<Err>,
    envelope: Envelope.Envelope<unknown> | undefined
  ) =>
    Effect.gen(function* () {
      held.failed(message, clock.currentTimeMillisUnsafe())
      const settlement = yield* compiled.settle(failure, message.deliveryCount)
      switch (settlement._tag) {
        case "Ack":
          yield* Effect.logWarning(
            `dropped by policy after ${failed(failure)}: acknowledged without handling`,
            causeOf(failure)
          )
          message.ack()
          held.forget(message)
          return yield* observe(message, "dropped", failure)
        case "Nak":
          yield* Effect.logWarning(
            `${failed(failure)}: delivery ${message.deliveryCount} failed, redelivery in ${formatDuration(settlement.delay)}`,
            causeOf(failure)
          )
          message.nak(Duration.toMillis(settlement.delay))
          held.release(message)
          return yield* observe(message, "redelivered", failure, Duration.toMillis(settlement.delay))
        case "Term":
          yield* Effect.logWarning(`terminated by policy after ${failed(failure)}`, causeOf(failure))
          message.term(describeFailure(failure).message)
          held.forget(message)
          return yield* observe(message, "termed", failure)
        case "DeadLetter": {
          const decision: DeadLetter.Decision =
            failure._tag === "Decode" ? "decode failure" : settlement.maxDeliveriesReached ? "max deliveries" : "policy"
          return yield* deadLetter(message, failure, decision, envelope)
        }
      }
    })

  // A handler's outcome as the policy sees it; `undefined` when it was only interrupted.
  const failureOf = (cause: Cause.Cause<Err>): Policy.Failure<Err> | undefined => {
    if (Cause.hasInterruptsOnly(cause)) return undefined
    const error = Cause.findErrorOption(cause)
    return Option.isSome(error)
      ? { _tag: "Error", error: error.value }
      : { _tag: "Defect", defect: Cause.squash(cause) }
  }

  const acknowledge = (message: Message, outcome: "acked" | "retried" = "acked"): Effect.Effect<void> => {
    message.ack()
    held.forget(message)
    return observe(message, outcome)
  }

  // Only a failed first attempt builds the retry loop; the loop starts from that failure, so the
  // policy's retry schedule sees every failure, the first included.
  const retryThenSettle = (
    message: Message,
    envelope: A,
    first: Policy.Failure<Err>
  ): Effect.Effect<void, never, R> => {
    if (!compiled.retries(first)) return settleFailure(message, first, envelope)
    let replay: Policy.Failure<Err> | undefined = first
    const again = Effect.suspend((): Effect.Effect<void, Policy.Failure<Err>, R> => {
      if (replay === undefined) {
        return Effect.catchCause(attempt(message, envelope), (cause) => {
          const failure = failureOf(cause)
          return failure === undefined ? Effect.failCause(Cause.interrupt()) : Effect.fail(failure)
        })
      }
      const failure = replay
      replay = undefined
      return Effect.fail(failure)
    })
    return Effect.retry(again, compiled.retrySchedule).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => acknowledge(message, "retried"),
        onFailure: (cause) => {
          const error = Cause.findErrorOption(cause)
          return Option.isSome(error) ? settleFailure(message, error.value, envelope) : giveBack(message)
        }
      })
    )
  }

  const giveBack = (message: Message) =>
    Effect.suspend(() => {
      message.nak()
      held.release(message)
      return observe(message, "redelivered", undefined, 0)
    })

  // The context a handler runs in: the message for follow-up publishes, the Python package's log
  // fields, and a consumer span when a tracer is installed (otherwise only the publisher's trace
  // context, so that a trace goes on through a service that records none).
  const withMessageContext = (
    message: Message,
    envelope: A,
    program: Effect.Effect<void, never, R>
  ): Effect.Effect<void, never, R> => {
    // One context change for both (each change rebuilds the fiber's context cache, on entry and exit).
    const inContext = Effect.updateContext(program, (context: Context.Context<R>) =>
      Context.add(
        Context.add(
          context,
          MessageContext.Current,
          Option.some({
            correlationId: envelope.correlationId,
            eventId: envelope.eventId,
            eventType: envelope.eventType,
            // The message itself: it has the fields `DeliveryInfo` names, so nothing is copied.
            delivery: message
          })
        ),
        References.CurrentLogAnnotations,
        {
          ...Context.get(context, References.CurrentLogAnnotations),
          event_id: envelope.eventId,
          event_type: envelope.eventType,
          correlation_id: envelope.correlationId,
          source_service: envelope.sourceService,
          service,
          entry_point: "event_listener"
        }
      )
    )
    const parent = hasTraceContext(message.headers) ? Envelope.parentSpanFromHeaders(message.headers) : Option.none()
    if (!tracing) return Option.isSome(parent) ? Effect.withParentSpan(inContext, parent.value) : inContext
    const { name, attributes } = Telemetry.consumerSpan(
      system,
      broker.server(),
      durable,
      message,
      envelope.eventId,
      envelope.correlationId
    )
    return Effect.withSpan(inContext, name, {
      kind: "consumer",
      parent: Option.getOrUndefined(parent),
      attributes,
      // The same call site for every message: a stack trace per span tells nothing and cost 7 % of the CPU.
      captureStackTrace: false
    })
  }

  const handle = (item: Item<A>): Effect.Effect<void, never, R> => {
    const { message, decoded } = item
    if (Exit.isFailure(decoded)) {
      const error = Cause.findErrorOption(decoded.cause)
      if (Option.isNone(error)) return giveBack(message)
      // No envelope for the record: the ids it would give are the ones the record reads from the bytes.
      return settleFailure(message, { _tag: "Decode", error: error.value }, undefined)
    }
    const envelope = decoded.value
    if ("defect" in item) return settleFailure(message, { _tag: "Defect", defect: item.defect }, envelope)
    const settled = Effect.matchCauseEffect(attempt(message, envelope), {
      onSuccess: () => acknowledge(message),
      onFailure: (cause) => {
        // Interrupted from inside (the handler interrupted itself): given back, handled again later.
        const failure = failureOf(cause)
        return failure === undefined ? giveBack(message) : retryThenSettle(message, envelope, failure)
      }
    })
    const handled = withMessageContext(message, envelope, settled)
    // Handling begins when its effect is made: the caller runs it at once.
    metrics?.began(message)
    return handled
  }

  return handle
})
