/**
 * Testing a handler without a NATS server: the notification service on the in-memory broker, with the
 * test clock driving its redelivery delays.
 */
import { describe, expect, it } from "@effect/vitest"
import { Events, Streams } from "@glam/messaging/glam"
import * as Testing from "@glam/messaging/testing"
import { Duration, Effect, Fiber, Layer } from "effect"
import { EmailProvider, WelcomeEmails } from "./notifications/NotificationService.js"

const TestEnv = WelcomeEmails.pipe(
  Layer.provideMerge(EmailProvider.layer),
  Layer.provideMerge(Testing.layer({ topology: Streams.topology, service: "notification-service" }))
)

const merchantCreated = (email: string) => ({
  identifiers: {
    merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
    platform_name: "shopify",
    platform_shop_id: "gid://shopify/Shop/1001",
    domain: "demo-shop.myshopify.com"
  },
  name: "Demo Shop",
  email,
  primary_domain: null,
  currency: "EUR",
  country: "DE",
  platform_version: null,
  scopes: "read_products"
})

describe("welcome emails", () => {
  it.effect("a welcome email is sent and announced with the merchant event's correlation id", () =>
    Effect.gen(function* () {
      const { receipt, outcome } = yield* Testing.publishAndWait(
        Events.MerchantCreated,
        merchantCreated("ada@example.com"),
        { correlationId: "signup-42" }
      )
      expect(outcome._tag).toBe("Acked")
      const sent = yield* Testing.publishedEnvelopes({ subject: Events.NotificationEmailSent.subject })
      expect(sent).toHaveLength(1)
      expect(sent[0]?.correlationId).toBe("signup-42")
      expect(sent[0]?.sourceService).toBe("notification-service")
      expect(receipt.stream).toBe("GLAM_EVENTS")
    }).pipe(Effect.provide(TestEnv))
  )

  it.effect("a rejected mailbox is announced as failed and dead-lettered with its record", () =>
    Effect.gen(function* () {
      const { receipt, outcome } = yield* Testing.publishAndWait(
        Events.MerchantCreated,
        merchantCreated("bounce@example.com")
      )
      if (outcome._tag !== "DeadLettered") return expect.fail(`expected a dead letter, got ${outcome._tag}`)
      expect(outcome.record.errorCode).toBe("MailboxRejected")
      expect(outcome.record.originalSubject).toBe("evt.merchant.created.v1")
      expect(outcome.record.streamSeq).toBe(receipt.seq)
      const failed = yield* Testing.publishedEnvelopes({ subject: Events.NotificationEmailFailed.subject })
      expect(failed).toHaveLength(1)
    }).pipe(Effect.provide(TestEnv))
  )

  it.effect("an unsubscribed merchant is acknowledged and nothing is sent", () =>
    Effect.gen(function* () {
      const { outcome } = yield* Testing.publishAndWait(
        Events.MerchantCreated,
        merchantCreated("unsubscribed@example.com")
      )
      expect(outcome._tag).toBe("Acked")
      expect(yield* Testing.publishedEnvelopes({ subject: Events.NotificationEmailSent.subject })).toHaveLength(0)
    }).pipe(Effect.provide(TestEnv))
  )

  it.effect("an unavailable provider is retried in process, then redelivered a second later, then succeeds", () =>
    Effect.gen(function* () {
      const waiting = yield* Testing.publishAndWait(Events.MerchantCreated, merchantCreated("flaky@example.com")).pipe(
        Effect.forkChild
      )
      // the in-process retries wait 100 ms and 200 ms
      yield* Testing.advance("300 millis")
      const { receipt, outcome } = yield* Fiber.join(waiting)
      if (outcome._tag !== "Redelivered") return expect.fail(`expected a redelivery, got ${outcome._tag}`)
      expect(Duration.toMillis(outcome.delay)).toBe(1000)
      const recorder = yield* Testing.Recorder
      const second = yield* recorder.outcome(receipt.stream, receipt.seq, 2).pipe(Effect.forkChild)
      yield* Testing.advance("1 second")
      expect((yield* Fiber.join(second))._tag).toBe("Acked")
      expect(yield* Testing.publishedEnvelopes({ subject: Events.NotificationEmailSent.subject })).toHaveLength(1)
    }).pipe(Effect.provide(TestEnv))
  )
})
