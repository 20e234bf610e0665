// What we write must be what the seed's pydantic models write: the same keys in the same order,
// every defaulted field present, UUIDs lowercase, datetimes as isoformat() of a UTC value.
import { assert, describe, expect, it } from "@effect/vitest"
import { DateTime, Exit } from "effect"
import * as Envelope from "../../src/Envelope.js"
import type * as Event from "../../src/Event.js"
import * as Catalog from "../../src/glam/Catalog.js"
import * as ErrorPayload from "../../src/glam/ErrorPayload.js"
import * as Events from "../../src/glam/Events.js"
import * as Merchant from "../../src/glam/Merchant.js"
import { at, identifiers } from "./samples.js"

const envelopeOf = <A>(eventType: string, data: A): Envelope.Envelope<A> => ({
  eventId: "5f0c6a57-3f0e-4a43-9d0f-2b8f4c1e7a10",
  eventType,
  correlationId: "corr-1",
  sourceService: "test-service",
  timestamp: DateTime.makeUnsafe("2026-11-26T12:33:37.123Z"),
  data
})

// The `data` object of the bytes an event writes for a payload.
const written = <E extends Event.Any>(event: E, payload: Event.Payload<E>): Record<string, unknown> => {
  const raw = event.encode(envelopeOf(event.subject, payload))
  assert(Exit.isSuccess(raw), String(raw))
  const parsed: { readonly data: Record<string, unknown> } = JSON.parse(new TextDecoder().decode(raw.value))
  return parsed.data
}

const wireIdentifiers = { ...identifiers }
const identifierKeys = ["merchant_id", "platform_name", "platform_shop_id", "domain"]

