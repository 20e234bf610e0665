/**
 * Export of traces, metrics and logs to an OpenTelemetry collector over OTLP/HTTP, with Effect's own
 * exporters (`effect/observability`), and the library's `messaging.*` metrics switched on while
 * metrics are exported (`Metrics.layer`).
 *
 * Point a service at a collector with the standard OpenTelemetry variables and provide
 * `Otlp.layerFromEnv` under everything it should observe, inside `Logging` so that the OTLP logger is
 * added next to the console one instead of being replaced by it:
 *
 * ```sh
 * OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_SERVICE_NAME=orders-service npm start
 * ```
 *
 * ```ts
 * const Main = OrdersService.pipe(
 *   Layer.provide(Glam.layerNats()),
 *   Layer.provide(Otlp.layerFromEnv),
 *   Layer.provide(Logging.layerConfig())
 * )
 * ```
 *
 * | variable | meaning |
 * | --- | --- |
 * | `OTEL_EXPORTER_OTLP_ENDPOINT` | the collector's base URL; signals go to `/v1/traces`, `/v1/metrics`, `/v1/logs` below it |
 * | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `…_METRICS_…`, `…_LOGS_…` | the full URL of one signal, used as given |
 * | `OTEL_SERVICE_NAME` | `service.name`; else `service.name` of the resource attributes, else `SERVICE_NAME` |
 * | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `key=value,key2=value2`, percent-encoded |
 * | `OTEL_EXPORTER_OTLP_HEADERS` | headers of every export request, same form (read as a secret) |
 * | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/json` (the default here) or `http/protobuf` |
 * | `OTEL_SDK_DISABLED` | `true`: nothing is exported |
 *
 * Without any endpoint nothing is exported and one INFO line says so: there is no default collector
 * on localhost. An empty variable counts as unset, as OpenTelemetry specifies; any other value that
 * does not parse is an `OtlpConfigError` naming the variable. gRPC is not offered.
 *
 * Exporters send in batches (spans every 5 s, metrics every 10 s, logs every second by default) and
 * once more when the layer's scope closes; `OtlpExporter.Flusher`, which the layers provide, sends
 * what is buffered at once.
 *
 * @since 0.1.0
 */
import { Config, ConfigProvider, type Duration, Effect, Layer, Option, Redacted, Result, Schema } from "effect"
import { FetchHttpClient, type HttpClient } from "effect/http"
import { OtlpExporter, OtlpLogger, OtlpMetrics, OtlpSerialization, OtlpTracer } from "effect/observability"
import * as Metrics from "./Metrics.js"
import * as ServiceIdentity from "./ServiceIdentity.js"

/**
 * A setting of the OTLP export that cannot be used: `setting` is the environment variable or the
 * option it is about, and the message quotes the value (except for headers, which may hold credentials).
 *
 * @category errors
 * @since 0.1.0
 */
export class OtlpConfigError extends Schema.TaggedError<OtlpConfigError>()("OtlpConfigError", {
  setting: Schema.String,
  message: Schema.String
}) {}

/**
 * How export requests are encoded: OTLP/HTTP with JSON or with protobuf bodies.
 *
 * @category models
 * @since 0.1.0
 */
export type Protocol = "http/json" | "http/protobuf"

