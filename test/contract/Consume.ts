/**
 * Contract scenarios on a consume's flow, taken raw from `Broker.consume`: stream order over thousands of
 * messages, acks and the ack floor, the `maxMessages` bound on what the client holds, what an interrupted
 * consume does with its buffer, and a consume that outlives the deletion of its consumer or its stream.
 * (Settle verbs one by one, ack-wait and `maxAckPending` are in `Delivery.ts`.)
 */
import { expect } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Stream } from "effect"
import { Broker, type Headers, type Message } from "../../src/Broker.js"
import { consumerConfig, streamConfig } from "../support/configs.js"
import { eventually } from "../support/Eventually.js"
import {
  acked,
  bytes,
  check,
  consumeRaw,
  consumerState,
  consumers,
  publishRaw,
  type Scenario,
  text
} from "./Harness.js"

const numbered = (count: number, from = 1) => Array.from({ length: count }, (_, i) => from + i)

/** The consumer's counts reach these values (acks are asynchronous on some brokers). */
const counts = (consumer: string, want: { readonly numAckPending: number; readonly numPending?: number }) =>
  eventually(
    Effect.flatMap(consumerState(consumer), (state) =>
      check(
        state.numAckPending === want.numAckPending &&
          (want.numPending === undefined || state.numPending === want.numPending),
        `${consumer}: ${state.numAckPending} unacknowledged (want ${want.numAckPending}), ${state.numPending} pending (want ${want.numPending ?? "any"})`
      )
    )
  )

const total = 2000

export const streamOrder: Scenario = {
  name: `a consume delivers ${total.toLocaleString("en")} messages in stream order with sequences, counts, pending, headers and bytes; acks move the floor to the end`,
  run: Effect.gen(function* () {
    const broker = yield* Broker
    yield* consumers({ name: "ordered", filterSubject: "evt.ordered.>" })
    const subject = "evt.ordered.item.v1"
    const headers: Headers = [
      ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
      ["X-Tag", "a"],
      ["X-Tag", "b"]
    ]
    yield* Effect.forEach(numbered(total), (n) => publishRaw(subject, bytes(`message ${n}`), { headers }))
    expect((yield* consumerState("ordered")).lastDelivered).toBeUndefined()
    const before = yield* Clock.currentTimeMillis
    const messages = yield* broker.consume("GLAM_EVENTS", "ordered", { maxMessages: 256 }).pipe(
      Stream.tap((message) => Effect.sync(() => message.ack())),
      Stream.take(total),
      Stream.runCollect
    )
    expect(messages.map((m) => m.streamSeq)).toStrictEqual(numbered(total))
    expect(messages.map((m) => m.consumerSeq)).toStrictEqual(numbered(total))
    expect(messages.map((m) => m.pending)).toStrictEqual(numbered(total).map((n) => total - n))
    expect(messages.every((m) => m.deliveryCount === 1)).toBe(true)
    expect(messages.every((m, i) => text(m.payload) === `message ${i + 1}`)).toBe(true)
    expect(messages.every((m) => m.subject === subject && m.stream === "GLAM_EVENTS" && m.consumer === "ordered")).toBe(
      true
    )
    expect(messages[0]?.headers).toStrictEqual(headers)
    expect(messages[total - 1]?.headers).toStrictEqual(headers)
    yield* acked("ordered", total)
    const state = yield* consumerState("ordered")
    expect([state.numPending, state.numRedelivered, state.delivered.streamSeq]).toStrictEqual([0, 0, total])
    // the server's clock and ours: the same machine, a second of slack for rounding
    expect(state.lastDelivered?.getTime()).toBeGreaterThanOrEqual(before - 1000)
    expect(state.lastDelivered?.getTime()).toBeLessThanOrEqual((yield* Clock.currentTimeMillis) + 1000)
  })
}

export const ackFloor: Scenario = {
  name: "ack: a consume with room waits for more, an acked delivery leaves the unacknowledged, a second ack is a no-op, and the ack floor waits for the oldest",
  run: Effect.gen(function* () {
    yield* consumers({ name: "acker", filterSubject: "evt.acks.>" })
    yield* Effect.forEach(numbered(3), (n) => publishRaw("evt.acks.item.v1", bytes(`${n}`)))
    const raw = yield* consumeRaw("acker")
    const [first, second, third] = yield* Effect.forEach(numbered(3), () => raw.next())
    expect((yield* consumerState("acker")).numAckPending).toBe(3)
    // Room for 97 more and nothing to deliver: the consume waits for messages.
    yield* eventually(
      Effect.flatMap(consumerState("acker"), ({ numWaiting }) =>
        check(numWaiting >= 1, `acker: ${numWaiting} pull requests waiting`)
      )
    )
    second?.message.ack()
    second?.message.ack()
    yield* counts("acker", { numAckPending: 2 })
    expect((yield* consumerState("acker")).ackFloor.streamSeq).toBe(0)
    first?.message.ack()
    yield* counts("acker", { numAckPending: 1 })
    expect((yield* consumerState("acker")).ackFloor).toStrictEqual({ streamSeq: 2, consumerSeq: 2 })
    third?.message.ack()
    yield* acked("acker", 3)
  })
}

