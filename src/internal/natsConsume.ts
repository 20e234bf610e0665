/**
 * The consume loop of a durable pull consumer over nats.js (first version: nats.js `consume()` with a
 * callback; flow control by settled slots comes next).
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/transport-node"
import { Cause, Effect, Queue, Stream } from "effect"
import type { ConsumeOptions, Headers, Message } from "../Broker.js"
import type { NatsClient } from "../NatsClient.js"
import type { NatsError } from "../NatsError.js"
import { fromCause } from "./natsErrors.js"

const noHeaders: Headers = Object.freeze([])

/** Headers as ordered pairs, a repeated name once per value. */
export const headerPairs = (headers: MsgHdrs | undefined): Headers => {
  if (headers === undefined) return noHeaders
  const pairs: Array<readonly [string, string]> = []
  for (const [name, values] of headers) for (const value of values) pairs.push([name, value])
  return pairs
}

class NatsMessage implements Message {
  readonly subject: string
  readonly payload: Uint8Array
  readonly headers: Headers
  readonly streamSeq: number
  readonly consumerSeq: number
  readonly deliveryCount: number
  readonly pending: number
  readonly timestampMillis: number
  constructor(
    readonly stream: string,
    readonly consumer: string,
    private readonly msg: JsMsg,
    private readonly termReason: boolean
  ) {
    const info = msg.info
    this.subject = msg.subject
    this.payload = msg.data
    this.headers = headerPairs(msg.headers)
    this.streamSeq = info.streamSequence
    this.consumerSeq = info.deliverySequence
    this.deliveryCount = info.deliveryCount
    this.pending = info.pending
    this.timestampMillis = Math.floor(info.timestampNanos / 1_000_000)
  }
  ack(): void {
    this.msg.ack()
  }
  nak(delayMillis?: number): void {
    this.msg.nak(delayMillis)
  }
  term(reason?: string): void {
    if (this.termReason && reason !== undefined) this.msg.term(reason)
    else this.msg.term()
  }
  working(): void {
    this.msg.working()
  }
}

/** The deliveries of `consumer` on `stream` as a Stream; interrupting it closes the nats.js consume. */
export const consume = (
  { jetstream, supportsTermReason }: NatsClient["Service"],
  stream: string,
  consumer: string,
  options: ConsumeOptions
): Stream.Stream<Message, NatsError> =>
  Stream.callback<Message, NatsError>((queue) =>
    Effect.gen(function* () {
      const termReason = yield* supportsTermReason
      const pullConsumer = yield* Effect.tryPromise({
        try: () => jetstream.consumers.get(stream, consumer),
        catch: fromCause("consume", { stream, consumer })
      })
      const messages = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            pullConsumer.consume({
              max_messages: options.maxMessages,
              callback: (msg) => {
                Queue.offerUnsafe(queue, new NatsMessage(stream, consumer, msg, termReason))
              }
            }),
          catch: fromCause("consume", { stream, consumer })
        }),
        (messages) => Effect.promise(() => messages.close())
      )
      const closed = yield* Effect.promise(() => messages.closed())
      if (closed instanceof Error) {
        Queue.failCauseUnsafe(queue, Cause.fail(fromCause("consume", { stream, consumer })(closed)))
      } else {
        Queue.endUnsafe(queue)
      }
    })
  )
