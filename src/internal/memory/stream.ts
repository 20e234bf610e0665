/**
 * One stream of the in-memory broker: its messages in sequence order, the limits of limits retention
 * (max messages, bytes, age, messages per subject, message size; discard old or new), the duplicate
 * window on `Nats-Msg-Id`, and the state `streamInfo` reports.
 *
 * Sizes are counted the way nats-server counts them, so that `bytes` and `maxBytes` mean the same on
 * both brokers: a file-store record is 30 bytes plus subject, headers and payload (4 more with
 * headers), a memory-store record 16 bytes plus the same. With discard new the server refuses a message
 * when the bytes stored plus its body reach `maxBytes` (the record's overhead not counted), then still
 * drops the oldest if the stored total ends above the limit. Every removal (a limit, the max age) takes
 * the oldest message of its subject, which keeps the per-subject index a queue.
 *
 * Expiry by age is lazy: every operation first drops what the clock says is too old, which is all a
 * reader can observe. Not here: validation of configurations (`config`), consumers
 * (`consumer`), which stream a subject goes to (`MemoryBroker`).
 */
import { Buffer } from "node:buffer"
import { Duration } from "effect"
import type { Headers, StoredMessage, StreamConfig, StreamState } from "../../Broker.js"
import { type Matcher, matcher } from "../subjects.js"

/** A stored message and the bytes it counts for. */
export interface StoredRecord extends StoredMessage {
  readonly size: number
}

/** What a publish came to. */
export type StoreOutcome =
  | { readonly _tag: "Stored"; readonly record: StoredRecord }
  | { readonly _tag: "Duplicate"; readonly seq: number }
  | { readonly _tag: "WrongLastSequence"; readonly lastSeq: number }
  | { readonly _tag: "Refused"; readonly message: string; readonly code: number }

/** One publish, headers already in their stored form. */
export interface StoreRequest {
  readonly subject: string
  readonly payload: Uint8Array
  readonly headers: Headers
  readonly headerBytes: number
  readonly messageId: string | undefined
  readonly expectedLastSequence: number | undefined
}

