/**
 * The Subscriber's bookkeeping that needs no Effect: default names, per-key lanes, the messages this
 * process holds (for `working`), when each first failed here, and how a failure is described in logs
 * and dead-letter records.
 */
import type { Message } from "../Broker.js"
import type * as Policy from "../Policy.js"

/** The one subject, or the common prefix of the subjects followed by `>`. */
export const commonPrefixFilter = (subjects: ReadonlyArray<string>): string => {
  const [first, ...rest] = subjects.map((subject) => subject.split("."))
  if (first === undefined) return ">"
  if (rest.length === 0) return first.join(".")
  let length = 0
  while (length < first.length && rest.every((tokens) => tokens[length] === first[length])) length++
  return length === 0 ? ">" : `${first.slice(0, length).join(".")}.>`
}

/** A queue group name from a filter: `evt.merchant.>` → `evt-merchant`. */
export const groupName = (filter: string): string =>
  filter
    .split(".")
    .filter((token) => token !== ">" && token !== "*")
    .join("-") || "all"

/** A stable lane for a key, so that one key is always handled by the same worker. */
export const laneOf = (key: string, lanes: number): number => {
  let hash = 0
  for (let i = 0; i < key.length; i++) hash = (Math.imul(hash, 31) + key.charCodeAt(i)) | 0
  return Math.abs(hash) % lanes
}

/** Whether the publisher sent W3C trace context (checked before parsing, which costs more). */
export const hasTraceContext = (headers: Message["headers"]): boolean => {
  for (const [name] of headers) if (name.length === 11 && name.toLowerCase() === "traceparent") return true
  return false
}

const FIRST_FAILURES_KEPT = 10_000

/**
 * Messages held by this process (waiting or running), with when `working` was last sent for each, and
 * the time each message first failed here (kept across its redeliveries to this process, bounded).
 */
export class Held {
  private readonly since = new Map<Message, number>()
  private readonly firstFailures = new Map<string, number>()

  add(message: Message, now: number): void {
    this.since.set(message, now)
  }

  /** The message was nak'ed: it may come back, so its first failure is kept. */
  release(message: Message): void {
    this.since.delete(message)
  }

  /** The message is settled for good. */
  forget(message: Message): void {
    this.since.delete(message)
    if (this.firstFailures.size > 0) this.firstFailures.delete(keyOf(message))
  }

  /** Records a failure at `now`; returns the first failure time known for the message. */
  failed(message: Message, now: number): number {
    const key = keyOf(message)
    const first = this.firstFailures.get(key)
    if (first !== undefined) return first
    if (this.firstFailures.size >= FIRST_FAILURES_KEPT) {
      const oldest = this.firstFailures.keys().next()
      if (oldest.done !== true) this.firstFailures.delete(oldest.value)
    }
    this.firstFailures.set(key, now)
    return now
  }

  /** Sends `working` for every message held at least `after` milliseconds since it came or was last touched. */
  keepAlive(now: number, after: number): void {
    for (const [message, since] of this.since) {
      if (now - since >= after) {
        message.working()
        this.since.set(message, now)
      }
    }
  }
}

const keyOf = (message: Message): string => `${message.stream}:${message.streamSeq}`

/** A tagged error's message, or its fields when it has none (`Data.TaggedError`s often have none). */
const messageOf = (error: unknown): string => {
  if (typeof error === "string") return error
  if (error instanceof Error && error.message !== "") return error.message
  if (typeof error === "object" && error !== null) {
    const json = JSON.stringify(Object.fromEntries(Object.entries(error).filter(([key]) => key !== "_tag")))
    if (json !== undefined && json !== "{}") return json
  }
  return String(error)
}

const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : undefined

/** The failure as the dead-letter record and the logs describe it. */
export const describe = (
  failure: Policy.Failure<unknown>
): { readonly code: string; readonly message: string; readonly operation: string } => {
  switch (failure._tag) {
    case "Decode":
      return { code: "DecodeError", message: failure.error.message, operation: `decode (${failure.error.stage})` }
    case "Defect":
      return {
        code: failure.defect instanceof Error ? failure.defect.name : "Defect",
        message: messageOf(failure.defect),
        operation: "handler"
      }
    case "Error":
      return { code: tagOf(failure.error) ?? "Error", message: messageOf(failure.error), operation: "handler" }
  }
}
