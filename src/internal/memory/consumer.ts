/**
 * The delivery state of one durable pull consumer of the in-memory broker, kept the way nats-server
 * 2.9 keeps it, so that `consumerInfo` and the deliveries read the same on both brokers:
 * - a cursor for first deliveries (stream order, filter applied, `numPending` counted ahead of it);
 * - the messages delivered and not yet acknowledged (`numAckPending`), each with the consumer sequence
 *   of its first delivery, its delivery count and a deadline (ack-wait expiry, or a nak's delay);
 * - the due redeliveries, served before new messages, first due first (messages whose deadlines pass
 *   together in stream order), as the server's redelivery queue serves them;
 * - the ack floor, moved as the server moves it (a message given up after `maxDeliver` is no longer
 *   pending but holds the floor back until the pending set empties);
 * - `numRedelivered`: messages delivered more than once that are not acknowledged.
 *
 * Redeliveries past `maxDeliver` are not made: the max-deliveries advisory is emitted instead, as the
 * server does when a pull asks for more. Deadlines are found without scanning on every call: a lower
 * bound of the earliest one is kept, and the pending set is scanned only when the clock passes it.
 *
 * Not here: pulling, slots and the `Message` objects (`consume`), the stream's store (`stream`).
 */
import { Duration } from "effect"
import type { ConsumerConfig, ConsumerState } from "../../Broker.js"
import { type Matcher, matcher } from "../subjects.js"
import type { MemoryStream, StoredRecord } from "./stream.js"

/** One delivery the consumer makes. */
export interface DeliveredRecord {
  readonly record: StoredRecord
  readonly deliveryCount: number
  readonly consumerSeq: number
  /** Messages left for the consumer after this one. */
  readonly pending: number
}

/**
 * Publishes an advisory of `type` with an id and the time, then `fields` (a core message: kept only
 * when a stream captures its subject).
 */
export type Advise = (subject: string, type: string, fields: Record<string, unknown>) => void

interface Pending {
  /** The consumer sequence of the first delivery. */
  readonly consumerSeq: number
  deliveryCount: number
  deadline: number
  /** Waiting in `due` for redelivery. */
  queued: boolean
}

const everything: Matcher = () => true

/** A durable pull consumer with explicit acks. */
export class MemoryConsumer {
  config: ConsumerConfig
  numPending = 0
  private accepts: Matcher = everything
  private ackWaitMillis = 0
  /** The next stream sequence to consider for a first delivery. */
  private cursor: number
  /** `lastPerSubject`: the sequences to deliver before the cursor takes over, and the position meanwhile. */
  private lastPerSubject: Set<number> | undefined
  private lastPerSubjectPosition = 0
  private deliveredConsumerSeq = 0
  /** Epoch milliseconds of the last delivery, by the clock `next` is given. */
  private lastDeliveredAt: number | undefined
  private ackFloor = { streamSeq: 0, consumerSeq: 0 }
  /** By stream sequence; inserted in stream order and never re-inserted, so iteration is stream order. */
  private readonly pending = new Map<number, Pending>()
  private readonly due: Array<number> = []
  private readonly redelivered = new Set<number>()
  /** No pending deadline is earlier than this. */
  private deadlineBound = Number.POSITIVE_INFINITY

  constructor(
    readonly stream: MemoryStream,
    config: ConsumerConfig,
    private readonly advise: Advise
  ) {
    this.config = config
    this.accepts = config.filterSubject === undefined ? everything : matcher(config.filterSubject)
    const { lastSeq } = stream
    switch (config.deliverPolicy) {
      case "all":
        this.cursor = stream.count > 0 ? stream.firstSeq : lastSeq + 1
        break
      case "new":
        this.cursor = lastSeq + 1
        break
      case "last": {
        const last = stream.lastPerSubject(this.accepts).reduce((max, seq) => Math.max(max, seq), 0)
        this.cursor = last > 0 ? last : lastSeq + 1
        break
      }
      case "lastPerSubject": {
        const seqs = stream.lastPerSubject(this.accepts)
        this.cursor = lastSeq + 1
        if (seqs.length > 0) this.lastPerSubject = new Set(seqs)
        this.lastPerSubjectPosition = (seqs[0] ?? this.cursor) - 1
        break
      }
    }
    this.configure(config)
  }

