/**
 * What the crash-loop test and its child process (`test/fixtures/crash-handler.ts`) share: the event,
 * the durable consumer, the policy's limit, and the line the child prints for each handled message.
 */
import { Schema } from "effect"
import * as Event from "../../src/Event.js"

/** A job; the child's handler kills its own process on a job with `crash: true`. */
export const CrashJob = Event.make("evt.crashloop.job.v1", Schema.Struct({ n: Schema.Number, crash: Schema.Boolean }))

export const durable = "crash-loop"

/** The policy gives up at this delivery, so the consumer's `max_deliver` is one more. */
export const maxDeliveries = 2

export const ackWait = "1 second"

/** What the child prints once it has handled job `n`. */
export const handledLine = (n: number) => `handled job ${n}`

export const parseHandled = (line: string): number | undefined => {
  const match = /^handled job (\d+)$/.exec(line.trim())
  return match?.[1] === undefined ? undefined : Number(match[1])
}
