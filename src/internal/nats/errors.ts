/**
 * The one place where what nats.js throws becomes a `NatsError` reason.
 *
 * nats.js reports JetStream API failures with numeric codes (`StreamNotFound: 10059`,
 * `StreamWrongLastSequence: 10071`, ...), transport failures with error classes, and some failures
 * only in a message ("Authorization Violation") or in a Node error code (`ECONNREFUSED`, TLS
 * certificate codes); all of them are translated here so that no other module inspects a nats.js error.
 */

import { JetStreamApiCodes, JetStreamStatusError, jserrors } from "@nats-io/jetstream/internal"
import { errors as coreErrors } from "@nats-io/transport-node"
import { Predicate } from "effect"
import * as NatsError from "../../NatsError.js"
import { consumerNotFound, streamNotFound } from "../brokerErrors.js"
import { messageOf } from "../errorText.js"

/** What the caller knows about the failed operation; it only enriches the reason, never changes it. */
export interface Context {
  readonly stream?: string
  readonly consumer?: string
  readonly subject?: string
  /** The servers a connect tried, already stripped of credentials. */
  readonly servers?: ReadonlyArray<string>
}

/** Translates anything nats.js threw during `operation` into a `NatsError`. */
export const fromCause =
  (operation: string, context: Context = {}) =>
  (cause: unknown): NatsError.NatsError =>
    NatsError.make(operation, reasonOf(cause, context), {
      servers: context.servers ?? (NatsError.isNatsError(cause) ? cause.servers : undefined)
    })

/** Removes the user-info part of a server URL (`nats://user:password@host` → `nats://<redacted>@host`). */
export const redactServer = (server: string): string => server.replace(/^([a-z]+:\/\/)?[^/@]*@/i, "$1<redacted>@")

const codeOf = (cause: unknown): string | undefined =>
  Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? cause.code : undefined

/** Node's TLS verification failures: the server's certificate was not trusted, so retrying cannot help. */
const TLS_CERTIFICATE_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID"
])

/**
 * JetStream API error codes (`err_code`) that mean "not now" rather than "no": a retry after the
 * cluster has elected a leader or regained its quorum succeeds. Every other API error is `Rejected`,
 * except the few with a reason of their own (not found, wrong last sequence). Codes and texts are
 * nats-server's (`server/errors.json`).
 */
export const UNAVAILABLE_API_CODES: ReadonlyMap<number, string> = new Map([
  [10004, "incomplete results"],
  [10008, "JetStream system temporarily unavailable"],
  [10009, "JetStream cluster can not handle request"],
  [10075, "peer remap failed"],
  [10158, "duplicate message id is in process"],
  [10163, "expected last sequence per subject temporarily unavailable"],
  [10202, "cluster member change is in progress"]
])

/**
 * Status codes of a JetStream reply without a body, and what a retry would do: 408 (the request
 * expired) and 503 (nobody answered, or JetStream not ready) pass; 409 passes only for a leadership
 * change or a server shutting down, since its other uses are limits of the request itself.
 */
const statusReason = (code: number, message: string, cause: unknown): NatsError.NatsErrorReason => {
  if (code === 408) return new NatsError.Timeout({ message, cause })
  if (code === 503) return new NatsError.NoResponders({ message, cause })
  if (code === 409 && /leadership change|server shutdown/i.test(message)) {
    return new NatsError.Unavailable({ message, cause, code })
  }
  return new NatsError.Other({ message, cause, code })
}

const AUTH_MESSAGE = /authorization violation|authentication (expired|timeout)|user authentication revoked/i

