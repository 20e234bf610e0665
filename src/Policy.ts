/**
 * What happens to a message when its handling fails: a declarative policy built from Effect `Schedule`s.
 *
 * A policy maps each failure to a chain of steps, tried in order:
 * - `retry(schedule)`: run the handler again in this process, as long as the schedule goes on;
 * - `redeliver(schedule)`: `nak` the message with the delay the schedule gives at this message's delivery
 *   count (the server holds the delay, so it survives a crash of this process), as long as it goes on;
 * - `ack` (drop it on purpose, logged), `term` (never deliver it again), `deadLetter` (write it to the
 *   dead-letter stream, then settle it).
 * A chain whose schedules are all used up ends in `deadLetter`. Past `maxDeliveries` a message that would
 * be redelivered is dead-lettered instead.
 *
 * Rules are per error tag, and the types check the rule set against the handler's error union: a tag
 * without a rule is a compile error naming the tag, unless a `default` rule is given. A policy written
 * where it is given to its subscriber needs no type argument: its rules are checked against the
 * handler's errors there. Decode failures, defects and
 * interruptions have their own rules with safe defaults. A policy is compiled once, when its subscriber
 * is built; nothing is built per message but the state of a schedule in use.
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect, Option, Pipeable, Pull, Schedule } from "effect"
import { dual } from "effect/Function"
import type { DecodeError } from "./Envelope.js"
import { growingDelay } from "./internal/deadLetter/writeOutages.js"
import { tagOf } from "./internal/errorText.js"

const RuleTypeId = "~@glam/messaging/Policy/Rule" as const

/**
 * One step of a rule.
 *
 * @category models
 * @since 0.1.0
 */
export type Step =
  | { readonly _tag: "Retry"; readonly schedule: Schedule.Schedule<unknown, unknown> }
  | { readonly _tag: "Redeliver"; readonly schedule: Schedule.Schedule<unknown, unknown> }
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Term" }
  | { readonly _tag: "DeadLetter" }

/**
 * A chain of steps for one kind of failure.
 *
 * @category models
 * @since 0.1.0
 */
export interface Rule extends Pipeable.Pipeable {
  readonly [RuleTypeId]: typeof RuleTypeId
  readonly steps: ReadonlyArray<Step>
}

const RuleProto = {
  [RuleTypeId]: RuleTypeId,
  pipe() {
    // biome-ignore lint/complexity/noArguments: Pipeable's contract passes the functions as arguments.
    return Pipeable.pipeArguments(this, arguments)
  }
}

const makeRule = (steps: ReadonlyArray<Step>): Rule => {
  const rule = Object.create(RuleProto)
  rule.steps = steps
  return rule
}

/**
 * Acknowledge: the message is dropped on purpose (and logged).
 *
 * @category constructors
 * @since 0.1.0
 */
export const ack: Rule = makeRule([{ _tag: "Ack" }])

/**
 * Terminate: the server never delivers the message again. Nothing is written to the dead-letter stream.
 *
 * @category constructors
 * @since 0.1.0
 */
export const term: Rule = makeRule([{ _tag: "Term" }])

/**
 * Write the message to the dead-letter stream, then terminate it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const deadLetter: Rule = makeRule([{ _tag: "DeadLetter" }])

/**
 * Run the handler again in this process while `schedule` goes on (e.g. `Schedule.recurs(3)`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const retry = <O>(schedule: Schedule.Schedule<O, unknown>): Rule =>
  makeRule([{ _tag: "Retry", schedule: Schedule.map(schedule, () => undefined) }])

/**
 * `nak` the message with the delay `schedule` gives for this delivery (delivery 1 fails: its first delay),
 * while the schedule goes on.
 *
 * @category constructors
 * @since 0.1.0
 */
export const redeliver = <O>(schedule: Schedule.Schedule<O, unknown>): Rule =>
  makeRule([{ _tag: "Redeliver", schedule: Schedule.map(schedule, () => undefined) }])

/**
 * Chains two rules: `next` applies once `self`'s schedules are used up.
 *
 * @category combinators
 * @since 0.1.0
 */
export const andThen: {
  (next: Rule): (self: Rule) => Rule
  (self: Rule, next: Rule): Rule
} = dual(2, (self: Rule, next: Rule): Rule => makeRule([...self.steps, ...next.steps]))

/**
 * The backoff used by the defaults: 1 s doubling, jittered, each delay at most 5 minutes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const defaultBackoff: Schedule.Schedule<Duration.Duration> = Schedule.min([
  Schedule.exponential("1 second", 2).pipe(Schedule.jittered),
  Schedule.spaced("5 minutes")
])

/**
 * Redeliver with `defaultBackoff` until `maxDeliveries`, then dead-letter.
 *
 * @category constructors
 * @since 0.1.0
 */
export const redeliverWithBackoff: Rule = redeliver(defaultBackoff)

type TaggedMember<E> = E extends { readonly _tag: infer Tag extends string } ? Tag : never
type HasUntagged<E> = [Exclude<E, { readonly _tag: string }>] extends [never] ? false : true

