/**
 * The GLAM subjects, named as in the seed's `Subjects` enum.
 *
 * The seed's `CATAlOG_SYNC_STARTED` (lowercase `l`) is `CATALOG_SYNC_STARTED` here; the old name
 * stays as a deprecated alias. `WEBHOOK_APP_UNINSTALLED` is not in the enum: the seed names it only
 * in `WebhookAppUninstalledV1`'s docstring.
 *
 * @since 0.1.0
 */

/**
 * @category constants
 * @since 0.1.0
 */
export const NOTIFICATION_EMAIL_REQUESTED = "cmd.notification.email.send.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const NOTIFICATION_EMAIL_SENT = "evt.notification.email.sent.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const NOTIFICATION_EMAIL_FAILED = "evt.notification.email.failed.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const BILLING_TRIAL_ACTIVATED = "evt.billing.trial.activated.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const BILLING_PURCHASE_COMPLETED = "evt.billing.purchase.completed.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const MERCHANT_CREATED = "evt.merchant.created.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const MERCHANT_SYNCED = "evt.merchant.synced.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const MERCHANT_STATUS_CHANGED = "evt.merchant.status.changed.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const MERCHANT_REINSTALLED = "evt.merchant.reinstalled.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const MERCHANT_UNINSTALLED = "evt.merchant.uninstalled.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CATALOG_SYNC_STARTED = "evt.catalog.sync.started.v1"

/**
 * The seed's misspelled name of `CATALOG_SYNC_STARTED`.
 *
 * @deprecated Use `CATALOG_SYNC_STARTED`.
 * @category constants
 * @since 0.1.0
 */
export const CATAlOG_SYNC_STARTED = CATALOG_SYNC_STARTED

/**
 * @category constants
 * @since 0.1.0
 */
export const CATALOG_SYNC_COMPLETED = "evt.catalog.sync.completed.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CATALOG_SYNC_FAILED = "evt.catalog.sync.failed.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CREDIT_BALANCE_GRANTED = "evt.credit.balance.granted.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CREDIT_BALANCE_LOW = "evt.credit.balance.low.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CREDIT_BALANCE_EXHAUSTED = "evt.credit.balance.exhausted.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CREDIT_TRIAL_GRANTED = "evt.credit.trial.granted.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CREDIT_TRIAL_LOW = "evt.credit.trial.low.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const CREDIT_TRIAL_EXHAUSTED = "evt.credit.trial.exhausted.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const ANALYTICS_EVENT_TRACKED = "evt.analytics.tracked.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const ANALYTICS_AGGREGATED = "evt.analytics.aggregated.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const WEBHOOK_RECEIVED = "evt.webhook.received.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const WEBHOOK_PROCESSED = "evt.webhook.processed.v1"

/**
 * @category constants
 * @since 0.1.0
 */
export const WEBHOOK_FAILED = "evt.webhook.failed.v1"

/**
 * Published by the webhook service when the platform reports an uninstall (not in the seed's enum).
 *
 * @category constants
 * @since 0.1.0
 */
export const WEBHOOK_APP_UNINSTALLED = "evt.webhook.app.uninstalled.v1"

/**
 * Every GLAM subject once (the deprecated alias left out).
 *
 * @category constants
 * @since 0.1.0
 */
export const all = [
  NOTIFICATION_EMAIL_REQUESTED,
  NOTIFICATION_EMAIL_SENT,
  NOTIFICATION_EMAIL_FAILED,
  BILLING_TRIAL_ACTIVATED,
  BILLING_PURCHASE_COMPLETED,
  MERCHANT_CREATED,
  MERCHANT_SYNCED,
  MERCHANT_STATUS_CHANGED,
  MERCHANT_REINSTALLED,
  MERCHANT_UNINSTALLED,
  CATALOG_SYNC_STARTED,
  CATALOG_SYNC_COMPLETED,
  CATALOG_SYNC_FAILED,
  CREDIT_BALANCE_GRANTED,
  CREDIT_BALANCE_LOW,
  CREDIT_BALANCE_EXHAUSTED,
  CREDIT_TRIAL_GRANTED,
  CREDIT_TRIAL_LOW,
  CREDIT_TRIAL_EXHAUSTED,
  ANALYTICS_EVENT_TRACKED,
  ANALYTICS_AGGREGATED,
  WEBHOOK_RECEIVED,
  WEBHOOK_PROCESSED,
  WEBHOOK_FAILED,
  WEBHOOK_APP_UNINSTALLED
] as const

/**
 * @category models
 * @since 0.1.0
 */
export type Subject = (typeof all)[number]
