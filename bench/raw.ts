/**
 * The raw nats.js contenders, written the way the `@nats-io/jetstream` README writes them: the limit
 * our library is measured against. Each returns the time of its last message (milliseconds from
 * `performance.now()`); the caller took the time of its start.
 */
import type { JetStreamClient } from "@nats-io/jetstream"
import { SUBJECT, sample } from "./fixture.js"

/** `await js.publish` one at a time; with `withMessageId`, each carries a `Nats-Msg-Id` as ours do. */
export const publishAwaited = async (js: JetStreamClient, count: number, withMessageId: boolean): Promise<number> => {
  for (let i = 0; i < count; i++) {
    if (withMessageId) await js.publish(SUBJECT, sample, { msgID: crypto.randomUUID() })
    else await js.publish(SUBJECT, sample)
  }
  return performance.now()
}

/** A window of `inFlight` `js.publish` promises: a new publish starts as soon as one is acknowledged. */
export const publishWindow = async (
  js: JetStreamClient,
  count: number,
  inFlight: number,
  withMessageId: boolean
): Promise<number> => {
  let started = 0
  const lane = async () => {
    while (started < count) {
      started++
      if (withMessageId) await js.publish(SUBJECT, sample, { msgID: crypto.randomUUID() })
      else await js.publish(SUBJECT, sample)
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane))
  return performance.now()
}

export type ConsumeStyle = "iterator" | "callback"

/**
 * Consumes and acks `count` messages with `consume({ max_messages: 256 })`, as an async iterator or
 * with a callback; `onMessage` sees each stream sequence as it arrives (the latency scenario).
 */
export const consume = async (
  js: JetStreamClient,
  stream: string,
  durable: string,
  count: number,
  style: ConsumeStyle,
  onMessage?: (streamSeq: number) => void
): Promise<number> => {
  const consumer = await js.consumers.get(stream, durable)
  let received = 0
  if (style === "iterator") {
    const messages = await consumer.consume({ max_messages: 256 })
    let end = 0
    for await (const m of messages) {
      onMessage?.(m.seq)
      m.ack()
      if (++received === count) {
        end = performance.now()
        break
      }
    }
    await messages.close()
    return end
  }
  let finish: (end: number) => void = () => {}
  const finished = new Promise<number>((resolve) => {
    finish = resolve
  })
  const messages = await consumer.consume({
    max_messages: 256,
    callback: (m) => {
      onMessage?.(m.seq)
      m.ack()
      if (++received === count) finish(performance.now())
    }
  })
  const end = await finished
  await messages.close()
  return end
}
