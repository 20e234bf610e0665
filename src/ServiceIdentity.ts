/**
 * Who this process is: the service name that goes into every envelope's `source_service` and into
 * default durable consumer names (`<service>-<queue group>`, as the Python package names them).
 *
 * @since 0.1.0
 */
import { Config, Context, Effect, Layer, Schema } from "effect"

/**
 * The service name is not usable (empty, or characters NATS does not allow in a durable name).
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidServiceName extends Schema.TaggedError<InvalidServiceName>()("InvalidServiceName", {
  name: Schema.String,
  message: Schema.String
}) {}

/**
 * @category services
 * @since 0.1.0
 */
export class ServiceIdentity extends Context.Service<
  ServiceIdentity,
  {
    /** The service name, e.g. `notification-service`. */
    readonly name: string
  }
>()("@glam/messaging/ServiceIdentity") {}

const NAME_RULE = /^[A-Za-z0-9_-]+$/

/**
 * Checks a service name: letters, digits, `_` and `-` only, since it becomes part of durable consumer names.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (name: string): Effect.Effect<ServiceIdentity["Service"], InvalidServiceName> =>
  NAME_RULE.test(name)
    ? Effect.succeed(ServiceIdentity.of({ name }))
    : Effect.fail(
        new InvalidServiceName({
          name,
          message: `invalid service name ${JSON.stringify(name)}: use letters, digits, "_" and "-" only (it becomes part of consumer names)`
        })
      )

/**
 * A fixed service name.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (name: string): Layer.Layer<ServiceIdentity, InvalidServiceName> =>
  Layer.effect(ServiceIdentity, make(name))

const nameForm = 'letters, digits, "_" and "-"'

/**
 * `SERVICE_NAME`, checked: a missing or unusable name is a `ConfigError` that names the variable and
 * says what it should hold. `Config.withDefault` still applies when it is unset.
 *
 * @category constructors
 * @since 0.1.0
 */
export const config: Config.Config<string> = Config.schema(
  Schema.String.annotate({
    message: `SERVICE_NAME is not set: give the name of this service (${nameForm}), used as source_service and in durable consumer names`
  }).check(
    Schema.makeFilter((name: string) =>
      name === ""
        ? `SERVICE_NAME is empty: give the name of this service (${nameForm}), used as source_service and in durable consumer names`
        : NAME_RULE.test(name) ||
          `SERVICE_NAME ${JSON.stringify(name)} is not a service name: use ${nameForm} only (it becomes part of durable consumer names)`
    )
  ),
  "SERVICE_NAME"
)

/**
 * The service name from `SERVICE_NAME` (see `config`), or from `name`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  name: Config.Config<string> = config
): Layer.Layer<ServiceIdentity, InvalidServiceName | Config.ConfigError> =>
  Layer.effect(ServiceIdentity, Effect.flatMap(name, make))
