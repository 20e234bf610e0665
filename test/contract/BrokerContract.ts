/**
 * The broker contract: one set of scenarios that defines "same semantics" for every `Broker`.
 *
 * `suite(name, makeLayer, capabilities)` registers every scenario the broker's capabilities allow, each
 * on a fresh broker from `makeLayer` (its own nats-server for NATS, a new in-process broker for memory)
 * with `Streams.topology` (or the scenario's own topology), a `Publisher` and a `ServiceIdentity` on top.
 * Scenarios run on the real clock (`it.live`): the same code waits the same ack-waits and nak delays on
 * every broker, and timing is asserted only as lower bounds (never redelivered before the delay).
 *
 * The scenarios, in order (`scenarioNames` lists them):
 *  1. publish/consume: subject, bytes (text, binary, empty, 200 kB), headers and positions intact;
 *     lookups and typed failures (no stream, no consumer, wrong last sequence);
 *  2. 4 publishers × 1,000 with `publishAll`, 2 subscribers on one durable and 1 on another: by event
 *     id, none lost, none duplicated, and the shared durable's work is shared out;
 *  3. subjects isolated: consumers filtered on a subject, `>` and `*` patterns see exactly their messages;
 *  4. nak: redelivered at once without a delay, and not before the delay with one;
 *  5. no new message past `maxAckPending` until acks come; a consume interrupted mid-flow gives back at
 *     once what it did not emit (nothing waits for the ack-wait);
 *  6. term (with or without a reason): never redelivered;
 *  7. ack-wait expiry redelivers, not before the ack-wait;
 *  8. `working` extends ack-wait;
 *  9. max deliveries → advisory in `GLAM_ADVISORIES` → dead letter with the exact bytes;
 * 10. dedupe within a 1 s duplicate window, and not after it;
 * 11. stream order at concurrency 1 (Subscriber);
 * 12. a closed and reopened subscriber continues where it stopped, nothing lost or repeated;
 * 13. two durables on the same subject each receive every message;
 * 14. a new durable reads history (deliver policy all; new and last as counterparts);
 * 15. poison bodies through a Subscriber end in `GLAM_DLQ` with their exact bytes;
 * 16. graceful shutdown mid-stream loses nothing and acks nothing unfinished;
 * 17. (capability `serverRestart`) two server restarts under 10,000 messages lose nothing.
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
import { consumerConfiguration, streamConfiguration, streamUpdates } from "./Administration.js"
import { ackFloor, boundedBuffer, consumerAndStreamRecreated, interruptedBuffer, streamOrder } from "./Consume.js"
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
  streamOrder,
  ackFloor,
  boundedBuffer,
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
