/**
 * AsyncAPI 3.0 documents of a catalogue of events, for people and tools (AsyncAPI Studio, code
 * generators, contract checks in CI) that read what an application sends and receives over NATS.
 *
 * `make` writes one channel per subject (its `address` is the subject) and one message per event. A
 * message's payload is the envelope every event travels in (`Envelope.schema`) with the event's payload
 * schema as `data`, and its headers are the NATS headers the `Publisher` writes. Both are JSON Schemas
 * generated from the Effect schemas; named schemas are defined once, in `components.schemas`.
 * Channel and message ids are the subject in camelCase (`evt.merchant.created.v1` is
 * `evtMerchantCreatedV1`). Operations are only what the caller declares: a catalogue alone does not say
 * who sends what. They carry the NATS binding (`bindingVersion`, and `queue` when receiving); servers,
 * channels and messages carry none, as the NATS binding reserves those objects. `toJson` and `toYaml`
 * write a document out.
 *
 * Not here: serving the document, or checking messages against it at run time. The events' own
 * decoders do that and are the final word: JSON Schema cannot say everything an Effect schema checks.
 *
 * @since 0.3.0
 */
import { Array as Arr, Effect, type JsonSchema, Schema } from "effect"
import type * as Event from "./Event.js"
import { messageSchemas } from "./internal/asyncApi/schemas.js"
import * as Yaml from "./internal/asyncApi/yaml.js"
import { messageOf } from "./internal/errorText.js"

/**
 * A NATS server of the document.
 *
 * @category models
 * @since 0.3.0
 */
export interface ServerOptions {
  /** The server's key in the document: `production`, `local`. */
  readonly name: string
  /** `nats://host:port` or `tls://host:port`, without credentials. */
  readonly url: string
  readonly description?: string | undefined
}

/**
 * The operations of the application the document describes: the events it publishes (`send`) and the
 * events it consumes (`receive`). Each must be an event of the catalogue.
 *
 * @category models
 * @since 0.3.0
 */
export interface OperationsOptions {
  readonly send?: ReadonlyArray<Event.Any> | undefined
  readonly receive?: ReadonlyArray<Event.Any> | undefined
  /**
   * The queue the application's instances share when they receive (with JetStream, their durable
   * consumer): the NATS binding's `queue` of every receive operation. At most 255 characters.
   */
  readonly queue?: string | undefined
}

/**
 * What a document describes.
 *
 * @category models
 * @since 0.3.0
 */
export interface Options {
  readonly title: string
  /** The version of the document, not of AsyncAPI. */
  readonly version: string
  readonly description?: string | undefined
  /** The application's identifier, a URI such as `urn:glam:billing`. */
  readonly id?: string | undefined
  /** The catalogue: an array of events with distinct subjects, or a group. */
  readonly events: ReadonlyArray<Event.Any> | Event.Group<ReadonlyArray<Event.Any>>
  readonly servers?: ReadonlyArray<ServerOptions> | undefined
  readonly operations?: OperationsOptions | undefined
}

/**
 * A reference to another part of the document: `{ $ref: "#/channels/evtMerchantCreatedV1" }`.
 *
 * @category models
 * @since 0.3.0
 */
export interface Reference {
  readonly $ref: string
}

/**
 * @category models
 * @since 0.3.0
 */
export interface Server {
  /** `host:port`, as in the URL. */
  readonly host: string
  readonly protocol: "nats"
  readonly description?: string
}

/**
 * A subject. Its messages are references into `components.messages`.
 *
 * @category models
 * @since 0.3.0
 */
export interface Channel {
  readonly address: string
  readonly messages: Readonly<Record<string, Reference>>
}

/**
 * An event: its NATS headers and its envelope, as JSON Schemas.
 *
 * @category models
 * @since 0.3.0
 */
export interface Message {
  /** The message's id in the document, derived from the subject like its channel's. */
  readonly name: string
  readonly title: string
  readonly contentType: "application/json"
  readonly headers: JsonSchema.JsonSchema
  readonly payload: JsonSchema.JsonSchema
}

