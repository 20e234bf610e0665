/**
 * Payloads of the billing service's events.
 *
 * The seed names these subjects but has no model for them (its `events/billing.py` is empty), so
 * each payload is the identifiers plus whatever other fields the publisher wrote, kept as they are on
 * decode and written back on encode. No field is invented here.
 *
 * @since 0.1.0
 */
import { OpenEventPayload } from "./MerchantIdentifiers.js"

/**
 * `evt.billing.trial.activated.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const BillingTrialActivatedPayload = OpenEventPayload.annotate({ identifier: "BillingTrialActivatedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type BillingTrialActivatedPayload = typeof BillingTrialActivatedPayload.Type

/**
 * `evt.billing.purchase.completed.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const BillingPurchaseCompletedPayload = OpenEventPayload.annotate({
  identifier: "BillingPurchaseCompletedPayload"
})

/**
 * @category models
 * @since 0.1.0
 */
export type BillingPurchaseCompletedPayload = typeof BillingPurchaseCompletedPayload.Type