/**
 * Where and what to export.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The collector's base URL, e.g. `http://127.0.0.1:4318`; signals go to `/v1/traces`, `/v1/metrics`, `/v1/logs`. */
  readonly baseUrl: string
  /** The full URL for spans, instead of `<baseUrl>/v1/traces`. */
  readonly tracesUrl?: string | undefined
  /** The full URL for metrics, instead of `<baseUrl>/v1/metrics`. */
  readonly metricsUrl?: string | undefined
  /** The full URL for logs, instead of `<baseUrl>/v1/logs`. */
  readonly logsUrl?: string | undefined
  /** `service.name` of the resource; when omitted, the name of the `ServiceIdentity` in context. */
  readonly serviceName?: string | undefined
  /** `service.version` of the resource. */
  readonly serviceVersion?: string | undefined
  /** More resource attributes, e.g. `{ "deployment.environment.name": "prod" }`. */
  readonly resourceAttributes?: Readonly<Record<string, string | number | boolean>> | undefined
  /** Headers of every export request, e.g. an API key. */
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  /** Default `http/json`. */
  readonly protocol?: Protocol | undefined
  /** How often buffered spans are sent. Default 5 seconds. */
  readonly tracesExportInterval?: Duration.Input | undefined
  /** How often the metrics are sent. Default 10 seconds. */
  readonly metricsExportInterval?: Duration.Input | undefined
  /** How often buffered log records are sent. Default 1 second. */
  readonly logsExportInterval?: Duration.Input | undefined
  /** How long the last export may take when the scope closes. Default 3 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
}

type Signal = "traces" | "metrics" | "logs"

const signals: ReadonlyArray<Signal> = ["traces", "metrics", "logs"]

/** Everything checked, one URL per exported signal. */
interface Target {
  readonly urls: Readonly<Record<Signal, URL | undefined>>
  readonly serviceName: string
  readonly serviceVersion: string | undefined
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  readonly headers: Readonly<Record<string, string>>
  readonly protocol: Protocol
  readonly intervals: Readonly<Record<Signal, Duration.Input | undefined>>
  readonly shutdownTimeout: Duration.Input | undefined
}

const fail = (setting: string, message: string) => Effect.fail(new OtlpConfigError({ setting, message }))

const httpUrl = (setting: string, value: string, example: string): Effect.Effect<URL, OtlpConfigError> => {
  const url = URL.canParse(value) ? new URL(value) : undefined
  return url !== undefined && (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
    ? Effect.succeed(url)
    : fail(
        setting,
        `${setting} ${JSON.stringify(value)} is not an http(s) URL: give the collector's OTLP/HTTP address, e.g. ${example}`
      )
}

/** `<base>/v1/<signal>`, keeping a path the base already has (`http://host/otlp` → `http://host/otlp/v1/traces`). */
const below = (base: URL, signal: Signal): URL => {
  const url = new URL(base.href)
  url.pathname = `${url.pathname.replace(/\/$/, "")}/v1/${signal}`
  return url
}

/** What a log line shows of a URL: no credentials, no query. */
const shown = (url: URL): string => `${url.origin}${url.pathname}`

const protocolOf = (setting: string, value: string): Effect.Effect<Protocol, OtlpConfigError> =>
  value === "http/json" || value === "http/protobuf"
    ? Effect.succeed(value)
    : fail(
        setting,
        `${setting} ${JSON.stringify(value)} is not supported: give http/json or http/protobuf (OTLP over HTTP, port 4318 of a collector)`
      )

/** The layer that exports `target`, and says where once it is built. */
const exporting = (target: Target): Layer.Layer<OtlpExporter.Flusher> => {
  const resource = {
    serviceName: target.serviceName,
    serviceVersion: target.serviceVersion,
    attributes: { ...target.attributes }
  }
  const common = { resource, headers: target.headers, shutdownTimeout: target.shutdownTimeout }
  const { traces, metrics, logs } = target.urls
  const sent = signals.flatMap((signal) => {
    const url = target.urls[signal]
    return url === undefined ? [] : [`${signal} to ${shown(url)}`]
  })
  const off = signals.filter((signal) => target.urls[signal] === undefined)
  const line =
    `OTLP export as ${target.serviceName} (${target.protocol}): ${sent.join(", ")}` +
    (off.length === 0 ? "" : `; ${off.join(", ")} not exported (no endpoint)`)
  const parts: ReadonlyArray<Layer.Layer<never> | Layer.Layer<OtlpExporter.Flusher, never, Exporters>> = [
    ...(traces === undefined
      ? []
      : [OtlpTracer.layer({ ...common, url: traces.href, exportInterval: target.intervals.traces })]),
    ...(metrics === undefined
      ? []
      : [OtlpMetrics.layer({ ...common, url: metrics.href, exportInterval: target.intervals.metrics }), Metrics.layer]),
    ...(logs === undefined
      ? []
      : [OtlpLogger.layer({ ...common, url: logs.href, exportInterval: target.intervals.logs })])
  ]
  const start: Layer.Layer<OtlpExporter.Flusher, never, Exporters> = Layer.merge(
    OtlpExporter.layerFlusher,
    Layer.effectDiscard(Effect.logInfo(line))
  )
  return parts
    .reduce<Layer.Layer<OtlpExporter.Flusher, never, Exporters>>((all, part) => Layer.merge(all, part), start)
    .pipe(
      Layer.provide(target.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
      Layer.provide(FetchHttpClient.layer),
      // Everything was read already: the exporters must not read OTEL_* variables a second time on their own.
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))
    )
}