  /** Applies a (validated) configuration; a new filter recounts what is pending. */
  configure(config: ConsumerConfig): void {
    this.config = config
    this.ackWaitMillis = Duration.toMillis(config.ackWait)
    this.accepts = config.filterSubject === undefined ? everything : matcher(config.filterSubject)
    this.numPending = this.lastPerSubject?.size ?? 0
    for (const record of this.stream.from(this.cursor)) if (this.accepts(record.subject)) this.numPending++
  }

  get key(): string {
    return `${this.config.stream}/${this.config.name}`
  }

  matches(subject: string): boolean {
    return this.accepts(subject)
  }

  /** The counts and positions; `numWaiting` is the consumes' business, 0 here. */
  state(): ConsumerState {
    return {
      numPending: this.numPending,
      numAckPending: this.pending.size,
      numRedelivered: this.redelivered.size,
      numWaiting: 0,
      delivered: {
        streamSeq: this.lastPerSubject === undefined ? this.cursor - 1 : this.lastPerSubjectPosition,
        consumerSeq: this.deliveredConsumerSeq
      },
      ackFloor: { ...this.ackFloor },
      lastDelivered: this.lastDeliveredAt === undefined ? undefined : new Date(this.lastDeliveredAt)
    }
  }

  /** A message was stored in the stream. */
  stored(record: StoredRecord): void {
    if (record.seq >= this.cursor && this.accepts(record.subject)) this.numPending++
  }

  /** A message left the stream: no longer pending, and acknowledged if it was delivered. */
  removed(record: StoredRecord): void {
    if (this.lastPerSubject?.delete(record.seq) === true) {
      this.numPending--
      if (this.lastPerSubject.size === 0) this.lastPerSubject = undefined
    } else if (record.seq >= this.cursor && this.accepts(record.subject)) this.numPending--
    if (this.pending.has(record.seq)) this.ack(record.seq)
  }

  /**
   * A purge removed everything below `firstSeq`: as the server does, the consumer's position and ack
   * floor move up to it (the removed deliveries were acknowledged by `removed`).
   */
  purged(firstSeq: number): void {
    if (this.cursor < firstSeq) this.cursor = firstSeq
    if (this.ackFloor.streamSeq < firstSeq - 1) this.ackFloor = { ...this.ackFloor, streamSeq: firstSeq - 1 }
  }

  /** When something becomes due next: `-Infinity` when a redelivery is due now, `undefined` for never. */
  nextDue(): number | undefined {
    if (this.due.length > 0) return Number.NEGATIVE_INFINITY
    return this.deadlineBound === Number.POSITIVE_INFINITY ? undefined : this.deadlineBound
  }

  /** The next delivery for a pull with a free slot: a due redelivery first, else the next new message. */
  next(now: number): DeliveredRecord | undefined {
    this.stream.expire(now)
    this.collectDue(now)
    for (let seq = this.due.shift(); seq !== undefined; seq = this.due.shift()) {
      const entry = this.pending.get(seq)
      if (entry === undefined || !entry.queued) continue
      entry.queued = false
      const deliveryCount = entry.deliveryCount + 1
      const { maxDeliver } = this.config
      if (maxDeliver !== undefined && deliveryCount > maxDeliver) {
        this.pending.delete(seq)
        this.redelivered.add(seq)
        this.advise(
          `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${this.config.stream}.${this.config.name}`,
          "io.nats.jetstream.advisory.v1.max_deliver",
          {
            stream: this.config.stream,
            consumer: this.config.name,
            stream_seq: seq,
            deliveries: entry.deliveryCount
          }
        )
        continue
      }
      const record = this.stream.get(seq)
      if (record === undefined) {
        this.ack(seq)
        continue
      }
      entry.deliveryCount = deliveryCount
      this.redelivered.add(seq)
      this.armDeadline(entry, now + this.ackWaitMillis)
      this.lastDeliveredAt = now
      return { record, deliveryCount, consumerSeq: ++this.deliveredConsumerSeq, pending: this.numPending }
    }
    if (this.pending.size >= this.config.maxAckPending) return undefined
    const record = this.nextNew()
    if (record === undefined) return undefined
    this.numPending--
    const consumerSeq = ++this.deliveredConsumerSeq
    const entry: Pending = { consumerSeq, deliveryCount: 1, deadline: 0, queued: false }
    this.pending.set(record.seq, entry)
    this.armDeadline(entry, now + this.ackWaitMillis)
    this.lastDeliveredAt = now
    return { record, deliveryCount: 1, consumerSeq, pending: this.numPending }
  }

