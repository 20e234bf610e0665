/**
 * Pydantic's field defaults as schema modifiers.
 *
 * A pydantic field with a default may be missing from the JSON it reads (the default applies) and is
 * always present in the JSON it writes. `withDefault` gives a field that behaviour: the key is optional
 * when decoding, the value is required in the type and so always encoded, and a struct's `make` fills
 * it in.
 *
 * Not public: the GLAM payload modules use it.
 */
import { DateTime, Effect, Schema } from "effect"

/** A field that defaults to `value` when the key is missing. */
export const withDefault =
  <S extends Schema.Top & Schema.WithoutConstructorDefault>(value: S["Type"]) =>
  (schema: S) => {
    const decoding = Schema.withDecodingDefaultTypeKey<S>(Effect.succeed(value))(schema)
    return Schema.withConstructorDefault<typeof decoding>(Effect.succeed(value))(decoding)
  }

/** A date-time field that defaults to the current time (pydantic's `default_factory`). */
export const withDefaultNow = <
  S extends Schema.Top & Schema.WithoutConstructorDefault & { readonly Type: DateTime.Utc }
>(
  schema: S
) => {
  const decoding = Schema.withDecodingDefaultTypeKey<S>(DateTime.now)(schema)
  return Schema.withConstructorDefault<typeof decoding>(DateTime.now)(decoding)
}