/**
 * The settings every policy has, whatever its handler's errors.
 *
 * @category models
 * @since 0.1.0
 */
export interface CommonOptions {
  /** A delivery with this count or more is not redelivered again: it is dead-lettered. Default 5. */
  readonly maxDeliveries?: number | undefined
  /** Bytes that are not JSON, not an envelope, or whose payload does not match its event. Default `deadLetter`. */
  readonly decodeFailure?: Rule | undefined
  /** A thrown exception or other defect in the handler. Default `redeliverWithBackoff`. */
  readonly defect?: Rule | undefined
}

/**
 * The options of `make<E>`: a rule for every tag of `E`, or a `default` rule for the tags left out.
 *
 * @category models
 * @since 0.1.0
 */
export type Options<E> = CommonOptions &
  (HasUntagged<E> extends true
    ? { readonly rules?: { readonly [K in TaggedMember<E>]?: Rule }; readonly default: Rule }
    : // The member with every rule comes last: TypeScript explains a failed match against the last of
      // equally close members, so a missing rule is reported as "Property 'B' is missing", not as a
      // missing `default`.
        | { readonly rules?: { readonly [K in TaggedMember<E>]?: Rule }; readonly default: Rule }
        | { readonly rules: { readonly [K in TaggedMember<E>]: Rule }; readonly default?: Rule | undefined })

/**
 * The errors a policy built without a type argument is for: those tagged with the tags it has rules for.
 * A tagged error `B` with no rule is refused where the policy meets its handler:
 * `Type 'B' is not assignable to type 'Tagged<"A">'`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Tagged<Tag extends string> {
  readonly _tag: Tag
}

/**
 * The error type of a policy built from its rules: every error when a `default` is given, else the tags
 * of the rules (no rules: a handler that does not fail).
 *
 * @category models
 * @since 0.1.0
 */
export type ErrorOfRules<Tag extends string, Default> = [Default] extends [Rule]
  ? unknown
  : string extends Tag
    ? never
    : [Tag] extends [never]
      ? never
      : Tagged<Tag>

/**
 * A policy for handlers that fail with `E`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Policy<in E> {
  readonly _E: (error: E) => void
  readonly rules: Readonly<Record<string, Rule | undefined>>
  readonly default: Rule
  readonly decodeFailure: Rule
  readonly defect: Rule
  readonly maxDeliveries: number
}

/**
 * Builds a policy.
 *
 * With a type argument, the rule set is checked against the error union `E`: a tag without a rule (and
 * no `default`) is named in the error, and so is a rule for a tag `E` does not have. Without one, the
 * policy is for the errors its rules name (`Tagged<"A" | "B">`, or every error with a `default`), which
 * is checked against the handler's errors where the policy is given to `Subscriber.layer` or
 * `Subscriber.make`: written there, a policy needs no type argument.
 *
 * @example
 * const policy = Policy.make<EmailError>({
 *   rules: {
 *     ProviderUnavailable: Policy.retry(Schedule.recurs(3)).pipe(Policy.andThen(Policy.redeliver(backoff))),
 *     InvalidAddress: Policy.deadLetter,
 *     Unsubscribed: Policy.ack
 *   },
 *   maxDeliveries: 6
 * })
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: {
  // Two type parameters, both inferred: `make<E>` with one type argument never picks this signature.
  <Tag extends string, Default extends Rule | undefined>(
    options: CommonOptions & { readonly rules?: { readonly [K in Tag]: Rule }; readonly default?: Default }
  ): Policy<ErrorOfRules<Tag, Default>>
  <E>(options: Options<E>): Policy<E>
} = (
  options: CommonOptions & {
    readonly rules?: Readonly<Record<string, Rule | undefined>> | undefined
    readonly default?: Rule | undefined
  }
): Policy<unknown> => {
  const maxDeliveries = options.maxDeliveries ?? 5
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new RangeError(`Policy: maxDeliveries must be a positive integer, got ${maxDeliveries}`)
  }
  return {
    _E: () => undefined,
    rules: options.rules ?? {},
    default: options.default ?? redeliverWithBackoff,
    decodeFailure: options.decodeFailure ?? deadLetter,
    defect: options.defect ?? redeliverWithBackoff,
    maxDeliveries
  }
}

/**
 * The policy of a subscriber given none: defects and errors redeliver with backoff, decode failures
 * dead-letter. A handler that can fail must be given a policy; this one says "redeliver every error".
 *
 * @category constructors
 * @since 0.1.0
 */
export const defaults: Policy<unknown> = make<unknown>({ default: redeliverWithBackoff })

/**
 * Why a handling failed, as the policy sees it.
 *
 * @category models
 * @since 0.1.0
 */
export type Failure<E> =
  | { readonly _tag: "Error"; readonly error: E }
  | { readonly _tag: "Defect"; readonly defect: unknown }
  | { readonly _tag: "Decode"; readonly error: DecodeError }

/**
 * What to do with the message in the end.
 *
 * @category models
 * @since 0.1.0
 */
