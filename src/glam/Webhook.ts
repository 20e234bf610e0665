/**
 * Payloads of the webhook service (the seed's `events/webhook.py` and its webhook subjects).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Timestamp } from "../Envelope.js"
import { withDefault, withDefaultNow } from "../internal/pydanticDefaults.js"
import { OpenEventPayload } from "./MerchantIdentifiers.js"

/**
 * `evt.webhook.app.uninstalled.v1`: the platform reported that the app was uninstalled; used to find
 * the merchant and mark it `UNINSTALLED`.
 *
 * Unlike the other payloads it has no `identifiers` (the merchant is not known yet). `domain`
 * defaults to `null`; `occurred_at` defaults to the current time, and Python writes it with no offset
 * (a naive UTC `datetime.utcnow()`), which decodes as UTC.
 *
 * @category schemas
 * @since 0.1.0
 */
export const WebhookAppUninstalledV1 = Schema.Struct({
  /** e.g. `shopify`. */
  platform_name: Schema.String,
  /** The shop GID or platform id. */
  platform_shop_id: Schema.String,
  domain: Schema.NullOr(Schema.String).pipe(withDefault(null)),
  occurred_at: Timestamp.pipe(withDefaultNow)
}).annotate({ identifier: "WebhookAppUninstalledV1" })

/**
 * @category models
 * @since 0.1.0
 */
export type WebhookAppUninstalledV1 = typeof WebhookAppUninstalledV1.Type

/**
 * `evt.webhook.received.v1`. The seed has no model for it: the identifiers plus whatever other fields
 * the publisher wrote, kept as they are.
 *
 * @category schemas
 * @since 0.1.0
 */
export const WebhookReceivedPayload = OpenEventPayload.annotate({ identifier: "WebhookReceivedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type WebhookReceivedPayload = typeof WebhookReceivedPayload.Type

/**
 * `evt.webhook.processed.v1`. The seed has no model for it: the identifiers plus whatever other
 * fields the publisher wrote, kept as they are.
 *
 * @category schemas
 * @since 0.1.0
 */
export const WebhookProcessedPayload = OpenEventPayload.annotate({ identifier: "WebhookProcessedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type WebhookProcessedPayload = typeof WebhookProcessedPayload.Type

/**
 * `evt.webhook.failed.v1`. The seed has no model for it: the identifiers plus whatever other fields
 * the publisher wrote, kept as they are.
 *
 * @category schemas
 * @since 0.1.0
 */
export const WebhookFailedPayload = OpenEventPayload.annotate({ identifier: "WebhookFailedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type WebhookFailedPayload = typeof WebhookFailedPayload.Type
