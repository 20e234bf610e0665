/**
 * A `nats-server` owned by one test: JetStream (unless told otherwise) on a free loopback port, a temporary store directory,
 * its log kept in memory (printed when the owning scope fails), everything removed on release.
 *
 * The server can be stopped (SIGTERM), killed (SIGKILL) and started again on the same port and store,
 * which is how the fault tests take the network away from a client.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Data, Duration, Effect, Exit, Layer } from "effect"

export class NatsServerError extends Data.TaggedError("NatsServerError")<{
  readonly message: string
  readonly log?: string
}> {}

export interface Options {
  /** Extra configuration in nats-server's config syntax (authorization blocks, tls, accounts...). */
  readonly config?: string
  /** Extra command-line arguments. */
  readonly args?: ReadonlyArray<string>
  /** Files to write next to the config before starting (e.g. certificates), by file name. */
  readonly files?: Readonly<Record<string, string>>
  /** `false`: a server without JetStream (no `-js`), for clients that must notice it is missing. Default `true`. */
  readonly jetstream?: boolean
}

export interface NatsServer {
  readonly url: string
  readonly port: number
  readonly host: string
  /** The server's working directory: config, store and any files passed in `options.files`. */
  readonly dir: string
  readonly storeDir: string
  /** Everything the server wrote to its log so far, across restarts. */
  readonly log: Effect.Effect<string>
  /** SIGTERM and wait for the process to exit. */
  readonly stop: Effect.Effect<void, NatsServerError>
  /** SIGKILL and wait for the process to exit. */
  readonly kill: Effect.Effect<void, NatsServerError>
  /** Start again on the same port and store; waits until the server accepts clients. */
  readonly start: Effect.Effect<void, NatsServerError>
  /** `stop` then `start`. */
  readonly restart: Effect.Effect<void, NatsServerError>
  readonly isRunning: Effect.Effect<boolean>
}

export class NatsServerService extends Context.Service<NatsServerService, NatsServer>()("test/NatsServer") {}

/** The nats-server binary: from PATH, else Debian's location. */
export const binary = (): string => {
  const fromPath = (process.env.PATH ?? "")
    .split(":")
    .filter((dir) => dir.length > 0)
    .map((dir) => join(dir, "nats-server"))
    .find((candidate) => existsSync(candidate))
  return fromPath ?? "/usr/sbin/nats-server"
}

/** A port that was free a moment ago on 127.0.0.1. */
export const freePort: Effect.Effect<number, NatsServerError> = Effect.callback<number, NatsServerError>((resume) => {
  const probe = createServer()
  probe.once("error", (cause) =>
    resume(Effect.fail(new NatsServerError({ message: `no free port: ${cause.message}` })))
  )
  probe.listen(0, "127.0.0.1", () => {
    const address = probe.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    probe.close(() => resume(Effect.succeed(port)))
  })
})

const READY = "Server is ready"
const START_TIMEOUT = Duration.seconds(15)
const STOP_TIMEOUT = Duration.seconds(10)

/**
 * Starts a server in the current scope. Release stops it (SIGKILL if it does not exit in time) and
 * deletes its directory; when the scope closes with a failure, the server's log is printed.
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const host = "127.0.0.1"
  const port = yield* freePort
  const dir = mkdtempSync(join(tmpdir(), "glam-nats-"))
  const storeDir = join(dir, "store")
  const configFile = join(dir, "server.conf")
  for (const [name, content] of Object.entries(options.files ?? {})) {
    writeFileSync(join(dir, name), content)
  }
  writeFileSync(configFile, options.config ?? "")
  const args = [
    "-a",
    host,
    "-p",
    String(port),
    ...(options.jetstream === false ? [] : ["-js"]),
    "-sd",
    storeDir,
    "-c",
    configFile,
    "--server_name",
    `test-${port}`,
    ...(options.args ?? [])
  ]

  let log = ""
  let child: ChildProcess | undefined

  const spawnOnce = Effect.callback<void, NatsServerError>((resume) => {
    const proc = spawn(binary(), args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
    child = proc
    let settled = false
    const settle = (effect: Effect.Effect<void, NatsServerError>) => {
      if (!settled) {
        settled = true
        resume(effect)
      }
    }
    const onData = (chunk: Buffer) => {
      log += chunk.toString("utf8")
      if (log.includes(READY, log.length - chunk.length - READY.length)) settle(Effect.void)
    }
    proc.stdout?.on("data", onData)
    proc.stderr?.on("data", onData)
    proc.once("error", (cause) =>
      settle(Effect.fail(new NatsServerError({ message: `cannot start ${binary()}: ${cause.message}`, log })))
    )
    proc.once("exit", (code, signal) => {
      if (child === proc) child = undefined
      settle(
        Effect.fail(new NatsServerError({ message: `nats-server exited early (code ${code}, signal ${signal})`, log }))
      )
    })
  }).pipe(
    Effect.timeoutOrElse({
      duration: START_TIMEOUT,
      orElse: () => Effect.fail(new NatsServerError({ message: "nats-server did not become ready in 15 s", log }))
    })
  )

  const signal = (name: NodeJS.Signals) =>
    Effect.suspend(() => {
      const proc = child
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return Effect.void
      return Effect.callback<void>((resume) => {
        proc.once("exit", () => resume(Effect.void))
        proc.kill(name)
      }).pipe(
        Effect.timeoutOrElse({
          duration: STOP_TIMEOUT,
          orElse: () =>
            Effect.fail(new NatsServerError({ message: `nats-server did not exit after ${name} in 10 s`, log }))
        })
      )
    })

  const server: NatsServer = {
    url: `nats://${host}:${port}`,
    port,
    host,
    dir,
    storeDir,
    log: Effect.sync(() => log),
    stop: signal("SIGTERM"),
    kill: signal("SIGKILL"),
    start: spawnOnce,
    restart: Effect.andThen(signal("SIGTERM"), spawnOnce),
    isRunning: Effect.sync(() => child !== undefined)
  }

  yield* Effect.acquireRelease(spawnOnce, (_, exit) =>
    Effect.gen(function* () {
      yield* signal("SIGTERM").pipe(
        Effect.catch(() => signal("SIGKILL")),
        Effect.ignore
      )
      if (Exit.isFailure(exit) || process.env.NATS_TEST_LOG === "1") {
        console.error(`--- nats-server ${server.url} log ---\n${log}--- end of log ---`)
      }
      rmSync(dir, { recursive: true, force: true })
    })
  )
  return server
})

/** A scoped layer with one server for a whole `layer(...)` block. */
export const layer = (options: Options = {}): Layer.Layer<NatsServerService, NatsServerError> =>
  Layer.effect(NatsServerService, make(options))

/** `authorization` block with user/password pairs (nats-server 2.9 syntax). */
export const usersConfig = (users: ReadonlyArray<{ readonly user: string; readonly password: string }>): string =>
  [
    "authorization {",
    "  users = [",
    ...users.map(
      ({ user, password }) => `    { user: ${JSON.stringify(user)}, password: ${JSON.stringify(password)} }`
    ),
    "  ]",
    "}",
    ""
  ].join("\n")

/** `authorization` block with a single token. */
export const tokenConfig = (token: string): string => `authorization {\n  token: ${JSON.stringify(token)}\n}\n`

/** `authorization` block admitting the users of these NKey public keys (`U...`). */
export const nkeyUsersConfig = (publicKeys: ReadonlyArray<string>): string =>
  ["authorization {", "  users = [", ...publicKeys.map((nkey) => `    { nkey: ${nkey} }`), "  ]", "}", ""].join("\n")
