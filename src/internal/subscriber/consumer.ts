/**
 * A subscriber's durable consumer: its spec, provisioned before the subscriber consumes and again
 * before each restart of the consume loop; the consume loop, which hands each chunk of deliveries to
 * the workers; and a check at intervals that the durable is still there (one deleted under a running
 * subscriber is created again; a deleted stream is reported until it is back). Both loops are
 * supervised: whatever ends them is logged and they start again.
 *
 * Not here: what the subscriber's streams must be before it starts (`streams`), the workers.
 */
import { type Duration, Effect, Option, Stream } from "effect"
import type { Broker, ConsumerInfo, Message } from "../../Broker.js"
import * as NatsError from "../../NatsError.js"
import * as Topology from "../../Topology.js"
import { supervise } from "../supervise.js"
import { log as logNote, type Note } from "./window.js"

export interface Spec {
  readonly stream: string
  readonly durable: string
  readonly filterSubject: string
  readonly deliverPolicy: Topology.ConsumerSpec["deliverPolicy"]
  readonly ackWait: Duration.Duration
  readonly maxAckPending: number
  /** The policy's `maxDeliveries`. */
  readonly maxDeliveries: number
}

export interface ConsumeOptions {
  /** Messages held by the client at most. */
  readonly prefetch: number
  /** The slots of `prefetch` that may be held now. */
  readonly window: () => number
  readonly idleHeartbeat: Duration.Duration | undefined
  /** Told when the loop is consuming and when it failed (the subscriber's status follows them). */
  readonly onUp?: (() => void) | undefined
  readonly onFailure?: ((attempts: number, message: string, since: number) => void) | undefined
}

export const make = (broker: Broker["Service"], spec: Spec) => {
  const { stream, durable } = spec

  // The server gives up one delivery after the policy would, so the policy decides whenever it runs at
  // all; the server's max-deliveries advisory covers messages whose handler never got to decide.
  const provision = Topology.provision(
    Topology.make({
      consumers: [
        {
          stream,
          name: durable,
          filterSubject: spec.filterSubject,
          deliverPolicy: spec.deliverPolicy,
          ackWait: spec.ackWait,
          maxAckPending: spec.maxAckPending,
          maxDeliver: spec.maxDeliveries + 1
        }
      ]
    })
  )

  /**
   * Starts the consume loop, handing every chunk to `accept` (synchronously) and logging the line it
   * returns, if any. Its first run uses the consumer provisioned before; each restart provisions it
   * again first.
   */
  const consume = (options: ConsumeOptions, accept: (chunk: ReadonlyArray<Message>) => Note | undefined) => {
    const consumeOptions = {
      maxMessages: options.prefetch,
      window: options.window,
      chunked: true,
      idleHeartbeat: options.idleHeartbeat
    }
    // Called by the Stream as each chunk arrives, and its effect run at once: accepted right here, with
    // no effect of its own per chunk unless there is a line to log.
    const take = (chunk: ReadonlyArray<Message>) => {
      const note = accept(chunk)
      return note === undefined ? Effect.void : logNote(note)
    }
    let consumeRuns = 0
    const dispatch = (up: Effect.Effect<void>) =>
      (consumeRuns++ === 0 ? up : Effect.andThen(provision, up)).pipe(
        Effect.andThen(broker.consume(stream, durable, consumeOptions).pipe(Stream.runForEachArray(take)))
      )
    const name = `subscriber ${durable}: consume ${stream}/${durable}`
    return supervise({ name, onUp: options.onUp, onFailure: options.onFailure }, dispatch).pipe(
      // Started here and now, so that the consume is set up (as far as that takes no waiting) before
      // the subscriber's `make` returns, and a subscriber started first is first in line for messages.
      Effect.forkDetach({ startImmediately: true })
    )
  }

  // A missing stream fails the check, which its supervisor reports at ERROR until the stream is back.
  const check = (onInfo: ((info: ConsumerInfo) => Effect.Effect<void>) | undefined) =>
    Effect.gen(function* () {
      const info = yield* broker.consumerInfo(stream, durable)
      if (Option.isSome(info)) return onInfo === undefined ? undefined : yield* onInfo(info.value)
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
      yield* provision
      yield* Effect.logWarning(
        `consumer ${stream}/${durable} was deleted; created it again (deliver policy ${spec.deliverPolicy ?? "all"})`
      )
    })

  /**
   * Starts looking the durable up every `every`, creating it again when it was deleted; `onInfo` is
   * given what each look-up found (the subscriber samples its lag from it).
   */
  const watch = (
    every: Duration.Duration,
    hooks: Pick<ConsumeOptions, "onUp" | "onFailure"> = {},
    onInfo?: (info: ConsumerInfo) => Effect.Effect<void>
  ) =>
    supervise({ name: `subscriber ${durable}: consumer check`, onUp: hooks.onUp, onFailure: hooks.onFailure }, (up) =>
      check(onInfo).pipe(
        // JetStream not answering for now is the consume loop's to report, not this check's.
        Effect.catchIf(
          (error) => NatsError.isNatsError(error) && error.isRetryable,
          (error) => Effect.logDebug(`consumer check: ${error.message}`)
        ),
        Effect.andThen(up),
        Effect.andThen(Effect.sleep(every)),
        Effect.forever
      )
    ).pipe(Effect.forkDetach)

  return { provision, consume, watch }
}
