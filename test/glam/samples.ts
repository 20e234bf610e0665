// One sample payload per GLAM event, typed by the event.
import { DateTime } from "effect"
import type * as Event from "../../src/Event.js"
import * as Events from "../../src/glam/Events.js"

// Typed against its event here, then kept as `Event.Any` so that one loop can run every sample.
const sample = <E extends Event.Any>(
  event: E,
  payload: Event.Payload<E>
): { readonly event: Event.Any; readonly payload: unknown } => ({ event, payload })

export const at = (iso: string): DateTime.Utc => DateTime.makeUnsafe(iso)

export const identifiers = {
  merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
  platform_name: "shopify",
  platform_shop_id: "gid://shopify/Shop/1001",
  domain: "demo-shop.myshopify.com"
}

export const profile = {
  identifiers,
  name: "Café Müller",
  email: "owner@demo-shop.example",
  primary_domain: null,
  currency: "EUR",
  country: "DE",
  platform_version: "2026-10",
  scopes: "read_products,write_products"
}

const snapshot = {
  ...profile,
  status: "ACTIVE",
  last_synced_at: null,
  created_at: at("2026-11-26T12:33:37.100Z"),
  updated_at: at("2026-11-26T12:33:38Z")
} as const

export const samples = [
  sample(Events.NotificationEmailRequested, {
    identifiers,
    template_type: "trial_started",
    context: { trial_days: 14, tags: ["a", null] }
  }),
  sample(Events.NotificationEmailSent, {
    identifiers,
    notification_id: "1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a00",
    template_type: "trial_started",
    recipient_email: "owner@demo-shop.example",
    provider: "sendgrid",
    provider_message_id: "sg-123"
  }),
  sample(Events.NotificationEmailFailed, {
    identifiers,
    notification_id: "1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a01",
    template_type: "credit_low",
    recipient_email: "owner@demo-shop.example",
    error_code: "SMTP_550",
    error_message: "Mailbox unavailable",
    retry_count: 2
  }),
  sample(Events.BillingTrialActivated, { identifiers, plan: "pro", trial_days: 14 }),
  sample(Events.BillingPurchaseCompleted, { identifiers, amount: 49.99, currency: "EUR" }),
  sample(Events.MerchantCreated, profile),
  sample(Events.MerchantSynced, snapshot),
  sample(Events.MerchantStatusChanged, { ...snapshot, status: "PAUSED", from_status: "ACTIVE", to_status: "PAUSED" }),
  sample(Events.MerchantReinstalled, { ...snapshot, status: "PENDING", last_synced_at: at("2026-11-20T10:00:00.5Z") }),
  sample(Events.MerchantUninstalled, { identifiers, status: "UNINSTALLED", updated_at: at("2026-11-27T08:59:58.25Z") }),
  sample(Events.CatalogSyncStarted, {
    identifiers,
    sync_id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
    total_items: 120,
    status: "RUNNING"
  }),
  sample(Events.CatalogSyncCompleted, {
    identifiers,
    sync_id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
    total_items: 120,
    status: "COMPLETED",
    first_sync: true,
    has_changes: false,
    email: null
  }),
  sample(Events.CatalogSyncFailed, { identifiers, error: "rate limited", retry_after: 30 }),
  sample(Events.CreditBalanceGranted, {
    identifiers,
    amount: 100,
    new_balance: 150.5,
    email: "owner@demo-shop.example"
  }),
  sample(Events.CreditBalanceLow, { identifiers, balance: 4.5, email: "owner@demo-shop.example" }),
  sample(Events.CreditBalanceExhausted, {
    identifiers,
    exhausted_at: at("2026-11-26T09:09:59.123Z"),
    email: "owner@demo-shop.example"
  }),
  sample(Events.CreditTrialGranted, { identifiers, amount: 50, email: "owner@demo-shop.example" }),
  sample(Events.CreditTrialLow, { identifiers, balance: 0.75, email: "owner@demo-shop.example" }),
  sample(Events.CreditTrialExhausted, {
    identifiers,
    exhausted_at: at("2026-11-26T09:24:59.5Z"),
    email: "owner@demo-shop.example"
  }),
  sample(Events.AnalyticsEventTracked, { identifiers, name: "page_view", properties: { path: "/", ms: 12.5 } }),
  sample(Events.AnalyticsAggregated, { identifiers, window: "1h", counts: { views: 12, clicks: 3 } }),
  sample(Events.WebhookReceived, { identifiers, topic: "orders/create", webhook_id: "wh-1" }),
  sample(Events.WebhookProcessed, { identifiers, topic: "orders/create", duration_ms: 42 }),
  sample(Events.WebhookFailed, { identifiers, topic: "orders/create", error: "timeout" }),
  sample(Events.WebhookAppUninstalled, {
    platform_name: "shopify",
    platform_shop_id: "gid://shopify/Shop/1001",
    domain: null,
    occurred_at: at("2026-11-27T08:58:59.987Z")
  })
]
