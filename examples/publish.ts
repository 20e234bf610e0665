import { NodeRuntime } from "@effect/platform-node"
import { Logging, Publisher } from "@glam/messaging"
import { Events, Glam } from "@glam/messaging/glam"
import { Console, Effect } from "effect"

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  const receipt = yield* publisher.publish(Events.CreditBalanceLow, {
    identifiers: {
      merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1001",
      domain: "demo-shop.myshopify.com"
    },
    balance: 4.5,
    email: "owner@demo-shop.example"
  })
  yield* Console.log(`${receipt.subject} stored as ${receipt.stream}#${receipt.seq}`)
})

// The connection (NATS_SERVERS, NATS_USER, ...), the GLAM streams provisioned, a publisher, SERVICE_NAME;
// log lines as LOG_LEVEL and LOG_FORMAT say
program.pipe(Effect.provide(Glam.layerNats()), Effect.provide(Logging.layerConfig()), NodeRuntime.runMain)