/**
 * An event the application sends or receives, with its NATS binding.
 *
 * @category models
 * @since 0.3.0
 */
export interface Operation {
  readonly action: "send" | "receive"
  readonly channel: Reference
  readonly messages: ReadonlyArray<Reference>
  readonly bindings: { readonly nats: { readonly queue?: string; readonly bindingVersion: "0.1.0" } }
}

/**
 * An AsyncAPI 3.0 document: a plain object of JSON values.
 *
 * @category models
 * @since 0.3.0
 */
export interface Document {
  readonly asyncapi: "3.0.0"
  readonly id?: string
  readonly info: { readonly title: string; readonly version: string; readonly description?: string }
  readonly servers?: Readonly<Record<string, Server>>
  readonly channels: Readonly<Record<string, Channel>>
  readonly operations?: Readonly<Record<string, Operation>>
  readonly components: {
    readonly schemas: JsonSchema.Definitions
    readonly messages: Readonly<Record<string, Message>>
  }
}

/**
 * Why a document cannot be made: a subject twice in the catalogue; two subjects with the same channel
 * id; an operation on an event outside the catalogue; a server URL or name, or a queue, that is not
 * valid; a payload schema Effect cannot express in JSON Schema draft 07.
 *
 * @category models
 * @since 0.3.0
 */
export const AsyncApiErrorReason = Schema.Literals([
  "DuplicateSubject",
  "DuplicateChannelId",
  "UnknownEvent",
  "InvalidServer",
  "InvalidQueue",
  "JsonSchema"
])

/**
 * @category models
 * @since 0.3.0
 */
export type AsyncApiErrorReason = typeof AsyncApiErrorReason.Type

/**
 * A catalogue or options that make no valid document, naming the subject when one is at fault.
 *
 * @category errors
 * @since 0.3.0
 */
export class AsyncApiError extends Schema.TaggedError<AsyncApiError>()("AsyncApiError", {
  reason: AsyncApiErrorReason,
  message: Schema.String,
  subject: Schema.optional(Schema.String)
}) {}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

// The channel and message id of a subject, camelCase over its segments: `evtCatalogSyncStartedV1`.
const channelId = (subject: string): string =>
  subject
    .split(".")
    .map((segment, index) => (index === 0 ? segment : capitalize(segment)))
    .join("")

const titleOf = (event: Event.Any): string => {
  const words = capitalize(`${event.service} ${event.action.replaceAll(".", " ")}`)
  return event.kind === "cmd" ? `${words} (command, v${event.version})` : `${words} (v${event.version})`
}

