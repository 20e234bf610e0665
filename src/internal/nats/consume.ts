/**
 * The consume loop of a durable pull consumer as a `Stream` of `Broker.Message`s: the Effect half,
 * around the pull flow of `pull`.
 *
 * Deliveries arrive in one subscription callback and are offered to the Stream's queue (no Promise
 * per message; the Stream takes them in chunks). The queue needs no capacity of its own: it only ever
 * holds deliveries that occupy a slot, so never more than `maxMessages`.
 *
 * The callback tells the rest through one event queue, read by one fiber in the Stream's scope: it logs
 * statuses and carries out resets (a reconnect, since a restarted server forgot the requests; two
 * missed heartbeats; the consumer deleted; the server ending a pull): once the consumer answers again,
 * waiting on a `Schedule` for as long as it is gone, it restarts the flow. Other fibers check heartbeats
 * and follow the connection. Interrupting the Stream unsubscribes, so nothing more is pulled, and naks
 * what arrived but was never emitted, so that it is redelivered at once.
 *
 * Not here: decoding, handlers, policies (`Consumer`, `Subscriber`).
 */
import { type Cause, Clock, Duration, Effect, Queue, Schedule, Stream } from "effect"
import type { ConsumeOptions, Message } from "../../Broker.js"
import type { NatsClient } from "../../NatsClient.js"
import * as NatsError from "../../NatsError.js"
import { formatDuration, formatMillis } from "../durations.js"
import { fromCause } from "./errors.js"
import { type FlowEvent, PullFlow, type Reset } from "./pull.js"

/**
 * Two heartbeats of silence mean lost pulls: with 2 s, a consumer whose leader died is noticed within
 * about 5 s, while nats-server elects a new leader within 4 to 9 s.
 */
export const DEFAULT_IDLE_HEARTBEAT = Duration.seconds(2)

// While delivery is stopped, at most one line a this long says it still is.
const OUTAGE_REPORT_MILLIS = 30_000

// How often to ask for a consumer that is gone, or for JetStream while it does not answer.
const consumerWait = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("1 second")])

// A consumer info request that a dead leader will never answer is given up after this, not after the
// manager's 5 s: the new leader, elected meanwhile, answers the next one at once.
const CONSUMER_INFO_TIMEOUT = Duration.seconds(1)

const notFound = (error: NatsError.NatsError): boolean =>
  error.reason._tag === "ConsumerNotFound" || error.reason._tag === "StreamNotFound"

/**
 * The deliveries of `consumer` on `stream`. Fails at once when the consumer does not exist; once it
 * did, waits for it whenever it is gone.
 */
