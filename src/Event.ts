/**
 * Typed event definitions: a subject and the schema of its payload, as one value.
 *
 * `Event.make("evt.merchant.created.v1", MerchantCreated)` is to messaging what `Rpc.make` is to RPC:
 * publishers and handlers take the event value and get the payload type from its schema, with no
 * casts. The event compiles its envelope encoder and decoder once, when it is defined.
 *
 * Subjects follow one rule, checked when an event is defined: `evt.<service>.<action…>.v<N>` or
 * `cmd.<service>.<action…>.v<N>`. A group of events (`Event.group`) finds the event of a subject and
 * decodes its messages, for consumers that read several subjects.
 *
 * Not here: how envelopes are written (`Envelope`), publishing (`Publisher`), consuming (`Subscriber`).
 *
 * @since 0.1.0
 */
import { Effect, Exit, Option, Schema } from "effect"
import * as Envelope from "./Envelope.js"

const TypeId = "~@glam/messaging/Event" as const

/**
 * `evt` for something that happened, `cmd` for something a service is asked to do.
 *
 * @category models
 * @since 0.1.0
 */
export type Kind = "evt" | "cmd"

/**
 * A payload schema: any schema that decodes and encodes without services.
 *
 * @category models
 * @since 0.1.0
 */
export type PayloadSchema = Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }

/**
 * An event definition.
 *
 * `encode` validates the payload against its schema and writes the envelope bytes; `decode` reads
 * them back through the `Json`, `Envelope` and `Payload` stages. The `…Exit` variants are the same
 * functions typed as synchronous `Exit`s, for hot paths.
 *
 * @category models
 * @since 0.1.0
 */
export interface Event<Subject extends string, S extends PayloadSchema> {
  readonly [TypeId]: typeof TypeId
  readonly subject: Subject
  readonly payload: S
  readonly kind: Kind
  /** The second subject segment: `merchant` in `evt.merchant.created.v1`. */
  readonly service: string
  /** The segments between service and version: `created`, or `sync.started`. */
  readonly action: string
  readonly version: number
  /** Synchronous: an `Exit`, which is also an `Effect` (`yield* event.encode(envelope)`). */
  encode(envelope: Envelope.Envelope<S["Type"]>): Exit.Exit<Uint8Array, Envelope.EncodeError>
  /**
   * Synchronous, like `encode`. `subject` is the NATS subject the bytes came from, kept in a
   * `DecodeError` for the dead-letter record.
   */
  decode(raw: Uint8Array, subject?: string): Exit.Exit<Envelope.Envelope<S["Type"]>, Envelope.DecodeError>
}

/**
 * Any event definition.
 *
 * @category models
 * @since 0.1.0
 */
export type Any = Event<string, PayloadSchema>

/**
 * The payload type of an event, as handlers receive it and publishers pass it.
 *
 * @category models
 * @since 0.1.0
 */
export type Payload<E extends Any> = E["payload"]["Type"]

/**
 * The payload as it is written in the envelope's `data`.
 *
 * @category models
 * @since 0.1.0
 */
export type Encoded<E extends Any> = E["payload"]["Encoded"]

/**
 * A subject that breaks the subject rule, or a group with a subject twice.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidSubject extends Schema.TaggedError<InvalidSubject>()("InvalidSubject", {
  subject: Schema.String,
  message: Schema.String
}) {}

const subjectRule =
  'subjects are evt.<service>.<action…>.v<N> or cmd.<service>.<action…>.v<N>: lowercase segments of letters, digits, "_" and "-", at least one action segment, N ≥ 1, no wildcards'

const segmentPattern = /^[a-z0-9_-]+$/
const versionPattern = /^v[1-9][0-9]*$/

interface SubjectParts {
  readonly kind: Kind
  readonly service: string
  readonly action: string
  readonly version: number
}

// The reason a subject breaks the rule, or its parts.
const parseSubject = (subject: string): SubjectParts | string => {
  if (subject.includes("*") || subject.includes(">")) return "wildcards are not allowed"
  const [kind, service, ...rest] = subject.split(".")
  if (kind !== "evt" && kind !== "cmd") return 'it must start with "evt." or "cmd."'
  const version = rest.pop() ?? service ?? ""
  if (!versionPattern.test(version)) return `it must end with a version v<N>, N ≥ 1, not "${version}"`
  if (service === undefined || rest.length === 0) return "it needs a service and at least one action before the version"
  const badSegment = [service, ...rest].find((segment) => !segmentPattern.test(segment))
  if (badSegment !== undefined) return `the segment "${badSegment}" is not lowercase letters, digits, "_" or "-"`
  return { kind, service, action: rest.join("."), version: Number.parseInt(version.slice(1), 10) }
}

const invalidSubject = (subject: string, reason: string): InvalidSubject =>
  new InvalidSubject({ subject, message: `Invalid subject "${subject}": ${reason}; ${subjectRule}` })

/**
 * Checks a subject given at run time (a CLI argument, a config value) against the subject rule.
 *
 * @category constructors
 * @since 0.1.0
 */