type Exporters = HttpClient.HttpClient | OtlpSerialization.OtlpSerialization

const nothing = (reason: string): Layer.Layer<OtlpExporter.Flusher> =>
  Layer.merge(OtlpExporter.layerFlusher, Layer.effectDiscard(Effect.logInfo(`OTLP export off: ${reason}`)))

/**
 * Exports traces, metrics and logs to the collector at `options.baseUrl`, and records the library's
 * metrics. Without `serviceName`, the layer needs the `ServiceIdentity` and uses its name.
 *
 * @category layers
 * @since 0.1.0
 */
export function layer(
  options: Options & { readonly serviceName: string }
): Layer.Layer<OtlpExporter.Flusher, OtlpConfigError>
export function layer(
  options: Options
): Layer.Layer<OtlpExporter.Flusher, OtlpConfigError, ServiceIdentity.ServiceIdentity>
export function layer(
  options: Options
): Layer.Layer<OtlpExporter.Flusher, OtlpConfigError, ServiceIdentity.ServiceIdentity> {
  return Layer.unwrap(
    Effect.gen(function* () {
      const serviceName = options.serviceName ?? (yield* ServiceIdentity.ServiceIdentity).name
      const base = yield* httpUrl("baseUrl", options.baseUrl, "http://127.0.0.1:4318")
      const own = { traces: options.tracesUrl, metrics: options.metricsUrl, logs: options.logsUrl }
      const urls: Record<Signal, URL | undefined> = { traces: undefined, metrics: undefined, logs: undefined }
      for (const signal of signals) {
        const url = own[signal]
        urls[signal] =
          url === undefined
            ? below(base, signal)
            : yield* httpUrl(`${signal}Url`, url, `http://127.0.0.1:4318/v1/${signal}`)
      }
      const headers = Object.fromEntries(
        Object.entries(options.headers ?? {}).map(([name, value]) => [
          name,
          Redacted.isRedacted(value) ? Redacted.value(value) : value
        ])
      )
      return exporting({
        urls,
        serviceName,
        serviceVersion: options.serviceVersion,
        attributes: options.resourceAttributes ?? {},
        headers,
        protocol: yield* protocolOf("protocol", options.protocol ?? "http/json"),
        intervals: {
          traces: options.tracesExportInterval,
          metrics: options.metricsExportInterval,
          logs: options.logsExportInterval
        },
        shutdownTimeout: options.shutdownTimeout
      })
    })
  )
}

/** A variable's value, trimmed; unset and empty are both `undefined`, as OpenTelemetry has it. */
const variable = (name: string): Effect.Effect<string | undefined, Config.ConfigError> =>
  Config.option(Config.String(name)).pipe(
    Effect.map((value) =>
      Option.getOrUndefined(
        Option.filter(
          Option.map(value, (text) => text.trim()),
          (t) => t !== ""
        )
      )
    )
  )

const decoded = (text: string): string | undefined =>
  Result.getOrUndefined(Result.try(() => decodeURIComponent(text.trim())))

/**
 * `key=value,key2=value2` with percent-encoded keys and values (the form of `OTEL_RESOURCE_ATTRIBUTES`
 * and `OTEL_EXPORTER_OTLP_HEADERS`); empty entries are skipped. `secret`: the error never quotes a value.
 */
