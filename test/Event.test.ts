import { assert, describe, expect, it } from "@effect/vitest"
import { Context, DateTime, Effect, Exit, Option, Result, Schema, SchemaTransformation } from "effect"
import type * as Envelope from "../src/Envelope.js"
import * as Event from "../src/Event.js"

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

const Started = Schema.Struct({ job: Schema.String, attempts: Schema.Int })
const Stopped = Schema.Struct({ job: Schema.String, reason: Schema.NullOr(Schema.String) })

const JobStarted = Event.make("evt.jobs.job.started.v1", Started)
const JobStopped = Event.make("evt.jobs.job.stopped.v2", Stopped)
const StartJob = Event.make("cmd.jobs.start.v1", Started)

const envelopeOf = <A>(eventType: string, data: A): Envelope.Envelope<A> => ({
  eventId: "e-1",
  eventType,
  correlationId: "c-1",
  sourceService: "jobs",
  timestamp: DateTime.makeUnsafe("2026-11-26T12:33:37.123Z"),
  data
})

const succeeded = <A, E>(exit: Exit.Exit<A, E>): A => {
  assert(Exit.isSuccess(exit), `expected a success, got ${String(exit)}`)
  return exit.value
}

const failure = <E>(exit: Exit.Exit<unknown, E>): E => {
  assert(Exit.isFailure(exit), "expected a failure")
  const reason = exit.cause.reasons[0]
  assert(reason?._tag === "Fail", "expected a typed failure")
  return reason.error
}

describe("Event.make", () => {
  it("parses kind, service, action and version from the subject", () => {
    expect([JobStarted.kind, JobStarted.service, JobStarted.action, JobStarted.version]).toEqual([
      "evt",
      "jobs",
      "job.started",
      1
    ])
    expect([StartJob.kind, StartJob.service, StartJob.action, StartJob.version]).toEqual(["cmd", "jobs", "start", 1])
    expect(JobStopped.version).toBe(2)
    expect(Event.make("evt.a_b-c.x9.v12", Started).version).toBe(12)
    expect(Event.isEvent(JobStarted)).toBe(true)
    expect(Event.isEvent({ subject: "evt.jobs.job.started.v1" })).toBe(false)
  })

  it("throws InvalidSubject with the rule and the subject for a bad subject", () => {
    const bad = [
      ["", 'must start with "evt." or "cmd."'],
      ["merchant.created.v1", 'must start with "evt." or "cmd."'],
      ["dlq.merchant.created.v1", 'must start with "evt." or "cmd."'],
      ["evt.merchant.v1", "at least one action"],
      ["evt.v1", "at least one action"],
      ["cmd", "must end with a version"],
      ["evt.merchant.created", "must end with a version"],
      ["evt.merchant.created.v0", "must end with a version"],
      ["evt.merchant.created.v01", "must end with a version"],
      ["evt.merchant.created.V1", "must end with a version"],
      ["evt.Merchant.created.v1", 'segment "Merchant"'],
      ["evt.merchant.created!.v1", 'segment "created!"'],
      ["evt.merchant..created.v1", 'segment ""'],
      ["evt.merchant.created.v1.", 'must end with a version v<N>, N ≥ 1, not ""'],
      ["evt.merchant.*.v1", "wildcards"],
      ["evt.merchant.>", "wildcards"],
      ["evt merchant created v1", 'must start with "evt." or "cmd."']
    ] as const
    for (const [subject, reason] of bad) {
      const made = Result.try({ try: () => Event.make(subject, Started), catch: (error) => error })
      assert(Result.isFailure(made), `"${subject}" was accepted`)
      const thrown = made.failure
      assert(thrown instanceof Event.InvalidSubject, `"${subject}" threw something else`)
      expect(thrown._tag).toBe("InvalidSubject")
      expect(thrown.subject).toBe(subject)
      expect(thrown.message).toContain(`Invalid subject "${subject}"`)
      expect(thrown.message).toContain(reason)
      expect(thrown.message).toContain("evt.<service>.<action…>.v<N> or cmd.<service>.<action…>.v<N>")
    }
  })

  it.effect("validateSubject checks subjects that arrive at run time", () =>
    Effect.gen(function* () {
      expect(yield* Event.validateSubject("evt.merchant.created.v1")).toBe("evt.merchant.created.v1")
      const error = yield* Effect.flip(Event.validateSubject("evt.merchant.>"))
      expect(error._tag).toBe("InvalidSubject")
      expect(error.message).toContain("wildcards are not allowed")
    })
  )

  it.effect("encodes and decodes envelopes of its payload, as Effects and as Exits", () =>
    Effect.gen(function* () {
      const envelope = envelopeOf(JobStarted.subject, { job: "reindex", attempts: 1 })
      const raw = yield* JobStarted.encode(envelope)
      expect(yield* JobStarted.decode(raw)).toEqual(envelope)
      expect(Exit.isSuccess(JobStarted.decode(succeeded(JobStarted.encode(envelope))))).toBe(true)

      const error = yield* Effect.flip(JobStarted.encode({ ...envelope, data: { job: "reindex", attempts: 0.5 } }))
      expect(error._tag).toBe("EncodeError")
      expect(error.path).toBe("data.attempts")

      const mismatch = yield* Effect.flip(JobStopped.decode(raw, JobStopped.subject))
      expect(mismatch.stage).toBe("Payload")
      expect(mismatch.path).toBe("data.reason")
      expect(mismatch.subject).toBe(JobStopped.subject)
    })
  )

  it("types publishing and handling from the schema", () => {
    type Exact<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
    const payload: Exact<
      Event.Payload<typeof JobStopped>,
      { readonly job: string; readonly reason: string | null }
    > = true
    const encoded: Exact<Event.Encoded<typeof JobStarted>, { readonly job: string; readonly attempts: number }> = true
    const subject: Exact<(typeof JobStopped)["subject"], "evt.jobs.job.stopped.v2"> = true
    expect([payload, encoded, subject]).toEqual([true, true, true])
    // @ts-expect-error a payload of another event is refused
    JobStopped.encode(envelopeOf(JobStopped.subject, { job: "x", attempts: 1 }))
  })

  it("refuses payload schemas that need services to decode", () => {
    class Tenants extends Context.Service<Tenants, { readonly canonical: (name: string) => string }>()(
      "test/Tenants"
    ) {}
    const TenantName = Schema.String.pipe(
      Schema.decodeTo(
        Schema.String,
        SchemaTransformation.transformEffect({
          decode: (name: string) => Effect.map(Tenants, (tenants) => tenants.canonical(name)),
          encode: (name: string) => Effect.succeed(name)
        })
      )
    )
    const definition = () =>
      // @ts-expect-error DecodingServices must be never: a message is decoded with no services at hand
      Event.make("evt.tenants.renamed.v1", Schema.Struct({ name: TenantName }))
    expect(typeof definition).toBe("function")
  })
})

