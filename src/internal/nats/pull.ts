/**
 * The synchronous half of the consume loop: pull requests sized by free slots, the subscription
 * callback, and the deliveries with their settle verbs, all over the core NATS connection.
 *
 * Every delivery holds one of `maxMessages` slots from its arrival until the first `ack`, `nak` or
 * `term`; a pull asks the server only for slots that are neither held nor already asked for. That is
 * the bound nats.js `consume()` cannot give: it pulls again whenever its outstanding requests fall
 * under 75 % of `max_messages`, whatever the application still holds (with `max_messages: 10` and
 * nothing acknowledged it received 1,000 messages, the consumer's `max_ack_pending`).
 *
 * What is ours and what is nats.js's. The pull requests are ours, typed as nats.js's `PullOptions`.
 * Status messages (heartbeats, ended pulls, deleted consumers) are read through its `JetStreamStatus`.
 * The delivery itself is ours: nats.js 3.4 builds its `JsMsg` (`toJsMsg`, `parseInfo`) only inside its
 * own `consume()` and `fetch()`, exports it from neither `@nats-io/jetstream` nor `/internal`, and its
 * exports map refuses a deep import. So the ack subject is read here and the four verbs are sent here,
 * in the wire format its `jsmsg` uses, with one difference: `term(reason)` drops the reason for servers
 * before 2.11, which would otherwise not term the message at all.
 *
 * Not here: waiting, retrying and logging, which need Effect (`consume`).
 */
import type { PullOptions } from "@nats-io/jetstream"
import { JetStreamStatus } from "@nats-io/jetstream/internal"
import type { Msg, MsgHdrs, NatsConnection, PublishOptions } from "@nats-io/transport-node"
import { createInbox } from "@nats-io/transport-node"
import { Cause, Queue } from "effect"
import type { Headers, Message } from "../../Broker.js"
import * as NatsError from "../../NatsError.js"
import { slotsNow } from "../slots.js"
import { fromCause } from "./errors.js"

const noHeaders: Headers = Object.freeze([])

/** Headers as ordered pairs, a repeated name once per value. */
export const headerPairs = (headers: MsgHdrs | undefined): Headers => {
  if (headers === undefined) return noHeaders
  const pairs: Array<readonly [string, string]> = []
  for (const [name, values] of headers) for (const value of values) pairs.push([name, value])
  return pairs
}

/** Why the outstanding pulls are presumed lost, and how loudly to say so. */
export interface Reset {
  /** `Warn` for what stops delivery (an outage starts), `Info` for what is routine, `Debug` for the rest. */
  readonly level: "Debug" | "Info" | "Warn"
  readonly reason: string
  /** How long to wait before pulling again: the server refused the request, and asking at once would repeat that. */
  readonly pauseMillis: number
}

/**
 * What the callback hands to the consume loop's fiber, in the order it happened: a reset to carry out
 * (at most one at a time: further requests join it until `restart`), or a status worth a log line.
 */
export type FlowEvent =
  | { readonly _tag: "Reset"; readonly reset: Reset }
  | { readonly _tag: "Log"; readonly level: "Debug" | "Info" | "Warn"; readonly message: string }

/**
 * Where a consume is. `Stopped` pulls nothing: before the first `restart`, and while a reset waits for
 * the consumer to answer again. `Closed` is final.
 */
type Phase = "Stopped" | "Pulling" | "Closed"

export interface PullFlowOptions {
  readonly connection: NatsConnection
  readonly apiPrefix: string
  readonly inboxPrefix: string | undefined
  readonly stream: string
  readonly consumer: string
  readonly maxMessages: number
  /** The slots that may be held now (at most `maxMessages`), asked at every pull; default all of them. */
  readonly window?: (() => number) | undefined
  readonly heartbeatMillis: number
  /** Whether the server connected to honours `term(reason)`: the client's value for this connection. */
  readonly supportsTermReason: boolean
  /** Where deliveries go: the Stream's queue. */
  readonly deliveries: Queue.Queue<Message, NatsError.NatsError | Cause.Done>
  /** Where resets and log lines go, for the consume loop's fiber. */
  readonly events: Queue.Queue<FlowEvent>
}

// The server refuses a pull whose heartbeat is more than half its expiry.
const MIN_EXPIRES_MILLIS = 30_000