export const validateSubject = (subject: string): Effect.Effect<string, InvalidSubject> => {
  const parts = parseSubject(subject)
  return typeof parts === "string" ? Effect.fail(invalidSubject(subject, parts)) : Effect.succeed(subject)
}

/**
 * Defines an event from its subject and payload schema.
 *
 * **Gotchas**
 *
 * A subject that breaks the rule is a programming error: `make` throws `InvalidSubject` (with the rule
 * and the subject in its message), so a bad catalogue fails as soon as its module loads. Use
 * `validateSubject` for subjects that arrive at run time.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <const Subject extends string, S extends PayloadSchema>(
  subject: Subject,
  payload: S
): Event<Subject, S> => {
  const parts = parseSubject(subject)
  if (typeof parts === "string") throw invalidSubject(subject, parts)
  const encode = Envelope.encoder<S["Type"]>(payload)
  const decode = Envelope.decoder<S["Type"]>(payload)
  return {
    [TypeId]: TypeId,
    subject,
    payload,
    ...parts,
    encode,
    decode
  }
}

/**
 * @category guards
 * @since 0.1.0
 */
export const isEvent = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u

/**
 * A message of a group, decoded by the event of its subject. `subject` discriminates the union, so
 * checking it narrows `envelope.data` to that event's payload.
 *
 * @category models
 * @since 0.1.0
 */
export type Decoded<E extends Any> = E extends Any
  ? { readonly subject: E["subject"]; readonly event: E; readonly envelope: Envelope.Envelope<Payload<E>> }
  : never

/**
 * Events looked up by their exact subject.
 *
 * @category models
 * @since 0.1.0
 */
export interface Group<Events extends ReadonlyArray<Any>> {
  readonly events: Events
  readonly subjects: ReadonlyArray<Events[number]["subject"]>
  readonly bySubject: (subject: string) => Option.Option<Events[number]>
  /** Synchronous (an `Exit`); fails at the `Envelope` stage when no event of the group has the subject. */
  readonly decode: (subject: string, raw: Uint8Array) => Exit.Exit<Decoded<Events[number]>, Envelope.DecodeError>
}

const unknownSubject = (subject: string, raw: Uint8Array, known: ReadonlyArray<string>): Envelope.DecodeError => {
  const envelope = Envelope.decodeEnvelopeExit(raw, subject)
  const read = envelope._tag === "Success" ? envelope.value : undefined
  return new Envelope.DecodeError({
    stage: "Envelope",
    message: `Envelope: no event of the group has the subject "${subject}" (known: ${known.join(", ")})`,
    raw,
    subject,
    eventId: read?.eventId,
    eventType: read?.eventType,
    correlationId: read?.correlationId
  })
}

/**
 * Groups events so that a consumer of several subjects can decode each message by its subject.
 *
 * **Gotchas**
 *
 * Subjects must be distinct: a subject twice throws `InvalidSubject`, like a bad subject in `make`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const group = <const Events extends ReadonlyArray<Any>>(...events: Events): Group<Events> => {
  const bySubject = new Map<string, Events[number]>()
  for (const event of events) {
    if (bySubject.has(event.subject)) throw invalidSubject(event.subject, "it appears twice in the group")
    bySubject.set(event.subject, event)
  }
  const subjects = events.map((event) => event.subject)
  const decode = (subject: string, raw: Uint8Array): Exit.Exit<Decoded<Events[number]>, Envelope.DecodeError> => {
    const event = bySubject.get(subject)
    if (event === undefined) return Exit.fail(unknownSubject(subject, raw, subjects))
    // The envelope was decoded by `event`, so it carries that event's payload: the pairing the union describes.
    return Exit.map(
      event.decode(raw, subject),
      (envelope) => ({ subject: event.subject, event, envelope }) as Decoded<Events[number]>
    )
  }
  return {
    events,
    subjects,
    bySubject: (subject) => Option.fromUndefinedOr(bySubject.get(subject)),
    decode
  }
}
