/**
 * Whether spans are worth building. Effect's default tracer (`Tracer.nativeTracer`) keeps spans in
 * memory and exports them nowhere; with it installed, or with tracing disabled, a span per message is
 * pure cost. The hot paths ask once per fiber context and skip their spans when this is `false`.
 */
import { Effect, type Fiber, References, Tracer } from "effect"

/** `true` when a tracer other than the native one is installed and tracing is enabled. */
export const isTracing: Effect.Effect<boolean> = Effect.gen(function* () {
  const enabled = yield* References.TracerEnabled
  if (!enabled) return false
  const tracer = yield* Tracer.Tracer
  return tracer !== Tracer.nativeTracer
})

/** The same answer from a running fiber's context cache, without an Effect: for per-call checks. */
export const isTracingIn = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
  const { tracer, tracerEnabled } = fiber.cache
  return tracerEnabled && tracer !== undefined && tracer !== Tracer.nativeTracer
}
