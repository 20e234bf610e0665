#!/usr/bin/env node
/**
 * The `glam-messaging` executable: streams, consumers, publishing and tailing events, dead letters,
 * health and the AsyncAPI document, for operators and scripts.
 *
 * A failure is one line on standard error and exit code 1 (130 when interrupted); the library's
 * warnings go to standard error too, so that standard output holds only what the command printed.
 */
import { readFileSync } from "node:fs"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer, References } from "effect"
import { Command } from "effect/cli"
import { asyncapi } from "./asyncapi.js"
import { dlq } from "./dlq.js"
import { lineOf } from "./errors.js"
import { publish, tail } from "./events.js"
import { health } from "./health.js"
import * as output from "./output.js"
import { consumers, streams } from "./streams.js"

const packageJson: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
const version =
  typeof packageJson === "object" && packageJson !== null && "version" in packageJson
    ? String(packageJson.version)
    : "unknown"

const root = Command.make("glam-messaging").pipe(
  Command.withDescription("Operate GLAM messaging on NATS JetStream: streams, consumers, events, dead letters"),
  Command.withSubcommands([streams, consumers, publish, tail, dlq, health, asyncapi])
)

const program = Command.run(root, { version }).pipe(
  Effect.tapCause((cause) =>
    Effect.sync(() => {
      const text = lineOf(cause)
      if (text !== undefined) globalThis.console.error(`error: ${text}`)
    })
  ),
  Effect.provide(
    Layer.mergeAll(NodeServices.layer, output.stderrLogger, Layer.succeed(References.MinimumLogLevel, "Error"))
  )
)

NodeRuntime.runMain(program, { disableErrorReporting: true })
