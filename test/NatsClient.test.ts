import { describe, expect, it } from "@effect/vitest"
import { connect } from "@nats-io/transport-node"
import {
  ConfigProvider,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Redacted,
  Ref,
  Schedule,
  Scope,
  Stream
} from "effect"
import { stopStatusIterator } from "../src/internal/nats/connectionOptions.js"
import * as Metrics from "../src/Metrics.js"
import * as NatsClient from "../src/NatsClient.js"
import { connectAttempts, expectNoSecret, failureOf, noRetry, withCapturedLogs } from "./support/ConnectFailures.js"
import { eventually, NotYet } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import * as NatsServer from "./support/NatsServer.js"

describe("NatsClient", () => {
  it.live("connects: health is a round trip, serverVersion is the server's, JetStream answers", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const client = yield* NatsClient.make({ servers: server.url, name: "connects-test" })
      const rtt = yield* client.health
      expect(Duration.isDuration(rtt)).toBe(true)
      expect(Duration.toMillis(rtt)).toBeGreaterThanOrEqual(0)
      expect(yield* client.serverVersion).toMatch(/^2\.9\.\d+$/)
      expect(yield* client.supportsTermReason).toBe(false)
      const account = yield* Effect.promise(() => client.manager.getAccountInfo())
      expect(account.streams).toBe(0)
    })
  )

  it.live("layer connects, and its release closes the connection", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(NatsClient.layer({ servers: server.url }), scope)
      const client = Context.get(context, NatsClient.NatsClient)
      yield* client.health
      yield* Scope.close(scope, Exit.void)
      expect(client.connection.isClosed()).toBe(true)
    })
  )

  it.live("health fails, saying JetStream does not answer, on a server without JetStream", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make({ jetstream: false })
      const client = yield* NatsClient.make({ servers: server.url })
      const error = yield* Effect.flip(client.health)
      expect(error.reason._tag).toBe("NoResponders")
      expect(error.message).toBe(
        "health (JetStream): JetStream did not answer: it is not enabled for this account, or not ready yet"
      )
    })
  )

  it.live("health fails with Disconnected once the server is stopped", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const client = yield* NatsClient.make({ servers: server.url })
      yield* client.health
      yield* server.stop
      // Until nats.js notices the socket is gone a health check can time out instead; once it has, the
      // check says Disconnected without waiting.
      const error = yield* eventually(
        Effect.flip(client.health).pipe(
          Effect.filterOrFail(
            (failure) => failure.reason._tag === "Disconnected",
            (failure) => new NotYet({ message: `health failed with ${failure.reason._tag}` })
          )
        )
      )
      expect(error.reason._tag).toBe("Disconnected")
      expect(error.message).toBe("health: disconnected; reconnecting")
    })
  )

  describe("the reconnects metric", () => {
    /** What `messaging.nats.reconnects` counts over one stop and start of the server, in a registry of its own. */
    const reconnectsOverRestart = (metrics: Layer.Layer<never>) =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const client = yield* NatsClient.make({ servers: server.url })
        yield* server.stop
        yield* eventually(Effect.flip(client.health))
        yield* server.start
        yield* eventually(client.health)
        return (yield* Metric.value(Metrics.reconnects)).count
      }).pipe(Effect.provide(metrics), Effect.provideService(Metric.MetricRegistry, new Map()))

    it.live("counts a reconnect with Metrics.layer", () =>
      Effect.map(reconnectsOverRestart(Metrics.layer), (count) => expect(count).toBe(1))
    )

    it.live("stays at 0 without it", () =>
      Effect.map(reconnectsOverRestart(Layer.empty), (count) => expect(count).toBe(0))
    )
  })

  it("supportsTermReason needs nats-server 2.11", () => {
    expect(NatsClient.supportsTermReason("2.9.10")).toBe(false)
    expect(NatsClient.supportsTermReason("2.10.22")).toBe(false)
    expect(NatsClient.supportsTermReason("2.11.0")).toBe(true)
    expect(NatsClient.supportsTermReason("3.0.0")).toBe(true)
  })

  it.live(
    "nothing listening: ConnectionRefused after the configured retries, naming the servers but no credentials",
    () =>
      Effect.gen(function* () {
        const port = yield* NatsServer.freePort
        const otherPort = yield* NatsServer.freePort
        const retries = yield* Ref.make(0)
        const { exit, lines } = yield* withCapturedLogs(
          NatsClient.make({
            servers: [`nats://127.0.0.1:${port}`, `nats://alice:hunter2@127.0.0.1:${otherPort}`],
            connectRetry: Schedule.spaced("20 millis").pipe(
              Schedule.upTo({ times: 2 }),
              Schedule.tap(() => Ref.update(retries, (n) => n + 1))
            )
          })
        )
        const error = failureOf(exit)
        expect(error.reason._tag).toBe("ConnectionRefused")
        expect(error.isRetryable).toBe(true)
        expect(connectAttempts(lines)).toBe(3)
        expect(yield* Ref.get(retries)).toBe(2)
        expect(error.message).toContain(`nats://127.0.0.1:${port}`)
        expect(error.message).toContain(`127.0.0.1:${otherPort}`)
        expectNoSecret("hunter2", error, lines)
      })
  )

  it.live(
    "a server restart: status shows Disconnected then Reconnected to every subscriber, and the client works again",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const logs = Logs.capture()
        const client = yield* NatsClient.make({ servers: server.url, reconnectWait: "100 millis" }).pipe(
          Effect.provide(logs.layer)
        )
        yield* Effect.promise(() => client.manager.streams.add({ name: "RESTART", subjects: ["restart.>"] }))
        const untilReconnected = client.status.pipe(
          Stream.takeUntil(NatsClient.ConnectionEvent.$is("Reconnected")),
          Stream.runCollect,
          Effect.timeout("20 seconds")
        )
        const first = yield* Effect.forkChild(untilReconnected, { startImmediately: true })
        const second = yield* Effect.forkChild(untilReconnected, { startImmediately: true })

        // More failed attempts than nats.js's default limit (10): reconnecting must not give up.
        const manyAttempts = yield* Effect.forkChild(
          client.status.pipe(
            Stream.filter(NatsClient.ConnectionEvent.$is("Reconnecting")),
            Stream.take(12),
            Stream.runDrain,
            Effect.timeout("20 seconds")
          ),
          { startImmediately: true }
        )

        yield* server.stop
        const down = yield* eventually(Effect.flip(client.health))
        expect(down.reason._tag).toBe("Disconnected")
        yield* Fiber.join(manyAttempts)
        expect(client.connection.isClosed()).toBe(false)
        yield* server.start

        for (const events of [yield* Fiber.join(first), yield* Fiber.join(second)]) {
          const tags = events.map((event) => event._tag)
          expect(tags).toContain("Disconnected")
          expect(tags.at(-1)).toBe("Reconnected")
          expect(tags.indexOf("Disconnected")).toBeLessThan(tags.indexOf("Reconnected"))
        }
        yield* eventually(client.health)
        // One line when the connection drops, one when it is back, saying how long it was gone.
        expect(logs.matching("Warn", "NATS disconnected from")).toHaveLength(1)
        const [reconnected] = logs.matching("Info", "NATS reconnected to")
        expect(reconnected?.message).toMatch(/^NATS reconnected to 127\.0\.0\.1:\d+ after \d+(\.\d)? (ms|s)$/)
        // nats.js reports a server-list update with nothing added or removed on each reconnect: no line for it.
        expect(logs.lines.filter((line) => line.message.startsWith("NATS servers changed"))).toEqual([])
        const ack = yield* eventually(Effect.tryPromise(() => client.jetstream.publish("restart.a", "after")))
        expect(ack.stream).toBe("RESTART")
        client.connection.subscribe("echo", {
          callback: (_error, message) => {
            message.respond(message.data)
          }
        })
        const reply = yield* Effect.tryPromise(() => client.connection.request("echo", "ping", { timeout: 2000 }))
        expect(reply.string()).toBe("ping")
      })
  )

  it.live(
    "closing the scope drains: what was published just before arrives elsewhere, then the connection is closed",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const observer = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: server.url })),
          (nc) => Effect.promise(() => nc.close())
        )
        const count = 20_000
        let received = 0
        const all = yield* Deferred.make<void>()
        observer.subscribe("drain.check", {
          callback: () => {
            received++
            if (received === count) Deferred.doneUnsafe(all, Effect.void)
          }
        })
        yield* Effect.promise(() => observer.flush())

        const scope = yield* Scope.make()
        const client = yield* NatsClient.make({ servers: server.url }).pipe(Scope.provide(scope))
        const statusTail = yield* Effect.forkChild(Stream.runCollect(client.status), { startImmediately: true })
        let handledByClient = 0
        client.connection.subscribe("drain.inbound", {
          callback: () => {
            handledByClient++
          }
        })
        yield* Effect.promise(() => client.connection.flush())
        const payload = new Uint8Array(1024)
        // Routed to the client's subscription before its release starts: a drain handles every one.
        for (let i = 0; i < count; i++) observer.publish("drain.inbound", payload)
        yield* Effect.promise(() => observer.flush())
        for (let i = 0; i < count; i++) client.connection.publish("drain.check", payload)
        yield* Scope.close(scope, Exit.void)

        expect(client.connection.isClosed()).toBe(true)
        expect(handledByClient).toBe(count)
        yield* Deferred.await(all).pipe(Effect.timeout("10 seconds"))
        expect(received).toBe(count)
        const tail = yield* Fiber.join(statusTail).pipe(Effect.timeout("5 seconds"))
        expect(tail.at(-1)?._tag).toBe("Closed")
      })
  )

  it.live("a drain that cannot finish (server gone) is cut at drainTimeout, logged, and the connection closed", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const scope = yield* Scope.make()
      const { exit, lines } = yield* withCapturedLogs(
        Effect.gen(function* () {
          const client = yield* NatsClient.make({ servers: server.url, drainTimeout: "300 millis" }).pipe(
            Scope.provide(scope)
          )
          client.connection.subscribe("anything", { callback: () => {} })
          yield* server.kill
          yield* eventually(Effect.flip(client.health))
          yield* Scope.close(scope, Exit.void)
          return client
        })
      )
      if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
      expect(exit.value.connection.isClosed()).toBe(true)
      expect(lines.some((line) => line.includes("NATS drain did not finish"))).toBe(true)
    })
  )

  it.live("fromConnection adapts a connection it does not own: the scope ends watching it, not the connection", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const nc = yield* Effect.acquireRelease(
        Effect.promise(() => connect({ servers: server.url })),
        (nc) => Effect.promise(() => nc.close())
      )
      const scope = yield* Scope.make()
      const client = yield* NatsClient.fromConnection(nc).pipe(Scope.provide(scope))
      yield* client.health
      expect(yield* client.serverVersion).toMatch(/^2\.9\./)
      yield* Scope.close(scope, Exit.void)
      expect(nc.isClosed()).toBe(false)
      yield* Effect.promise(() => nc.flush())
    })
  )

  it.live(
    "a status watcher whose iterator ends is logged and started again on a new one: health goes on seeing outages",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const nc = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 })),
          (nc) => Effect.promise(() => nc.close())
        )
        // The real connection, except that the first status iterator it hands out ends at once.
        let handedOut = 0
        const status = () => {
          const iterator = nc.status()
          handedOut++
          if (handedOut === 1) setTimeout(() => stopStatusIterator(iterator), 10)
          return iterator
        }
        const faulty = new Proxy(nc, {
          get: (target, property) => {
            if (property === "status") return status
            const value: unknown = Reflect.get(target, property, target)
            return typeof value === "function" ? value.bind(target) : value
          }
        })
        const logs = Logs.capture()
        const client = yield* NatsClient.fromConnection(faulty).pipe(Effect.provide(logs.layer))
        yield* eventually(
          Effect.suspend(() =>
            logs.matching("Info", "NATS status watcher: working again").length === 1
              ? Effect.void
              : Effect.fail("not yet")
          )
        )
        expect(logs.matching("Error", "NATS status watcher stopped: its status iterator ended")).toHaveLength(1)
        expect(handedOut).toBe(2)

        // The second iterator sees the server go and come back.
        yield* server.stop
        const down = yield* eventually(Effect.flip(client.health))
        expect(down.reason._tag).toBe("Disconnected")
        yield* server.start
        yield* eventually(client.health)
        expect(logs.matching("Info", "NATS reconnected")).toHaveLength(1)
      })
  )

  describe("layerConfig", () => {
    it.effect("reads the servers list, user and password from the environment; secrets stay redacted", () =>
      Effect.gen(function* () {
        const options = yield* NatsClient.config.parse(
          ConfigProvider.fromEnv({
            env: {
              NATS_SERVERS: "nats://n1:4222, tls://n2:4222",
              NATS_USER: "alice",
              NATS_PASSWORD: "pa55word-from-env",
              NATS_TOKEN: "token-from-env",
              NATS_TLS_CA_FILE: "/etc/nats/ca.pem",
              NATS_NAME: "orders"
            }
          })
        )
        expect(options.servers).toEqual(["nats://n1:4222", "tls://n2:4222"])
        expect(options.user).toBe("alice")
        expect(options.name).toBe("orders")
        expect(options.tls?.caFile).toBe("/etc/nats/ca.pem")
        expect(options.password === undefined ? undefined : Redacted.value(options.password)).toBe("pa55word-from-env")
        expect(String(options.password)).not.toContain("pa55word")
        expect(JSON.stringify(options)).not.toContain("pa55word")
        expect(JSON.stringify(options)).not.toContain("token-from-env")

        const defaults = yield* NatsClient.config.parse(ConfigProvider.fromEnv({ env: {} }))
        // Unset: `make` (and `layerConfig`, with an INFO line) use nats://127.0.0.1:4222.
        expect(defaults.servers).toBeUndefined()
        expect(defaults.user).toBeUndefined()
        expect(defaults.tls).toBeUndefined()
      })
    )

    it.effect("a bad NATS_SERVERS is a ConfigError that says what is wrong, without credentials", () =>
      Effect.gen(function* () {
        const messageFor = (env: Record<string, string>) =>
          NatsClient.config.parse(ConfigProvider.fromEnv({ env, preserveEmptyStrings: true })).pipe(
            Effect.flip,
            Effect.map((error) => error.message)
          )

        const notNats = yield* messageFor({ NATS_SERVERS: "http://alice:hunter2@n1:4222" })
        expect(notNats).toContain("NATS_SERVERS")
        expect(notNats).toContain("is not a server URL")
        expect(notNats).not.toContain("hunter2")

        const empty = yield* messageFor({ NATS_SERVERS: "" })
        expect(empty).toContain("NATS_SERVERS is empty")

        const trailingComma = yield* messageFor({ NATS_SERVERS: "nats://n1:4222," })
        expect(trailingComma).toContain("NATS_SERVERS has an empty entry")
      })
    )

    it.live("layerConfig connects with user and password from the environment; overrides win", () =>
      Effect.gen(function* () {
        const password = "env-password-42"
        const server = yield* NatsServer.make({ config: NatsServer.usersConfig([{ user: "svc", password }]) })
        const unused = yield* NatsServer.freePort
        const env = { NATS_SERVERS: server.url, NATS_USER: "svc", NATS_PASSWORD: password }
        const build = (environment: Record<string, string>, overrides?: NatsClient.Options) =>
          Layer.build(NatsClient.layerConfig(overrides)).pipe(
            Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: environment })),
            Effect.map(Context.get(NatsClient.NatsClient))
          )

        const client = yield* build(env)
        yield* client.health

        const overridden = yield* build(
          { ...env, NATS_SERVERS: `nats://127.0.0.1:${unused}` },
          { servers: server.url, name: "overridden" }
        )
        yield* overridden.health

        const { exit, lines } = yield* withCapturedLogs(
          build({ ...env, NATS_PASSWORD: "wrong-env-password" }, { connectRetry: noRetry })
        )
        if (Exit.isSuccess(exit)) throw new Error("expected a failure")
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
        if (error?._tag !== "Fail" || error.error._tag !== "NatsError") throw new Error(String(exit.cause))
        expect(error.error.reason._tag).toBe("AuthFailed")
        expectNoSecret("wrong-env-password", error.error, lines)
        expectNoSecret(password, error.error, lines)
      })
    )

    it.live("an override left undefined keeps the environment's value: NATS_SERVERS is used, not the default", () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const unset: string | undefined = undefined
        const { exit, lines } = yield* withCapturedLogs(
          Layer.build(NatsClient.layerConfig({ servers: unset, name: unset, connectRetry: noRetry })).pipe(
            Effect.provideService(
              ConfigProvider.ConfigProvider,
              ConfigProvider.fromEnv({ env: { NATS_SERVERS: server.url, NATS_NAME: "from-env" } })
            ),
            Effect.map(Context.get(NatsClient.NatsClient))
          )
        )
        if (Exit.isFailure(exit)) throw new Error(`expected a connection to NATS_SERVERS: ${exit.cause}`)
        yield* exit.value.health
        expect(exit.value.connection.getServer()).toBe(`127.0.0.1:${server.port}`)
        expect(lines.some((line) => line.includes("NATS_SERVERS is not set"))).toBe(false)
        expect(lines.some((line) => line.includes(`NATS connected to 127.0.0.1:${server.port}`))).toBe(true)
      })
    )
  })
})
