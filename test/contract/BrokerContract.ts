/**
 * The broker contract: one set of scenarios that defines "same semantics" for every `Broker`.
 *
 * `suite(name, makeLayer, capabilities)` registers every scenario the broker's capabilities allow, each
 * on a fresh broker from `makeLayer` (its own nats-server for NATS, a new in-process broker for memory)
 * with `Streams.topology` (or the scenario's own topology), a `Publisher` and a `ServiceIdentity` on top.
 * Scenarios run on the real clock (`it.live`): the same code waits the same ack-waits and nak delays on
 * every broker, and timing is asserted only as lower bounds (never redelivered before the delay).
 *
 * The scenarios, in order (`scenarioNames` lists them), by the file that holds them:
 *  - Delivery.ts: publish/consume with subject, bytes (text, binary, empty, 200 kB), headers, positions
 *    and the stored copy intact; lookups and typed failures (no stream, no consumer, wrong last sequence,
 *    past max_payload); subjects isolated under filters and `>` / `*` patterns;
 *  - Handling.ts: 4 publishers × 1,000 with `publishAll` and 3 subscribers on 2 durables, none lost or
 *    duplicated;
 *  - Administration.ts: stream and consumer configuration round-trips, updates applied or refused (with
 *    the server's codes and texts), list and delete; consumers listed with their state; purges by
 *    sequence and what they leave (messages, stream state, the consumer's position);
 *  - Consume.ts: stream order over 2,000 messages, acks and the ack floor, the `maxMessages` bound, a
 *    `window` narrowed and widened while it runs, an interrupted consume's buffer given back at once, a consume outliving its consumer and its stream
 *    deleted and created again;
 *  - Delivery.ts: nak at once and after a delay, `maxAckPending` (a redelivery still goes out), term,
 *    ack-wait expiry, `working`; DeadLetters.ts: max deliveries → advisory → dead letter with the bytes;
 *    Delivery.ts: dedupe within a 1 s duplicate window and not after it;
 *  - Handling.ts: stream order at concurrency 1, close and reopen, two durables, a new durable reading
 *    history; DeadLetters.ts: poison bodies in `GLAM_DLQ` with their exact bytes; Handling.ts: graceful
 *    shutdown mid-stream;
 *  - Delivery.ts: a consume interrupted mid-flow loses nothing (at once, with `interruptGivesBackAtOnce`);
 *  - Restart.ts (capability `serverRestart`): two server restarts under 10,000 messages lose nothing.
 *
 * Each broker runs the suite from a file of its own that only passes its layer and capabilities:
 * memory.test.ts and nats.test.ts. What only one broker has is tested in test/memory/ and test/nats/.
 *
 * Where the brokers cannot match, a capability says so and the scenario is not registered at all: a
 * broker without a server (memory) has no `serverRestart`; one whose timers do not follow the wall
 * clock would lack `realTime` and skip the scenarios that wait on ack-waits, delays and windows.
 */
import { describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Broker } from "../../src/Broker.js"
import * as Streams from "../../src/glam/Streams.js"
import * as Publisher from "../../src/Publisher.js"
import * as ServiceIdentity from "../../src/ServiceIdentity.js"
import * as Topology from "../../src/Topology.js"
import {
  consumerConfiguration,
  consumerListing,
  streamConfiguration,
  streamPurge,
  streamUpdates
} from "./Administration.js"
import {
  ackFloor,
  boundedBuffer,
  consumerAndStreamRecreated,
  interruptedBuffer,
  narrowedWindow,
  streamOrder
} from "./Consume.js"
import { maxDeliveries, poisonDeadLettered } from "./DeadLetters.js"
import {
  ackWaitExpiry,
  dedupeWindow,
  interruptedConsume,
  lookupsAndFailures,
  maxAckPending,
  nakRedelivery,
  publishConsume,
  subjectsIsolated,
  termNeverRedelivered,
  workingExtendsAckWait
} from "./Delivery.js"
import {
  closeAndReopen,
  gracefulShutdown,
  manyPublishersAndSubscribers,
  newDurableReadsHistory,
  orderAtConcurrencyOne,
  twoDurables
} from "./Handling.js"
import type { Scenario } from "./Harness.js"
import { serverRestart } from "./Restart.js"

/**
 * What a broker can do that another cannot. `R` is what the broker's layer provides besides `Broker`
 * (a handle on its server, for instance) that a capability needs.
 */
export interface Capabilities<R = never> {
  /** How to restart the broker's server under running clients; `false` when there is no server. */
  readonly serverRestart: false | { readonly restart: Effect.Effect<void, unknown, R> }
  /** Timers (ack-wait, nak delays, duplicate window) follow the wall clock. */
  readonly realTime: boolean
  /**
   * An interrupted consume gives back at once every delivery it did not emit. `false` on NATS: a delivery
   * the server sent to a pull request just as the subscription closed reaches nobody and comes back only
   * after the ack-wait (the scenario then checks that it does come back, nothing lost).
   */
  readonly interruptGivesBackAtOnce: boolean
}

/** How the suite runs its scenarios. */
export interface SuiteOptions {
  /** Run scenarios concurrently (each has its own broker). Default `false`. */
  readonly concurrent?: boolean | undefined
}

const common: ReadonlyArray<Scenario> = [
  publishConsume,
  lookupsAndFailures,
  manyPublishersAndSubscribers,
  subjectsIsolated,
  streamConfiguration,
  streamUpdates,
  consumerConfiguration,
  consumerListing,
  streamPurge,
  streamOrder,
  ackFloor,
  boundedBuffer,
  narrowedWindow,
  interruptedBuffer,
  consumerAndStreamRecreated,
  nakRedelivery,
  maxAckPending,
  termNeverRedelivered,
  ackWaitExpiry,
  workingExtendsAckWait,
  maxDeliveries,
  dedupeWindow,
  orderAtConcurrencyOne,
  closeAndReopen,
  twoDurables,
  newDurableReadsHistory,
  poisonDeadLettered,
  gracefulShutdown
]

/** The scenarios a broker with these capabilities runs. */
export const scenariosFor = <R>(capabilities: Capabilities<R>): ReadonlyArray<Scenario<R>> => [
  ...common.filter((scenario) => capabilities.realTime || scenario.realTime !== true),
  interruptedConsume(capabilities.interruptGivesBackAtOnce),
  ...(capabilities.serverRestart === false ? [] : [serverRestart(capabilities.serverRestart.restart)])
]

/** The names of the scenarios a broker with these capabilities runs, in order. */
export const scenarioNames = <R>(capabilities: Capabilities<R>): ReadonlyArray<string> =>
  scenariosFor(capabilities).map((scenario) => scenario.name)

/**
 * Registers the contract for one broker: a `describe` block named `name` with one `it.live` per scenario,
 * each on a fresh layer from `makeLayer`.
 */
export const suite = <R = never>(
  name: string,
  makeLayer: () => Layer.Layer<Broker | R, unknown>,
  capabilities: Capabilities<R>,
  options: SuiteOptions = {}
): void => {
  const register = options.concurrent === true ? describe.concurrent : describe
  register(name, () => {
    for (const scenario of scenariosFor(capabilities)) {
      it.live(
        scenario.name,
        () => {
          const env = Publisher.layer().pipe(
            Layer.provideMerge(Topology.layer(scenario.topology ?? Streams.topology)),
            Layer.provideMerge(ServiceIdentity.layer("contract-service")),
            Layer.provideMerge(makeLayer())
          )
          return scenario.run.pipe(Effect.scoped, Effect.provide(env))
        },
        scenario.timeout ?? 20_000
      )
    }
  })
}
