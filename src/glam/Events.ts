/**
 * The GLAM event catalogue: one `Event` per GLAM subject, with its payload schema, and `all`, the
 * group of every one of them.
 *
 * @since 0.1.0
 */
import * as Event from "../Event.js"
import * as Analytics from "./Analytics.js"
import * as Billing from "./Billing.js"
import * as Catalog from "./Catalog.js"
import * as Credit from "./Credit.js"
import * as Merchant from "./Merchant.js"
import * as Notification from "./Notification.js"
import * as Subjects from "./Subjects.js"
import * as Webhook from "./Webhook.js"

/**
 * A request to the notification service to send an email.
 *
 * @category constants
 * @since 0.1.0
 */
export const NotificationEmailRequested = Event.make(
  Subjects.NOTIFICATION_EMAIL_REQUESTED,
  Notification.EmailRequestedPayload
)

/**
 * An email was sent.
 *
 * @category constants
 * @since 0.1.0
 */
export const NotificationEmailSent = Event.make(Subjects.NOTIFICATION_EMAIL_SENT, Notification.EmailSentPayload)

/**
 * An email could not be sent.
 *
 * @category constants
 * @since 0.1.0
 */
export const NotificationEmailFailed = Event.make(Subjects.NOTIFICATION_EMAIL_FAILED, Notification.EmailFailedPayload)

/**
 * A merchant's trial started (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const BillingTrialActivated = Event.make(Subjects.BILLING_TRIAL_ACTIVATED, Billing.BillingTrialActivatedPayload)

/**
 * A purchase completed (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const BillingPurchaseCompleted = Event.make(
  Subjects.BILLING_PURCHASE_COMPLETED,
  Billing.BillingPurchaseCompletedPayload
)

/**
 * A merchant record was first stored.
 *
 * @category constants
 * @since 0.1.0
 */
export const MerchantCreated = Event.make(Subjects.MERCHANT_CREATED, Merchant.MerchantCreatedPayload)

/**
 * A merchant was synced from its platform.
 *
 * @category constants
 * @since 0.1.0
 */
export const MerchantSynced = Event.make(Subjects.MERCHANT_SYNCED, Merchant.MerchantSyncedPayload)

/**
 * A merchant's status changed.
 *
 * @category constants
 * @since 0.1.0
 */
export const MerchantStatusChanged = Event.make(Subjects.MERCHANT_STATUS_CHANGED, Merchant.MerchantStatusChangedPayload)

/**
 * A previously uninstalled merchant reinstalled the app.
 *
 * @category constants
 * @since 0.1.0
 */
export const MerchantReinstalled = Event.make(Subjects.MERCHANT_REINSTALLED, Merchant.MerchantReinstalledPayload)

/**
 * The app was uninstalled for a merchant.
 *
 * @category constants
 * @since 0.1.0
 */
export const MerchantUninstalled = Event.make(Subjects.MERCHANT_UNINSTALLED, Merchant.MerchantUninstalledPayload)

/**
 * A catalog sync started.
 *
 * @category constants
 * @since 0.1.0
 */
export const CatalogSyncStarted = Event.make(Subjects.CATALOG_SYNC_STARTED, Catalog.CatalogSyncStartedPayload)

/**
 * A catalog sync completed.
 *
 * @category constants
 * @since 0.1.0
 */
export const CatalogSyncCompleted = Event.make(Subjects.CATALOG_SYNC_COMPLETED, Catalog.CatalogSyncCompletedPayload)

/**
 * A catalog sync failed (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const CatalogSyncFailed = Event.make(Subjects.CATALOG_SYNC_FAILED, Catalog.CatalogSyncFailedPayload)

/**
 * Credits were added to a balance.
 *
 * @category constants
 * @since 0.1.0
 */
export const CreditBalanceGranted = Event.make(Subjects.CREDIT_BALANCE_GRANTED, Credit.CreditBalanceGrantedPayload)

/**
 * A credit balance is low.
 *
 * @category constants
 * @since 0.1.0
 */
export const CreditBalanceLow = Event.make(Subjects.CREDIT_BALANCE_LOW, Credit.CreditBalanceLowPayload)

/**
 * A credit balance reached zero.
 *
 * @category constants
 * @since 0.1.0
 */
export const CreditBalanceExhausted = Event.make(
  Subjects.CREDIT_BALANCE_EXHAUSTED,
  Credit.CreditBalanceExhaustedPayload
)

/**
 * Trial credits were granted.
 *
 * @category constants
 * @since 0.1.0
 */
export const CreditTrialGranted = Event.make(Subjects.CREDIT_TRIAL_GRANTED, Credit.CreditTrialGrantedPayload)

/**
 * Trial credits are low.
 *
 * @category constants
 * @since 0.1.0
 */
export const CreditTrialLow = Event.make(Subjects.CREDIT_TRIAL_LOW, Credit.CreditTrialLowPayload)

/**
 * Trial credits ran out.
 *
 * @category constants
 * @since 0.1.0
 */
export const CreditTrialExhausted = Event.make(Subjects.CREDIT_TRIAL_EXHAUSTED, Credit.CreditTrialExhaustedPayload)

/**
 * An analytics event was tracked (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const AnalyticsEventTracked = Event.make(
  Subjects.ANALYTICS_EVENT_TRACKED,
  Analytics.AnalyticsEventTrackedPayload
)

/**
 * Analytics were aggregated (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const AnalyticsAggregated = Event.make(Subjects.ANALYTICS_AGGREGATED, Analytics.AnalyticsAggregatedPayload)

/**
 * A platform webhook was received (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const WebhookReceived = Event.make(Subjects.WEBHOOK_RECEIVED, Webhook.WebhookReceivedPayload)

/**
 * A platform webhook was processed (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const WebhookProcessed = Event.make(Subjects.WEBHOOK_PROCESSED, Webhook.WebhookProcessedPayload)

/**
 * A platform webhook could not be processed (open payload: the seed has no model).
 *
 * @category constants
 * @since 0.1.0
 */
export const WebhookFailed = Event.make(Subjects.WEBHOOK_FAILED, Webhook.WebhookFailedPayload)

/**
 * The platform reported that the app was uninstalled.
 *
 * @category constants
 * @since 0.1.0
 */
export const WebhookAppUninstalled = Event.make(Subjects.WEBHOOK_APP_UNINSTALLED, Webhook.WebhookAppUninstalledV1)

/**
 * Every GLAM event, looked up by subject.
 *
 * @category constants
 * @since 0.1.0
 */
export const all = Event.group(
  NotificationEmailRequested,
  NotificationEmailSent,
  NotificationEmailFailed,
  BillingTrialActivated,
  BillingPurchaseCompleted,
  MerchantCreated,
  MerchantSynced,
  MerchantStatusChanged,
  MerchantReinstalled,
  MerchantUninstalled,
  CatalogSyncStarted,
  CatalogSyncCompleted,
  CatalogSyncFailed,
  CreditBalanceGranted,
  CreditBalanceLow,
  CreditBalanceExhausted,
  CreditTrialGranted,
  CreditTrialLow,
  CreditTrialExhausted,
  AnalyticsEventTracked,
  AnalyticsAggregated,
  WebhookReceived,
  WebhookProcessed,
  WebhookFailed,
  WebhookAppUninstalled
)
