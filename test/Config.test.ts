/**
 * What `NatsClient.layerConfig` and `ServiceIdentity.layerConfig` say when the environment is wrong:
 * every error names the variable and the form it expects, and no test here can reach a default
 * server (each gives an unused port, or fails before any connect attempt). Those that build the layer
 * run on the live clock, so that a connect attempt made by mistake fails at once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Layer, Redacted, Schedule } from "effect"
import * as NatsClient from "../src/NatsClient.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Logs from "./support/Logs.js"
import * as NatsServer from "./support/NatsServer.js"
import { makeCertificates } from "./support/tls.js"

// Were a configuration read wrongly, the connect would fail fast instead of retrying for seconds.
const noRetry = { connectRetry: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 1 })) }

/** The error of building `layerConfig(overrides)` over `provider`, with the log lines written meanwhile. */
const layerConfigFailure = (provider: ConfigProvider.ConfigProvider, overrides: NatsClient.Options = {}) =>
  Effect.gen(function* () {
    const logs = Logs.capture()
    const error = yield* Layer.build(NatsClient.layerConfig(overrides)).pipe(
      Effect.provideService(ConfigProvider.ConfigProvider, provider),
      Effect.provide(logs.layer),
      Effect.flip
    )
    return { error, logs }
  })

/** A port nothing listens on, so that a configuration read wrongly fails instead of connecting somewhere. */
const nowhere = Effect.map(NatsServer.freePort, (port) => `nats://127.0.0.1:${port}`)

const configMessage = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  config.parse(ConfigProvider.fromEnv({ env })).pipe(
    Effect.flip,
    Effect.map((error) => error.message)
  )

describe("NATS_SERVERS", () => {
  const emptyMessage =
    "SchemaError(NATS_SERVERS is empty: give one or more server URLs separated by commas, e.g. nats://host:4222 or nats://n1:4222,nats://n2:4222\n" +
    '  at ["NATS_SERVERS"])'

  it.live("set but empty is a ConfigError from layerConfig, although the environment provider drops empty values", () =>
    Effect.gen(function* () {
      const overrides = { servers: yield* nowhere, ...noRetry }
      for (const provider of [
        ConfigProvider.fromEnv({ env: { NATS_SERVERS: "" } }),
        ConfigProvider.fromEnv({ env: { NATS_SERVERS: "", NATS_USER: "alice" } }),
        ConfigProvider.fromEnv({ env: { NATS_SERVERS: "" }, preserveEmptyStrings: true }),
        ConfigProvider.fromUnknown({ NATS_SERVERS: "" })
      ]) {
        const { error, logs } = yield* layerConfigFailure(provider, overrides)
        expect(error._tag).toBe("ConfigError")
        expect(error.message).toBe(emptyMessage)
        expect(logs.matching("Debug", "NATS connect attempt")).toEqual([])
      }
    })
  )

  it.effect("only commas and spaces is empty too; an empty entry among URLs is named as such", () =>
    Effect.gen(function* () {
      expect(yield* configMessage(NatsClient.config, { NATS_SERVERS: " , ," })).toBe(emptyMessage)
      expect(yield* configMessage(NatsClient.config, { NATS_SERVERS: "   " })).toBe(emptyMessage)
      expect(yield* configMessage(NatsClient.config, { NATS_SERVERS: "nats://n1:4222,,nats://n2:4222" })).toBe(
        "SchemaError(NATS_SERVERS has an empty entry: give server URLs separated by single commas, e.g. nats://host:4222 or nats://n1:4222,nats://n2:4222\n" +
          '  at ["NATS_SERVERS"][1])'
      )
    })
  )

  it.effect("a malformed entry is named (without its credentials), with the form expected", () =>
    Effect.gen(function* () {
      const message = yield* configMessage(NatsClient.config, {
        NATS_SERVERS: "nats://n1:4222, http://alice:hunter2@n2:4222"
      })
      expect(message).toBe(
        'SchemaError(NATS_SERVERS entry "http://<redacted>@n2:4222" is not a server URL: give nats://host:port or tls://host:port\n' +
          '  at ["NATS_SERVERS"][1])'
      )
      for (const entry of [
        "localhost:4222",
        "nats://n1:99999",
        "nats://n1:port",
        "nats://:4222",
        "nats://n1:4222/path"
      ]) {
        expect(yield* configMessage(NatsClient.config, { NATS_SERVERS: entry })).toContain(
          `NATS_SERVERS entry ${JSON.stringify(entry)} is not a server URL`
        )
      }
      const fine = yield* NatsClient.config.parse(
        ConfigProvider.fromEnv({ env: { NATS_SERVERS: " nats://n1 , tls://[::1]:4443 " } })
      )
      expect(fine.servers).toEqual(["nats://n1", "tls://[::1]:4443"])
    })
  )

  it.live("unset: layerConfig warns which default server it uses", () =>
    Effect.gen(function* () {
      // A missing CA file stops the layer before any connect attempt, so the default is never dialled.
      const { error, logs } = yield* layerConfigFailure(ConfigProvider.fromEnv({ env: {} }), {
        tls: { caFile: "/nonexistent/glam-test/ca.pem" }
      })
      expect(error._tag).toBe("NatsError")
      expect(logs.matching("Debug", "NATS connect attempt")).toEqual([])
      expect(logs.matching("Warn", "NATS_SERVERS")).toEqual([
        { level: "Warn", message: "NATS_SERVERS is not set: connecting to nats://127.0.0.1:4222, the default" }
      ])

      const set = yield* layerConfigFailure(ConfigProvider.fromEnv({ env: { NATS_SERVERS: yield* nowhere } }), {
        tls: { caFile: "/nonexistent/glam-test/ca.pem" }
      })
      expect(set.logs.matching("Info", "NATS_SERVERS")).toEqual([])
    })
  )
})

