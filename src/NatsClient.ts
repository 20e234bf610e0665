/**
 * The NATS connection as a service.
 *
 * (Skeleton: connect and close. Retry on first connect, auth, TLS, status, health, drain and
 * `layerConfig` are being filled in.)
 *
 * @since 0.1.0
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Context, Effect, Layer } from "effect"
import { fromCause } from "./internal/natsErrors.js"
import type { NatsError } from "./NatsError.js"

/**
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly servers?: string | ReadonlyArray<string> | undefined
  readonly name?: string | undefined
}

/**
 * @category services
 * @since 0.1.0
 */
export class NatsClient extends Context.Service<
  NatsClient,
  {
    readonly connection: NatsConnection
    readonly jetstream: JetStreamClient
    readonly manager: JetStreamManager
  }
>()("@glam/messaging/NatsClient") {}

/**
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const servers = options.servers === undefined ? ["nats://127.0.0.1:4222"] : options.servers
  const connection = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => connect({ servers: typeof servers === "string" ? servers : [...servers], ...nameOf(options) }),
      catch: fromCause("connect")
    }),
    (nc) => Effect.promise(() => nc.close())
  )
  const manager = yield* Effect.tryPromise({
    try: () => jetstreamManager(connection),
    catch: fromCause("jetstreamManager")
  })
  return NatsClient.of({ connection, jetstream: jetstream(connection), manager })
})

const nameOf = (options: Options): { name?: string } => (options.name === undefined ? {} : { name: options.name })

/**
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<NatsClient, NatsError> =>
  Layer.effect(NatsClient, make(options))
