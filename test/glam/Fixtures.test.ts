// Messages in the exact form the Python services write them (pydantic v2's model_dump_json() of the
// seed's EventEnvelope, the payload dumped with model_dump(mode="json")), one per line in
// test/fixtures/pydantic/*.jsonl, written by hand from the seed's models.
import { readFileSync } from "node:fs"
import { assert, describe, expect, it } from "@effect/vitest"
import { DateTime, Exit } from "effect"
import * as Envelope from "../../src/Envelope.js"
import * as ErrorPayload from "../../src/glam/ErrorPayload.js"
import * as Events from "../../src/glam/Events.js"
import { at, identifiers } from "./samples.js"

const fixture = (file: string): ReadonlyArray<Uint8Array> =>
  readFileSync(new URL(`../fixtures/pydantic/${file}`, import.meta.url), "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => new TextEncoder().encode(line))

const subjectOf = (raw: Uint8Array): string => {
  const envelope = Envelope.decodeEnvelopeExit(raw)
  assert(Exit.isSuccess(envelope), `not an envelope: ${String(envelope)}`)
  return envelope.value.eventType
}

// Decodes a line by its event_type through the catalogue, as a consumer of every GLAM subject would.
const decodeAll = (file: string) =>
  fixture(file).map((raw) => {
    const decoded = Events.all.decode(subjectOf(raw), raw)
    assert(Exit.isSuccess(decoded), `${file}: ${String(decoded)}`)
    return decoded.value.envelope
  })

const iso = (utc: DateTime.Utc | undefined): string | undefined =>
  utc === undefined ? undefined : DateTime.formatIso(utc)

describe("pydantic fixtures", () => {
  it("catalog: microsecond and zero-fraction timestamps, null, missing defaults", () => {
    const [started, completed, completedWithDefaults] = decodeAll("catalog.jsonl")
    expect(started?.data).toEqual({
      identifiers,
      sync_id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
      total_items: 120,
      status: "RUNNING"
    })
    expect(iso(started?.timestamp)).toBe("2026-11-26T12:33:37.123Z")
    expect(started?.eventId).toBe("5f0c6a57-3f0e-4a43-9d0f-2b8f4c1e7a10")
    expect(started?.sourceService).toBe("catalog-service")
    expect(completed?.data).toMatchObject({ first_sync: true, has_changes: true, email: null })
    expect(iso(completed?.timestamp)).toBe("2026-11-26T12:40:00.000Z")
    expect(completedWithDefaults?.data).toMatchObject({
      total_items: 0,
      first_sync: false,
      has_changes: false,
      email: null
    })
    expect(iso(completedWithDefaults?.timestamp)).toBe("2026-11-26T12:41:05.000Z")
  })

  it("credit: Python floats (integral ones too) and payload datetimes with offsets", () => {
    const [granted, low, exhausted, trialGranted, trialLow, trialExhausted] = decodeAll("credit.jsonl")
    expect(granted?.data).toMatchObject({ amount: 100, new_balance: 150.5, email: "owner@demo-shop.example" })
    expect(iso(granted?.timestamp)).toBe("2026-11-26T09:00:00.500Z")
    expect(low?.data).toMatchObject({ balance: 4.5 })
    expect(iso(low?.timestamp)).toBe("2026-11-26T09:05:00.999Z")
    expect(exhausted?.data).toMatchObject({ exhausted_at: at("2026-11-26T09:09:59.123Z") })
    expect(trialGranted?.data).toMatchObject({ amount: 50 })
    expect(iso(trialGranted?.timestamp)).toBe("2026-11-26T09:15:00.000Z")
    expect(trialLow?.data).toMatchObject({ balance: 0.75 })
    expect(trialExhausted?.data).toMatchObject({ exhausted_at: at("2026-11-26T09:24:59.500Z") })
  })

  it("merchant: nullable fields, snapshot datetimes, the status default", () => {
    const [created, synced, reinstalled, uninstalled, statusChanged] = decodeAll("merchant.jsonl")
    expect(created?.data).toEqual({
      identifiers,
      name: "Café Müller",
      email: "owner@demo-shop.example",
      primary_domain: null,
      currency: "EUR",
      country: "DE",
      platform_version: "2026-10",
      scopes: "read_products,write_products"
    })
    expect(synced?.data).toMatchObject({
      primary_domain: "cafe-mueller.example",
      platform_version: null,
      status: "ACTIVE",
      last_synced_at: null,
      created_at: at("2026-11-26T12:33:37.100Z"),
      updated_at: at("2026-11-26T12:33:38Z")
    })
    expect(reinstalled?.data).toMatchObject({
      status: "PENDING",
      last_synced_at: at("2026-11-26T12:33:38.654Z"),
      updated_at: at("2026-11-27T07:59:59.999Z")
    })
    expect(uninstalled?.data).toEqual({
      identifiers,
      status: "UNINSTALLED",
      updated_at: at("2026-11-27T08:59:58.250Z")
    })
    expect(statusChanged?.data).toMatchObject({ status: "PAUSED", from_status: "ACTIVE", to_status: "PAUSED" })
  })

  it("notification: the send command's open payload and the retry_count default", () => {
    const [requested, sent, failed] = decodeAll("notification.jsonl")
    expect(requested?.eventType).toBe("cmd.notification.email.send.v1")
    expect(requested?.data).toEqual({
      identifiers,
      template_type: "trial_started",
      recipient_email: "owner@demo-shop.example",
      context: { trial_days: 14, plan: null }
    })
    expect(sent?.data).toMatchObject({ notification_id: "1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a00", provider: "sendgrid" })
    expect(failed?.data).toMatchObject({ error_code: "SMTP_550", retry_count: 0 })
  })

  it("webhook: naive occurred_at read as UTC, missing domain, open payloads", () => {
    const [uninstalled, withoutDomain, received] = decodeAll("webhook.jsonl")
    expect(uninstalled?.data).toEqual({
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1001",
      domain: null,
      occurred_at: at("2026-11-27T08:58:59.987Z")
    })
    expect(withoutDomain?.data).toEqual({
      platform_name: "shopify",
      platform_shop_id: "gid://shopify/Shop/1002",
      domain: null,
      occurred_at: at("2026-11-27T08:59:30Z")
    })
    expect(received?.data).toEqual({ identifiers, topic: "orders/create", webhook_id: "wh-1", payload_size: 2048 })
  })

  it("webhook: a missing occurred_at becomes the decoding time, like pydantic's default_factory", () => {
    const [line] = fixture("webhook.jsonl")
    const wire: { readonly data: Record<string, unknown> } = JSON.parse(new TextDecoder().decode(line))
    const { occurred_at: _, ...data } = wire.data
    const decoded = Events.WebhookAppUninstalled.decode(new TextEncoder().encode(JSON.stringify({ ...wire, data })))
    assert(Exit.isSuccess(decoded), String(decoded))
    expect(DateTime.isDateTime(decoded.value.data.occurred_at)).toBe(true)
    expect(DateTime.toEpochMillis(decoded.value.data.occurred_at)).toBeGreaterThan(Date.parse("2026-01-01T00:00:00Z"))
  })

  it("error payload: original_data kept as JSON, and the defaults", () => {
    const decode = Envelope.decoder(ErrorPayload.ErrorPayload)
    const [full, minimal] = fixture("error_payload.jsonl").map((raw) => {
      const decoded = decode(raw)
      assert(Exit.isSuccess(decoded), String(decoded))
      return decoded.value
    })
    expect(full?.eventType).toBe("dlq.catalog.sync.started.v1")
    expect(full?.data).toEqual({
      identifiers,
      error_code: "ValidationError",
      error_message: "total_items: Input should be a valid integer",
      failed_operation: "evt.catalog.sync.started.v1",
      retry_count: 2,
      max_retries: 3,
      original_data: { identifiers, total_items: "many", nested: [1, 2.5, null, true] }
    })
    expect(minimal?.data).toMatchObject({ retry_count: 0, max_retries: 3, original_data: null })
  })

  it("subjects without a model: every field kept", () => {
    const [trial, purchase, tracked, aggregated, syncFailed] = decodeAll("open.jsonl")
    expect(trial?.data).toEqual({
      identifiers,
      plan: "pro",
      trial_days: 14,
      ends_at: "2026-12-10T15:00:00+00:00",
      features: ["sync", "email"],
      limits: { products: 1000, ratio: 0.5, note: null }
    })
    expect(purchase?.data).toEqual({ identifiers, amount: 49.99, currency: "EUR" })
    expect(tracked?.data).toEqual({ identifiers })
    expect(aggregated?.data).toEqual({ identifiers, window: "1h", counts: { views: 12, clicks: 3 } })
    expect(syncFailed?.data).toEqual({
      identifiers,
      sync_id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5f",
      error: "rate limited"
    })
  })
})
