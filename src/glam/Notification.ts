/**
 * Payloads of the notification service (the seed's `events/notification.py`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { withDefault } from "../internal/pydanticDefaults.js"
import { BaseEventPayload, OpenEventPayload, Uuid } from "./MerchantIdentifiers.js"

/**
 * `cmd.notification.email.send.v1`: a request to send an email. The seed has no model for it: the
 * identifiers plus whatever other fields the requester wrote, kept as they are.
 *
 * @category schemas
 * @since 0.1.0
 */
export const EmailRequestedPayload = OpenEventPayload.annotate({ identifier: "EmailRequestedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type EmailRequestedPayload = typeof EmailRequestedPayload.Type

/**
 * `evt.notification.email.sent.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const EmailSentPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  notification_id: Uuid,
  template_type: Schema.String,
  recipient_email: Schema.String,
  provider: Schema.String,
  provider_message_id: Schema.String
}).annotate({ identifier: "EmailSentPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type EmailSentPayload = typeof EmailSentPayload.Type

/**
 * `evt.notification.email.failed.v1`. `retry_count` defaults to 0.
 *
 * @category schemas
 * @since 0.1.0
 */
export const EmailFailedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  notification_id: Uuid,
  template_type: Schema.String,
  recipient_email: Schema.String,
  error_code: Schema.String,
  error_message: Schema.String,
  retry_count: Schema.Int.pipe(withDefault(0))
}).annotate({ identifier: "EmailFailedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type EmailFailedPayload = typeof EmailFailedPayload.Type
