/**
 * The error of a topology that cannot be: a spec that is not valid, or drift the server cannot apply in
 * place. It names the stream, the consumer and the field, with the current and desired values for
 * drift. `Topology` re-exports it as `Topology.TopologyError`.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

/**
 * A spec that is not valid, or drift the server cannot apply in place, naming the stream, the consumer
 * and the field (with the current and desired values for drift).
 *
 * @category errors
 * @since 0.1.0
 */
export class TopologyError extends Schema.TaggedError<TopologyError>()("TopologyError", {
  message: Schema.String,
  field: Schema.String,
  stream: Schema.optional(Schema.String),
  consumer: Schema.optional(Schema.String),
  current: Schema.optional(Schema.String),
  desired: Schema.optional(Schema.String)
}) {}

/**
 * The stream, or the consumer of a stream, that a spec, an error or a log line is about.
 *
 * @category models
 * @since 0.2.0
 */
export interface Where {
  readonly stream: string
  readonly consumer?: string | undefined
}

/**
 * `stream X` or `consumer X/Y`, for messages.
 *
 * @category constructors
 * @since 0.2.0
 */
export const describeWhere = (where: Where): string =>
  where.consumer === undefined ? `stream ${where.stream}` : `consumer ${where.stream}/${where.consumer}`

/**
 * The error of a field that is not valid, with `problem` saying why.
 *
 * @category constructors
 * @since 0.2.0
 */
export const invalid = (where: Where, field: string, problem: string): TopologyError =>
  new TopologyError({ ...where, field, message: `${describeWhere(where)}: ${field} ${problem}` })
