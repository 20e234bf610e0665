/**
 * Payloads of the merchant service's events (the seed's `events/merchant.py`).
 *
 * `X | None` fields without a default are required but nullable, as in pydantic: the key must be
 * present, its value may be `null`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Timestamp } from "../Envelope.js"
import { withDefault } from "../internal/pydanticDefaults.js"
import { BaseEventPayload } from "./MerchantIdentifiers.js"

/**
 * A merchant's lifecycle status.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantStatus = Schema.Literals(["PENDING", "ACTIVE", "PAUSED", "SUSPENDED", "UNINSTALLED"])

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantStatus = typeof MerchantStatus.Type

// The profile synced from the platform.
const profileFields = {
  name: Schema.String,
  email: Schema.String,
  primary_domain: Schema.NullOr(Schema.String),
  currency: Schema.String,
  country: Schema.String,
  platform_version: Schema.NullOr(Schema.String),
  scopes: Schema.String
}

// The seed's `_MerchantSnapshotMixin`: the profile, the state and its watermarks, the audit times.
const snapshotFields = {
  ...BaseEventPayload.fields,
  ...profileFields,
  status: MerchantStatus,
  last_synced_at: Schema.NullOr(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp
}

/**
 * `evt.merchant.created.v1`: emitted after a merchant record is first stored.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantCreatedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  ...profileFields
}).annotate({ identifier: "MerchantCreatedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantCreatedPayload = typeof MerchantCreatedPayload.Type

/**
 * `evt.merchant.synced.v1`: emitted on each sync (create or update), with the merchant's snapshot.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantSyncedPayload = Schema.Struct(snapshotFields).annotate({ identifier: "MerchantSyncedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantSyncedPayload = typeof MerchantSyncedPayload.Type

/**
 * `evt.merchant.reinstalled.v1`: a previously uninstalled merchant reinstalled the app (status is
 * then `PENDING`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantReinstalledPayload = Schema.Struct(snapshotFields).annotate({
  identifier: "MerchantReinstalledPayload"
})

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantReinstalledPayload = typeof MerchantReinstalledPayload.Type

/**
 * `evt.merchant.uninstalled.v1`: minimal by design. `status` defaults to `UNINSTALLED`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantUninstalledPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  status: MerchantStatus.pipe(withDefault("UNINSTALLED")),
  /** When the merchant's row was updated. */
  updated_at: Timestamp
}).annotate({ identifier: "MerchantUninstalledPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantUninstalledPayload = typeof MerchantUninstalledPayload.Type

/**
 * `evt.merchant.status.changed.v1`: the status moved through internal logic; the snapshot plus the
 * transition.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MerchantStatusChangedPayload = Schema.Struct({
  ...snapshotFields,
  from_status: MerchantStatus,
  to_status: MerchantStatus
}).annotate({ identifier: "MerchantStatusChangedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type MerchantStatusChangedPayload = typeof MerchantStatusChangedPayload.Type
