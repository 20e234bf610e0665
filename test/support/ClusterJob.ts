/**
 * What the cluster test and its subscriber processes (`test/fixtures/shared-durable-subscriber.ts`)
 * share: the event, the durable, its ack-wait, and the line a process prints per handled job.
 */
import { Schema } from "effect"
import * as Event from "../../src/Event.js"

export const ClusterJob = Event.make("evt.cluster.job.v1", Schema.Struct({ n: Schema.Number }))

export const durable = "cluster-shared"

export const ackWait = "2 seconds"

export const handledLine = (worker: string, n: number) => `${worker} handled ${n}`

export const parseHandled = (line: string): { readonly worker: string; readonly n: number } | undefined => {
  const match = /^(\S+) handled (\d+)$/.exec(line.trim())
  return match?.[1] === undefined || match[2] === undefined ? undefined : { worker: match[1], n: Number(match[2]) }
}
