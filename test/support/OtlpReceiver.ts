/**
 * An OTLP/HTTP collector in the test process: `make` listens on a free loopback port for the scope's
 * lifetime, answers every POST with `200 {}`, keeps the bodies sent to `/v1/traces`, `/v1/metrics` and
 * `/v1/logs`, and decodes them (OTLP/JSON only) into plain values to assert on:
 *
 * ```ts
 * const receiver = yield* OtlpReceiver.make
 * yield* program.pipe(Effect.provide(Otlp.layer({ baseUrl: receiver.url, serviceName: "test" })))
 * const span = yield* eventually(receiver.span("send evt.orders.placed.v1"))
 * expect(span.kind).toBe("producer")
 * ```
 *
 * The exporters send in batches and once more when their layer's scope closes: close it before reading,
 * or read through `eventually`, which retries `span` and `metric` while they fail with `NotReceived`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { Data, Effect, Predicate, Schema, type Scope, type Tracer } from "effect"

/** An attribute value, a log body: OTLP's `AnyValue` as a plain value (64-bit integers as numbers). */
export type Value = string | number | boolean | null | ReadonlyArray<Value> | { readonly [key: string]: Value }

/** Attributes by key. */
export type Attributes = Readonly<Record<string, Value>>

/** One span as the collector got it. */
export interface Span {
  readonly name: string
  readonly kind: Tracer.SpanKind | "unspecified"
  /** 32 hex digits. */
  readonly traceId: string
  /** 16 hex digits. */
  readonly spanId: string
  /** `undefined` for a root span. */
  readonly parentSpanId: string | undefined
  readonly attributes: Attributes
  readonly status: { readonly code: "unset" | "ok" | "error"; readonly message: string | undefined }
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Attributes }>
  /** The attributes of the resource it was sent with (`service.name`, ...). */
  readonly resource: Attributes
}

/** One data point of a metric: a counter's or up-down counter's sum, a gauge's value, a histogram. */
export type DataPoint =
  | { readonly type: "sum"; readonly attributes: Attributes; readonly value: number; readonly monotonic: boolean }
  | { readonly type: "gauge"; readonly attributes: Attributes; readonly value: number }
  | {
      readonly type: "histogram"
      readonly attributes: Attributes
      readonly count: number
      readonly sum: number | undefined
      readonly min: number | undefined
      readonly max: number | undefined
      /** Upper bounds of the buckets but the last, which is unbounded. */
      readonly bounds: ReadonlyArray<number>
      /** Observations per bucket (not cumulative), one more than `bounds`. */
      readonly counts: ReadonlyArray<number>
    }

/** One log record. */
export interface LogRecord {
  /** The message: a string for `Effect.log("text")`, an array for several arguments. */
  readonly body: Value
  /** The level as Effect names it: `Info`, `Warn`, ... */
  readonly severity: string
  readonly severityNumber: number
  readonly attributes: Attributes
  /** The span the line was logged in, if any. */
  readonly traceId: string | undefined
  readonly spanId: string | undefined
}