  ack(seq: number): void {
    const entry = this.pending.get(seq)
    if (entry === undefined) return
    this.pending.delete(seq)
    this.redelivered.delete(seq)
    if (entry.queued) this.due.splice(this.due.indexOf(seq), 1)
    if (this.pending.size === 0) {
      this.ackFloor = { streamSeq: this.cursor - 1, consumerSeq: this.deliveredConsumerSeq }
    } else if (entry.consumerSeq === this.ackFloor.consumerSeq + 1) {
      this.ackFloor = { streamSeq: seq, consumerSeq: entry.consumerSeq }
      for (const [next, later] of this.pending) {
        if (next <= seq) continue
        this.ackFloor = { streamSeq: next - 1, consumerSeq: later.consumerSeq - 1 }
        break
      }
    }
  }

  /** Redeliver now, or after `delayMillis`. */
  nak(seq: number, now: number, delayMillis: number | undefined): void {
    const entry = this.pending.get(seq)
    if (entry === undefined) return
    if (delayMillis !== undefined && delayMillis > 0) this.armDeadline(entry, now + delayMillis)
    else if (!entry.queued) {
      entry.queued = true
      this.due.push(seq)
    }
  }

  /** Never deliver again; tells whoever captures the terminated advisories. */
  term(seq: number, delivery: { consumerSeq: number; deliveryCount: number }, reason?: string): void {
    this.ack(seq)
    this.advise(
      `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${this.config.stream}.${this.config.name}`,
      "io.nats.jetstream.advisory.v1.terminated",
      {
        stream: this.config.stream,
        consumer: this.config.name,
        consumer_seq: delivery.consumerSeq,
        stream_seq: seq,
        deliveries: delivery.deliveryCount,
        ...(reason === undefined || reason === "" ? {} : { reason })
      }
    )
  }

  /** Restarts the ack-wait clock of a pending message. */
  working(seq: number, now: number): void {
    const entry = this.pending.get(seq)
    if (entry !== undefined) this.armDeadline(entry, now + this.ackWaitMillis)
  }

  private armDeadline(entry: Pending, deadline: number): void {
    entry.deadline = deadline
    if (deadline < this.deadlineBound) this.deadlineBound = deadline
  }

  /** Queues the pending messages whose deadline passed; scans only once the clock reaches the bound. */
  private collectDue(now: number): void {
    if (now < this.deadlineBound) return
    let bound = Number.POSITIVE_INFINITY
    for (const [seq, entry] of this.pending) {
      if (entry.queued) continue
      if (entry.deadline <= now) {
        entry.queued = true
        this.due.push(seq)
      } else if (entry.deadline < bound) bound = entry.deadline
    }
    this.deadlineBound = bound
  }

  private nextNew(): StoredRecord | undefined {
    const lastPerSubject = this.lastPerSubject
    if (lastPerSubject !== undefined) {
      for (const seq of lastPerSubject) {
        lastPerSubject.delete(seq)
        this.lastPerSubjectPosition = seq
        if (lastPerSubject.size === 0) this.lastPerSubject = undefined
        const record = this.stream.get(seq)
        if (record !== undefined) return record
      }
      this.lastPerSubject = undefined
    }
    const { lastSeq } = this.stream
    for (let seq = this.cursor; seq <= lastSeq; seq++) {
      const record = this.stream.get(seq)
      if (record !== undefined && this.accepts(record.subject)) {
        this.cursor = seq + 1
        return record
      }
    }
    this.cursor = lastSeq + 1
    return undefined
  }
}
