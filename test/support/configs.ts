/** Resolved broker configurations with every default spelled out, and byte helpers, for broker tests. */
import { Duration } from "effect"
import type { ConsumerConfig, StreamConfig } from "../../src/Broker.js"

/** A limits-retention file stream with nothing limited and a 2-minute duplicate window. */
export const streamConfig = (name: string, subjects: ReadonlyArray<string>): StreamConfig => ({
  name,
  subjects,
  description: undefined,
  retention: "limits",
  storage: "file",
  discard: "old",
  maxAge: undefined,
  maxMessages: undefined,
  maxBytes: undefined,
  maxMessageSize: undefined,
  maxMessagesPerSubject: undefined,
  duplicateWindow: Duration.minutes(2),
  replicas: 1
})

/** A durable on every subject of `stream`, from the start, 30 s ack-wait, redelivered without limit. */
export const consumerConfig = (stream: string, name: string): ConsumerConfig => ({
  stream,
  name,
  description: undefined,
  filterSubject: undefined,
  deliverPolicy: "all",
  ackWait: Duration.seconds(30),
  maxDeliver: undefined,
  maxAckPending: 1000
})

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

export const text = (payload: Uint8Array): string => new TextDecoder().decode(payload)
