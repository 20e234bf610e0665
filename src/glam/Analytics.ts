/**
 * Payloads of the analytics service's events.
 *
 * The seed names these subjects but has no model for them (its `events/analytics.py` is empty), so
 * each payload is the identifiers plus whatever other fields the publisher wrote, kept as they are on
 * decode and written back on encode. No field is invented here.
 *
 * @since 0.1.0
 */
import { OpenEventPayload } from "./MerchantIdentifiers.js"

/**
 * `evt.analytics.tracked.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const AnalyticsEventTrackedPayload = OpenEventPayload.annotate({ identifier: "AnalyticsEventTrackedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type AnalyticsEventTrackedPayload = typeof AnalyticsEventTrackedPayload.Type

/**
 * `evt.analytics.aggregated.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const AnalyticsAggregatedPayload = OpenEventPayload.annotate({ identifier: "AnalyticsAggregatedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type AnalyticsAggregatedPayload = typeof AnalyticsAggregatedPayload.Type
