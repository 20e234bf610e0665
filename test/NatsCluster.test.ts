import { describe, expect, layer } from "@effect/vitest"
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { eventually } from "./support/Eventually.js"
import * as NatsCluster from "./support/NatsCluster.js"
import { NatsClusterService } from "./support/NatsCluster.js"

/** A JetStream manager on a connection to the whole cluster, closed with the test's scope. */
const manager = Effect.gen(function* () {
  const cluster = yield* NatsClusterService
  const connection = yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: [...cluster.urls], reconnectTimeWait: 100, maxReconnectAttempts: -1 })),
    (connection) => Effect.promise(() => connection.close())
  )
  return yield* Effect.promise(() => jetstreamManager(connection))
})

describe("NatsCluster", () => {
  layer(NatsCluster.layer(), { excludeTestServices: true, timeout: 30_000 })(
    "three nodes on loopback (real clock)",
    (it) => {
      it.effect("forms a JetStream cluster with a meta leader", () =>
        Effect.gen(function* () {
          const cluster = yield* NatsClusterService
          expect(cluster.nodes.map((node) => node.name)).toEqual(["n1", "n2", "n3"])
          expect(cluster.urls).toEqual(cluster.nodes.map((node) => node.url))
          expect(cluster.url("n2")).toBe(cluster.nodes[1]?.url)
          expect(yield* Effect.forEach(cluster.nodes, (node) => node.isRunning)).toEqual([true, true, true])
          expect(NatsCluster.nodeNames).toContain(yield* cluster.ready)
          const unknown = yield* Effect.flip(cluster.nodeOf("n4"))
          expect(unknown.message).toContain("n4")
          const missing = yield* Effect.flip(cluster.streamLeader("MISSING"))
          expect(missing.message).toContain("10059")
        })
      )

      it.effect("an R3 stream gets a leader and two replicas; a consumer leader steps down to another node", () =>
        Effect.gen(function* () {
          const cluster = yield* NatsClusterService
          const jsm = yield* manager
          const info = yield* Effect.promise(() => jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 }))
          const leader = yield* cluster.streamLeader("R3")
          expect(leader).toBe(info.cluster?.leader)
          expect((info.cluster?.replicas ?? []).map((replica) => replica.name).sort()).toEqual(
            NatsCluster.nodeNames.filter((name) => name !== leader)
          )

          yield* Effect.promise(() =>
            jsm.consumers.add("R3", { durable_name: "worker", ack_policy: AckPolicy.Explicit })
          )
          const before = yield* cluster.consumerLeader("R3", "worker")
          const after = yield* cluster.stepDownConsumerLeader("R3", "worker")
          expect(after).not.toBe(before)
          expect(yield* cluster.consumerLeader("R3", "worker")).toBe(after)
        })
      )

      it.effect("kill -9 of the stream leader elects another; the killed node starts again and rejoins", () =>
        Effect.gen(function* () {
          const cluster = yield* NatsClusterService
          const jsm = yield* manager
          yield* Effect.promise(() => jsm.streams.add({ name: "FAILOVER", subjects: ["failover.>"], num_replicas: 3 }))
          const leader = yield* cluster.streamLeader("FAILOVER")
          const killed = yield* cluster.nodeOf(leader)

          yield* killed.kill
          expect(yield* killed.isRunning).toBe(false)
          const next = yield* cluster.streamLeader("FAILOVER")
          expect(next).not.toBe(leader)
          expect(yield* (yield* cluster.nodeOf(next)).isRunning).toBe(true)

          yield* killed.start({ rejoin: true })
          expect(yield* cluster.ready).toBeTruthy()
          // A node that has just come back may answer STREAM.INFO itself before it knows the leader, with no
          // `leader` in the reply: wait for a reply that names one and lists the returned node as current.
          const caughtUp = yield* eventually(
            Effect.tryPromise(() => jsm.streams.info("FAILOVER")).pipe(
              Effect.filterOrFail(
                (info) =>
                  info.cluster?.leader !== undefined &&
                  (info.cluster.leader === leader ||
                    (info.cluster.replicas ?? []).some((replica) => replica.name === leader && replica.current))
              )
            ),
            { timeout: "15 seconds", interval: "200 millis" }
          )
          expect(NatsCluster.nodeNames).toContain(caughtUp.cluster?.leader)
        })
      )
    }
  )
})