describe("wire format of the GLAM payloads", () => {
  it("writes the envelope keys in pydantic's order around the payload", () => {
    const raw = Events.CreditBalanceLow.encode(
      envelopeOf(Events.CreditBalanceLow.subject, { identifiers, balance: 4.5, email: "a@b.example" })
    )
    assert(Exit.isSuccess(raw))
    expect(new TextDecoder().decode(raw.value)).toBe(
      '{"event_id":"5f0c6a57-3f0e-4a43-9d0f-2b8f4c1e7a10","event_type":"evt.credit.balance.low.v1",' +
        '"correlation_id":"corr-1","source_service":"test-service","timestamp":"2026-11-26T12:33:37.123000+00:00",' +
        '"data":{"identifiers":{"merchant_id":"0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00","platform_name":"shopify",' +
        '"platform_shop_id":"gid://shopify/Shop/1001","domain":"demo-shop.myshopify.com"},"balance":4.5,"email":"a@b.example"}}'
    )
  })

  it("catalog: defaults written, UUIDs lowercase", () => {
    const data = written(Events.CatalogSyncCompleted, {
      identifiers: { ...identifiers, merchant_id: identifiers.merchant_id.toUpperCase() },
      sync_id: "9A1B2C3D-4E5F-4A6B-8C7D-0E1F2A3B4C5D",
      total_items: 3,
      status: "COMPLETED",
      first_sync: false,
      has_changes: false,
      email: null
    })
    expect(data).toEqual({
      identifiers: wireIdentifiers,
      sync_id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
      total_items: 3,
      status: "COMPLETED",
      first_sync: false,
      has_changes: false,
      email: null
    })
    expect(Object.keys(data)).toEqual([
      "identifiers",
      "sync_id",
      "total_items",
      "status",
      "first_sync",
      "has_changes",
      "email"
    ])
    expect(Object.keys(data.identifiers ?? {})).toEqual(identifierKeys)
  })

  it("credit: floats and isoformat() datetimes", () => {
    const data = written(Events.CreditTrialExhausted, {
      identifiers,
      exhausted_at: at("2026-11-26T09:24:59.5Z"),
      email: "owner@demo-shop.example"
    })
    expect(data).toEqual({
      identifiers: wireIdentifiers,
      exhausted_at: "2026-11-26T09:24:59.500000+00:00",
      email: "owner@demo-shop.example"
    })
    expect(written(Events.CreditBalanceGranted, { identifiers, amount: 100, new_balance: 0.1, email: "e" })).toEqual({
      identifiers: wireIdentifiers,
      amount: 100,
      new_balance: 0.1,
      email: "e"
    })
  })

  it("merchant: the snapshot in the mixin's field order, nulls written", () => {
    const data = written(Events.MerchantStatusChanged, {
      identifiers,
      name: "Café Müller",
      email: "owner@demo-shop.example",
      primary_domain: null,
      currency: "EUR",
      country: "DE",
      platform_version: null,
      scopes: "read_products",
      status: "PAUSED",
      last_synced_at: null,
      created_at: at("2026-11-26T12:33:37Z"),
      updated_at: at("2026-11-27T10:00:00.001Z"),
      from_status: "ACTIVE",
      to_status: "PAUSED"
    })
    expect(data).toEqual({
      identifiers: wireIdentifiers,
      name: "Café Müller",
      email: "owner@demo-shop.example",
      primary_domain: null,
      currency: "EUR",
      country: "DE",
      platform_version: null,
      scopes: "read_products",
      status: "PAUSED",
      last_synced_at: null,
      created_at: "2026-11-26T12:33:37+00:00",
      updated_at: "2026-11-27T10:00:00.001000+00:00",
      from_status: "ACTIVE",
      to_status: "PAUSED"
    })
    expect(Object.keys(data)).toEqual([
      "identifiers",
      "name",
      "email",
      "primary_domain",
      "currency",
      "country",
      "platform_version",
      "scopes",
      "status",
      "last_synced_at",
      "created_at",
      "updated_at",
      "from_status",
      "to_status"
    ])
    expect(
      written(Events.MerchantUninstalled, {
        identifiers,
        status: "UNINSTALLED",
        updated_at: at("2026-11-27T09:00:00Z")
      })
    ).toEqual({ identifiers: wireIdentifiers, status: "UNINSTALLED", updated_at: "2026-11-27T09:00:00+00:00" })
  })

  it("notification: retry_count written", () => {
    expect(
      written(Events.NotificationEmailFailed, {
        identifiers,
        notification_id: "1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a01",
        template_type: "credit_low",
        recipient_email: "owner@demo-shop.example",
        error_code: "SMTP_550",
        error_message: "Mailbox unavailable",
        retry_count: 0
      })
    ).toEqual({
      identifiers: wireIdentifiers,
      notification_id: "1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a01",
      template_type: "credit_low",
      recipient_email: "owner@demo-shop.example",
      error_code: "SMTP_550",
      error_message: "Mailbox unavailable",
      retry_count: 0
    })
  })

  it("webhook: no identifiers, domain null written, occurred_at with its offset", () => {
    const data = written(Events.WebhookAppUninstalled, {
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1001",
      domain: null,
      occurred_at: at("2026-11-27T08:58:59.987Z")
    })
    expect(data).toEqual({
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1001",
      domain: null,
      occurred_at: "2026-11-27T08:58:59.987000+00:00"
    })
    expect(Object.keys(data)).toEqual(["platform_name", "platform_shop_id", "domain", "occurred_at"])
  })

  it("error payload: every default written", () => {
    const encode = Envelope.encoder(ErrorPayload.ErrorPayload)
    const raw = encode(
      envelopeOf("dlq.merchant.created.v1", {
        identifiers,
        error_code: "KeyError",
        error_message: "'email'",
        failed_operation: "evt.merchant.created.v1",
        retry_count: 0,
        max_retries: 3,
        original_data: null
      })
    )
    assert(Exit.isSuccess(raw))
    const parsed: { readonly data: Record<string, unknown> } = JSON.parse(new TextDecoder().decode(raw.value))
    expect(Object.entries(parsed.data)).toEqual([
      ["identifiers", wireIdentifiers],
      ["error_code", "KeyError"],
      ["error_message", "'email'"],
      ["failed_operation", "evt.merchant.created.v1"],
      ["retry_count", 0],
      ["max_retries", 3],
      ["original_data", null]
    ])
  })

  it("defaulted fields may be left out when a payload is made, as with a pydantic constructor", () => {
    expect(
      Catalog.CatalogSyncCompletedPayload.make({
        identifiers,
        sync_id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
        total_items: 1,
        status: "COMPLETED"
      })
    ).toMatchObject({ first_sync: false, has_changes: false, email: null })
    expect(
      Merchant.MerchantUninstalledPayload.make({ identifiers, updated_at: at("2026-11-27T09:00:00Z") }).status
    ).toBe("UNINSTALLED")
    expect(
      ErrorPayload.ErrorPayload.make({ identifiers, error_code: "E", error_message: "m", failed_operation: "o" })
    ).toMatchObject({ retry_count: 0, max_retries: 3, original_data: null })
  })

  it("open payloads: the extra fields written back as they came", () => {
    expect(
      written(Events.BillingTrialActivated, { identifiers, plan: "pro", limits: { products: 1000, note: null } })
    ).toEqual({ identifiers: wireIdentifiers, plan: "pro", limits: { products: 1000, note: null } })
  })
})