const keyValues = (
  setting: string,
  text: string,
  secret: boolean
): Effect.Effect<ReadonlyArray<readonly [string, string]>, OtlpConfigError> =>
  Effect.forEach(
    text.split(",").flatMap((entry, index) => (entry.trim() === "" ? [] : [{ entry: entry.trim(), index }])),
    ({ entry, index }) => {
      const which = secret ? `entry ${index + 1}` : `entry ${JSON.stringify(entry)}`
      const equals = entry.indexOf("=")
      const key = equals < 0 ? undefined : decoded(entry.slice(0, equals))
      if (key === undefined || key === "") {
        return fail(
          setting,
          `${setting} ${which} is not key=value: give comma-separated key=value pairs, e.g. ${secret ? "api-key=…" : "deployment.environment.name=prod,team=orders"}`
        )
      }
      const value = decoded(entry.slice(equals + 1))
      return value === undefined
        ? fail(
            setting,
            `${setting} ${secret ? `entry ${index + 1} (${JSON.stringify(key)})` : which} is not percent-encoded correctly: write a "%" as %25`
          )
        : Effect.succeed([key, value] as const)
    }
  )

/**
 * Exports traces, metrics and logs as the OpenTelemetry variables say (see the module's table), and
 * records the library's metrics while metrics are exported. Without an endpoint, or with
 * `OTEL_SDK_DISABLED=true`, it exports nothing and logs one INFO line saying why.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerFromEnv: Layer.Layer<OtlpExporter.Flusher, OtlpConfigError | Config.ConfigError> = Layer.unwrap(
  Effect.gen(function* () {
    const disabled = yield* variable("OTEL_SDK_DISABLED")
    if (disabled !== undefined && disabled.toLowerCase() !== "false") {
      if (disabled.toLowerCase() === "true") return nothing("OTEL_SDK_DISABLED is true")
      return yield* fail(
        "OTEL_SDK_DISABLED",
        `OTEL_SDK_DISABLED ${JSON.stringify(disabled)} is not a boolean: give true (export nothing) or false`
      )
    }
    const baseText = yield* variable("OTEL_EXPORTER_OTLP_ENDPOINT")
    const base =
      baseText === undefined
        ? undefined
        : yield* httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", baseText, "http://127.0.0.1:4318")
    const urls: Record<Signal, URL | undefined> = { traces: undefined, metrics: undefined, logs: undefined }
    for (const signal of signals) {
      const name = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`
      const own = yield* variable(name)
      urls[signal] =
        own !== undefined
          ? yield* httpUrl(name, own, `http://127.0.0.1:4318/v1/${signal}`)
          : base === undefined
            ? undefined
            : below(base, signal)
    }
    const attributes = Object.fromEntries(
      yield* keyValues("OTEL_RESOURCE_ATTRIBUTES", (yield* variable("OTEL_RESOURCE_ATTRIBUTES")) ?? "", false)
    )
    const headerText = yield* Config.option(Config.Redacted("OTEL_EXPORTER_OTLP_HEADERS"))
    const headers = Object.fromEntries(
      yield* keyValues(
        "OTEL_EXPORTER_OTLP_HEADERS",
        Option.match(headerText, { onNone: () => "", onSome: Redacted.value }),
        true
      )
    )
    const protocol = yield* protocolOf(
      "OTEL_EXPORTER_OTLP_PROTOCOL",
      (yield* variable("OTEL_EXPORTER_OTLP_PROTOCOL")) ?? "http/json"
    )
    if (signals.every((signal) => urls[signal] === undefined)) {
      return nothing(
        "OTEL_EXPORTER_OTLP_ENDPOINT is not set; set it to the collector's OTLP/HTTP address (e.g. http://127.0.0.1:4318) to export traces, metrics and logs"
      )
    }
    const serviceName =
      (yield* variable("OTEL_SERVICE_NAME")) ??
      attributes["service.name"] ??
      Option.getOrUndefined(yield* Config.option(ServiceIdentity.config))
    if (serviceName === undefined) {
      return yield* fail(
        "OTEL_SERVICE_NAME",
        "OTEL_SERVICE_NAME is not set: give the name this service is exported under (or set service.name in OTEL_RESOURCE_ATTRIBUTES, or SERVICE_NAME)"
      )
    }
    return exporting({
      urls,
      serviceName,
      serviceVersion: attributes["service.version"],
      attributes,
      headers,
      protocol,
      intervals: { traces: undefined, metrics: undefined, logs: undefined },
      shutdownTimeout: undefined
    })
  })
)
