import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { nkeys } from "@nats-io/transport-node"
import { Effect, Redacted } from "effect"
import * as NatsClient from "../src/NatsClient.js"
import { connectAttempts, expectNoSecret, failureOf, noRetry, withCapturedLogs } from "./support/ConnectFailures.js"
import * as NatsServer from "./support/NatsServer.js"
import { makeCertificates, serverTlsConfig } from "./support/tls.js"

/** Connecting with credentials: each kind connects when right, fails as AuthFailed when wrong, and never shows the secret. */
describe("NatsClient", () => {
  describe("authentication", () => {
    it.live("user and password: the right pair connects; a wrong one is AuthFailed, not retried, never shown", () =>
      Effect.gen(function* () {
        const password = "correct-horse-battery-staple"
        const wrong = "wrong-password-1234"
        const server = yield* NatsServer.make({ config: NatsServer.usersConfig([{ user: "alice", password }]) })
        const good = yield* NatsClient.make({ servers: server.url, user: "alice", password: Redacted.make(password) })
        yield* good.health

        const { exit, lines } = yield* withCapturedLogs(
          NatsClient.make({ servers: server.url, user: "alice", password: Redacted.make(wrong), connectRetry: noRetry })
        )
        const error = failureOf(exit)
        expect(error.reason._tag).toBe("AuthFailed")
        expect(error.isRetryable).toBe(false)
        expect(connectAttempts(lines)).toBe(1)
        expectNoSecret(wrong, error, lines)
        expectNoSecret(password, error, lines)
      })
    )

    it.live("token: the right one connects; a wrong one is AuthFailed and never shown", () =>
      Effect.gen(function* () {
        const token = "s3cr3t-token-abcdef"
        const wrong = "not-the-token-987654"
        const server = yield* NatsServer.make({ config: NatsServer.tokenConfig(token) })
        const good = yield* NatsClient.make({ servers: server.url, token: Redacted.make(token) })
        yield* good.health

        const { exit, lines } = yield* withCapturedLogs(
          NatsClient.make({ servers: server.url, token: Redacted.make(wrong), connectRetry: noRetry })
        )
        const error = failureOf(exit)
        expect(error.reason._tag).toBe("AuthFailed")
        expect(connectAttempts(lines)).toBe(1)
        expectNoSecret(wrong, error, lines)
        expectNoSecret(token, error, lines)
      })
    )

    it.live(
      "NKey: the admitted user's seed connects; another user's seed is AuthFailed; a malformed seed fails early",
      () =>
        Effect.gen(function* () {
          const admitted = nkeys.createUser()
          const stranger = nkeys.createUser()
          const seedOf = (pair: nkeys.KeyPair) => new TextDecoder().decode(pair.getSeed())
          const server = yield* NatsServer.make({ config: NatsServer.nkeyUsersConfig([admitted.getPublicKey()]) })

          const good = yield* NatsClient.make({ servers: server.url, nkeySeed: Redacted.make(seedOf(admitted)) })
          yield* good.health

          const refused = yield* withCapturedLogs(
            NatsClient.make({ servers: server.url, nkeySeed: Redacted.make(seedOf(stranger)), connectRetry: noRetry })
          )
          const error = failureOf(refused.exit)
          expect(error.reason._tag).toBe("AuthFailed")
          expectNoSecret(seedOf(stranger), error, refused.lines)

          const malformed = "SUNOTAREALSEEDATALL0123456789"
          const early = yield* withCapturedLogs(
            NatsClient.make({ servers: server.url, nkeySeed: Redacted.make(malformed) })
          )
          const invalid = failureOf(early.exit)
          expect(invalid.message).toContain("NKey seed")
          expect(connectAttempts(early.lines)).toBe(0)
          expectNoSecret(malformed, invalid, early.lines)
        })
    )

    it.live(
      "TLS: a client trusting the test CA connects (with a client certificate); one that does not is AuthFailed",
      () =>
        Effect.gen(function* () {
          const certificates = yield* makeCertificates
          const server = yield* NatsServer.make({ config: serverTlsConfig(certificates, { verifyClients: true }) })
          const tls = {
            caFile: certificates.caFile,
            certFile: certificates.clientCertFile,
            keyFile: certificates.clientKeyFile
          }
          const byIp = yield* NatsClient.make({ servers: server.url, tls })
          yield* byIp.health
          const byName = yield* NatsClient.make({ servers: `tls://localhost:${server.port}`, tls })
          yield* byName.health

          const untrusting = yield* withCapturedLogs(
            NatsClient.make({
              servers: server.url,
              tls: { certFile: certificates.clientCertFile, keyFile: certificates.clientKeyFile },
              connectRetry: noRetry
            })
          )
          const error = failureOf(untrusting.exit)
          expect(error.reason._tag).toBe("AuthFailed")
          expect(error.message).toContain("TLS")
          expect(connectAttempts(untrusting.lines)).toBe(1)
        })
    )

    it.live("a missing certificate or creds file is a typed error naming the file, before any connect attempt", () =>
      Effect.gen(function* () {
        const certificates = yield* makeCertificates
        const missingCa = join(certificates.dir, "no-such-ca.pem")
        const tls = yield* withCapturedLogs(NatsClient.make({ tls: { caFile: missingCa } }))
        expect(failureOf(tls.exit).message).toContain(missingCa)
        expect(connectAttempts(tls.lines)).toBe(0)

        const missingCreds = join(certificates.dir, "no-such.creds")
        const creds = yield* withCapturedLogs(NatsClient.make({ credsFile: missingCreds }))
        expect(failureOf(creds.exit).message).toContain(missingCreds)
        expect(connectAttempts(creds.lines)).toBe(0)

        const garbageCreds = join(certificates.dir, "garbage.creds")
        writeFileSync(garbageCreds, "this is not a creds file\n")
        const garbage = yield* withCapturedLogs(NatsClient.make({ credsFile: garbageCreds }))
        expect(failureOf(garbage.exit).message).toContain(garbageCreds)
        expect(connectAttempts(garbage.lines)).toBe(0)

        const halfPair = yield* Effect.exit(NatsClient.make({ tls: { certFile: certificates.clientCertFile } }))
        expect(failureOf(halfPair).message).toContain("keyFile")
      })
    )
  })
})