export const consume = (
  client: NatsClient["Service"],
  stream: string,
  consumer: string,
  options: ConsumeOptions
): Stream.Stream<Message, NatsError.NatsError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      // Emitted one at a time unless asked for chunks: a chunk handed downstream and interrupted midway
      // would strand the rest of it (neither here to be nak'ed nor with anyone to settle it) until its
      // ack-wait runs out.
      const deliveries = yield* Queue.unbounded<Message, NatsError.NatsError | Cause.Done>()
      const { connection, manager, jetstream } = client
      const where = `consume ${stream}/${consumer}`
      const heartbeat = options.idleHeartbeat ?? DEFAULT_IDLE_HEARTBEAT
      const consumerInfo = Effect.tryPromise({
        try: () => manager.consumers.info(stream, consumer),
        catch: fromCause("consume", { stream, consumer })
      })
      let warned = false
      yield* consumerInfo.pipe(
        Effect.tapError((error) => {
          if (warned || !error.isRetryable) return Effect.logDebug(`${where}: ${error.reason.message}`)
          warned = true
          return Effect.logWarning(`${where}: ${error.reason.message}; waiting for JetStream to answer`)
        }),
        Effect.retry({ while: (error) => error.isRetryable, schedule: consumerWait })
      )
      if (warned) yield* Effect.logInfo(`${where}: JetStream answered; consuming`)

      const events = yield* Queue.unbounded<FlowEvent>()
      const flow = new PullFlow({
        connection,
        apiPrefix: jetstream.apiPrefix,
        // nats.js sets it to the connection's inbox prefix, which permissions may require.
        inboxPrefix: jetstream.getOptions().watcherPrefix,
        stream,
        consumer,
        maxMessages: Math.max(1, Math.floor(options.maxMessages)),
        window: options.window,
        heartbeatMillis: Math.max(1, Math.round(Duration.toMillis(heartbeat))),
        supportsTermReason: yield* client.supportsTermReason,
        deliveries,
        events
      })
      const subscription = yield* Effect.acquireRelease(
        Effect.try({
          try: () => connection.subscribe(flow.inbox, { callback: flow.receive }),
          catch: fromCause("consume", { stream, consumer })
        }),
        (subscription) =>
          Effect.gen(function* () {
            flow.close()
            if (!subscription.isClosed()) subscription.unsubscribe()
            // nats-server 2.9 keeps the requests of a gone subscriber on its waiting list until something
            // sweeps it, and a redelivery meant for such a request is lost until ack-wait (while another
            // message is delivered twice). A consumer info request sweeps the list, so that naks sent
            // from now on, here or by whoever still holds deliveries, redeliver at once.
            if (!connection.isClosed()) yield* consumerInfo.pipe(Effect.timeout("2 seconds"), Effect.ignore)
            const unsent = yield* Queue.clear(deliveries).pipe(Effect.orElseSucceed(() => []))
            for (const message of unsent) message.nak()
          })
      )

      const consumerAnswers = consumerInfo.pipe(
        Effect.timeoutOrElse({
          duration: CONSUMER_INFO_TIMEOUT,
          orElse: () =>
            Effect.fail(
              NatsError.make(
                "consume",
                new NatsError.Timeout({
                  message: `no answer to a consumer info request within ${formatDuration(CONSUMER_INFO_TIMEOUT)}`
                })
              )
            )
        })
      )
      // A reset that stops delivery, or JetStream not answering while the consumer is looked up, opens an
      // outage: one WARN, later tries of the same outage at Debug (a summary at most every 30 s), and one
      // INFO with its length once the server answers a pull again.
      const clock = yield* Clock.Clock
      let outage: { readonly since: number; resets: number; reportedAt: number } | undefined
      const opened = (reason: string, next: string) => {
        const now = clock.currentTimeMillisUnsafe()
        if (outage === undefined) {
          outage = { since: now, resets: 1, reportedAt: now }
          return Effect.logWarning(`${where}: ${reason}; ${next}`)
        }
        outage.resets++
        if (now - outage.reportedAt < OUTAGE_REPORT_MILLIS) return Effect.logDebug(`${where}: ${reason}; ${next}`)
        outage.reportedAt = now
        const lasted = formatMillis(now - outage.since)
        return Effect.logWarning(
          `${where}: nothing delivered for ${lasted} (${outage.resets} tries); last: ${reason}; ${next}`
        )
      }
      const closeOutage = Effect.suspend(() => {
        if (outage === undefined || !flow.answering) return Effect.void
        const lasted = formatMillis(clock.currentTimeMillisUnsafe() - outage.since)
        const resets = outage.resets
        outage = undefined
        return Effect.logInfo(`${where}: the server answers pulls again after ${lasted} (${resets} tries)`)
      })

      const waitForConsumer = Effect.gen(function* () {
        let gone = false
        yield* consumerAnswers.pipe(
          Effect.tapError((error) => {
            // JetStream not answering (no leader, no quorum, a reconnect under way) is an outage of its own.
            if (!notFound(error)) return opened(error.reason.message, "waiting for JetStream to answer")
            if (gone) return Effect.logDebug(`${where}: ${error.reason.message}; waiting`)
            gone = true
            return Effect.logWarning(`${where}: ${error.reason.message}; waiting for it to be created again`)
          }),
          Effect.retry({ while: (error) => error.isRetryable || notFound(error), schedule: consumerWait })
        )
        if (gone) yield* Effect.logInfo(`${where}: the consumer is back; consuming again`)
      })

      const carryOut = (reset: Reset) =>
        Effect.gen(function* () {
          if (reset.level === "Warn") yield* opened(reset.reason, "pulling again")
          else yield* Effect.logWithLevel(reset.level)(`${where}: ${reset.reason}; pulling again`)
          if (reset.pauseMillis > 0) yield* Effect.sleep(Duration.millis(reset.pauseMillis))
          yield* waitForConsumer
          flow.restart()
        })
      // What the flow reports, in order. A reset is carried out before the next event: the flow pulls
      // nothing meanwhile, so what queues up behind it is a few log lines at most.
      const flowEvents = Effect.forever(
        Effect.flatMap(Queue.take(events), (event) =>
          event._tag === "Reset"
            ? carryOut(event.reset)
            : Effect.logWithLevel(event.level)(`${where}: ${event.message}`)
        )
      )
      // Checked every half heartbeat, starting after the first; the flow counts four quiet checks in a
      // row (two heartbeats of silence) as lost pulls, so a heartbeat arriving a little late is no miss.
      const heartbeats = Effect.sync(() => flow.checkHeartbeats()).pipe(
        Effect.andThen(closeOutage),
        Effect.delay(Duration.times(heartbeat, 0.5)),
        Effect.forever
      )
      const reconnects = client.status.pipe(
        Stream.runForEach((event) =>
          event._tag === "Reconnected"
            ? Effect.flatMap(client.supportsTermReason, (supportsTermReason) =>
                Effect.sync(() => flow.reconnected(supportsTermReason))
              )
            : Effect.void
        )
      )
      // Unsubscribed by someone else: the connection was closed (or drained) under the Stream.
      const closed = Effect.promise(() => subscription.closed).pipe(
        Effect.flatMap(() =>
          flow.isClosed
            ? Effect.never
            : Effect.fail(
                NatsError.make("consume", new NatsError.Closed({ message: `${where}: the connection closed` }))
              )
        )
      )

      flow.restart()
      yield* Effect.all([flowEvents, heartbeats, reconnects, closed], {
        concurrency: "unbounded",
        discard: true
      }).pipe(
        Effect.catchCause((cause) => Queue.failCause(deliveries, cause)),
        Effect.forkScoped
      )
      return options.chunked === true ? Stream.fromQueue(deliveries) : Stream.fromEffectRepeat(Queue.take(deliveries))
    }).pipe(Effect.annotateLogs({ stream, consumer }))
  )
