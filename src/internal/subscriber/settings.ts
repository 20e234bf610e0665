/**
 * A subscriber's options with their defaults applied, once, when it starts: the names of its durable
 * consumer, its bounds (concurrency, prefetch, max ack pending) and its times.
 */
import { Duration, Option } from "effect"
import type * as Event from "../../Event.js"
import type { Options } from "../../Subscriber.js"
import { commonPrefixFilter, groupName } from "./names.js"

/** The options that do not depend on the subscriber's events. */
export type Given = Omit<Options<Event.Any, never, never>, "handler" | "policy" | "orderBy">

export const resolve = (options: Given, subjects: ReadonlyArray<string>, service: string) => {
  const filterSubject = options.filterSubject ?? commonPrefixFilter(subjects)
  const concurrency = Math.max(1, options.concurrency ?? 1)
  const ackWait = Duration.fromInputUnsafe(options.ackWait ?? "30 seconds")
  const ackWaitMillis = Duration.toMillis(ackWait)
  const prefetchWanted = Math.max(concurrency, options.prefetch ?? concurrency)
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
