import { describe, expect, it } from "@effect/vitest"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { JetStreamStatusError, jserrors } from "@nats-io/jetstream/internal"
import { connect, errors, type NatsConnection, usernamePasswordAuthenticator } from "@nats-io/transport-node"
import { Effect, Schema } from "effect"
import { fromCause, redactServer, UNAVAILABLE_API_CODES } from "../src/internal/nats/errors.js"
import * as NatsError from "../src/NatsError.js"
import { eventually } from "./support/Eventually.js"
import * as NatsServer from "./support/NatsServer.js"

/** What nats.js rejects `run` with, translated the way every module translates it. */
const translated = <A>(
  operation: string,
  run: () => Promise<A>,
  context?: Parameters<typeof fromCause>[1]
): Effect.Effect<NatsError.NatsError, A> =>
  Effect.tryPromise({ try: run, catch: fromCause(operation, context) }).pipe(Effect.flip)

const connected = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(() => connect({ servers: url })),
    (nc: NatsConnection) => Effect.promise(() => nc.close())
  )

describe("NatsError mapping (internal/nats/errors)", () => {
  it.live("JetStream API errors from a real server", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const nc = yield* connected(server.url)
      const jsm = yield* Effect.promise(() => jetstreamManager(nc))
      const js = jetstream(nc)

      const noStream = yield* translated("streams.info", () => jsm.streams.info("MISSING"), { stream: "MISSING" })
      expect(noStream.reason._tag).toBe("StreamNotFound")
      expect(noStream.reason).toMatchObject({ stream: "MISSING" })
      expect(noStream.isRetryable).toBe(false)
      expect(noStream.message).toBe("streams.info: stream MISSING not found")
      // Without the stream's name the server's words are all there is.
      const unnamed = yield* translated("streams.info", () => jsm.streams.info("MISSING"))
      expect(unnamed.message).toBe("streams.info: stream not found")

      yield* Effect.promise(() => jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] }))
      const noConsumer = yield* translated("consumers.info", () => jsm.consumers.info("ORDERS", "nobody"), {
        stream: "ORDERS",
        consumer: "nobody"
      })
      expect(noConsumer.reason._tag).toBe("ConsumerNotFound")
      expect(noConsumer.reason).toMatchObject({ stream: "ORDERS", consumer: "nobody" })
      expect(noConsumer.message).toBe("consumers.info: consumer ORDERS/nobody not found")
      expect(noConsumer.isRetryable).toBe(false)

      yield* Effect.promise(() => js.publish("orders.created", "first"))
      const raced = yield* translated("publish", () =>
        js.publish("orders.created", "second", { expect: { lastSequence: 7 } })
      )
      expect(raced.reason._tag).toBe("WrongLastSequence")
      expect(raced.reason).toMatchObject({ lastSequence: 1 })
      expect(raced.isRetryable).toBe(false)

      const uncovered = yield* translated("publish", () => js.publish("invoices.paid", "x"))
      expect(uncovered.reason._tag).toBe("StreamNotFound")
      expect(uncovered.reason).toMatchObject({ subject: "invoices.paid" })
      expect(uncovered.message).toContain("invoices.paid")
      expect(uncovered.isRetryable).toBe(false)

      const overlapping = yield* translated("streams.add", () =>
        jsm.streams.add({ name: "OVERLAP", subjects: ["orders.created"] })
      )
      expect(overlapping.reason._tag).toBe("Rejected")
      expect(overlapping.reason).toMatchObject({ code: 10065 })
      expect(overlapping.isRetryable).toBe(false)
    })
  )

  it.live("core request errors from a real server: timeout, no responders, closed connection, bad subject", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const nc = yield* connected(server.url)

      nc.subscribe("silent", { callback: () => {} })
      yield* Effect.promise(() => nc.flush())
      const timedOut = yield* translated("request", () => nc.request("silent", "?", { timeout: 100 }))
      expect(timedOut.reason._tag).toBe("Timeout")
      expect(timedOut.isRetryable).toBe(true)

      const nobody = yield* translated("request", () => nc.request("nobody.home", "?", { timeout: 1000 }))
      expect(nobody.reason._tag).toBe("NoResponders")
      expect(nobody.isRetryable).toBe(true)

      const badSubject = yield* translated("publish", () => Promise.resolve().then(() => nc.publish("has space", "x")))
      expect(badSubject.reason._tag).toBe("Other")
      expect(badSubject.isRetryable).toBe(false)

      const other = yield* connected(server.url)
      yield* Effect.promise(() => other.close())
      const closed = yield* translated("request", () => other.request("silent", "?", { timeout: 100 }))
      expect(closed.reason._tag).toBe("Closed")
      expect(closed.isRetryable).toBe(false)
    })
  )

  it.live("connect errors from real servers: refused, and authorization violation", () =>
    Effect.gen(function* () {
      const port = yield* NatsServer.freePort
      const servers = [`nats://127.0.0.1:${port}`]
      const refused = yield* translated("connect", () => connect({ servers }), { servers })
      expect(refused.reason._tag).toBe("ConnectionRefused")
      expect(refused.isRetryable).toBe(true)
      expect(refused.message).toBe(`connect: connection refused (servers tried: nats://127.0.0.1:${port})`)
      // The servers are a field; the reason keeps nats.js's words alone.
      expect(refused.servers).toStrictEqual(servers)
      expect(refused.reason.message).toBe("connection refused")

      const server = yield* NatsServer.make({
        config: NatsServer.usersConfig([{ user: "alice", password: "right" }])
      })
      const denied = yield* translated("connect", () =>
        connect({ servers: server.url, authenticator: usernamePasswordAuthenticator("alice", "wrong") })
      )
      expect(denied.reason._tag).toBe("AuthFailed")
      expect(denied.isRetryable).toBe(false)
    })
  )

  it.live(
    "a connection that dropped: what nats.js rejects a round trip with is Disconnected, not ConnectionRefused",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.make()
        const nc = yield* connected(server.url)
        yield* Effect.promise(() => nc.flush())
        yield* server.stop
        // Until nats.js notices the socket is gone a round trip may still succeed: ask until one fails.
        const dropped = yield* eventually(translated("health", () => nc.rtt()))
        expect(dropped.reason._tag).toBe("Disconnected")
        expect(dropped.reason.cause).toBeInstanceOf(errors.RequestError)
        expect(dropped.isRetryable).toBe(true)
        expect(dropped.message).toBe("health: connection disconnected")
        yield* server.start
      })
  )

  it.live("an account without JetStream is Rejected (10039), not retried", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make({
        config: "accounts {\n  NOJS: { users = [ { user: nojs, password: nojs } ] }\n}\n"
      })
      const nc = yield* Effect.acquireRelease(
        Effect.promise(() =>
          connect({ servers: server.url, authenticator: usernamePasswordAuthenticator("nojs", "nojs") })
        ),
        (nc) => Effect.promise(() => nc.close())
      )
      const disabled = yield* translated("jetstreamManager", () => jetstreamManager(nc))
      expect(disabled.reason._tag).toBe("Rejected")
      expect(disabled.reason).toMatchObject({ code: 10039 })
      expect(disabled.message).toContain("JetStream not enabled for account")
      expect(disabled.isRetryable).toBe(false)
    })
  )

  // What a real server cannot easily be made to produce here (another transport, a TLS handshake
  // against an untrusted certificate without a TLS server, JetStream not answering at all).
  it("errors reported only in a message or a Node error code", () => {
    const reasonOf = (cause: unknown) => fromCause("connect")(cause).reason
    expect(reasonOf(new errors.ProtocolError("'Authorization Violation'"))._tag).toBe("AuthFailed")
    expect(reasonOf(new errors.ConnectionError("Authorization Violation"))._tag).toBe("AuthFailed")
    const econnrefused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:4222"), { code: "ECONNREFUSED" })
    expect(reasonOf(econnrefused)._tag).toBe("ConnectionRefused")
    expect(reasonOf(new errors.ConnectionError("connection refused", { cause: econnrefused }))._tag).toBe(
      "ConnectionRefused"
    )
    const untrusted = Object.assign(new Error("unable to verify the first certificate"), {
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
    })
    const tls = reasonOf(untrusted)
    expect(tls._tag).toBe("AuthFailed")
    expect(tls.message).toContain("TLS")
    expect(reasonOf(new errors.ConnectionError("server does not support 'tls'"))._tag).toBe("Other")
    expect(reasonOf(new errors.DrainingConnectionError())._tag).toBe("Closed")
    // what a pending ping or request gets when the socket drops: transient, so retryable
    const dropped = reasonOf(new errors.RequestError("connection disconnected"))
    expect(dropped._tag).toBe("Disconnected")
    expect(dropped.isRetryable).toBe(true)

    const noJetStream = new jserrors.JetStreamNotEnabled("jetstream is not enabled", {
      cause: new errors.RequestError("no responders: '$JS.API.INFO'", {
        cause: new errors.NoRespondersError("$JS.API.INFO")
      })
    })
    const jetStreamDown = reasonOf(noJetStream)
    expect(jetStreamDown._tag).toBe("NoResponders")
    expect(jetStreamDown.message).toContain("JetStream did not answer")

    expect(reasonOf(new JetStreamStatusError("request timeout", 408))._tag).toBe("Timeout")
    expect(reasonOf(new JetStreamStatusError("no responders", 503))._tag).toBe("NoResponders")
    expect(reasonOf("a string thrown by someone")._tag).toBe("Other")
  })

  it("a NatsError passes through unchanged; credentials never reach a server name", () => {
    const original = NatsError.make("publish", new NatsError.Timeout({ message: "slow" }))
    expect(fromCause("other")(original).reason).toBe(original.reason)
    const connecting = NatsError.make("connect", new NatsError.Timeout({ message: "slow" }), { servers: ["nats://a"] })
    expect(fromCause("layer")(connecting).servers).toStrictEqual(["nats://a"])
    expect(redactServer("nats://alice:secret@host:4222")).toBe("nats://<redacted>@host:4222")
    expect(redactServer("tls://host:4222")).toBe("tls://host:4222")
    expect(redactServer("token@host:4222")).toBe("<redacted>@host:4222")
  })

  it("isRetryable per reason: only transient transport failures", () => {
    const reasons: ReadonlyArray<[NatsError.NatsErrorReason, boolean]> = [
      [new NatsError.ConnectionRefused({ message: "m" }), true],
      [new NatsError.Disconnected({ message: "m" }), true],
      [new NatsError.Timeout({ message: "m" }), true],
      [new NatsError.NoResponders({ message: "m" }), true],
      [new NatsError.AuthFailed({ message: "m" }), false],
      [new NatsError.StreamNotFound({ message: "m" }), false],
      [new NatsError.ConsumerNotFound({ message: "m" }), false],
      [new NatsError.WrongLastSequence({ message: "m" }), false],
      [new NatsError.Unavailable({ message: "m" }), true],
      [new NatsError.Rejected({ message: "m" }), false],
      [new NatsError.Closed({ message: "m" }), false],
      [new NatsError.Other({ message: "m" }), false]
    ]
    for (const [reason, retryable] of reasons) {
      expect(reason.isRetryable, reason._tag).toBe(retryable)
      expect(NatsError.make("op", reason).isRetryable, reason._tag).toBe(retryable)
    }
  })

  it("guards: isNatsError, isNatsErrorReason, hasReason; the cause chain and the message", () => {
    const thrown = new errors.RequestError("connection disconnected")
    const reason = new NatsError.Disconnected({ message: "connection disconnected", cause: thrown })
    const error = NatsError.make("publish", reason)
    expect(NatsError.isNatsError(error)).toBe(true)
    expect(NatsError.isNatsError(reason)).toBe(false)
    expect(NatsError.isNatsError(thrown)).toBe(false)
    expect(NatsError.isNatsErrorReason(reason)).toBe(true)
    expect(NatsError.isNatsErrorReason(error)).toBe(false)
    expect(NatsError.isNatsErrorReason(new Error("x"))).toBe(false)
    expect(NatsError.hasReason(error, "Disconnected")).toBe(true)
    expect(NatsError.hasReason(error, "ConnectionRefused")).toBe(false)
    expect(NatsError.hasReason(reason, "Disconnected")).toBe(false)
    // As SqlError: the error's cause is its reason, whose cause is what nats.js threw.
    expect(error.cause).toBe(reason)
    expect(error.reason.cause).toBe(thrown)
    expect(error.message).toBe("publish: connection disconnected")
    expect(error.servers).toBeUndefined()

    const servers = ["nats://127.0.0.1:4999", "nats://<redacted>@10.0.0.2:4222"]
    const connecting = NatsError.make("connect", new NatsError.ConnectionRefused({ message: "connection refused" }), {
      servers
    })
    expect(connecting.servers).toStrictEqual(servers)
    expect(connecting.message).toBe(
      "connect: connection refused (servers tried: nats://127.0.0.1:4999, nats://<redacted>@10.0.0.2:4222)"
    )
    // No servers given, or none: nothing appended.
    expect(NatsError.make("connect", connecting.reason, { servers: [] }).message).toBe("connect: connection refused")
  })

  it.effect("a NatsError round-trips through its schema, servers included; catchReason recovers from one reason", () =>
    Effect.gen(function* () {
      const error = NatsError.make("connect", new NatsError.Disconnected({ message: "gone" }), {
        servers: ["nats://a:4222"]
      })
      const encoded = yield* Schema.encodeEffect(NatsError.NatsError)(error)
      const decoded = yield* Schema.decodeEffect(NatsError.NatsError)(encoded)
      expect(decoded.reason._tag).toBe("Disconnected")
      expect(decoded.isRetryable).toBe(true)
      expect(decoded.servers).toStrictEqual(["nats://a:4222"])
      expect(decoded.message).toBe(error.message)
      // What the README offers for recovering from one reason.
      const recovered = yield* Effect.fail(error).pipe(
        Effect.catchReason("NatsError", "Disconnected", (reason) => Effect.succeed(reason.message))
      )
      expect(recovered).toBe("gone")
    })
  )

  // The table of "not now" codes, code by code, against codes a retry cannot fix. The API errors are
  // built as nats.js builds them from a server's reply (`{ code, err_code, description }`).
  it("JetStream API errors classified by what a retry would do", () => {
    const apiError = (code: number, err_code: number, description: string) =>
      fromCause("streams.info", { stream: "GLAM_EVENTS" })(
        new jserrors.JetStreamApiError({ code, err_code, description })
      )
    expect(UNAVAILABLE_API_CODES.size).toBeGreaterThanOrEqual(7)
    for (const [code, description] of UNAVAILABLE_API_CODES) {
      const error = apiError(503, code, description)
      expect(error.reason._tag, String(code)).toBe("Unavailable")
      expect(error.reason, String(code)).toMatchObject({ code })
      expect(error.isRetryable, String(code)).toBe(true)
      expect(error.message, String(code)).toBe(`streams.info: ${description}`)
    }
    const permanent: ReadonlyArray<readonly [number, number, string]> = [
      [400, 10065, "subjects overlap with an existing stream"],
      [400, 10058, "stream name already in use with a different configuration"],
      [500, 10074, "replicas > 1 not supported in non-clustered mode"],
      [400, 10005, "insufficient resources"],
      [500, 10023, "insufficient resources"]
    ]
    for (const [status, code, description] of permanent) {
      const error = apiError(status, code, description)
      expect(error.reason._tag, String(code)).toBe("Rejected")
      expect(error.isRetryable, String(code)).toBe(false)
    }
    // Statuses of a pull or request without a body.
    const status = (description: string, code: number) =>
      fromCause("consume")(new JetStreamStatusError(description, code))
    expect(status("leadership change", 409).reason._tag).toBe("Unavailable")
    expect(status("leadership change", 409).isRetryable).toBe(true)
    expect(status("server shutdown", 409).isRetryable).toBe(true)
    expect(status("exceeded maxwaiting", 409).reason._tag).toBe("Other")
    expect(status("exceeded maxwaiting", 409).isRetryable).toBe(false)
    expect(status("request timeout", 408).isRetryable).toBe(true)
    expect(status("no responders", 503).isRetryable).toBe(true)
  })
})
