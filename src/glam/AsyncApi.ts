/**
 * The AsyncAPI document of the GLAM catalogue: every event of `Events.all` on the `GLAM_EVENTS`
 * stream, as `AsyncApi.make` describes them.
 *
 * It has no operations: the catalogue, like the Python package it mirrors, does not say which service
 * sends or receives which event. A service that wants its own document passes its events to
 * `AsyncApi.make` with `operations`.
 *
 * @since 0.3.0
 */
import type { Effect } from "effect"
import * as AsyncApi from "../AsyncApi.js"
import * as Events from "./Events.js"
import * as Streams from "./Streams.js"

/**
 * @category models
 * @since 0.3.0
 */
export interface Options {
  /** The version of the document; default `"1.0.0"`. */
  readonly version?: string | undefined
  readonly servers?: ReadonlyArray<AsyncApi.ServerOptions> | undefined
}

/**
 * The AsyncAPI 3.0 document of every GLAM event.
 *
 * @category constructors
 * @since 0.3.0
 */
export const document = (options?: Options): Effect.Effect<AsyncApi.Document, AsyncApi.AsyncApiError> =>
  AsyncApi.make({
    title: "GLAM events",
    version: options?.version ?? "1.0.0",
    description: `The events and commands of the GLAM services, stored in the ${Streams.eventsName} stream (subjects ${Streams.events.subjects.join(", ")}). Every message is a JSON envelope whose \`data\` is the event's payload.`,
    events: Events.all,
    servers: options?.servers
  })
