/**
 * The one place where what nats.js throws becomes a `NatsError` reason.
 *
 * nats.js reports JetStream API failures with numeric codes (`StreamNotFound: 10059`,
 * `StreamWrongLastSequence: 10071`, ...) and transport failures with error classes; both are
 * translated here so that no other module inspects a nats.js error.
 */

import { JetStreamApiCodes, jserrors } from "@nats-io/jetstream/internal"
import { errors as coreErrors } from "@nats-io/transport-node"
import * as NatsError from "../NatsError.js"

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Translates anything nats.js threw during `operation` into a `NatsError`. */
export const fromCause =
  (
    operation: string,
    context: { readonly stream?: string; readonly consumer?: string; readonly subject?: string } = {}
  ) =>
  (cause: unknown): NatsError.NatsError =>
    NatsError.make(operation, reasonOf(cause, context))

const reasonOf = (
  cause: unknown,
  context: { readonly stream?: string; readonly consumer?: string; readonly subject?: string }
): NatsError.NatsErrorReason => {
  if (NatsError.isNatsError(cause)) return cause.reason
  const message = messageOf(cause)
  if (cause instanceof jserrors.JetStreamApiError) {
    switch (cause.code) {
      case JetStreamApiCodes.StreamNotFound:
        return new NatsError.StreamNotFound({ message, cause, ...pick(context, "stream", "subject") })
      case JetStreamApiCodes.ConsumerNotFound:
        return new NatsError.ConsumerNotFound({ message, cause, ...pick(context, "stream", "consumer") })
      case JetStreamApiCodes.StreamWrongLastSequence:
      case JetStreamApiCodes.StreamWrongLastSequenceUnknown:
        return new NatsError.WrongLastSequence({ message, cause, ...lastSequenceOf(message) })
      default:
        return new NatsError.Rejected({ message, cause, code: cause.code })
    }
  }
  if (cause instanceof jserrors.JetStreamNotEnabled) {
    // nats.js says "jetstream is not enabled" when nothing answered a publish: no stream covers the subject.
    return new NatsError.StreamNotFound({
      message:
        context.subject === undefined ? "no stream for this subject" : `no stream for subject ${context.subject}`,
      cause,
      ...pick(context, "subject")
    })
  }
  if (cause instanceof coreErrors.TimeoutError) return new NatsError.Timeout({ message, cause })
  if (cause instanceof coreErrors.NoRespondersError) return new NatsError.NoResponders({ message, cause })
  if (cause instanceof coreErrors.RequestError) {
    return cause.isNoResponders()
      ? new NatsError.NoResponders({ message, cause })
      : new NatsError.Other({ message, cause })
  }
  if (cause instanceof coreErrors.AuthorizationError || cause instanceof coreErrors.UserAuthenticationExpiredError) {
    return new NatsError.AuthFailed({ message, cause })
  }
  if (cause instanceof coreErrors.PermissionViolationError) return new NatsError.AuthFailed({ message, cause })
  if (cause instanceof coreErrors.ClosedConnectionError || cause instanceof coreErrors.DrainingConnectionError) {
    return new NatsError.Closed({ message, cause })
  }
  if (cause instanceof coreErrors.ConnectionError) return new NatsError.ConnectionRefused({ message, cause })
  return new NatsError.Other({ message, cause })
}

const pick = <K extends "stream" | "consumer" | "subject">(
  context: { readonly stream?: string; readonly consumer?: string; readonly subject?: string },
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
