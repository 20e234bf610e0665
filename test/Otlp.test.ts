/**
 * What a collector receives from `Otlp.layer` and `Otlp.layerFromEnv`: spans with their kind,
 * attributes and parent links, metric data points, log records, and the resource naming the service;
 * what an operator reads when the variables are wrong or absent. The collector is the in-process
 * receiver; the exporters send what they hold when the layer's scope closes, so every read below
 * comes after the program that provided the layer has ended.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Metric, Redacted } from "effect"
import * as Metrics from "../src/Metrics.js"
import * as Otlp from "../src/Otlp.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Logs from "./support/Logs.js"
import * as OtlpReceiver from "./support/OtlpReceiver.js"

const ordersPlaced = Metric.counter("orders.placed", { description: "orders placed", incremental: true })

/** An order handled in a consumer span, with a client span inside it that logs; whether metrics were on. */
const handleOrder = Effect.gen(function* () {
  yield* Metric.update(ordersPlaced, 1)
  yield* Metric.update(ordersPlaced, 1)
  yield* Metric.update(ordersPlaced, 1)
  yield* Effect.log("charged o-1").pipe(
    Effect.withSpan("charge", { kind: "client", attributes: { "payment.provider": "acme" } })
  )
  return yield* Metrics.Enabled
}).pipe(
  Effect.withSpan("process evt.orders.placed.v1", {
    kind: "consumer",
    attributes: { "messaging.destination.name": "evt.orders.placed.v1", "messaging.glam.attempt": 2 }
  })
)

/** Runs `program` under `otlp` with its own metric registry and the environment `env`, capturing log lines. */
const runWith = <ROut, A, E>(otlp: Layer.Layer<ROut, E>, env: Record<string, string>, program: Effect.Effect<A>) =>
  Effect.gen(function* () {
    const logs = Logs.capture()
    const result = yield* program.pipe(
      Effect.provide(otlp),
      Effect.provide(logs.layer),
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
      Effect.provideService(Metric.MetricRegistry, new Map()),
      Effect.result
    )
    return { result, logs }
  })

/** The typed error building `layerFromEnv` in `env` fails with. */
const envFailure = (env: Record<string, string>) =>
  Layer.build(Otlp.layerFromEnv).pipe(
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
    Effect.flip
  )

describe("Otlp.layer", () => {
  it.live("exports spans with kind, attributes and parent links, a counter's value, a log line and the resource", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver.make
      const otlp = Otlp.layer({
        baseUrl: receiver.url,
        serviceName: "orders-service",
        serviceVersion: "1.2.3",
        resourceAttributes: { "deployment.environment.name": "test" },
        headers: { authorization: Redacted.make("Bearer t0ken") }
      })
      const { result } = yield* runWith(otlp, {}, handleOrder)
      expect(result._tag === "Success" && result.success).toBe(true)

      expect((yield* receiver.spans).map((span) => span.name)).toEqual(["charge", "process evt.orders.placed.v1"])
      const parent = yield* receiver.span("process evt.orders.placed.v1")
      const child = yield* receiver.span("charge")
      expect(parent.kind).toBe("consumer")
      expect(parent.attributes).toMatchObject({
        "messaging.destination.name": "evt.orders.placed.v1",
        "messaging.glam.attempt": 2
      })
      expect(parent.parentSpanId).toBeUndefined()
      expect(parent.status.code).toBe("ok")
      expect(child.kind).toBe("client")
      expect(child.attributes).toMatchObject({ "payment.provider": "acme" })
      expect(child.traceId).toBe(parent.traceId)
      expect(child.parentSpanId).toBe(parent.spanId)

      expect(yield* receiver.metric("orders.placed")).toEqual([
        { type: "sum", attributes: {}, value: 3, monotonic: true }
      ])

      const lines = (yield* receiver.logs).filter((record) => record.body === "charged o-1")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({ severity: "Info", traceId: child.traceId, spanId: child.spanId })

      expect(yield* receiver.resource).toMatchObject({
        "service.name": "orders-service",
        "service.version": "1.2.3",
        "deployment.environment.name": "test"
      })
      const requests = yield* receiver.requests
      expect(new Set(requests.map((request) => request.path))).toEqual(
        new Set(["/v1/traces", "/v1/metrics", "/v1/logs"])
      )
      expect(requests.every((request) => request.headers.authorization === "Bearer t0ken")).toBe(true)
      expect(requests.every((request) => request.headers["content-type"] === "application/json")).toBe(true)
    })
  )

  it.live("takes the service name from ServiceIdentity when none is given, and no OTEL_* variable", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver.make
      const otlp = Otlp.layer({ baseUrl: receiver.url }).pipe(Layer.provide(ServiceIdentity.layer("billing-service")))
      const env = { OTEL_SERVICE_NAME: "elsewhere", OTEL_RESOURCE_ATTRIBUTES: "team=elsewhere,discount=50%" }
      const { result } = yield* runWith(otlp, env, Effect.void.pipe(Effect.withSpan("bill")))
      expect(result._tag).toBe("Success")
      const resource = (yield* receiver.span("bill")).resource
      expect(resource["service.name"]).toBe("billing-service")
      expect(resource.team).toBeUndefined()
    })
  )

  it.effect("refuses a base URL that is not http(s), naming the option and the value", () =>
    Effect.gen(function* () {
      const error = yield* Layer.build(Otlp.layer({ baseUrl: "localhost:4318", serviceName: "x" })).pipe(Effect.flip)
      expect(error).toBeInstanceOf(Otlp.OtlpConfigError)
      expect(error.setting).toBe("baseUrl")
      expect(error.message).toBe(
        `baseUrl "localhost:4318" is not an http(s) URL: give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318`
      )
    })
  )
})

