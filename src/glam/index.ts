/**
 * The GLAM preset: the event catalogue (subjects, payload schemas and event definitions, with the field
 * names the Python services write), the GLAM streams and the stack of a GLAM service in one layer.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Analytics from "./Analytics.js"

/** @since 0.3.0 */
export * as AsyncApi from "./AsyncApi.js"

/** @since 0.1.0 */
export * as Billing from "./Billing.js"

/** @since 0.1.0 */
export * as Catalog from "./Catalog.js"

/** @since 0.1.0 */
export * as Credit from "./Credit.js"

/** @since 0.1.0 */
export * as ErrorPayload from "./ErrorPayload.js"

/** @since 0.1.0 */
export * as Events from "./Events.js"
/** @since 0.1.0 */
export * as Glam from "./Glam.js"
/** @since 0.1.0 */
export * as Merchant from "./Merchant.js"
/** @since 0.1.0 */
export * as MerchantIdentifiers from "./MerchantIdentifiers.js"
/** @since 0.1.0 */
export * as Notification from "./Notification.js"
/** @since 0.2.0 */
export * as Streams from "./Streams.js"
/** @since 0.1.0 */
export * as Subjects from "./Subjects.js"
/** @since 0.1.0 */
export * as Webhook from "./Webhook.js"
