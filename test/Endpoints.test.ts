/**
 * The operations endpoints as a probe or a scraper sees them: real HTTP requests to a server on a free
 * loopback port, beside a client of a nats-server of the test's own that the tests stop, start and take
 * streams away from.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as Endpoints from "../src/Endpoints.js"
import * as Streams from "../src/glam/Streams.js"
import * as Metrics from "../src/Metrics.js"
import * as Subscriber from "../src/Subscriber.js"
import * as SubscriberStatus from "../src/SubscriberStatus.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import { messaging } from "./support/Messaging.js"
import * as NatsServer from "./support/NatsServer.js"
import { Happened } from "./support/Subscribing.js"

interface Reply {
  readonly status: number
  readonly contentType: string | null
  readonly body: string
}

/** The endpoints on a free port, over the client in context, with a subscriber registry of their own. */
const serving = Effect.gen(function* () {
  const port = yield* NatsServer.freePort
  const registry = SubscriberStatus.makeRegistryUnsafe()
  const logs = Logs.capture()
  yield* Layer.build(Endpoints.layer({ port, host: "127.0.0.1" })).pipe(
    Effect.provide(logs.layer),
    Effect.provideService(SubscriberStatus.Registry, registry)
  )
  const get = (path: string) =>
    Effect.tryPromise({
      try: (signal) =>
        fetch(`http://127.0.0.1:${port}${path}`, { signal }).then((response) =>
          response
            .text()
            .then(
              (body): Reply => ({ status: response.status, contentType: response.headers.get("content-type"), body })
            )
        ),
      catch: (cause) => `GET ${path}: ${String(cause)}`
    }).pipe(Effect.timeout("5 seconds"))
  /** The reply to `path` once it has `status` (within 20 s); fails with the last one seen otherwise. */
  const answers = (path: string, status: number) =>
    eventually(
      Effect.filterOrFail(
        get(path),
        (reply) => reply.status === status,
        (reply) => `GET ${path}: ${reply.status} ${reply.body}`
      ),
      { timeout: "20 seconds" }
    )
  /** A subscriber on `Happened` entered in the endpoints' registry, in a scope of its own. */
  const subscribe = (durable: string) =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      yield* Subscriber.make(Happened, {
        durable,
        idleHeartbeat: "500 millis",
        checkConsumerEvery: "300 millis",
        handler: () => Effect.void
      }).pipe(Effect.provideService(SubscriberStatus.Registry, registry), Scope.provide(scope))
      return scope
    })
  return { port, get, answers, subscribe, logs }
})

const json = (reply: Reply): unknown => JSON.parse(reply.body)

const allReady = { ready: true, checks: { nats: "ok", subscribers: [] } }

describe("Endpoints", () => {
  it.live("/healthz answers 200 while connected; /metrics serves the registry in Prometheus text", () =>
    Effect.gen(function* () {
      const endpoints = yield* serving
      // Without Metrics.layer around it, the line says that the library's metrics are off.
      expect(endpoints.logs.matching("Warn", "Endpoints listening on")).toStrictEqual([
        {
          level: "Warn",
          message: `Endpoints listening on http://127.0.0.1:${endpoints.port} (/metrics, /healthz, /readyz); the library's metrics are off: provide Metrics.layer (or Otlp.layer) around the service for messaging.*`
        }
      ])
      const logs = Logs.capture()
      const port = yield* NatsServer.freePort
      yield* Layer.build(Endpoints.layer({ port, host: "127.0.0.1" })).pipe(
        Effect.provide(logs.layer),
        Effect.provide(Metrics.layer)
      )
      expect(logs.lines.filter((line) => line.message.startsWith("Endpoints listening on"))).toStrictEqual([
        { level: "Info", message: `Endpoints listening on http://127.0.0.1:${port} (/metrics, /healthz, /readyz)` }
      ])
      const health = yield* endpoints.get("/healthz")
      expect([health.status, json(health)]).toStrictEqual([200, { live: true, checks: { nats: "ok" } }])

      const scraped = Metric.counter("endpoints_test_scraped", { description: "updated by the test" })
      yield* Metric.update(scraped, 3)
      const metrics = yield* endpoints.get("/metrics")
      expect(metrics.status).toBe(200)
      expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
      const lines = metrics.body.split("\n")
      expect(lines).toContain("# TYPE endpoints_test_scraped counter")
      const sample = lines.find((line) => line.startsWith("endpoints_test_scraped"))
      const [name, value] = sample?.split(" ") ?? []
      expect([name, Number(value)]).toStrictEqual(["endpoints_test_scraped", 3])
    }).pipe(Effect.provide(messaging()), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.live(
    "/readyz: 200 with a consuming subscriber, 503 naming NATS while the server is down, 200 once it is back",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const endpoints = yield* serving
        yield* endpoints.subscribe("ready-a")
        const ready = yield* endpoints.answers("/readyz", 200)
        expect(json(ready)).toStrictEqual(allReady)

        yield* server.stop
        const down = yield* endpoints.answers("/readyz", 503)
        expect(json(down)).toMatchObject({ ready: false, checks: { nats: "health: disconnected; reconnecting" } })
        const dead = yield* endpoints.answers("/healthz", 503)
        expect(json(dead)).toStrictEqual({ live: false, checks: { nats: "disconnected from NATS; reconnecting" } })

        yield* server.start
        const back = yield* endpoints.answers("/readyz", 200)
        expect(json(back)).toStrictEqual(allReady)
        expect((yield* endpoints.get("/healthz")).status).toBe(200)
      }).pipe(Effect.provide(messaging()))
  )

  it.live(
    "/readyz: 503 listing a subscriber that is Restarting while its stream is gone, 200 once it consumes again",
    () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const endpoints = yield* serving
        const scope = yield* endpoints.subscribe("ready-b")
        yield* endpoints.answers("/readyz", 200)

        expect(yield* broker.deleteStream(Streams.eventsName)).toBe(true)
        const restarting = yield* eventually(
          Effect.flatMap(endpoints.answers("/readyz", 503), (reply) =>
            reply.body.includes("Restarting") ? Effect.succeed(reply) : Effect.fail(`not Restarting yet: ${reply.body}`)
          ),
          { timeout: "20 seconds" }
        )
        const body = json(restarting)
        expect(body).toMatchObject({
          ready: false,
          checks: { nats: "ok", subscribers: [{ durable: "ready-b", status: "Restarting" }] }
        })
        expect(restarting.body).toContain(Streams.eventsName)

        yield* Topology.provision(Streams.topology)
        const back = yield* endpoints.answers("/readyz", 200)
        expect(json(back)).toStrictEqual(allReady)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.provide(messaging()))
  )

  it.live("refuses a port that is not one, and an address already taken, with an EndpointsError", () =>
    Effect.gen(function* () {
      const bad = yield* Layer.build(Endpoints.layer({ port: 70_000 })).pipe(Effect.flip)
      expect(bad).toBeInstanceOf(Endpoints.EndpointsError)
      expect(bad.message).toBe(
        "Endpoints port 70000 is not a TCP port: give an integer from 1 to 65535, or 0 for any free one"
      )
      const endpoints = yield* serving
      const taken = yield* Layer.build(Endpoints.layer({ port: endpoints.port, host: "127.0.0.1" })).pipe(Effect.flip)
      expect(taken.message).toMatch(
        new RegExp(`^Endpoints cannot listen on 127\\.0\\.0\\.1:${endpoints.port}: .*EADDRINUSE`)
      )
    }).pipe(Effect.provide(messaging()))
  )
})
