/**
 * Certificates made for one test with `openssl`: a CA, a server certificate for 127.0.0.1 and
 * localhost signed by it, and a client certificate for servers that verify clients. Everything lives
 * in a temporary directory removed when the scope closes.
 */
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { NatsServerError } from "./NatsServer.js"

export interface Certificates {
  readonly dir: string
  readonly caFile: string
  readonly serverCertFile: string
  readonly serverKeyFile: string
  readonly clientCertFile: string
  readonly clientKeyFile: string
}

const openssl = existsSync("/usr/bin/openssl") ? "/usr/bin/openssl" : "openssl"

const run = (args: ReadonlyArray<string>, cwd: string) =>
  Effect.callback<void, NatsServerError>((resume) => {
    execFile(openssl, [...args], { cwd }, (error, _stdout, stderr) => {
      resume(
        error === null
          ? Effect.void
          : Effect.fail(new NatsServerError({ message: `openssl ${args[0]} failed: ${error.message}\n${stderr}` }))
      )
    })
  })

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

const signed = (name: string, subject: string, extensions: string, dir: string) =>
  Effect.gen(function* () {
    writeFileSync(join(dir, `${name}.ext`), extensions)
    yield* run(["req", ...EC_KEY, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", subject], dir)
    yield* run(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        `${name}.pem`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`
      ],
      dir
    )
  })

/** Makes a CA, a server certificate (127.0.0.1, localhost) and a client certificate in the current scope. */
export const makeCertificates = Effect.gen(function* () {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "glam-tls-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )
  yield* run(
    ["req", "-x509", ...EC_KEY, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=glam test CA"],
    dir
  )
  yield* signed(
    "server",
    "/CN=localhost",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    dir
  )
  yield* signed("client", "/CN=glam test client", "extendedKeyUsage=clientAuth\n", dir)
  const certificates: Certificates = {
    dir,
    caFile: join(dir, "ca.pem"),
    serverCertFile: join(dir, "server.pem"),
    serverKeyFile: join(dir, "server-key.pem"),
    clientCertFile: join(dir, "client.pem"),
    clientKeyFile: join(dir, "client-key.pem")
  }
  return certificates
})

/** nats-server's `tls` block for these certificates; `verifyClients` requires a client certificate. */
export const serverTlsConfig = (certificates: Certificates, options: { readonly verifyClients?: boolean } = {}) =>
  [
    "tls {",
    `  cert_file: ${JSON.stringify(certificates.serverCertFile)}`,
    `  key_file: ${JSON.stringify(certificates.serverKeyFile)}`,
    `  ca_file: ${JSON.stringify(certificates.caFile)}`,
    `  verify: ${options.verifyClients === true}`,
    "  timeout: 2",
    "}",
    ""
  ].join("\n")
