/**
 * The GLAM preset: the stack of a GLAM service in one layer, configured the way every GLAM service is,
 * from the environment.
 *
 * - the topology is `Streams.topology` (`GLAM_EVENTS`, `GLAM_DLQ`, `GLAM_ADVISORIES`), with the replicas of
 *   `GLAM_STREAM_REPLICAS` when it is set;
 * - the service name is `SERVICE_NAME` (unless `service` is given);
 * - the publisher's timeout and retry budget are `GLAM_PUBLISH_TIMEOUT` and `GLAM_PUBLISH_RETRY_BUDGET`;
 * - on NATS, the connection is `NATS_SERVERS`, `NATS_USER`, ... (see `NatsClient.layerConfig`).
 *
 * It is `Messaging` with these choices made; use `Messaging` for a topology of your own.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer } from "effect"
import type { Broker } from "../Broker.js"
import { withOverrides } from "../internal/overrides.js"
import * as MemoryBroker from "../MemoryBroker.js"
import * as Messaging from "../Messaging.js"
import * as NatsBroker from "../NatsBroker.js"
import type * as NatsClient from "../NatsClient.js"
import * as Publisher from "../Publisher.js"
import type * as ServiceIdentity from "../ServiceIdentity.js"
import type * as Topology from "../Topology.js"
import * as Streams from "./Streams.js"

/**
 * What a GLAM service may set in code; everything else comes from the environment.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The service name, or the `Config` to read it from. Default: `SERVICE_NAME`. */
  readonly service?: string | Config.Config<string> | undefined
  /** Publisher options set in code win over `GLAM_PUBLISH_TIMEOUT` / `GLAM_PUBLISH_RETRY_BUDGET`. */
  readonly publisher?: Publisher.Options | undefined
  /** How provisioning waits for a JetStream that does not answer yet. */
  readonly provision?: Topology.ProvisionOptions | undefined
}

/**
 * The GLAM topology provisioned, a publisher and the service identity, over the `Broker` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Publisher.Publisher | ServiceIdentity.ServiceIdentity, Messaging.StackError, Broker> =>
  Layer.unwrap(
    Effect.map(
      Config.all({ topology: Streams.topologyConfig, publisher: Publisher.config }),
      ({ topology, publisher }) =>
        Messaging.layer({
          topology,
          service: options.service,
          publisher: withOverrides(publisher, options.publisher ?? {}),
          provision: options.provision
        })
    )
  )

/**
 * The GLAM stack on NATS: connection and broker from `NATS_*` (`nats` on top), the GLAM topology, a
 * publisher and the service identity.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerNats = (
  options: Options & { readonly nats?: NatsClient.Options | undefined } = {}
): Layer.Layer<
  Broker | NatsClient.NatsClient | Publisher.Publisher | ServiceIdentity.ServiceIdentity,
  Messaging.StackError
> => layer(options).pipe(Layer.provideMerge(NatsBroker.layerConfig(options.nats)))

/**
 * The GLAM stack in process, on a new `MemoryBroker`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (
  options: Options = {}
): Layer.Layer<Broker | Publisher.Publisher | ServiceIdentity.ServiceIdentity, Messaging.StackError> =>
  layer(options).pipe(Layer.provideMerge(MemoryBroker.layer))
