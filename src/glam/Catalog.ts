/**
 * Payloads of the catalog service's events (the seed's `events/catalog.py`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { withDefault } from "../internal/pydanticDefaults.js"
import { BaseEventPayload, OpenEventPayload, Uuid } from "./MerchantIdentifiers.js"

/**
 * `evt.catalog.sync.started.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CatalogSyncStartedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** The sync operation's id. */
  sync_id: Uuid,
  /** Items to sync. */
  total_items: Schema.Int,
  /** Initial sync status. */
  status: Schema.String
}).annotate({ identifier: "CatalogSyncStartedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CatalogSyncStartedPayload = typeof CatalogSyncStartedPayload.Type

/**
 * `evt.catalog.sync.completed.v1`. `first_sync` and `has_changes` default to `false`, `email` to `null`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CatalogSyncCompletedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  sync_id: Uuid,
  /** Items synced. */
  total_items: Schema.Int,
  /** Final sync status. */
  status: Schema.String,
  first_sync: Schema.Boolean.pipe(withDefault(false)),
  has_changes: Schema.Boolean.pipe(withDefault(false)),
  /** The merchant's email, when known. */
  email: Schema.NullOr(Schema.String).pipe(withDefault(null))
}).annotate({ identifier: "CatalogSyncCompletedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CatalogSyncCompletedPayload = typeof CatalogSyncCompletedPayload.Type

/**
 * `evt.catalog.sync.failed.v1`. The seed has no model for it: the identifiers plus whatever other
 * fields the publisher wrote, kept as they are.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CatalogSyncFailedPayload = OpenEventPayload.annotate({ identifier: "CatalogSyncFailedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CatalogSyncFailedPayload = typeof CatalogSyncFailedPayload.Type