/** Sequences of one subject, oldest first; removals only ever take the oldest. */
class SeqQueue {
  private items: Array<number> = []
  private head = 0
  get size(): number {
    return this.items.length - this.head
  }
  get first(): number | undefined {
    return this.size > 0 ? this.items[this.head] : undefined
  }
  get last(): number | undefined {
    return this.size > 0 ? this.items[this.items.length - 1] : undefined
  }
  push(seq: number): void {
    this.items.push(seq)
  }
  remove(seq: number): void {
    if (this.items[this.head] === seq) this.head++
    else this.items = this.items.slice(this.head).filter((item) => item !== seq)
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

const optionalMillis = (duration: Duration.Duration | undefined): number =>
  duration === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(duration)

/** What a stream tells each of its consumers as messages come and go. */
export interface StreamReader {
  stored(record: StoredRecord): void
  removed(record: StoredRecord): void
  /** A purge removed everything below `firstSeq`. */
  purged(firstSeq: number): void
}

/** The in-memory store of one stream, with its consumers (`MemoryConsumer`s, by durable name). */
export class MemoryStream<C extends StreamReader = StreamReader> {
  readonly consumers = new Map<string, C>()
  private readonly messages = new Map<number, StoredRecord>()
  private readonly bySubject = new Map<string, SeqQueue>()
  /** Message ids within the duplicate window, oldest first. */
  private readonly messageIds = new Map<string, { readonly seq: number; readonly at: number }>()
  private matchers: ReadonlyArray<Matcher> = []
  private maxAgeMillis = Number.POSITIVE_INFINITY
  private duplicateWindowMillis = 0
  config: StreamConfig
  lastSeq = 0
  bytes = 0

  constructor(config: StreamConfig) {
    this.config = config
    this.configure(config)
  }

  /** Applies a (validated) configuration; tightened limits take effect at once. */
  configure(config: StreamConfig): void {
    this.config = config
    this.matchers = config.subjects.map(matcher)
    this.maxAgeMillis = optionalMillis(config.maxAge)
    this.duplicateWindowMillis = Duration.toMillis(config.duplicateWindow)
    for (const [subject, seqs] of this.bySubject) if (seqs.size > 0) this.enforcePerSubject(subject)
    this.enforceTotals()
  }

  captures(subject: string): boolean {
    return this.matchers.some((matches) => matches(subject))
  }

  get firstSeq(): number {
    const first = this.messages.keys().next()
    if (first.done !== true) return first.value
    return this.lastSeq === 0 ? 0 : this.lastSeq + 1
  }

  get count(): number {
    return this.messages.size
  }

  state(now: number): StreamState {
    this.expire(now)
    return {
      messages: this.messages.size,
      bytes: this.bytes,
      firstSeq: this.firstSeq,
      lastSeq: this.lastSeq,
      consumerCount: this.consumers.size
    }
  }

  get(seq: number): StoredRecord | undefined {
    return this.messages.get(seq)
  }

  /** Stored messages from `seq` on, in order. */
  *from(seq: number): Generator<StoredRecord> {
    for (const record of this.messages.values()) if (record.seq >= seq) yield record
  }

  /** The last sequence of every subject the predicate accepts, in stream order. */
  lastPerSubject(accepts: Matcher): Array<number> {
    const seqs: Array<number> = []
    for (const [subject, queue] of this.bySubject) {
      const last = queue.last
      if (last !== undefined && accepts(subject)) seqs.push(last)
    }
    return seqs.sort((a, b) => a - b)
  }

  /** Drops the messages older than the max age. */
  expire(now: number): void {
    if (this.maxAgeMillis === Number.POSITIVE_INFINITY) return
    for (const record of this.messages.values()) {
      if (now - record.timestampMillis < this.maxAgeMillis) return
      this.remove(record)
    }
  }

  /**
   * Removes the messages below `before` (all of them when it is undefined) and moves the consumers past
   * them; the sequences and the message ids of the duplicate window stay as they are, as on the server.
   * Returns how many went.
   */
  purge(before: number | undefined): number {
    let removed = 0
    for (const record of this.messages.values()) {
      if (before !== undefined && record.seq >= before) break
      this.remove(record)
      removed++
    }
    // A purge that removes nothing below a sequence is one the server is never asked for.
    if (before !== undefined && removed === 0) return 0
    for (const consumer of this.consumers.values()) consumer.purged(this.firstSeq)
    return removed
  }

  store(request: StoreRequest, now: number): StoreOutcome {
    this.expire(now)
    const { config } = this
    if (request.messageId !== undefined) {
      for (const [id, seen] of this.messageIds) {
        if (now - seen.at < this.duplicateWindowMillis) break
        this.messageIds.delete(id)
      }
      const seen = this.messageIds.get(request.messageId)
      if (seen !== undefined) return { _tag: "Duplicate", seq: seen.seq }
    }
    if (request.expectedLastSequence !== undefined && request.expectedLastSequence !== this.lastSeq) {
      return { _tag: "WrongLastSequence", lastSeq: this.lastSeq }
    }
    const bodyBytes = request.payload.byteLength + request.headerBytes
    if (config.maxMessageSize !== undefined && bodyBytes > config.maxMessageSize) {
      return { _tag: "Refused", message: "message size exceeds maximum allowed", code: 10054 }
    }
    const subjectBytes = Buffer.byteLength(request.subject)
    const size =
      config.storage === "memory"
        ? subjectBytes + bodyBytes + 16
        : 30 + subjectBytes + bodyBytes + (request.headerBytes > 0 ? 4 : 0)
    if (config.discard === "new") {
      if (config.maxMessages !== undefined && this.messages.size >= config.maxMessages) {
        return { _tag: "Refused", message: "maximum messages exceeded", code: 10077 }
      }
      // As the server checks it: the body against the room left, whatever the record's overhead.
      if (config.maxBytes !== undefined && this.bytes + bodyBytes >= config.maxBytes) {
        return { _tag: "Refused", message: "maximum bytes exceeded", code: 10077 }
      }
    }
    const record: StoredRecord = {
      stream: config.name,
      subject: request.subject,
      seq: ++this.lastSeq,
      // A copy, as the server keeps one: the publisher may reuse its buffer.
      payload: request.payload.slice(),
      headers: request.headers,
      timestampMillis: now,
      size
    }
    this.messages.set(record.seq, record)
    this.bytes += size
    let seqs = this.bySubject.get(record.subject)
    if (seqs === undefined) {
      seqs = new SeqQueue()
      this.bySubject.set(record.subject, seqs)
    }
    seqs.push(record.seq)
    if (request.messageId !== undefined) this.messageIds.set(request.messageId, { seq: record.seq, at: now })
    for (const consumer of this.consumers.values()) consumer.stored(record)
    this.enforcePerSubject(record.subject)
    this.enforceTotals()
    return { _tag: "Stored", record }
  }

  private enforcePerSubject(subject: string): void {
    const limit = this.config.maxMessagesPerSubject
    const seqs = this.bySubject.get(subject)
    if (limit === undefined || seqs === undefined) return
    while (seqs.size > limit) {
      const oldest = seqs.first
      const record = oldest === undefined ? undefined : this.messages.get(oldest)
      if (record === undefined) return
      this.remove(record)
    }
  }

  private enforceTotals(): void {
    const { maxMessages, maxBytes } = this.config
    for (const record of this.messages.values()) {
      const over =
        (maxMessages !== undefined && this.messages.size > maxMessages) ||
        (maxBytes !== undefined && this.bytes > maxBytes)
      if (!over) return
      this.remove(record)
    }
  }

  private remove(record: StoredRecord): void {
    this.messages.delete(record.seq)
    this.bytes -= record.size
    const seqs = this.bySubject.get(record.subject)
    if (seqs !== undefined) {
      seqs.remove(record.seq)
      if (seqs.size === 0) this.bySubject.delete(record.subject)
    }
    for (const consumer of this.consumers.values()) consumer.removed(record)
  }
}

/**
 * The headers a publish stores, as nats.js sends them: values of one name together (in the order the
 * names first appear), values trimmed, `Nats-Msg-Id` and `Nats-Expected-Last-Sequence` set last; and
 * their size on the wire. A string when the client would refuse them.
 */
export const storedHeaders = (
  headers: Headers,
  messageId: string | undefined,
  expectedLastSequence: number | undefined
): { readonly headers: Headers; readonly bytes: number } | string => {
  const byName = new Map<string, Array<string>>()
  const append = (name: string, value: string) => {
    const values = byName.get(name) ?? []
    values.push(value.trim())
    byName.set(name, values)
  }
  for (const [name, value] of headers) {
    if (/[\r\n]/.test(value)) return "'header' values cannot contain \\r or \\n"
    append(name, value)
  }
  const set = (name: string, value: string) => {
    byName.delete(name)
    append(name, value)
  }
  if (messageId !== undefined) set("Nats-Msg-Id", messageId)
  if (expectedLastSequence !== undefined) set("Nats-Expected-Last-Sequence", String(expectedLastSequence))
  if (byName.size === 0) return { headers: [], bytes: 0 }
  const stored: Array<readonly [string, string]> = []
  // "NATS/1.0", then "\r\n<name>: <value>" per value, then "\r\n\r\n".
  let bytes = 12
  for (const [name, values] of byName) {
    for (const value of values) {
      stored.push([name, value])
      bytes += 4 + Buffer.byteLength(name) + Buffer.byteLength(value)
    }
  }
  return { headers: stored, bytes }
}
