/**
 * An optional HTTP server for operations: `GET /metrics` (Effect's metric registry in Prometheus text),
 * `GET /healthz` (the process runs and its NATS connection is up) and `GET /readyz` (connected, JetStream
 * answering and every subscriber consuming). A failing check answers 503 with a JSON body naming what is
 * wrong, so that a probe's log says why.
 *
 * It is a layer beside the service's own: `Endpoints.layer({ port: 9464 })` provided with the
 * `NatsClient` layer (or `Glam.layerNats()`). It serves nothing else; an application with an HTTP server
 * of its own adds `Endpoints.layerRoutes` to its router instead. The library's metrics appear under
 * `/metrics` only with `Metrics.layer` (or `Otlp.layer`) provided around the service; the service's own
 * Effect metrics always do. Without it, the line saying where the endpoints listen is a WARN that says so.
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { messageOf } from "./internal/errorText.js"
import * as Metrics from "./Metrics.js"
import * as NatsClient from "./NatsClient.js"
import * as SubscriberStatus from "./SubscriberStatus.js"

/**
 * Where the endpoints listen.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** TCP port, 1 to 65535, or 0 for any free one; default `defaultPort` (9464). */
  readonly port?: number | undefined
  /** Interface to bind; default `defaultHost` ("0.0.0.0": every interface, as probes from outside need). */
  readonly host?: string | undefined
}

/**
 * The port when none is given: 9464, the one OpenTelemetry's Prometheus exporters use.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultPort = 9464

/**
 * The interface when none is given: every one.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultHost = "0.0.0.0"

/**
 * The endpoints could not start: a port that is not one, or an address the server cannot listen on.
 *
 * @category errors
 * @since 0.1.0
 */
export class EndpointsError extends Schema.TaggedError<EndpointsError>()("EndpointsError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * What `/readyz` says of a subscriber that is not consuming.
 *
 * @category models
 * @since 0.1.0
 */
export interface SubscriberCheck {
  readonly durable: string
  readonly status: SubscriberStatus.Status["_tag"]
  /** While `Restarting`: the last failure of its consume loop. */
  readonly lastError?: string
}

/**
 * The body of `/readyz`: `nats` is `"ok"` or what is wrong with the connection or JetStream;
 * `subscribers` lists those that are not consuming.
 *
 * @category models
 * @since 0.1.0
 */
export interface Readiness {
  readonly ready: boolean
  readonly checks: { readonly nats: string; readonly subscribers: ReadonlyArray<SubscriberCheck> }
}

/**
 * The body of `/healthz`: `nats` is `"ok"` or what is wrong with the connection.
 *
 * @category models
 * @since 0.1.0
 */
export interface Liveness {
  readonly live: boolean
  readonly checks: { readonly nats: string }
}

const ok = "ok"

const validPort = (port: number): Effect.Effect<number, EndpointsError> =>
  Number.isInteger(port) && port >= 0 && port <= 65535
    ? Effect.succeed(port)
    : Effect.fail(
        new EndpointsError({
          message: `Endpoints port ${port} is not a TCP port: give an integer from 1 to 65535, or 0 for any free one`
        })
      )

const answer = (healthy: boolean, body: Liveness | Readiness) =>
  HttpServerResponse.jsonUnsafe(body, { status: healthy ? 200 : 503 })

const subscriberCheck = (entry: SubscriberStatus.Entry): SubscriberCheck =>
  entry.status._tag === "Restarting"
    ? { durable: entry.durable, status: entry.status._tag, lastError: entry.status.lastError }
    : { durable: entry.durable, status: entry.status._tag }

const routesOf = (
  client: NatsClient.NatsClient["Service"],
  registry: SubscriberStatus.Registry
): Layer.Layer<never, never, HttpRouter.HttpRouter> => {
  const connection = Effect.map(client.connected, (up) =>
    up ? ok : client.connection.isClosed() ? "the NATS connection is closed" : "disconnected from NATS; reconnecting"
  )
  const liveness = Effect.map(connection, (nats) => answer(nats === ok, { live: nats === ok, checks: { nats } }))
  const readiness = Effect.gen(function* () {
    const [nats, waiting] = yield* Effect.all(
      [
        client.health.pipe(
          Effect.as(ok),
          Effect.catch((error) => Effect.succeed(error.message))
        ),
        SubscriberStatus.notConsuming.pipe(Effect.provideService(SubscriberStatus.Registry, registry))
      ],
      { concurrency: "unbounded" }
    )
    const ready = nats === ok && waiting.length === 0
    return answer(ready, { ready, checks: { nats, subscribers: waiting.map(subscriberCheck) } })
  })
  return Layer.mergeAll(
    PrometheusMetrics.layerHttp(),
    HttpRouter.add("GET", "/healthz", liveness),
    HttpRouter.add("GET", "/readyz", readiness)
  )
}

/**
 * The three routes on the router in context, over the `NatsClient` and the subscriber registry in
 * context: for an application that serves HTTP itself and adds them to its own router.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRoutes: Layer.Layer<never, never, HttpRouter.HttpRouter | NatsClient.NatsClient> = Layer.unwrap(
  Effect.gen(function* () {
    return routesOf(yield* NatsClient.NatsClient, yield* SubscriberStatus.Registry)
  })
)

/**
 * The endpoints on their own HTTP server, listening while the layer lives (one INFO line says where).
 * A port that is not one, or an address taken, fails the layer with an `EndpointsError`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<never, EndpointsError, NatsClient.NatsClient> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const port = yield* validPort(options.port ?? defaultPort)
      const host = options.host ?? defaultHost
      // Said once, not found out from an empty scrape: without the switch, /metrics has no messaging.* series.
      const metricsOff = (yield* Metrics.Enabled)
        ? ""
        : "; the library's metrics are off: provide Metrics.layer (or Otlp.layer) around the service for messaging.*"
      const listening = HttpServer.addressFormattedWith((address) =>
        metricsOff === ""
          ? Effect.logInfo(`Endpoints listening on ${address} (/metrics, /healthz, /readyz)`)
          : Effect.logWarning(`Endpoints listening on ${address} (/metrics, /healthz, /readyz)${metricsOff}`)
      )
      return Layer.mergeAll(
        HttpRouter.serve(layerRoutes, { disableLogger: true, disableListenLog: true }),
        Layer.effectDiscard(listening)
      ).pipe(
        Layer.provide(NodeHttpServer.layer(() => createServer(), { port, host })),
        Layer.catchTag("ServeError", (error) =>
          Layer.effectDiscard(
            Effect.fail(
              new EndpointsError({
                message: `Endpoints cannot listen on ${host}:${port}: ${messageOf(error.cause)}`,
                cause: error.cause
              })
            )
          )
        )
      )
    })
  )