describe("Event.group", () => {
  const group = Event.group(JobStarted, JobStopped, StartJob)

  it("finds events by exact subject", () => {
    expect(group.subjects).toEqual(["evt.jobs.job.started.v1", "evt.jobs.job.stopped.v2", "cmd.jobs.start.v1"])
    expect(group.bySubject("evt.jobs.job.stopped.v2")).toEqual(Option.some(JobStopped))
    expect(group.bySubject("evt.jobs.job.stopped.v1")).toEqual(Option.none())
    expect(group.bySubject("evt.jobs.>")).toEqual(Option.none())
  })

  it.effect("decodes a message by the event of its subject, narrowed by subject", () =>
    Effect.gen(function* () {
      const raw = yield* JobStopped.encode(envelopeOf(JobStopped.subject, { job: "reindex", reason: null }))
      const decoded = yield* group.decode("evt.jobs.job.stopped.v2", raw)
      expect(decoded.event).toBe(JobStopped)
      assert(decoded.subject === "evt.jobs.job.stopped.v2")
      const reason: string | null = decoded.envelope.data.reason
      expect(reason).toBe(null)
    })
  )

  it("fails at the Envelope stage for a subject no event of the group has", () => {
    const raw = succeeded(JobStarted.encode(envelopeOf(JobStarted.subject, { job: "x", attempts: 1 })))
    const error = failure(group.decode("evt.jobs.job.paused.v1", raw))
    expect(error.stage).toBe("Envelope")
    expect(error.message).toContain('no event of the group has the subject "evt.jobs.job.paused.v1"')
    expect(error.message).toContain("evt.jobs.job.started.v1")
    expect(error.raw).toEqual(raw)
    expect([error.subject, error.eventId, error.correlationId]).toEqual(["evt.jobs.job.paused.v1", "e-1", "c-1"])

    const garbage = failure(group.decode("evt.jobs.job.paused.v1", bytes("not json")))
    expect(garbage.stage).toBe("Envelope")
    expect(garbage.eventId).toBe(undefined)
  })

  it("keeps the decoding stage of the event it found", () => {
    expect(failure(group.decode(JobStarted.subject, bytes("[]"))).stage).toBe("Json")
  })

  it("refuses a subject twice", () => {
    expect(() => Event.group(JobStarted, Event.make("evt.jobs.job.started.v1", Stopped))).toThrow(
      'Invalid subject "evt.jobs.job.started.v1": it appears twice in the group'
    )
  })
})