describe("Otlp.layerFromEnv", () => {
  it.live("reads the endpoint, service name, resource attributes and headers from the OpenTelemetry variables", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver.make
      const { result, logs } = yield* runWith(
        Otlp.layerFromEnv,
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: "notification-service",
          OTEL_RESOURCE_ATTRIBUTES:
            "deployment.environment.name=staging, team=pay%20ments%2Cbilling,service.version=2.0.0",
          OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=s3cr%3Dt,x-tenant=glam"
        },
        handleOrder
      )
      expect(result._tag === "Success" && result.success).toBe(true)
      expect((yield* receiver.span("charge")).kind).toBe("client")
      expect(yield* receiver.metric("orders.placed")).toMatchObject([{ type: "sum", value: 3 }])
      expect((yield* receiver.logs).some((record) => record.body === "charged o-1")).toBe(true)
      expect(yield* receiver.resource).toMatchObject({
        "service.name": "notification-service",
        "service.version": "2.0.0",
        "deployment.environment.name": "staging",
        team: "pay ments,billing"
      })
      const requests = yield* receiver.requests
      expect(requests.length).toBeGreaterThanOrEqual(3)
      for (const request of requests) {
        expect(request.headers).toMatchObject({ "x-api-key": "s3cr=t", "x-tenant": "glam" })
      }
      expect(logs.matching("Info", "OTLP export")).toEqual([
        {
          level: "Info",
          message:
            `OTLP export as notification-service (http/json): traces to ${receiver.url}/v1/traces, ` +
            `metrics to ${receiver.url}/v1/metrics, logs to ${receiver.url}/v1/logs`
        }
      ])
    })
  )

  it.live("sends a signal with its own endpoint there as given, and leaves the others off", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver.make
      const { logs } = yield* runWith(
        Otlp.layerFromEnv,
        {
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/collector/traces`,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
          SERVICE_NAME: "orders-service"
        },
        handleOrder
      )
      const requests = yield* receiver.requests
      expect(requests.length).toBeGreaterThan(0)
      expect(new Set(requests.map((request) => request.path))).toEqual(new Set(["/collector/traces"]))
      expect(requests.every((request) => request.headers["content-type"] === "application/x-protobuf")).toBe(true)
      expect(logs.matching("Info", "OTLP export").map((line) => line.message)).toEqual([
        `OTLP export as orders-service (http/protobuf): traces to ${receiver.url}/collector/traces; metrics, logs not exported (no endpoint)`
      ])
    })
  )

  it.live("without an endpoint exports nothing, leaves the library's metrics off and logs one INFO line", () =>
    Effect.gen(function* () {
      const { result, logs } = yield* runWith(
        Otlp.layerFromEnv,
        { OTEL_SERVICE_NAME: "orders-service", OTEL_RESOURCE_ATTRIBUTES: "team=orders" },
        handleOrder
      )
      expect(result._tag === "Success" && result.success).toBe(false)
      expect(logs.lines.filter((line) => line.message.startsWith("OTLP"))).toEqual([
        {
          level: "Info",
          message:
            "OTLP export off: OTEL_EXPORTER_OTLP_ENDPOINT is not set; set it to the collector's OTLP/HTTP address (e.g. http://127.0.0.1:4318) to export traces, metrics and logs"
        }
      ])
    })
  )

  it.live("with OTEL_SDK_DISABLED=true sends nothing to a configured collector", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver.make
      const { logs } = yield* runWith(
        Otlp.layerFromEnv,
        { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: "orders-service" },
        handleOrder
      )
      expect(yield* receiver.requests).toEqual([])
      expect(logs.matching("Info", "OTLP").map((line) => line.message)).toEqual([
        "OTLP export off: OTEL_SDK_DISABLED is true"
      ])
    })
  )

  describe("fails with an OtlpConfigError naming the variable", () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_SERVICE_NAME: "orders-service" }
    const cases: ReadonlyArray<readonly [string, Record<string, string>, string, string]> = [
      [
        "an endpoint that is not a URL",
        { ...endpoint, OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4318" },
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        `OTEL_EXPORTER_OTLP_ENDPOINT "localhost:4318" is not an http(s) URL: give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318`
      ],
      [
        "a signal endpoint that is not http(s)",
        { ...endpoint, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "grpc://127.0.0.1:4317" },
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT "grpc://127.0.0.1:4317" is not an http(s) URL: give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318/v1/logs`
      ],
      [
        "a resource attribute without =",
        { ...endpoint, OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod,team" },
        "OTEL_RESOURCE_ATTRIBUTES",
        `OTEL_RESOURCE_ATTRIBUTES entry "team" is not key=value: give comma-separated key=value pairs, e.g. deployment.environment.name=prod,team=orders`
      ],
      [
        "a resource attribute with an empty key",
        { ...endpoint, OTEL_RESOURCE_ATTRIBUTES: "=prod" },
        "OTEL_RESOURCE_ATTRIBUTES",
        `OTEL_RESOURCE_ATTRIBUTES entry "=prod" is not key=value: give comma-separated key=value pairs, e.g. deployment.environment.name=prod,team=orders`
      ],
      [
        "a resource attribute with a broken percent-encoding",
        { ...endpoint, OTEL_RESOURCE_ATTRIBUTES: "discount=50%" },
        "OTEL_RESOURCE_ATTRIBUTES",
        `OTEL_RESOURCE_ATTRIBUTES entry "discount=50%" is not percent-encoded correctly: write a "%" as %25`
      ],
      [
        "an unsupported protocol",
        { ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        `OTEL_EXPORTER_OTLP_PROTOCOL "grpc" is not supported: give http/json or http/protobuf (OTLP over HTTP, port 4318 of a collector)`
      ],
      [
        "an OTEL_SDK_DISABLED that is not a boolean",
        { ...endpoint, OTEL_SDK_DISABLED: "1" },
        "OTEL_SDK_DISABLED",
        `OTEL_SDK_DISABLED "1" is not a boolean: give true (export nothing) or false`
      ],
      [
        "no service name anywhere",
        { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" },
        "OTEL_SERVICE_NAME",
        "OTEL_SERVICE_NAME is not set: give the name this service is exported under (or set service.name in OTEL_RESOURCE_ATTRIBUTES, or SERVICE_NAME)"
      ]
    ]
    for (const [title, env, setting, message] of cases) {
      it.effect(title, () =>
        Effect.gen(function* () {
          const error = yield* envFailure(env)
          expect(error).toBeInstanceOf(Otlp.OtlpConfigError)
          expect(error._tag === "OtlpConfigError" && error.setting).toBe(setting)
          expect(error.message).toBe(message)
        })
      )
    }

    it.effect("a malformed header, without quoting it (headers hold credentials)", () =>
      Effect.gen(function* () {
        const broken = yield* envFailure({ ...endpoint, OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=glam,Bearer s3cret" })
        expect(broken.message).toBe(
          "OTEL_EXPORTER_OTLP_HEADERS entry 2 is not key=value: give comma-separated key=value pairs, e.g. api-key=…"
        )
        const encoded = yield* envFailure({ ...endpoint, OTEL_EXPORTER_OTLP_HEADERS: "authorization=s3cret%" })
        expect(encoded.message).toBe(
          `OTEL_EXPORTER_OTLP_HEADERS entry 1 ("authorization") is not percent-encoded correctly: write a "%" as %25`
        )
      })
    )
  })
})
