/**
 * The usual stack of a service in one layer: its topology provisioned, a `Publisher`, and the
 * `ServiceIdentity` that names it, over a `Broker` (`layer`), or with the broker included: NATS
 * (`layerNats`, connection from `NATS_*`) or in process (`layerMemory`).
 *
 * Subscribers go on top: `Layer.mergeAll(subscriberA, subscriberB).pipe(Layer.provide(stack))`. The
 * stack is built first, so the streams exist before any subscriber starts; a subscriber composed
 * beside it instead (sharing the same stack value, which Effect builds once) waits for them at
 * start-up. The topology is yours: nothing GLAM is assumed (`@glam/messaging/glam` has the GLAM preset,
 * `Glam.layerNats()`).
 *
 * @since 0.1.0
 */
import type { Config } from "effect"
import { Layer } from "effect"
import type { Broker } from "./Broker.js"
import * as MemoryBroker from "./MemoryBroker.js"
import * as NatsBroker from "./NatsBroker.js"
import type * as NatsClient from "./NatsClient.js"
import type { NatsError } from "./NatsError.js"
import * as Publisher from "./Publisher.js"
import * as ServiceIdentity from "./ServiceIdentity.js"
import * as Topology from "./Topology.js"

/**
 * What the stack is made of. Only `topology` is required.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The streams (and consumers) the service needs, provisioned when the layer is built. */
  readonly topology: Topology.Topology
  /**
   * The service name (`source_service`, prefix of durable names), or the `Config` to read it from.
   * Default: `SERVICE_NAME` (`ServiceIdentity.config`).
   */
  readonly service?: string | Config.Config<string> | undefined
  /** Options of the publisher (timeout, retry budget, ...). */
  readonly publisher?: Publisher.Options | undefined
  /** How provisioning waits for a JetStream that does not answer yet. */
  readonly provision?: Topology.ProvisionOptions | undefined
}

/**
 * The errors of building the stack: provisioning, a bad service name, a bad configuration.
 *
 * @category errors
 * @since 0.1.0
 */
export type StackError = Topology.TopologyError | NatsError | ServiceIdentity.InvalidServiceName | Config.ConfigError

/**
 * The service identity of the options: the name given, read from the `Config` given, else from
 * `SERVICE_NAME`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerIdentity = (
  options: Pick<Options, "service">
): Layer.Layer<ServiceIdentity.ServiceIdentity, ServiceIdentity.InvalidServiceName | Config.ConfigError> =>
  typeof options.service === "string"
    ? ServiceIdentity.layer(options.service)
    : ServiceIdentity.layerConfig(options.service ?? ServiceIdentity.config)

/**
 * The topology provisioned, a publisher and the service identity, over the `Broker` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<Publisher.Publisher | ServiceIdentity.ServiceIdentity, StackError, Broker> =>
  Layer.mergeAll(Publisher.layer(options.publisher), Topology.layer(options.topology, options.provision)).pipe(
    Layer.provideMerge(layerIdentity(options))
  )

/**
 * The whole stack on NATS: the connection (configured from `NATS_SERVERS`, `NATS_USER`, ..., with
 * `options.nats` on top, see `NatsClient.layerConfig`), the broker over it, the topology provisioned,
 * a publisher and the service identity.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerNats = (
  options: Options & { readonly nats?: NatsClient.Options | undefined }
): Layer.Layer<Broker | NatsClient.NatsClient | Publisher.Publisher | ServiceIdentity.ServiceIdentity, StackError> =>
  layer(options).pipe(Layer.provideMerge(NatsBroker.layerConfig(options.nats)))

/**
 * The whole stack in process, on a new `MemoryBroker`: the same program as on NATS, with no server
 * (embedded demos, tests of a whole service). For tests of handlers, `@glam/messaging/testing` adds a
 * recorder of what became of each message.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (
  options: Options
): Layer.Layer<Broker | Publisher.Publisher | ServiceIdentity.ServiceIdentity, StackError> =>
  layer(options).pipe(Layer.provideMerge(MemoryBroker.layer))
