import { assert, describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Exit, Option } from "effect"
import type * as Envelope from "../../src/Envelope.js"
import type * as Event from "../../src/Event.js"
import * as Events from "../../src/glam/Events.js"
import type * as Merchant from "../../src/glam/Merchant.js"
import * as Subjects from "../../src/glam/Subjects.js"
import { profile, samples } from "./samples.js"

const envelopeOf = <A>(eventType: string, data: A): Envelope.Envelope<A> => ({
  eventId: "5f0c6a57-3f0e-4a43-9d0f-2b8f4c1e7a10",
  eventType,
  correlationId: "corr-1",
  sourceService: "test-service",
  timestamp: DateTime.makeUnsafe("2026-11-26T12:33:37.123Z"),
  data
})

describe("GLAM catalogue", () => {
  it("has an event for every subject, and a sample for every event", () => {
    expect(Events.all.subjects).toEqual(Subjects.all)
    expect(samples.map(({ event }) => event.subject)).toEqual(Subjects.all)
    expect(new Set(Subjects.all).size).toBe(Subjects.all.length)
    for (const subject of Subjects.all) {
      expect(Option.map(Events.all.bySubject(subject), (event) => event.subject)).toEqual(Option.some(subject))
    }
  })

  it("keeps the seed's subject names, with the misspelling fixed and kept as an alias", () => {
    expect(Subjects.CATALOG_SYNC_STARTED).toBe("evt.catalog.sync.started.v1")
    expect(Subjects.CATAlOG_SYNC_STARTED).toBe(Subjects.CATALOG_SYNC_STARTED)
    expect(Subjects.NOTIFICATION_EMAIL_REQUESTED).toBe("cmd.notification.email.send.v1")
    expect(Subjects.ANALYTICS_EVENT_TRACKED).toBe("evt.analytics.tracked.v1")
    expect(Events.NotificationEmailRequested.kind).toBe("cmd")
    expect(Events.CatalogSyncStarted.action).toBe("sync.started")
  })

  for (const { event, payload } of samples) {
    it.effect(`round-trips ${event.subject}`, () =>
      Effect.gen(function* () {
        const envelope = envelopeOf(event.subject, payload)
        const raw = yield* event.encode(envelope)
        expect(yield* event.decode(raw, event.subject)).toEqual(envelope)
        const decoded = yield* Events.all.decode(event.subject, raw)
        expect(decoded.event).toBe(event)
        expect(decoded.envelope).toEqual(envelope)
      })
    )
  }

  it("types payloads from the schemas", () => {
    type Exact<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
    const created: Exact<
      Event.Payload<typeof Events.MerchantCreated>,
      {
        readonly identifiers: {
          readonly merchant_id: string
          readonly platform_name: string
          readonly platform_shop_id: string
          readonly domain: string
        }
        readonly name: string
        readonly email: string
        readonly primary_domain: string | null
        readonly currency: string
        readonly country: string
        readonly platform_version: string | null
        readonly scopes: string
      }
    > = true
    const status: Exact<Event.Payload<typeof Events.MerchantUninstalled>["status"], Merchant.MerchantStatus> = true
    const updated: Exact<Event.Payload<typeof Events.MerchantUninstalled>["updated_at"], DateTime.Utc> = true
    const open: Exact<Event.Payload<typeof Events.BillingTrialActivated>["plan"], unknown> = false
    expect([created, status, updated, open]).toEqual([true, true, true, false])
  })

  it("narrows a group decode by subject", () => {
    const raw = Events.MerchantCreated.encode(envelopeOf(Events.MerchantCreated.subject, profile))
    assert(Exit.isSuccess(raw))
    const decoded = Events.all.decode(Subjects.MERCHANT_CREATED, raw.value)
    assert(Exit.isSuccess(decoded))
    const message = decoded.value
    assert(message.subject === Subjects.MERCHANT_CREATED)
    const name: string = message.envelope.data.name
    expect(name).toBe("Café Müller")
  })
})