// Heartbeat checks (every half heartbeat) that must see silence before the pulls count as lost.
const QUIET_CHECKS = 4

const encoder = new TextEncoder()

// The settle verbs without arguments, encoded once.
const ACK = encoder.encode("+ACK")
const NAK = encoder.encode("-NAK")
const TERM = encoder.encode("+TERM")
const WORKING = encoder.encode("+WPI")

/**
 * The state of one consume: a small state machine (`Stopped` → `Pulling` → `Stopped` on a reset →
 * `Pulling` on `restart` … → `Closed`) over the slots, the outstanding pulls and their liveness. One per
 * Stream run. Its state is private: the consume loop drives it through `restart`, `checkHeartbeats`,
 * `reconnected` and `close`, and learns what happened from `events`.
 */
export class PullFlow {
  private phase: Phase = "Stopped"
  /** Deliveries handed to the Stream and not settled yet. */
  private held = 0
  /** Messages asked for by pull requests the server still holds, as far as the client knows. */
  private outstanding = 0
  /** Bumped by everything that arrives on the inbox; the heartbeat check watches it. */
  private activity = 0
  private seenActivity = 0
  private activityAtRestart = 0
  private quietChecks = 0
  /** Set again after a reconnect, which may reach a server of another version. */
  private supportsTermReason: boolean

  readonly stream: string
  readonly consumer: string
  readonly inbox: string
  /** `$JS.ACK.<stream>.<consumer>.`: what an ack subject without a domain starts with. */
  readonly ackPrefix: string
  private readonly connection: NatsConnection
  private readonly maxMessages: number
  private readonly window: (() => number) | undefined
  private readonly pullSubject: string
  private readonly expiresNanos: number
  private readonly heartbeatNanos: number
  private readonly pullOptions: Partial<PublishOptions>
  private readonly deliveries: PullFlowOptions["deliveries"]
  private readonly events: Queue.Queue<FlowEvent>

  constructor(options: PullFlowOptions) {
    this.connection = options.connection
    this.stream = options.stream
    this.consumer = options.consumer
    this.ackPrefix = `$JS.ACK.${options.stream}.${options.consumer}.`
    this.inbox = createInbox(options.inboxPrefix)
    this.maxMessages = options.maxMessages
    this.window = options.window
    this.supportsTermReason = options.supportsTermReason
    this.pullSubject = `${options.apiPrefix}.CONSUMER.MSG.NEXT.${options.stream}.${options.consumer}`
    this.expiresNanos = Math.max(MIN_EXPIRES_MILLIS, options.heartbeatMillis * 4) * 1_000_000
    this.heartbeatNanos = options.heartbeatMillis * 1_000_000
    this.pullOptions = { reply: this.inbox }
    this.deliveries = options.deliveries
    this.events = options.events
  }

  /** The subscription callback: the hot path. */
  readonly receive = (error: Error | null, msg: Msg): void => {
    if (error !== null) {
      this.fail(fromCause("consume", { stream: this.stream, consumer: this.consumer })(error))
    } else if (msg.subject === this.inbox) {
      this.activity++
      this.status(msg)
    } else if (msg.reply === undefined || msg.reply === "") {
      // Not a JetStream delivery (it has no ack subject): someone published to the inbox.
      this.log("Debug", `ignored a message on ${msg.subject} without an ack subject`)
    } else {
      this.activity++
      this.held++
      const message = new NatsMessage(this, msg, msg.reply)
      if (!Queue.offerUnsafe(this.deliveries, message)) message.nak()
      // The last outstanding message arrived: slots freed meanwhile (fewer than a quarter) are pulled now.
      if (this.outstanding > 0 && --this.outstanding === 0) this.refill()
    }
  }

  /** Sends a settle verb; the first of ack, nak and term also frees the delivery's slot. */
  send(reply: string, body: Uint8Array, settles: boolean): void {
    // After the connection closed the server redelivers after ack-wait anyway; publishing would throw.
    if (!this.connection.isClosed()) this.connection.publish(reply, body)
    if (settles) {
      this.held--
      this.refill()
    }
  }

  /** The body of `term(reason)`: the reason only where the server reads it. */
  termBody(reason: string | undefined): Uint8Array {
    // Before 2.11 the server does not read "+TERM <reason>" as a term, and redelivers after ack-wait.
    return reason !== undefined && reason !== "" && this.supportsTermReason ? encoder.encode(`+TERM ${reason}`) : TERM
  }

