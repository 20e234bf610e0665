/**
 * The payload of the seed's error and dead-letter events (`ErrorPayload` in `events/base.py`).
 *
 * `retry_count` defaults to 0, `max_retries` to 3 and `original_data` (the payload that failed, a
 * JSON object) to `null`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { withDefault } from "../internal/pydanticDefaults.js"
import { BaseEventPayload } from "./MerchantIdentifiers.js"

/**
 * @category schemas
 * @since 0.1.0
 */
export const ErrorPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  error_code: Schema.String,
  error_message: Schema.String,
  failed_operation: Schema.String,
  retry_count: Schema.Int.pipe(withDefault(0)),
  max_retries: Schema.Int.pipe(withDefault(3)),
  original_data: Schema.NullOr(Schema.Record(Schema.String, Schema.Json)).pipe(withDefault(null))
}).annotate({ identifier: "ErrorPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type ErrorPayload = typeof ErrorPayload.Type