/** One request as it arrived. */
export interface Request {
  readonly path: string
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** Nothing of the kind asked for has arrived (yet); the message says what did. */
export class NotReceived extends Data.TaggedError("NotReceived")<{ readonly message: string }> {}

/** The collector, for the scope it was made in. */
export interface Receiver {
  /** `http://127.0.0.1:<port>`, the base URL to give the exporter. */
  readonly url: string
  /** Every POST so far, in order, whatever its path. */
  readonly requests: Effect.Effect<ReadonlyArray<Request>>
  /** Every span received so far, in order of arrival. */
  readonly spans: Effect.Effect<ReadonlyArray<Span>>
  /** The last span received named `name`. */
  readonly span: (name: string) => Effect.Effect<Span, NotReceived>
  /**
   * The data points of metric `name` in the latest export that has it: metrics are exported whole and
   * cumulative at every interval, so that is its current state.
   */
  readonly metric: (name: string) => Effect.Effect<ReadonlyArray<DataPoint>, NotReceived>
  /** Every log record received so far, in order. */
  readonly logs: Effect.Effect<ReadonlyArray<LogRecord>>
  /** The resource attributes of the latest export of any signal. */
  readonly resource: Effect.Effect<Attributes, NotReceived>
}

const KeyValues = Schema.Array(Schema.Struct({ key: Schema.String, value: Schema.Unknown }))
const withAttributes = { attributes: Schema.optionalKey(KeyValues) }
const resourceField = { resource: Schema.optionalKey(Schema.Struct(withAttributes)) }
const Int64 = Schema.Union([Schema.Number, Schema.String])

const TracesData = Schema.Struct({
  resourceSpans: Schema.Array(
    Schema.Struct({
      ...resourceField,
      scopeSpans: Schema.Array(
        Schema.Struct({
          spans: Schema.Array(
            Schema.Struct({
              traceId: Schema.String,
              spanId: Schema.String,
              parentSpanId: Schema.optionalKey(Schema.String),
              name: Schema.String,
              kind: Schema.optionalKey(Schema.Number),
              ...withAttributes,
              status: Schema.optionalKey(
                Schema.Struct({ code: Schema.optionalKey(Schema.Number), message: Schema.optionalKey(Schema.String) })
              ),
              events: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.String, ...withAttributes })))
            })
          )
        })
      )
    })
  )
})

const NumberPoints = Schema.Array(
  Schema.Struct({ ...withAttributes, asInt: Schema.optionalKey(Int64), asDouble: Schema.optionalKey(Int64) })
)

const MetricsData = Schema.Struct({
  resourceMetrics: Schema.Array(
    Schema.Struct({
      ...resourceField,
      scopeMetrics: Schema.Array(
        Schema.Struct({
          metrics: Schema.Array(
            Schema.Struct({
              name: Schema.String,
              sum: Schema.optionalKey(
                Schema.Struct({ dataPoints: NumberPoints, isMonotonic: Schema.optionalKey(Schema.Boolean) })
              ),
              gauge: Schema.optionalKey(Schema.Struct({ dataPoints: NumberPoints })),
              histogram: Schema.optionalKey(
                Schema.Struct({
                  dataPoints: Schema.Array(
                    Schema.Struct({
                      ...withAttributes,
                      count: Int64,
                      sum: Schema.optionalKey(Int64),
                      min: Schema.optionalKey(Int64),
                      max: Schema.optionalKey(Int64),
                      bucketCounts: Schema.Array(Int64),
                      explicitBounds: Schema.Array(Int64)
                    })
                  )
                })
              )
            })
          )
        })
      )
    })
  )
})

const LogsData = Schema.Struct({
  resourceLogs: Schema.Array(
    Schema.Struct({
      ...resourceField,
      scopeLogs: Schema.Array(
        Schema.Struct({
          logRecords: Schema.Array(
            Schema.Struct({
              severityNumber: Schema.optionalKey(Schema.Number),
              severityText: Schema.optionalKey(Schema.String),
              body: Schema.optionalKey(Schema.Unknown),
              ...withAttributes,
              traceId: Schema.optionalKey(Schema.String),
              spanId: Schema.optionalKey(Schema.String)
            })
          )
        })
      )
    })
  )
})

/** An `AnyValue` as a plain value. */
const plainValue = (value: unknown): Value => {
  if (!Predicate.isObject(value)) return null
  if (Predicate.hasProperty(value, "stringValue") && typeof value.stringValue === "string") return value.stringValue
  if (Predicate.hasProperty(value, "boolValue") && typeof value.boolValue === "boolean") return value.boolValue
  if (Predicate.hasProperty(value, "intValue") && value.intValue != null) return Number(value.intValue)
  if (Predicate.hasProperty(value, "doubleValue") && value.doubleValue != null) return Number(value.doubleValue)
  if (Predicate.hasProperty(value, "arrayValue") && Predicate.hasProperty(value.arrayValue, "values")) {
    const values = value.arrayValue.values
    return Array.isArray(values) ? values.map(plainValue) : []
  }
  if (Predicate.hasProperty(value, "kvlistValue") && Predicate.hasProperty(value.kvlistValue, "values")) {
    const values = value.kvlistValue.values
    return Array.isArray(values) ? attributesOf(values.filter(isKeyValue)) : {}
  }
  return null
}