  /** Pulls the free slots, unless most of them are already asked for. */
  private refill(): void {
    if (this.phase !== "Pulling" || this.connection.isClosed()) return
    const limit = slotsNow(this.maxMessages, this.window)
    const free = limit - this.held - this.outstanding
    // Ask in quarters, as nats.js does: a busy consumer sends one request per ~limit/4 settles.
    if (free <= 0 || (free < Math.max(1, limit >> 2) && this.outstanding > 0)) return
    this.outstanding += free
    // Times in nanoseconds: nats.js's PullOptions take milliseconds and it converts them before sending.
    const request: Pick<PullOptions, "batch" | "expires" | "idle_heartbeat"> = {
      batch: free,
      expires: this.expiresNanos,
      idle_heartbeat: this.heartbeatNanos
    }
    this.connection.publish(this.pullSubject, JSON.stringify(request), this.pullOptions)
  }

  /**
   * Starts pulling, or again after a reset: forgets the requests the server may have dropped. Requests
   * it did keep may still deliver on top, by at most `maxMessages`; losing them instead would cost an
   * ack-wait each.
   */
  restart(): void {
    if (this.phase === "Closed") return
    this.phase = "Pulling"
    this.outstanding = 0
    this.quietChecks = 0
    this.seenActivity = this.activity
    this.activityAtRestart = this.activity
    this.refill()
  }

  /** Stops pulling until `restart`; a reset requested while one is pending joins it. */
  private requestReset(reset: Reset): void {
    if (this.phase !== "Pulling") return
    this.phase = "Stopped"
    Queue.offerUnsafe(this.events, { _tag: "Reset", reset })
  }

  /** The connection is back, maybe on a server of another version: what it held is presumed lost. */
  reconnected(supportsTermReason: boolean): void {
    this.supportsTermReason = supportsTermReason
    this.requestReset({ level: "Debug", reason: "reconnected", pauseMillis: 0 })
  }

  /**
   * Called every half heartbeat: four checks in a row with pulls pending and nothing on the inbox (two
   * heartbeat intervals of silence) mean the pulls were lost, as when the consumer's leader died.
   */
  checkHeartbeats(): void {
    if (this.phase !== "Pulling" || this.outstanding === 0 || this.activity !== this.seenActivity) {
      this.seenActivity = this.activity
      this.quietChecks = 0
    } else if (++this.quietChecks >= QUIET_CHECKS) {
      this.requestReset({ level: "Warn", reason: "missed two heartbeats", pauseMillis: 0 })
    }
  }

  /** Pulling, and the server answered something (a delivery, a heartbeat, a status) since the pulls were sent afresh. */
  get answering(): boolean {
    return this.phase === "Pulling" && this.activity !== this.activityAtRestart
  }

  close(): void {
    this.phase = "Closed"
  }

  get isClosed(): boolean {
    return this.phase === "Closed"
  }

  private fail(error: NatsError.NatsError): void {
    Queue.failCauseUnsafe(this.deliveries, Cause.fail(error))
  }

  private status(msg: Msg): void {
    const status = new JetStreamStatus(msg)
    const code = status.code
    if (code === 100) return // an idle heartbeat: its arrival was the point
    const left = status.parseDiscard().msgsLeft
    if (left > 0) this.outstanding = Math.max(0, this.outstanding - left)
    const description = status.description
    if (code === 404 || code === 408) {
      // A request expired or ran dry: ask again for what it did not deliver.
      this.log("Debug", `a pull ended (${code} ${description}) with ${left} messages not delivered`)
      this.refill()
    } else if (status.isConsumerDeleted() || status.isStreamDeleted()) {
      this.requestReset({ level: "Warn", reason: description, pauseMillis: 0 })
    } else if (status.isBadRequest() || status.isConsumerIsPushBased()) {
      const message = `${this.stream}/${this.consumer}: the server refused the pull (${code} ${description})`
      this.fail(NatsError.make("consume", new NatsError.Rejected({ message, code })))
    } else if (code === 409 && /leadership change|server shutdown/.test(description)) {
      // The consumer moves to another server (a stepdown, a rolling restart, lame duck mode): the new
      // leader knows none of the old requests, and answers a new one at once.
      this.requestReset({ level: "Info", reason: `the server ended a pull (${code} ${description})`, pauseMillis: 0 })
    } else if (code === 409) {
      // A limit of the request (max waiting, max batch, max expires): asking at once would be refused again.
      const reason = `the server ended a pull (${code} ${description})`
      this.requestReset({ level: "Warn", reason, pauseMillis: this.heartbeatNanos / 1_000_000 })
    } else if (code === 503) {
      // Nobody took the request: the consumer has no leader right now. Ask again soon, not in a tight loop.
      const reason = `no server took the pull (${code} ${description})`
      this.requestReset({ level: "Warn", reason, pauseMillis: Math.min(1_000, this.heartbeatNanos / 1_000_000) })
    } else {
      this.log("Debug", `status ${code} ${description} on the pull inbox`)
    }
  }

