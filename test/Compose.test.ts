/**
 * The first service a user writes: one layer for the stack (topology, publisher, service identity, and
 * the broker), subscribers composed with it in any order, on a fresh nats-server and in process. Each
 * composition must start and handle what is published to it.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Ref, Schema } from "effect"
import type { Broker } from "../src/Broker.js"
import * as Event from "../src/Event.js"
import { Events, Glam } from "../src/glam/index.js"
import * as Streams from "../src/glam/Streams.js"
import * as Messaging from "../src/Messaging.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import * as NatsServer from "./support/NatsServer.js"

const Placed = Event.make("evt.shop.order.placed.v1", Schema.Struct({ order: Schema.String }))
const Shipped = Event.make("evt.shop.order.shipped.v1", Schema.Struct({ order: Schema.String }))

/** A topology of the user's own: nothing GLAM in it. */
const topology = Topology.make({
  streams: [
    { name: "SHOP", subjects: ["evt.shop.>"] },
    { name: "SHOP_DEAD_LETTERS", subjects: ["dlq.>"] },
    { name: "SHOP_ADVISORIES", subjects: ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"] }
  ]
})

/** Two subscribers that write down what they handle. */
const subscribers = Effect.gen(function* () {
  const handled = yield* Ref.make<ReadonlyArray<string>>([])
  const note = (what: string) => Ref.update(handled, (list) => [...list, what])
  const placed = Subscriber.layer(Placed, { handler: (envelope) => note(`placed ${envelope.data.order}`) })
  const shipped = Subscriber.layer(Shipped, { handler: (envelope) => note(`shipped ${envelope.data.order}`) })
  return { handled, placed, shipped }
})

type Stack = Layer.Layer<Publisher.Publisher | ServiceIdentity.ServiceIdentity | Broker, unknown>
type Subscribers = Effect.Success<typeof subscribers>

/** The compositions every stack must support. */
const compositions: ReadonlyArray<{
  readonly name: string
  readonly app: (stack: Stack, subs: Subscribers) => Layer.Layer<Publisher.Publisher, unknown>
}> = [
  {
    name: "subscribers provided with the stack",
    app: (stack, { placed, shipped }) => Layer.mergeAll(placed, shipped).pipe(Layer.provideMerge(stack))
  },
  {
    name: "subscribers merged beside the stack, each provided with it",
    app: (stack, { placed, shipped }) =>
      Layer.mergeAll(placed.pipe(Layer.provide(stack)), stack, shipped.pipe(Layer.provide(stack)))
  },
  {
    name: "the stack merged after the subscribers",
    app: (stack, { placed, shipped }) =>
      Layer.mergeAll(placed.pipe(Layer.provide(stack)), shipped.pipe(Layer.provide(stack)), stack)
  }
]

/** Builds `app`, publishes one event of each kind and waits until both are handled. */
const publishAndHandle = (app: Layer.Layer<Publisher.Publisher, unknown>, handled: Ref.Ref<ReadonlyArray<string>>) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const placed = yield* publisher.publish(Placed, { order: "o-1" })
    yield* publisher.publish(Shipped, { order: "o-1" })
    expect(placed.stream).toBe("SHOP")
    yield* eventually(
      Effect.flatMap(Ref.get(handled), (list) => (list.length === 2 ? Effect.void : Effect.fail("not yet"))),
      { timeout: "15 seconds", interval: "50 millis" }
    )
    expect([...(yield* Ref.get(handled))].sort()).toStrictEqual(["placed o-1", "shipped o-1"])
  }).pipe(Effect.provide(app))

