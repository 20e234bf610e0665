/**
 * `Topology.plan`: what `provision` would do, entry by entry, and that asking changes nothing on the
 * server. On a real nats-server, and on the in-memory broker made to keep replicas as a cluster does
 * for the replicas rule.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Broker } from "../src/Broker.js"
import * as Topology from "../src/Topology.js"
import { clusterLike, Env, publish } from "./support/TopologyFixtures.js"

/** Everything the server says about the streams and consumers whose names start with `prefix`. */
const serverState = (prefix: string) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const streams = (yield* broker.listStreams).filter((info) => info.config.name.startsWith(prefix))
    const consumers = yield* Effect.forEach(streams, (info) => broker.listConsumers(info.config.name))
    return { streams, consumers }
  })

/** An entry without its reasons, and the reasons as the fields a reader checks. */
const brief = (entry: Topology.PlanEntry) => ({
  ...entry,
  reasons: entry.reasons.map(({ field, current, desired }) => ({ field, current, desired }))
})

describe("Topology.plan", () => {
  layer(Env)("over a real nats-server", (it) => {
    it.effect("on an empty broker every entry is create, and nothing is created", () =>
      Effect.gen(function* () {
        const topology = Topology.make({
          streams: [
            { name: "PLAN_ORDERS", subjects: ["plan.orders.>"] },
            { name: "PLAN_AUDIT", subjects: ["plan.audit.>"], maxAge: "1 day" }
          ],
          consumers: [
            { stream: "PLAN_ORDERS", name: "billing", filterSubject: "plan.orders.paid" },
            { stream: "PLAN_AUDIT", name: "archiver" }
          ]
        })
        const planned = yield* Topology.plan(topology)
        expect(planned).toStrictEqual({
          streams: [
            { stream: "PLAN_ORDERS", action: "create", changes: [], reasons: [] },
            { stream: "PLAN_AUDIT", action: "create", changes: [], reasons: [] }
          ],
          consumers: [
            { stream: "PLAN_ORDERS", consumer: "billing", action: "create", changes: [], reasons: [] },
            { stream: "PLAN_AUDIT", consumer: "archiver", action: "create", changes: [], reasons: [] }
          ]
        })
        expect(yield* serverState("PLAN_")).toStrictEqual({ streams: [], consumers: [] })

        yield* Topology.provision(topology)
        const again = yield* Topology.plan(topology)
        expect([...again.streams, ...again.consumers].map((entry) => entry.action)).toStrictEqual([
          "unchanged",
          "unchanged",
          "unchanged",
          "unchanged"
        ])
        expect([...again.streams, ...again.consumers].every((entry) => entry.changes.length === 0)).toBe(true)
      })
    )

    it.effect("updatable drift is an update with each field's old and new value; existing streams come first", () =>
      Effect.gen(function* () {
        yield* Topology.provision(
          Topology.make({
            streams: [{ name: "DRIFTING", subjects: ["drifting.>"], maxAge: "1 hour" }],
            consumers: [{ stream: "DRIFTING", name: "worker" }]
          })
        )
        yield* publish("drifting.a", "kept as it is")
        const before = yield* serverState("DRIFTING")
        const planned = yield* Topology.plan(
          Topology.make({
            streams: [
              { name: "DRIFTING_NEW", subjects: ["drifting-new.>"] },
              { name: "DRIFTING", subjects: ["drifting.>"], maxAge: "2 hours", maxMessages: 100 }
            ],
            consumers: [{ stream: "DRIFTING", name: "worker", ackWait: "10 seconds" }]
          })
        )
        expect(planned).toStrictEqual({
          streams: [
            {
              stream: "DRIFTING",
              action: "update",
              changes: [
                { field: "maxAge", current: "1h", desired: "2h" },
                { field: "maxMessages", current: "unlimited", desired: "100" }
              ],
              reasons: []
            },
            { stream: "DRIFTING_NEW", action: "create", changes: [], reasons: [] }
          ],
          consumers: [
            {
              stream: "DRIFTING",
              consumer: "worker",
              action: "update",
              changes: [{ field: "ackWait", current: "30s", desired: "10s" }],
              reasons: []
            }
          ]
        })
        expect(yield* serverState("DRIFTING")).toStrictEqual(before)
      })
    )

    it.effect(
      "drift the server cannot apply is refused with every reason, where provision fails at the first; nothing changes",
      () =>
        Effect.gen(function* () {
          const base: Topology.StreamSpec = { name: "RIGID", subjects: ["rigid.>"], maxAge: "1 hour" }
          yield* Topology.provision(
            Topology.make({ streams: [base], consumers: [{ stream: "RIGID", name: "reader" }] })
          )
          yield* publish("rigid.a", "one")
          const before = yield* serverState("RIGID")
          const drifted = Topology.make({
            streams: [
              { ...base, maxAge: "3 hours", storage: "memory", retention: "workqueue" },
              { name: "RIGID_OTHER", subjects: ["rigid-other.>"] }
            ],
            consumers: [
              { stream: "RIGID", name: "reader", deliverPolicy: "new", maxAckPending: 5 },
              { stream: "NOWHERE", name: "lost" }
            ]
          })
          const planned = yield* Topology.plan(drifted)
          expect(planned.streams.map(brief)).toStrictEqual([
            {
              stream: "RIGID",
              action: "refused",
              changes: [{ field: "maxAge", current: "1h", desired: "3h" }],
              reasons: [
                { field: "retention", current: "limits", desired: "workqueue" },
                { field: "storage", current: "file", desired: "memory" }
              ]
            },
            { stream: "RIGID_OTHER", action: "create", changes: [], reasons: [] }
          ])
          expect(planned.consumers.map(brief)).toStrictEqual([
            {
              stream: "RIGID",
              consumer: "reader",
              action: "refused",
              changes: [{ field: "maxAckPending", current: "1000", desired: "5" }],
              reasons: [{ field: "deliverPolicy", current: "all", desired: "new" }]
            },
            {
              stream: "NOWHERE",
              consumer: "lost",
              action: "refused",
              changes: [],
              reasons: [{ field: "stream", current: undefined, desired: undefined }]
            }
          ])
          const [retention] = planned.streams[0]?.reasons ?? []
          expect(retention?.message).toBe(
            "stream RIGID: retention cannot change from limits to workqueue in place; delete and recreate it, or keep limits"
          )
          expect(planned.consumers[1]?.reasons[0]?.message).toBe(
            "consumer NOWHERE/lost: stream NOWHERE does not exist and the topology does not declare it"
          )
          expect(yield* serverState("RIGID")).toStrictEqual(before)

          // provision stops at the first of those reasons, having changed nothing either.
          const exit = yield* Effect.exit(Topology.provision(drifted))
          assert(Exit.isFailure(exit))
          const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
          assert(failure?._tag === "Fail" && failure.error._tag === "TopologyError")
          expect(failure.error.message).toBe(retention?.message)
          expect(yield* serverState("RIGID")).toStrictEqual(before)
        })
    )

    it.effect("an invalid topology fails with a TopologyError, as provision does", () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<readonly [ReadonlyArray<Topology.StreamSpec>, string]> = [
          [
            [
              { name: "TWICE", subjects: ["twice.a"] },
              { name: "TWICE", subjects: ["twice.b"] }
            ],
            "stream TWICE: name is declared twice"
          ],
          [
            [
              { name: "WIDE", subjects: ["wide.>"] },
              { name: "NARROW", subjects: ["wide.narrow"] }
            ],
            "stream WIDE (wide.>) overlaps stream NARROW (wide.narrow) in the same topology: the server refuses streams whose subjects overlap"
          ]
        ]
        for (const [streams, message] of cases) {
          const error = yield* Topology.plan(Topology.make({ streams })).pipe(Effect.flip)
          expect(error._tag === "TopologyError" && error.message).toBe(message)
        }
        expect(yield* serverState("TWICE")).toStrictEqual({ streams: [], consumers: [] })
      })
    )
  })

  it.effect("fewer replicas than the server has are refused, more are an update; nothing is changed", () =>
    Effect.gen(function* () {
      const { broker, updates } = yield* clusterLike
      const events: Topology.StreamSpec = { name: "EVENTS", subjects: ["events.>"], maxAge: "1 hour" }
      const run = <A, E>(effect: Effect.Effect<A, E, Broker>) => Effect.provideService(effect, Broker, broker)
      yield* run(Topology.provision(Topology.make({ streams: [{ ...events, replicas: 3 }] })))
      updates.length = 0

      const fewer = yield* run(
        Topology.plan(Topology.make({ streams: [{ ...events, maxAge: "2 hours", replicas: 1 }] }))
      )
      expect(fewer.streams.map(brief)).toStrictEqual([
        {
          stream: "EVENTS",
          action: "refused",
          changes: [{ field: "maxAge", current: "1h", desired: "2h" }],
          reasons: [{ field: "replicas", current: "3", desired: "1" }]
        }
      ])
      expect(fewer.streams[0]?.reasons[0]?.message).toBe(
        "stream EVENTS: replicas would go down from 3 to 1; set allowFewerReplicas to lower them, or leave replicas out to keep 3"
      )
      const allowed = yield* run(
        Topology.plan(Topology.make({ streams: [{ ...events, replicas: 1, allowFewerReplicas: true }] }))
      )
      expect(allowed.streams.map(brief)).toStrictEqual([
        {
          stream: "EVENTS",
          action: "update",
          changes: [{ field: "replicas", current: "3", desired: "1" }],
          reasons: []
        }
      ])
      const kept = yield* run(Topology.plan(Topology.make({ streams: [events] })))
      expect(kept.streams.map((entry) => entry.action)).toStrictEqual(["unchanged"])
      const more = yield* run(Topology.plan(Topology.make({ streams: [{ ...events, replicas: 5 }] })))
      expect(more.streams.map(brief)).toStrictEqual([
        {
          stream: "EVENTS",
          action: "update",
          changes: [{ field: "replicas", current: "3", desired: "5" }],
          reasons: []
        }
      ])
      expect(updates).toStrictEqual([])
    })
  )
})