describe("the other NATS_* variables", () => {
  /** The message of building `layerConfig` over `env` (plus a server nobody listens on). */
  const messageFor = (env: Record<string, string>, overrides: NatsClient.Options = {}) =>
    Effect.gen(function* () {
      const { error, logs } = yield* layerConfigFailure(
        ConfigProvider.fromEnv({ env: { NATS_SERVERS: yield* nowhere, ...env } }),
        { ...noRetry, ...overrides }
      )
      // Each of these is found before a connect attempt.
      expect(logs.matching("Debug", "NATS connect attempt")).toEqual([])
      return error.message
    })

  it.live("files that cannot be read are named by their variable, with what they should hold", () =>
    Effect.gen(function* () {
      const creds = yield* messageFor({ NATS_CREDS_FILE: "/nonexistent/glam-test/app.creds" })
      expect(creds).toMatch(
        /^connect: cannot read NATS_CREDS_FILE \/nonexistent\/glam-test\/app\.creds \(ENOENT: .*\): give the path of a \.creds file \(user JWT and NKey seed\)$/
      )
      const ca = yield* messageFor({ NATS_TLS_CA_FILE: "/nonexistent/glam-test/ca.pem" })
      expect(ca).toMatch(
        /^connect: cannot read NATS_TLS_CA_FILE \/nonexistent\/glam-test\/ca\.pem \(ENOENT: .*\): give the path of a CA certificate \(PEM\)$/
      )

      const certificates = yield* makeCertificates
      const garbage = yield* messageFor({ NATS_CREDS_FILE: certificates.caFile })
      expect(garbage).toBe(
        `connect: NATS_CREDS_FILE ${certificates.caFile} holds no user JWT and NKey seed: give a .creds file as nsc writes it`
      )
      const halfPair = yield* messageFor({ NATS_TLS_CERT_FILE: certificates.clientCertFile })
      expect(halfPair).toBe(
        "connect: NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together: set both (a client certificate and its key) or neither"
      )
    })
  )

  it.live("a malformed NKey seed and a password without a user are named by their variables", () =>
    Effect.gen(function* () {
      const seed = yield* messageFor({ NATS_NKEY_SEED: "SUNOTAREALSEEDATALL0123456789" })
      expect(seed).toBe("connect: NATS_NKEY_SEED is not a valid NKey seed: give the text of a user seed (SU...)")
      const password = yield* messageFor({ NATS_PASSWORD: "pa55word" })
      expect(password).toBe("connect: NATS_PASSWORD is set without NATS_USER: a password goes with its user")
    })
  )

  it.live("an option given in code is named by its field, even next to variables", () =>
    Effect.gen(function* () {
      const creds = yield* messageFor(
        { NATS_CREDS_FILE: "/nonexistent/glam-test/from-env.creds" },
        { credsFile: "/nonexistent/glam-test/from-code.creds" }
      )
      expect(creds).toContain("cannot read credsFile /nonexistent/glam-test/from-code.creds")
      const password = yield* messageFor({ NATS_NAME: "from-env" }, { password: Redacted.make("pa55word") })
      expect(password).toBe("connect: password is set without NATS_USER: a password goes with its user")
    })
  )
})

describe("SERVICE_NAME", () => {
  it.effect("unset, empty or unusable: a ConfigError naming the variable and what it should hold", () =>
    Effect.gen(function* () {
      expect(yield* configMessage(ServiceIdentity.config, {})).toBe(
        'SchemaError(SERVICE_NAME is not set: give the name of this service (letters, digits, "_" and "-"), used as source_service and in durable consumer names\n' +
          '  at ["SERVICE_NAME"])'
      )
      const empty = yield* ServiceIdentity.config
        .parse(ConfigProvider.fromEnv({ env: { SERVICE_NAME: "" }, preserveEmptyStrings: true }))
        .pipe(Effect.flip)
      expect(empty.message).toContain("SERVICE_NAME is empty: give the name of this service")
      expect(yield* configMessage(ServiceIdentity.config, { SERVICE_NAME: "orders service" })).toBe(
        'SchemaError(SERVICE_NAME "orders service" is not a service name: use letters, digits, "_" and "-" only (it becomes part of durable consumer names)\n' +
          '  at ["SERVICE_NAME"])'
      )
    })
  )

  it.effect("layerConfig fails with that ConfigError; a set name, or a default when unset, is used", () =>
    Effect.gen(function* () {
      const build = (env: Record<string, string>, name?: Config.Config<string>) =>
        Layer.build(ServiceIdentity.layerConfig(name)).pipe(
          Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
          Effect.map(Context.get(ServiceIdentity.ServiceIdentity))
        )
      const missing = yield* Effect.flip(build({}))
      expect(missing._tag).toBe("ConfigError")
      expect(missing.message).toContain("SERVICE_NAME is not set")
      expect((yield* build({ SERVICE_NAME: "orders" })).name).toBe("orders")
      const withDefault = ServiceIdentity.config.pipe(Config.withDefault("glam-example"))
      expect((yield* build({}, withDefault)).name).toBe("glam-example")
      expect((yield* Effect.flip(build({ SERVICE_NAME: "a b" }, withDefault))).message).toContain(
        'SERVICE_NAME "a b" is not a service name'
      )
    })
  )
})
