/**
 * Payloads of the credit service's events (the seed's `events/credit.py`).
 *
 * Python `float` fields are `Schema.Finite`: JSON integers are accepted, as pydantic does.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Timestamp } from "../Envelope.js"
import { BaseEventPayload } from "./MerchantIdentifiers.js"

/**
 * `evt.credit.balance.granted.v1`: credits were added.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreditBalanceGrantedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** Credits added. */
  amount: Schema.Finite,
  /** The balance after the grant. */
  new_balance: Schema.Finite,
  email: Schema.String
}).annotate({ identifier: "CreditBalanceGrantedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CreditBalanceGrantedPayload = typeof CreditBalanceGrantedPayload.Type

/**
 * `evt.credit.balance.low.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreditBalanceLowPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** The current balance. */
  balance: Schema.Finite,
  email: Schema.String
}).annotate({ identifier: "CreditBalanceLowPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CreditBalanceLowPayload = typeof CreditBalanceLowPayload.Type

/**
 * `evt.credit.balance.exhausted.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreditBalanceExhaustedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** When the balance hit zero. */
  exhausted_at: Timestamp,
  email: Schema.String
}).annotate({ identifier: "CreditBalanceExhaustedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CreditBalanceExhaustedPayload = typeof CreditBalanceExhaustedPayload.Type

/**
 * `evt.credit.trial.granted.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreditTrialGrantedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** Trial credits granted. */
  amount: Schema.Finite,
  email: Schema.String
}).annotate({ identifier: "CreditTrialGrantedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CreditTrialGrantedPayload = typeof CreditTrialGrantedPayload.Type

/**
 * `evt.credit.trial.low.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreditTrialLowPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** The current trial balance. */
  balance: Schema.Finite,
  email: Schema.String
}).annotate({ identifier: "CreditTrialLowPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CreditTrialLowPayload = typeof CreditTrialLowPayload.Type

/**
 * `evt.credit.trial.exhausted.v1`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const CreditTrialExhaustedPayload = Schema.Struct({
  ...BaseEventPayload.fields,
  /** When the trial ran out. */
  exhausted_at: Timestamp,
  email: Schema.String
}).annotate({ identifier: "CreditTrialExhaustedPayload" })

/**
 * @category models
 * @since 0.1.0
 */
export type CreditTrialExhaustedPayload = typeof CreditTrialExhaustedPayload.Type
