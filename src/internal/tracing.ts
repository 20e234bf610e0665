/**
 * Whether spans are worth building. Effect's default tracer (`Tracer.nativeTracer`) keeps spans in
 * memory and exports them nowhere; with it installed, or with tracing disabled, a span per message is
 * pure cost. The hot paths ask this and skip their spans when it is `false`.
 */
import { Effect, type Fiber, Tracer } from "effect"
import type { Headers } from "../Broker.js"
import { traceHeaders } from "../Envelope.js"

/**
 * `true` when a tracer other than the native one is installed and tracing is enabled, read from a
 * running fiber's context cache: two field reads, cheap enough for a per-call check.
 */
export const isTracingIn = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
  const { tracer, tracerEnabled } = fiber.cache
  return tracerEnabled && tracer !== undefined && tracer !== Tracer.nativeTracer
}

/** The same question for the current fiber, as an Effect. */
export const isTracing: Effect.Effect<boolean> = Effect.withFiber((fiber) => Effect.succeed(isTracingIn(fiber)))

/** Whether the publisher sent W3C trace context (checked before parsing, which costs more). */
export const hasTraceContext = (headers: Headers): boolean => {
  for (const [name] of headers) if (name.length === 11 && name.toLowerCase() === "traceparent") return true
  return false
}

const noHeaders: Headers = []

/**
 * The GLAM envelope's NATS headers besides `Nats-Msg-Id` (the broker sets that from the message id):
 * the W3C trace context of `span`, then the caller's own.
 */
export const headersWithTrace = (
  span: Tracer.AnySpan | undefined,
  extra: Readonly<Record<string, string>> | undefined
): Headers => {
  const trace = span === undefined ? noHeaders : traceHeaders(span)
  if (extra === undefined) return trace
  return [...trace, ...Object.entries(extra)]
}