  private log(level: "Debug" | "Info" | "Warn", message: string): void {
    Queue.offerUnsafe(this.events, { _tag: "Log", level, message })
  }
}

/**
 * One delivery. What nats.js's `DeliveryInfo` holds is read from the ack subject on first use, without
 * its intermediate object; a subscriber handling a message successfully never needs most of it.
 */
class NatsMessage implements Message {
  readonly subject: string
  readonly payload: Uint8Array
  private readonly flow: PullFlow
  private readonly msg: Msg
  private readonly reply: string
  private settled = false
  private parsedHeaders: Headers | undefined = undefined
  private info: ReadonlyArray<number> | undefined = undefined

  constructor(flow: PullFlow, msg: Msg, reply: string) {
    this.flow = flow
    this.msg = msg
    this.subject = msg.subject
    this.payload = msg.data
    this.reply = reply
  }

  get stream(): string {
    return this.flow.stream
  }

  get consumer(): string {
    return this.flow.consumer
  }

  get headers(): Headers {
    if (this.parsedHeaders === undefined) this.parsedHeaders = headerPairs(this.msg.headers)
    return this.parsedHeaders
  }

  // Asked of every delivery (the subscriber's window looks for redeliveries): read alone, without
  // splitting the whole ack subject, when it has the usual form.
  get deliveryCount(): number {
    if (this.info === undefined) {
      const { reply } = this
      const prefix = this.flow.ackPrefix
      const end = reply.startsWith(prefix) ? reply.indexOf(".", prefix.length) : -1
      if (end > prefix.length) return Number(reply.slice(prefix.length, end))
    }
    return this.ackInfo()[0] ?? 0
  }

  get streamSeq(): number {
    return this.ackInfo()[1] ?? 0
  }

  get consumerSeq(): number {
    return this.ackInfo()[2] ?? 0
  }

  get timestampMillis(): number {
    return this.ackInfo()[3] ?? 0
  }

  get pending(): number {
    return this.ackInfo()[4] ?? 0
  }

  // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<nanos>.<pending>; with
  // domains (2.10+) <domain>.<account hash> come before the stream and a random token at the end.
  // The nanoseconds are cut as text: as a number they exceed 2^53, and the millisecond could be one off.
  private ackInfo(): ReadonlyArray<number> {
    if (this.info !== undefined) return this.info
    const tokens = this.reply.split(".")
    const at = tokens.length === 9 ? 4 : 6
    const nanos = tokens[at + 3] ?? ""
    this.info = [
      Number(tokens[at]),
      Number(tokens[at + 1]),
      Number(tokens[at + 2]),
      nanos.length > 6 ? Number(nanos.slice(0, -6)) : 0,
      Number(tokens[at + 4])
    ]
    return this.info
  }

  ack(): void {
    this.settle(ACK)
  }

  nak(delayMillis?: number): void {
    this.settle(
      delayMillis === undefined || delayMillis <= 0
        ? NAK
        : encoder.encode(`-NAK {"delay":${Math.round(delayMillis) * 1_000_000}}`)
    )
  }

  term(reason?: string): void {
    this.settle(this.flow.termBody(reason))
  }

  working(): void {
    if (!this.settled) this.flow.send(this.reply, WORKING, false)
  }

  private settle(body: Uint8Array): void {
    if (this.settled) return
    this.settled = true
    this.flow.send(this.reply, body, true)
  }
}