export const boundedBuffer: Scenario = {
  name: "a consume holds at most maxMessages unsettled deliveries (working frees no place) and pulls more as they are settled",
  run: Effect.gen(function* () {
    yield* consumers({ name: "buffered", filterSubject: "evt.buffered.>" })
    yield* Effect.forEach(numbered(1000), (n) => publishRaw("evt.buffered.item.v1", bytes(`${n}`)), {
      concurrency: 16
    })
    const raw = yield* consumeRaw("buffered", { maxMessages: 10 })
    const held = yield* Effect.forEach(numbered(10), () => raw.next())
    yield* raw.nothingWithin("1 second")
    const bounded = yield* consumerState("buffered")
    expect([bounded.numAckPending, bounded.numPending]).toStrictEqual([10, 990])

    for (const { message } of held.slice(0, 4)) message.ack()
    held[4]?.message.working()
    const more = yield* Effect.forEach(numbered(4), () => raw.next())
    expect(more.map(({ message }) => message.streamSeq)).toStrictEqual([11, 12, 13, 14])
    yield* raw.nothingWithin("500 millis")
    yield* counts("buffered", { numAckPending: 10, numPending: 986 })
  })
}

export const narrowedWindow: Scenario = {
  name: "a consume's window narrows and widens what it holds while it runs: no pull until the held fall under it",
  run: Effect.gen(function* () {
    yield* consumers({ name: "windowed", filterSubject: "evt.windowed.>" })
    yield* Effect.forEach(numbered(30), (n) => publishRaw("evt.windowed.item.v1", bytes(`${n}`)))
    let window = 2
    const raw = yield* consumeRaw("windowed", { maxMessages: 10, window: () => window })
    const first = yield* Effect.forEach(numbered(2), () => raw.next())
    yield* raw.nothingWithin("500 millis")
    yield* counts("windowed", { numAckPending: 2 })

    window = 5
    first[0]?.message.ack()
    const wider = yield* Effect.forEach(numbered(4), () => raw.next())
    expect(wider.map(({ message }) => message.streamSeq)).toStrictEqual([3, 4, 5, 6])
    yield* raw.nothingWithin("500 millis")

    // Narrowed under what is held: nothing more until the last of them is settled.
    window = 1
    const held = [first[1], ...wider]
    for (const arrival of held.slice(0, 4)) arrival?.message.ack()
    yield* raw.nothingWithin("500 millis")
    held[4]?.message.ack()
    const alone = yield* raw.next()
    expect(alone.message.streamSeq).toBe(7)
    yield* raw.nothingWithin("500 millis")
    yield* counts("windowed", { numAckPending: 1, numPending: 23 })
  })
}

export const interruptedBuffer: Scenario = {
  name: "an interrupted consume stops pulling, and gives back at once what sat in its buffer unemitted",
  run: Effect.gen(function* () {
    const broker = yield* Broker
    yield* consumers({ name: "handback", filterSubject: "evt.handback.>", ackWait: "1 minute" })
    const publish = (from: number, count: number) =>
      Effect.forEach(numbered(count, from), (n) => publishRaw("evt.handback.item.v1", bytes(`${n}`)))
    yield* publish(1, 1)
    const handling = yield* Deferred.make<Message>()
    const fiber = yield* broker.consume("GLAM_EVENTS", "handback", { maxMessages: 10 }).pipe(
      Stream.runForEach((message) => Effect.andThen(Deferred.succeed(handling, message), Effect.never)),
      Effect.forkScoped
    )
    const first = yield* Deferred.await(handling)
    // The next five arrive while the handler holds the first: they wait in the consume's buffer.
    yield* publish(2, 5)
    yield* counts("handback", { numAckPending: 6, numPending: 0 })
    yield* Fiber.interrupt(fiber)
    first.ack()
    // Published after the interruption: nobody may pull them.
    yield* publish(7, 2)
    yield* Effect.sleep("500 millis")
    yield* counts("handback", { numAckPending: 5, numPending: 2 })

    // Without being given back, the five would come back only after the one-minute ack-wait.
    const raw = yield* consumeRaw("handback")
    const again = yield* Effect.forEach(numbered(7), () => raw.next("5 seconds"))
    expect(again.map(({ message }) => [message.streamSeq, message.deliveryCount])).toStrictEqual([
      [2, 2],
      [3, 2],
      [4, 2],
      [5, 2],
      [6, 2],
      [7, 1],
      [8, 1]
    ])
    for (const { message } of again) message.ack()
    yield* acked("handback", 8)
  })
}

export const consumerAndStreamRecreated: Scenario = {
  name: "a consume keeps going when its consumer, or its stream, is deleted and created again",
  run: Effect.gen(function* () {
    const broker = yield* Broker
    const create = Effect.andThen(
      broker.addStream(streamConfig("RECREATED", ["recreated.>"])),
      broker.addConsumer(consumerConfig("RECREATED", "worker"))
    )
    const publish = (body: string) => publishRaw("recreated.item", bytes(body))
    yield* create
    yield* publish("before")
    // Heartbeats let a broker with a server notice a consumer gone under a pull.
    const raw = yield* consumeRaw("worker", {
      stream: "RECREATED",
      maxMessages: 10,
      idleHeartbeat: Duration.seconds(1)
    })
    const before = yield* raw.next()
    expect([before.message.streamSeq, text(before.message.payload)]).toStrictEqual([1, "before"])
    before.message.ack()

    expect(yield* broker.deleteConsumer("RECREATED", "worker")).toBe(true)
    yield* publish("while no consumer")
    yield* raw.nothingWithin("300 millis")
    yield* broker.addConsumer({ ...consumerConfig("RECREATED", "worker"), deliverPolicy: "new" })
    yield* publish("after")
    const after = yield* raw.next()
    expect([after.message.streamSeq, text(after.message.payload)]).toStrictEqual([3, "after"])
    after.message.ack()

    expect(yield* broker.deleteStream("RECREATED")).toBe(true)
    yield* raw.nothingWithin("500 millis")
    yield* create
    yield* publish("rebuilt")
    const rebuilt = yield* raw.next()
    expect([rebuilt.message.streamSeq, text(rebuilt.message.payload)]).toStrictEqual([1, "rebuilt"])
    rebuilt.message.ack()
  })
}