const serverUrl = /^(?:nats|tls):\/\/([^\s/?#@]+)\/?$/

const fail = (reason: AsyncApiErrorReason, message: string, subject?: string) =>
  Effect.fail(new AsyncApiError({ reason, message, subject }))

const checkCatalogue = (events: ReadonlyArray<Event.Any>): Effect.Effect<void, AsyncApiError> => {
  const subjectsById = new Map<string, string>()
  for (const { subject } of events) {
    const id = channelId(subject)
    const taken = subjectsById.get(id)
    if (taken === subject) {
      return fail("DuplicateSubject", `AsyncAPI: the subject ${subject} is twice in the catalogue`, subject)
    }
    if (taken !== undefined) {
      return fail(
        "DuplicateChannelId",
        `AsyncAPI: the subjects ${taken} and ${subject} have the same channel id ${id}`,
        subject
      )
    }
    subjectsById.set(id, subject)
  }
  return Effect.void
}

const makeServers = (
  servers: ReadonlyArray<ServerOptions>
): Effect.Effect<Readonly<Record<string, Server>>, AsyncApiError> => {
  const entries: Record<string, Server> = {}
  for (const { name, url, description } of servers) {
    // The URL is left out of the message: one that fails the pattern may hold credentials.
    const host = serverUrl.exec(url)?.[1]
    if (host === undefined) {
      return fail(
        "InvalidServer",
        `AsyncAPI: the url of server "${name}" is not nats://host:port or tls://host:port (without credentials or a path)`
      )
    }
    if (name in entries) return fail("InvalidServer", `AsyncAPI: the server name "${name}" is given twice`)
    entries[name] = description === undefined ? { host, protocol: "nats" } : { host, protocol: "nats", description }
  }
  return Effect.succeed(entries)
}

const makeOperations = (
  catalogue: ReadonlyArray<Event.Any>,
  options: OperationsOptions
): Effect.Effect<Readonly<Record<string, Operation>>, AsyncApiError> => {
  const { queue } = options
  if (queue !== undefined && (queue.length === 0 || queue.length > 255)) {
    return fail("InvalidQueue", `AsyncAPI: the queue must be 1 to 255 characters, not ${queue.length}`)
  }
  const known = new Set(catalogue)
  const operations: Record<string, Operation> = {}
  const declared = [
    ...(options.send ?? []).map((event) => ["send", event] as const),
    ...(options.receive ?? []).map((event) => ["receive", event] as const)
  ]
  for (const [action, event] of declared) {
    if (!known.has(event)) {
      return fail(
        "UnknownEvent",
        `AsyncAPI: the operation ${action} ${event.subject} is on an event outside the catalogue`,
        event.subject
      )
    }
    const id = channelId(event.subject)
    operations[`${action}${capitalize(id)}`] = {
      action,
      channel: { $ref: `#/channels/${id}` },
      messages: [{ $ref: `#/channels/${id}/messages/${id}` }],
      bindings: { nats: { ...(action === "receive" && queue !== undefined ? { queue } : {}), bindingVersion: "0.1.0" } }
    }
  }
  return Effect.succeed(operations)
}

/**
 * The AsyncAPI 3.0 document of a catalogue.
 *
 * **Gotchas**
 *
 * It fails rather than write a document that is not valid (`AsyncApiError`): events are values made
 * in code, but an array of them can hold a subject twice, and a payload schema can hold what JSON
 * Schema cannot say. `Event.group` already refuses the first.
 *
 * @category constructors
 * @since 0.3.0
 */
export const make = (options: Options): Effect.Effect<Document, AsyncApiError> =>
  Effect.gen(function* () {
    const events = "bySubject" in options.events ? options.events.events : options.events
    yield* checkCatalogue(events)
    const servers = options.servers === undefined ? undefined : yield* makeServers(options.servers)
    const operations = options.operations === undefined ? undefined : yield* makeOperations(events, options.operations)
    const schemas = yield* Effect.try({
      try: () => messageSchemas(events),
      catch: (cause) =>
        new AsyncApiError({
          reason: "JsonSchema",
          message: `AsyncAPI: a payload schema has no JSON Schema: ${messageOf(cause)}`
        })
    })
    const channels: Record<string, Channel> = {}
    const messages: Record<string, Message> = {}
    for (const [event, payload] of Arr.zip(events, schemas.payloads)) {
      const id = channelId(event.subject)
      channels[id] = { address: event.subject, messages: { [id]: { $ref: `#/components/messages/${id}` } } }
      messages[id] = {
        name: id,
        title: titleOf(event),
        contentType: "application/json",
        headers: schemas.headers,
        payload
      }
    }
    const { title, version, description } = options
    return {
      asyncapi: "3.0.0",
      ...(options.id === undefined ? {} : { id: options.id }),
      info: description === undefined ? { title, version } : { title, version, description },
      ...(servers === undefined ? {} : { servers }),
      channels,
      ...(operations === undefined ? {} : { operations }),
      components: { schemas: schemas.components, messages }
    }
  })

/**
 * The document as JSON, indented by 2 spaces, ending with a newline.
 *
 * @category encoding
 * @since 0.3.0
 */
export const toJson = (document: Document): string => `${JSON.stringify(document, null, 2)}\n`

/**
 * The document as YAML, ending with a newline.
 *
 * @category encoding
 * @since 0.3.0
 */
export const toYaml = (document: Document): string => Yaml.stringify(document)