const reasonOf = (cause: unknown, context: Context): NatsError.NatsErrorReason => {
  if (NatsError.isNatsError(cause)) return cause.reason
  const message = messageOf(cause)
  // A body over the server's max payload, or a header nats.js cannot send: the request itself is refused.
  if (/max_payload|invalid header/i.test(message) || cause instanceof coreErrors.InvalidArgumentError) {
    return new NatsError.Rejected({ message, cause })
  }
  if (cause instanceof jserrors.JetStreamApiError) {
    switch (cause.code) {
      // The server says "stream not found" without a name: the caller knows which one it asked for.
      case JetStreamApiCodes.StreamNotFound:
        return context.stream === undefined
          ? new NatsError.StreamNotFound({ message, cause, ...pick(context, "subject") })
          : streamNotFound(context.stream, cause)
      case JetStreamApiCodes.ConsumerNotFound:
        return context.stream === undefined || context.consumer === undefined
          ? new NatsError.ConsumerNotFound({ message, cause, ...pick(context, "stream", "consumer") })
          : consumerNotFound(context.stream, context.consumer, cause)
      case JetStreamApiCodes.StreamWrongLastSequence:
      case JetStreamApiCodes.StreamWrongLastSequenceUnknown:
        return new NatsError.WrongLastSequence({ message, cause, ...lastSequenceOf(message) })
      default:
        return UNAVAILABLE_API_CODES.has(cause.code)
          ? new NatsError.Unavailable({ message, cause, code: cause.code })
          : new NatsError.Rejected({ message, cause, code: cause.code })
    }
  }
  if (cause instanceof jserrors.JetStreamNotEnabled) return jetStreamNotEnabled(cause, context)
  if (cause instanceof JetStreamStatusError) return statusReason(cause.code, message, cause)
  if (cause instanceof coreErrors.TimeoutError) return new NatsError.Timeout({ message, cause })
  if (cause instanceof coreErrors.NoRespondersError) return new NatsError.NoResponders({ message, cause })
  if (cause instanceof coreErrors.RequestError) {
    if (cause.isNoResponders()) return new NatsError.NoResponders({ message, cause })
    // Requests and pings pending when the socket drops are rejected with "connection disconnected".
    if (/disconnected/i.test(message)) return new NatsError.Disconnected({ message, cause })
    return new NatsError.Other({ message, cause })
  }
  if (
    cause instanceof coreErrors.AuthorizationError ||
    cause instanceof coreErrors.UserAuthenticationExpiredError ||
    cause instanceof coreErrors.PermissionViolationError ||
    AUTH_MESSAGE.test(message)
  ) {
    return new NatsError.AuthFailed({ message, cause })
  }
  const code = codeOf(cause) ?? codeOf(Predicate.hasProperty(cause, "cause") ? cause.cause : undefined)
  if (code !== undefined && TLS_CERTIFICATE_CODES.has(code)) {
    return new NatsError.AuthFailed({ message: `TLS certificate of the server rejected: ${message}`, cause })
  }
  if (cause instanceof coreErrors.ClosedConnectionError || cause instanceof coreErrors.DrainingConnectionError) {
    return new NatsError.Closed({ message, cause })
  }
  if (code === "ECONNREFUSED") return new NatsError.ConnectionRefused({ message, cause })
  if (cause instanceof coreErrors.ConnectionError) {
    // "server does not support 'tls'" and its mirror are configuration mismatches, not outages.
    return /does not support 'tls'|requires tls|tls is not available/i.test(message)
      ? new NatsError.Other({ message, cause })
      : new NatsError.ConnectionRefused({ message, cause })
  }
  return new NatsError.Other({ message, cause })
}

/**
 * nats.js says "jetstream is not enabled" when the server said so for the account, and also whenever
 * nobody answered a JetStream request. When the
 * request was a publish to a plain subject, no stream covers that subject; when it was a `$JS.`
 * API call, JetStream itself did not answer (disabled, or not ready yet after a restart).
 */
const jetStreamNotEnabled = (cause: Error, context: Context): NatsError.NatsErrorReason => {
  if (cause.cause instanceof jserrors.JetStreamApiError) {
    // The server did answer: JetStream is off for this account (10039), which retrying cannot change.
    return new NatsError.Rejected({ message: cause.cause.message, cause, code: cause.cause.code })
  }
  const subject = context.subject ?? noResponderSubjectOf(cause)
  if (subject === undefined || subject.startsWith("$JS.")) {
    return new NatsError.NoResponders({
      message: "JetStream did not answer: it is not enabled for this account, or not ready yet",
      cause
    })
  }
  return new NatsError.StreamNotFound({ message: `no stream for subject ${subject}`, cause, subject })
}

const noResponderSubjectOf = (cause: unknown): string | undefined => {
  let current = cause
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    if (current instanceof coreErrors.NoRespondersError) return current.subject
    current = current.cause
  }
  return undefined
}

const pick = <K extends "stream" | "consumer" | "subject">(
  context: Context,
  ...keys: ReadonlyArray<K>
): { [P in K]?: string } => {
  const out: { [P in K]?: string } = {}
  for (const key of keys) {
    const value = context[key]
    if (value !== undefined) out[key] = value
  }
  return out
}

const lastSequenceOf = (message: string): { lastSequence?: number } => {
  const match = /wrong last sequence: (\d+)/.exec(message)
  return match?.[1] === undefined ? {} : { lastSequence: Number(match[1]) }
}
