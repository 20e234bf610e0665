/**
 * The merchant identifiers every GLAM payload carries, and the base payload built on them.
 *
 * Mirrors the seed's `MerchantIdentifiers` and `BaseEventPayload`. Field names are the wire names
 * (snake_case) in the TypeScript types too: the catalogue is a contract shared with the Python
 * services, so one name per field in both languages, and error paths name the field as it is written.
 *
 * @since 0.1.0
 */
import { Effect, Schema, SchemaIssue, SchemaTransformation } from "effect"

const canonicalUuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const hex32 = /^[0-9a-fA-F]{32}$/

// Python's `UUID(text)`: drops `urn:`/`uuid:` prefixes, surrounding braces and every hyphen, then
// wants 32 hex digits. Returns the lowercase hyphenated form Python writes back.
const normalizeUuid = (text: string): string | undefined => {
  const digits = text
    .replaceAll("urn:", "")
    .replaceAll("uuid:", "")
    .replace(/^[{}]+|[{}]+$/g, "")
    .replaceAll("-", "")
  if (!hex32.test(digits)) return undefined
  const hex = digits.toLowerCase()
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * A Python `uuid.UUID` field: decodes any string Python's `UUID()` accepts (any case, with or without
 * hyphens, braces or a `urn:uuid:` prefix) to the lowercase hyphenated form; encodes lowercase.
 * Any 128-bit value is accepted, whatever its version.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Uuid = Schema.String.pipe(
  Schema.decodeTo(
    Schema.String.check(Schema.isPattern(canonicalUuid, { expected: "a UUID" })),
    SchemaTransformation.transformEffect({
      decode: (text: string, options) => {
        const uuid = normalizeUuid(text)
        return uuid === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ expected: "a UUID" }, text, options))
          : Effect.succeed(uuid)
      },
      encode: (uuid: string) => Effect.succeed(uuid.toLowerCase())
    })
  )
).annotate({ identifier: "Uuid" })

/**
 * The complete merchant identification context.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantIdentifiers = Schema.Struct({
  /** Internal merchant identifier. */
  merchant_id: Uuid,
  /** Platform type: shopify, woocommerce, ... */
  platform_name: Schema.String,
  /** Platform-specific id (the shop GID on Shopify). */
  platform_shop_id: Schema.String,
  /** Full platform domain. */
  domain: Schema.String
}).annotate({ identifier: "MerchantIdentifiers" })

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantIdentifiers = typeof MerchantIdentifiers.Type

/**
 * The base of every GLAM payload: the merchant's identifiers. Spread its `fields` into a payload.
 *
 * @category schemas
 * @since 0.1.0
 */
export const BaseEventPayload = Schema.Struct({
  identifiers: MerchantIdentifiers
}).annotate({ identifier: "BaseEventPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type BaseEventPayload = typeof BaseEventPayload.Type

/**
 * The base payload plus any other JSON fields, kept as they are on decode and written back on encode.
 * For the subjects the seed names without a payload model: nothing about their other fields is
 * assumed.
 *
 * @category schemas
 * @since 0.1.0
 */
export const OpenEventPayload = Schema.StructWithRest(BaseEventPayload, [
  Schema.Record(Schema.String, Schema.Json)
]).annotate({ identifier: "OpenEventPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type OpenEventPayload = typeof OpenEventPayload.Type