const isKeyValue = (entry: unknown): entry is { readonly key: string; readonly value: unknown } =>
  Predicate.hasProperty(entry, "key") && typeof entry.key === "string" && Predicate.hasProperty(entry, "value")

const attributesOf = (keyValues: ReadonlyArray<{ readonly key: string; readonly value: unknown }> = []): Attributes =>
  Object.fromEntries(keyValues.map(({ key, value }) => [key, plainValue(value)]))

const spanKinds = ["unspecified", "internal", "server", "client", "producer", "consumer"] as const
const statusCodes = ["unset", "ok", "error"] as const

const decode =
  <S extends Schema.Codec<unknown>>(schema: S) =>
  (request: Request): Effect.Effect<S["Type"]> =>
    Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(request.body).pipe(
      Effect.mapError(
        (error) => new Error(`the receiver could not decode a POST to ${request.path}: ${error.message}`)
      ),
      Effect.orDie
    )

const decodeTraces = decode(TracesData)
const decodeMetrics = decode(MetricsData)
const decodeLogs = decode(LogsData)

const spansOf = (request: Request): Effect.Effect<ReadonlyArray<Span>> =>
  Effect.map(decodeTraces(request), (data) =>
    data.resourceSpans.flatMap(({ resource, scopeSpans }) =>
      scopeSpans.flatMap(({ spans }) =>
        spans.map(
          (span): Span => ({
            name: span.name,
            kind: spanKinds[span.kind ?? 0] ?? "unspecified",
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId === "" ? undefined : span.parentSpanId,
            attributes: attributesOf(span.attributes),
            status: {
              code: statusCodes[span.status?.code ?? 0] ?? "unset",
              message: span.status?.message === "" ? undefined : span.status?.message
            },
            events: (span.events ?? []).map((event) => ({
              name: event.name,
              attributes: attributesOf(event.attributes)
            })),
            resource: attributesOf(resource?.attributes)
          })
        )
      )
    )
  )

const numberOf = (point: { readonly asInt?: number | string; readonly asDouble?: number | string }): number =>
  Number(point.asInt ?? point.asDouble ?? Number.NaN)

const optionalNumber = (value: number | string | undefined): number | undefined =>
  value === undefined ? undefined : Number(value)

/** Every metric of one export by name, with its data points. */
const metricsOf = (request: Request): Effect.Effect<ReadonlyMap<string, ReadonlyArray<DataPoint>>> =>
  Effect.map(decodeMetrics(request), (data) => {
    const byName = new Map<string, Array<DataPoint>>()
    for (const metric of data.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))) {
      const points: Array<DataPoint> = [
        ...(metric.sum?.dataPoints ?? []).map(
          (point): DataPoint => ({
            type: "sum",
            attributes: attributesOf(point.attributes),
            value: numberOf(point),
            monotonic: metric.sum?.isMonotonic === true
          })
        ),
        ...(metric.gauge?.dataPoints ?? []).map(
          (point): DataPoint => ({ type: "gauge", attributes: attributesOf(point.attributes), value: numberOf(point) })
        ),
        ...(metric.histogram?.dataPoints ?? []).map(
          (point): DataPoint => ({
            type: "histogram",
            attributes: attributesOf(point.attributes),
            count: Number(point.count),
            sum: optionalNumber(point.sum),
            min: optionalNumber(point.min),
            max: optionalNumber(point.max),
            bounds: point.explicitBounds.map(Number),
            counts: point.bucketCounts.map(Number)
          })
        )
      ]
      byName.set(metric.name, [...(byName.get(metric.name) ?? []), ...points])
    }
    return byName
  })