export type Settlement =
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Nak"; readonly delay: Duration.Duration }
  | { readonly _tag: "Term" }
  | { readonly _tag: "DeadLetter"; readonly maxDeliveriesReached: boolean }

/**
 * A policy ready to run: the questions a subscriber asks it about a failed message, each answered from
 * the rules compiled once.
 *
 * @category models
 * @since 0.1.0
 */
export interface Compiled<E> {
  readonly maxDeliveries: number
  /** The rule for a failure. */
  readonly ruleFor: (failure: Failure<E>) => Rule
  /** Whether the failure's rule starts with in-process retries: only then is the handler run again here. */
  readonly retries: (failure: Failure<E>) => boolean
  /** For `Effect.retry`: goes on while the failure's rule starts with a `retry` step that is not used up. */
  readonly retrySchedule: Schedule.Schedule<unknown, Failure<E>>
  /** The settlement of a failure that in-process retries did not fix, at this delivery count. */
  readonly settle: (failure: Failure<E>, deliveryCount: number) => Effect.Effect<Settlement>
  /**
   * When a message whose dead letter could not be written at this delivery comes back: the delay of the
   * `defect` rule at this delivery (at the last delivery it redelivers, for those past it), else one
   * doubling from 1 second to at most 1 minute.
   */
  readonly redeliveryDelay: (deliveryCount: number) => Effect.Effect<Duration.Duration>
}

/** The delay `schedule` gives at its `attempt`-th step (1-based), or none when it has stopped by then. */
const delayAt = (
  schedule: Schedule.Schedule<unknown, unknown>,
  attempt: number
): Effect.Effect<Option.Option<Duration.Duration>> =>
  Effect.gen(function* () {
    const step = yield* Schedule.toStep(schedule)
    let delay = Duration.zero
    for (let i = 1; i <= attempt; i++) {
      const next = yield* step(0, undefined).pipe(
        Effect.map(([, d]) => Option.some(d)),
        Pull.catchDone(() => Effect.succeedNone)
      )
      if (Option.isNone(next)) return Option.none()
      delay = next.value
    }
    return Option.some(delay)
  })

/**
 * Compiles a policy once, for a subscriber.
 *
 * @category constructors
 * @since 0.1.0
 */
export const compile = <E>(policy: Policy<E>): Compiled<E> => {
  const ruleFor = (failure: Failure<E>): Rule => {
    switch (failure._tag) {
      case "Decode":
        return policy.decodeFailure
      case "Defect":
        return policy.defect
      case "Error": {
        const tag = tagOf(failure.error)
        return (tag === undefined ? undefined : policy.rules[tag]) ?? policy.default
      }
    }
  }

  // One retry state per rule and step, created lazily for each run of `Effect.retry`.
  const retrySchedule: Schedule.Schedule<unknown, Failure<E>> = Schedule.fromStep(
    Effect.sync(() => {
      const steps = new Map<
        Step,
        (now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], never, unknown>
      >()
      return (now: number, failure: Failure<E>) =>
        Effect.gen(function* () {
          const first = ruleFor(failure).steps[0]
          if (first === undefined || first._tag !== "Retry") return yield* Cause.done()
          let step = steps.get(first)
          if (step === undefined) {
            step = yield* Schedule.toStep(first.schedule)
            steps.set(first, step)
          }
          return yield* step(now, failure)
        })
    })
  )

  const settleBy = (rule: Rule, deliveryCount: number): Effect.Effect<Settlement> =>
    Effect.gen(function* () {
      for (const step of rule.steps) {
        switch (step._tag) {
          case "Retry":
            continue
          case "Ack":
            return { _tag: "Ack" }
          case "Term":
            return { _tag: "Term" }
          case "DeadLetter":
            return { _tag: "DeadLetter", maxDeliveriesReached: false }
          case "Redeliver": {
            const delay = yield* delayAt(step.schedule, deliveryCount)
            if (Option.isNone(delay)) continue
            if (deliveryCount >= policy.maxDeliveries) return { _tag: "DeadLetter", maxDeliveriesReached: true }
            return { _tag: "Nak", delay: delay.value }
          }
        }
      }
      return { _tag: "DeadLetter", maxDeliveriesReached: false }
    })

  const retries = (failure: Failure<E>): boolean => ruleFor(failure).steps[0]?._tag === "Retry"

  const settle = (failure: Failure<E>, deliveryCount: number): Effect.Effect<Settlement> =>
    settleBy(ruleFor(failure), deliveryCount)

  // The defect rule asked at a delivery it still redelivers at: past `maxDeliveries - 1` it would answer
  // with a dead letter, which is what could not be written.
  const redeliveryDelay = (deliveryCount: number): Effect.Effect<Duration.Duration> =>
    Effect.map(settleBy(policy.defect, Math.max(1, Math.min(deliveryCount, policy.maxDeliveries - 1))), (settlement) =>
      settlement._tag === "Nak"
        ? settlement.delay
        : Duration.millis(growingDelay(Duration.seconds(1), Duration.minutes(1), deliveryCount))
    )

  return { maxDeliveries: policy.maxDeliveries, ruleFor, retries, retrySchedule, settle, redeliveryDelay }
}