describe("Messaging.layerNats", () => {
  for (const { name, app } of compositions) {
    it.live(`${name}: starts on a fresh server and handles what is published`, () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const logs = Logs.capture()
        const subs = yield* subscribers
        const stack = Messaging.layerNats({ topology, service: "shop", nats: { servers: server.url } })
        yield* publishAndHandle(app(stack, subs), subs.handled).pipe(Effect.provide(logs.layer))
        // One stack value is built once, however many layers it is provided to.
        expect(logs.matching("Info", "NATS connected to")).toHaveLength(1)
      })
    )
  }

  it.live("the topology beside the subscribers, on NatsBroker.layer: they wait for its streams", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const { handled, placed, shipped } = yield* subscribers
      const app = Layer.mergeAll(placed, Topology.layer(topology), shipped, Publisher.layer()).pipe(
        Layer.provideMerge(NatsBroker.layer({ servers: server.url })),
        Layer.provideMerge(ServiceIdentity.layer("shop"))
      )
      yield* publishAndHandle(app, handled)
    })
  )

  it.live("SERVICE_NAME names the service when no name is given", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const stack = Messaging.layerNats({ topology })
      const name = yield* ServiceIdentity.ServiceIdentity.pipe(
        Effect.map((identity) => identity.name),
        Effect.provide(stack),
        Effect.provideService(
          ConfigProvider.ConfigProvider,
          ConfigProvider.fromEnv({ env: { NATS_SERVERS: server.url, SERVICE_NAME: "from-env" } })
        )
      )
      expect(name).toBe("from-env")
    })
  )
})

describe("Messaging.layerMemory", () => {
  for (const { name, app } of compositions) {
    it.live(`${name}: starts and handles what is published`, () =>
      Effect.gen(function* () {
        const subs = yield* subscribers
        yield* publishAndHandle(app(Messaging.layerMemory({ topology, service: "shop" }), subs), subs.handled)
      })
    )
  }
})

describe("Glam preset", () => {
  const lowBalance = {
    identifiers: {
      merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1001",
      domain: "demo-shop.myshopify.com"
    },
    balance: 4.5,
    email: "owner@demo-shop.example"
  }

  const glamApp = (stack: Stack, handled: Ref.Ref<ReadonlyArray<string>>) =>
    Subscriber.layer(Events.CreditBalanceLow, {
      handler: (envelope) =>
        Ref.update(handled, (list) => [...list, `${envelope.sourceService} ${envelope.data.balance}`])
    }).pipe(Layer.provideMerge(stack))

  const publishLowBalance = (app: Layer.Layer<Publisher.Publisher, unknown>, handled: Ref.Ref<ReadonlyArray<string>>) =>
    Effect.gen(function* () {
      const receipt = yield* Effect.flatMap(Publisher.Publisher, (publisher) =>
        publisher.publish(Events.CreditBalanceLow, lowBalance)
      )
      expect(receipt.stream).toBe(Streams.eventsName)
      yield* eventually(
        Effect.flatMap(Ref.get(handled), (list) => (list.length === 1 ? Effect.void : Effect.fail("not yet"))),
        { timeout: "15 seconds", interval: "50 millis" }
      )
      expect(yield* Ref.get(handled)).toStrictEqual(["credit-service 4.5"])
    }).pipe(Effect.provide(app))

  it.live(
    "Glam.layerNats reads NATS_SERVERS, SERVICE_NAME and GLAM_STREAM_REPLICAS and provisions the GLAM streams",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const handled = yield* Ref.make<ReadonlyArray<string>>([])
        yield* publishLowBalance(glamApp(Glam.layerNats(), handled), handled).pipe(
          Effect.provideService(
            ConfigProvider.ConfigProvider,
            ConfigProvider.fromEnv({
              env: { NATS_SERVERS: server.url, SERVICE_NAME: "credit-service", GLAM_STREAM_REPLICAS: "1" }
            })
          )
        )
      })
  )

  it.live("Glam.layerMemory: the same program in process", () =>
    Effect.gen(function* () {
      const handled = yield* Ref.make<ReadonlyArray<string>>([])
      yield* publishLowBalance(glamApp(Glam.layerMemory({ service: "credit-service" }), handled), handled)
    })
  )
})
