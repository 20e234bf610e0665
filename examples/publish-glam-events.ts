/**
 * Provisions the GLAM topology and publishes a handful of GLAM events, printing each receipt.
 *
 *   NATS_SERVERS=nats://127.0.0.1:4222 SERVICE_NAME=merchant-service npm start
 */

import { NodeRuntime } from "@effect/platform-node"
import { Logging, Publisher, ServiceIdentity } from "@glam/messaging"
import { Events, Glam } from "@glam/messaging/glam"
import { Config, Console, Effect, Schedule } from "effect"

const identifiers = {
  merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
  platform_name: "shopify",
  platform_shop_id: "gid://shopify/Shop/1001",
  domain: "demo-shop.myshopify.com"
}

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  const receipts = [
    yield* publisher.publish(Events.MerchantCreated, {
      identifiers,
      name: "Demo Shop",
      email: "owner@demo-shop.example",
      primary_domain: null,
      currency: "EUR",
      country: "DE",
      platform_version: "2026-10",
      scopes: "read_products,write_products"
    }),
    yield* publisher.publish(Events.CreditTrialGranted, { identifiers, amount: 100, email: "owner@demo-shop.example" }),
    yield* publisher.publish(Events.CreditBalanceLow, { identifiers, balance: 4.5, email: "owner@demo-shop.example" })
  ]
  for (const receipt of receipts) {
    yield* Console.log(`${receipt.subject} -> ${receipt.stream}#${receipt.seq} (event ${receipt.eventId})`)
  }
})

const Messaging = Glam.layerNats({
  service: ServiceIdentity.config.pipe(Config.withDefault("glam-example")),
  // Give up quickly when nothing answers: this is a demo, not a service waiting for its infrastructure.
  nats: { connectRetry: Schedule.spaced("500 millis").pipe(Schedule.upTo({ times: 1 })) }
})

program.pipe(
  Effect.provide(Messaging),
  Effect.provide(Logging.layerConfig()),
  Effect.catchTag("NatsError", (error) =>
    error.reason._tag === "ConnectionRefused"
      ? Console.error(
          `No NATS server answered (${error.message}). Start one with: nats-server -js -a 127.0.0.1 -p 4222, or set NATS_SERVERS.`
        ).pipe(Effect.andThen(Effect.sync(() => (process.exitCode = 1))))
      : Effect.fail(error)
  ),
  NodeRuntime.runMain
)
