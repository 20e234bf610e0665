/**
 * Which stream captures a subject, asked of the JetStream API, in one place: for `Broker.streamFor`, and
 * for a publish that nobody answered, where only the API can tell a subject that no stream takes from a
 * JetStream that is not ready yet (right after a server restart it answers nothing for a moment).
 *
 * In an outage thousands of publishes go unanswered, each retried: per subject, one lookup is in flight
 * at a time and its answer serves for `lookupLifetime` after it, so a burst costs one API request every
 * few seconds, not one per publish.
 */
import type { JetStreamManager } from "@nats-io/jetstream"
import { Effect, Option } from "effect"
import * as NatsError from "../../NatsError.js"
import { fromCause } from "./errors.js"

/** What the JetStream API says about a subject nobody answered a publish to. */
type Coverage =
  | { readonly _tag: "Covered"; readonly stream: string }
  | { readonly _tag: "Uncovered" }
  /** The API did not answer either (JetStream not ready, no quorum): the publish is worth retrying. */
  | { readonly _tag: "Unknown" }

/** How long the answer of a lookup serves the unanswered publishes to its subject. */
const lookupLifetime = "5 seconds"

/** At most this many subjects keep a lookup. */
const maxLookups = 1024

/** A lookup for an unanswered publish gives up after this: the publish fails as retryable meanwhile. */
const lookupTimeout = "2 seconds"

export interface StreamLookup {
  /** The stream whose subjects capture `subject`; `None` when no stream does. */
  readonly streamFor: (subject: string) => Effect.Effect<Option.Option<string>, NatsError.NatsError>
  /**
   * The failure of a publish to `subject` that nobody answered (`error`, a `StreamNotFound`): that
   * error when no stream captures the subject, a retryable `NoResponders` naming the stream when one
   * does or when the API does not answer either.
   */
  readonly unanswered: (subject: string, error: NatsError.NatsError) => Effect.Effect<never, NatsError.NatsError>
}

const noResponders = (message: string) => NatsError.make("publish", new NatsError.NoResponders({ message }))

export const make = (manager: JetStreamManager): StreamLookup => {
  const find = (operation: string, subject: string) =>
    Effect.tryPromise({ try: () => manager.streams.find(subject), catch: fromCause(operation, { subject }) })

  const streamFor = (subject: string) =>
    find("streamFor", subject).pipe(
      Effect.map(Option.some),
      Effect.catchIf(
        (error) => error.reason._tag === "StreamNotFound",
        () => Effect.succeed(Option.none())
      )
    )

  const coverage = (subject: string): Effect.Effect<Coverage> =>
    find("publish", subject).pipe(
      Effect.timeout(lookupTimeout),
      Effect.match({
        onSuccess: (stream): Coverage => ({ _tag: "Covered", stream }),
        onFailure: (error): Coverage =>
          error._tag === "NatsError" && error.reason._tag === "StreamNotFound"
            ? { _tag: "Uncovered" }
            : { _tag: "Unknown" }
      })
    )

  const lookups = new Map<string, Effect.Effect<Coverage>>()
  const coverageOf = (subject: string): Effect.Effect<Coverage> =>
    Effect.suspend(() => {
      const known = lookups.get(subject)
      if (known !== undefined) return known
      return Effect.flatMap(Effect.cachedWithTTL(coverage(subject), lookupLifetime), (lookup) => {
        // Subjects are a bounded set in practice; a caller publishing to ever new ones would otherwise
        // grow this for ever. The oldest lookup goes: a subject asked for again gets a fresh one.
        if (lookups.size >= maxLookups) {
          const oldest = lookups.keys().next()
          if (oldest.done !== true) lookups.delete(oldest.value)
        }
        lookups.set(subject, lookup)
        return lookup
      })
    })

  const unanswered = (subject: string, error: NatsError.NatsError): Effect.Effect<never, NatsError.NatsError> =>
    Effect.flatMap(coverageOf(subject), (found) => {
      switch (found._tag) {
        case "Uncovered":
          return Effect.fail(error)
        case "Covered":
          return Effect.fail(noResponders(`stream ${found.stream} did not answer a publish to ${subject}`))
        case "Unknown":
          return Effect.fail(noResponders(`JetStream did not answer a publish to ${subject}`))
      }
    })

  return { streamFor, unanswered }
}
