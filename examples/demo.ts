/**
 * The GLAM flow end to end, with no infrastructure needed: merchants are created, the notification
 * service sends them welcome emails through a flaky provider (retrying, redelivering and dead-lettering),
 * and a summary is printed at the end.
 *
 *   npm start                                      # on the in-memory broker
 *   NATS_SERVERS=nats://127.0.0.1:4222 npm start   # the same program on NATS
 */
import { NodeRuntime } from "@effect/platform-node"
import { Broker, DeadLetter, Logging, MemoryBroker, NatsBroker, Publisher, Subscriber } from "@glam/messaging"
import { Events, Glam, Streams } from "@glam/messaging/glam"
import { Config, Console, DateTime, Effect, Layer, Option, Ref, Schedule } from "effect"
import { EmailProvider, WelcomeEmails } from "./notifications/NotificationService.js"

const merchants = ["ada", "grace", "bounce", "alan", "unsubscribed", "flaky", "barbara", "donald"]

/** NATS when `NATS_SERVERS` is set, the in-memory broker otherwise; says which in the first line. */
const BrokerLive = Layer.unwrap(
  Effect.gen(function* () {
    const servers = yield* Config.option(Config.String("NATS_SERVERS"))
    if (Option.isSome(servers)) {
      yield* Console.log(`GLAM demo on NATS at ${servers.value}`)
      return NatsBroker.layerConfig({ connectRetry: Schedule.spaced("500 millis").pipe(Schedule.upTo({ times: 2 })) })
    }
    yield* Console.log("GLAM demo on the in-memory broker (set NATS_SERVERS to run the same program on NATS)")
    return MemoryBroker.layer
  })
)

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  const broker = yield* Broker.Broker
  const run = crypto.randomUUID().slice(0, 8)
  const started = yield* DateTime.now
  const outcomes = yield* Ref.make({ sent: 0, failed: 0 })

  // Listen to what the notification service publishes for this run.
  yield* Subscriber.make([Events.NotificationEmailSent, Events.NotificationEmailFailed], {
    queueGroup: "demo-summary",
    deliverPolicy: "new",
    handler: (envelope) =>
      envelope.correlationId.startsWith(run)
        ? Ref.update(outcomes, (o) =>
            envelope.eventType === Events.NotificationEmailSent.subject
              ? { ...o, sent: o.sent + 1 }
              : { ...o, failed: o.failed + 1 }
          )
        : Effect.void
  })

  for (const [i, name] of merchants.entries()) {
    const receipt = yield* publisher.publish(
      Events.MerchantCreated,
      {
        identifiers: {
          merchant_id: crypto.randomUUID(),
          platform_name: "shopify",
          platform_shop_id: `gid://shopify/Shop/${1000 + i}`,
          domain: `${name}.myshopify.com`
        },
        name,
        email: `${name}@example.com`,
        primary_domain: null,
        currency: "EUR",
        country: "DE",
        platform_version: null,
        scopes: "read_products"
      },
      { correlationId: `${run}-${name}` }
    )
    yield* Console.log(`published ${receipt.subject} for ${name} -> ${receipt.stream}#${receipt.seq}`)
  }

  // Done when the notification service's consumer holds nothing and has nothing left to deliver.
  yield* Effect.flatMap(broker.consumerInfo(Streams.eventsName, "demo-notification-service-welcome-email"), (info) =>
    Option.isSome(info) && info.value.state.numPending === 0 && info.value.state.numAckPending === 0
      ? Effect.void
      : Effect.fail("busy")
  ).pipe(Effect.retry(Schedule.spaced("200 millis")), Effect.delay("500 millis"))
  yield* Effect.sleep("300 millis")

  const deadLetters = (yield* DeadLetter.list({ since: started })).filter((entry) =>
    (entry.record.correlationId ?? "").startsWith(run)
  )
  const { sent, failed } = yield* Ref.get(outcomes)
  const provider = yield* Effect.flatMap(EmailProvider, (p) => p.stats)
  const dropped = merchants.length - sent - deadLetters.length
  yield* Console.log("")
  yield* Console.log(`summary: ${merchants.length} merchants created`)
  yield* Console.log(
    `  provider calls:             ${provider.calls} (${provider.unavailable} unavailable: retried, then redelivered)`
  )
  yield* Console.log(`  welcome emails sent:        ${sent}`)
  yield* Console.log(`  email.failed events:        ${failed}`)
  yield* Console.log(`  dead-lettered (GLAM_DLQ):   ${deadLetters.length}`)
  for (const entry of deadLetters) {
    yield* Console.log(`    #${entry.seq} ${entry.subject}: ${entry.record.errorCode} ${entry.record.errorMessage}`)
  }
  yield* Console.log(`  dropped on purpose (acked): ${dropped}`)
})

// The GLAM stack (streams, publisher, service identity) over whichever broker BrokerLive chose.
const Demo = WelcomeEmails.pipe(
  Layer.provideMerge(EmailProvider.layer),
  Layer.provideMerge(Glam.layer({ service: "demo-notification-service" })),
  Layer.provideMerge(BrokerLive)
)

program.pipe(
  Effect.scoped,
  Effect.provide(Demo),
  Effect.provide(Logging.layerConfig()),
  Effect.catchTag("NatsError", (error) =>
    Console.error(
      error.reason._tag === "ConnectionRefused"
        ? `No NATS server answered (${error.message}). Start one with: nats-server -js -a 127.0.0.1 -p 4222, or unset NATS_SERVERS to run in process.`
        : `NATS failed: ${error.message}`
    ).pipe(Effect.andThen(Effect.sync(() => (process.exitCode = 1))))
  ),
  NodeRuntime.runMain
)