const logsOf = (request: Request): Effect.Effect<ReadonlyArray<LogRecord>> =>
  Effect.map(decodeLogs(request), (data) =>
    data.resourceLogs.flatMap(({ scopeLogs }) =>
      scopeLogs.flatMap(({ logRecords }) =>
        logRecords.map(
          (record): LogRecord => ({
            body: plainValue(record.body),
            severity: record.severityText ?? "",
            severityNumber: record.severityNumber ?? 0,
            attributes: attributesOf(record.attributes),
            traceId: record.traceId === "" ? undefined : record.traceId,
            spanId: record.spanId === "" ? undefined : record.spanId
          })
        )
      )
    )
  )

const resourceOf = (request: Request): Effect.Effect<Attributes> => {
  switch (request.path) {
    case "/v1/traces":
      return Effect.map(decodeTraces(request), (data) => attributesOf(data.resourceSpans[0]?.resource?.attributes))
    case "/v1/metrics":
      return Effect.map(decodeMetrics(request), (data) => attributesOf(data.resourceMetrics[0]?.resource?.attributes))
    default:
      return Effect.map(decodeLogs(request), (data) => attributesOf(data.resourceLogs[0]?.resource?.attributes))
  }
}

const signalPaths = new Set(["/v1/traces", "/v1/metrics", "/v1/logs"])

const headersOf = (message: IncomingMessage): Record<string, string> =>
  Object.fromEntries(
    Object.entries(message.headers).flatMap(([name, value]) =>
      value === undefined ? [] : [[name, Array.isArray(value) ? value.join(", ") : value]]
    )
  )

/** A receiver on a free port of 127.0.0.1, closed with the scope. */
export const make: Effect.Effect<Receiver, never, Scope.Scope> = Effect.gen(function* () {
  const received: Array<Request> = []
  const handle = (message: IncomingMessage, response: ServerResponse) => {
    const chunks: Array<Buffer> = []
    message.on("data", (chunk: Buffer) => chunks.push(chunk))
    message.on("end", () => {
      if (message.method === "POST") {
        received.push({
          path: (message.url ?? "").split("?")[0] ?? "",
          headers: headersOf(message),
          body: Buffer.concat(chunks).toString("utf8")
        })
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  }
  const server = yield* Effect.acquireRelease(
    Effect.callback<ReturnType<typeof createServer>>((resume) => {
      const server = createServer(handle)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0

  const onPath = (path: string) => Effect.sync(() => received.filter((request) => request.path === path))
  const spans = Effect.flatMap(onPath("/v1/traces"), (requests) =>
    Effect.map(Effect.forEach(requests, spansOf), (batches) => batches.flat())
  )
  const logs = Effect.flatMap(onPath("/v1/logs"), (requests) =>
    Effect.map(Effect.forEach(requests, logsOf), (batches) => batches.flat())
  )

  return {
    url: `http://127.0.0.1:${port}`,
    requests: Effect.sync(() => [...received]),
    spans,
    span: (name) =>
      Effect.flatMap(spans, (all) => {
        const found = all.findLast((span) => span.name === name)
        return found !== undefined
          ? Effect.succeed(found)
          : Effect.fail(
              new NotReceived({
                message: `no span named ${JSON.stringify(name)} received (received: ${all.map((span) => span.name).join(", ") || "none"})`
              })
            )
      }),
    metric: (name) =>
      Effect.gen(function* () {
        const exports = yield* Effect.forEach(yield* onPath("/v1/metrics"), metricsOf)
        const latest = exports.findLast((byName) => byName.has(name))?.get(name)
        if (latest !== undefined) return latest
        const names = [...new Set(exports.flatMap((byName) => [...byName.keys()]))]
        return yield* new NotReceived({
          message: `no metric named ${JSON.stringify(name)} received (received: ${names.join(", ") || "none"})`
        })
      }),
    logs,
    resource: Effect.gen(function* () {
      const latest = (yield* Effect.sync(() => received)).findLast((request) => signalPaths.has(request.path))
      if (latest === undefined) return yield* new NotReceived({ message: "no export received yet" })
      return yield* resourceOf(latest)
    })
  } satisfies Receiver
})
