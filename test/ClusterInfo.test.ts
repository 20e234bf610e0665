/**
 * What the broker says about a replicated stream and its consumer on a 3-node cluster: the cluster's
 * name, the node leading it and the two other nodes as replicas, caught up.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { Broker, type ClusterInfo } from "../src/Broker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import { consumerConfig, streamConfig } from "./support/configs.js"
import { eventually } from "./support/Eventually.js"
import * as NatsCluster from "./support/NatsCluster.js"

/** The cluster as reported, once it names a leader and both replicas are current. */
const settled = (cluster: ClusterInfo | undefined, what: string) =>
  cluster?.leader !== undefined &&
  cluster.replicas.length === 2 &&
  cluster.replicas.every((replica) => replica.current && !replica.offline)
    ? Effect.succeed(cluster)
    : Effect.fail(`${what}: ${JSON.stringify(cluster)}`)

describe("cluster info", () => {
  it.live(
    "an R3 stream and its consumer name a leader among the three nodes and the two others as current replicas",
    () =>
      Effect.gen(function* () {
        const cluster = yield* NatsCluster.make({ name: "info" })
        const broker = Context.get(yield* Layer.build(NatsBroker.layer({ servers: [...cluster.urls] })), Broker)
        yield* broker.addStream({ ...streamConfig("INFO_R3", ["info.>"]), replicas: 3 })
        yield* broker.addConsumer(consumerConfig("INFO_R3", "reader"))

        const stream = yield* eventually(
          Effect.flatMap(broker.streamInfo("INFO_R3"), (info) =>
            settled(Option.getOrUndefined(info)?.cluster, "stream INFO_R3")
          )
        )
        const consumer = yield* eventually(
          Effect.flatMap(broker.consumerInfo("INFO_R3", "reader"), (info) =>
            settled(Option.getOrUndefined(info)?.cluster, "consumer INFO_R3/reader")
          )
        )
        for (const info of [stream, consumer]) {
          expect(info.name).toBe("info")
          expect(NatsCluster.nodeNames).toContain(info.leader)
          expect(info.replicas.map((replica) => replica.name).sort()).toStrictEqual(
            NatsCluster.nodeNames.filter((name) => name !== info.leader)
          )
          for (const replica of info.replicas) {
            expect(replica.lag).toBeGreaterThanOrEqual(0)
            expect(replica.activeMillis).toBeGreaterThanOrEqual(0)
          }
        }
        expect(stream.leader).toBe(yield* cluster.streamLeader("INFO_R3"))
      }),
    30_000
  )
})
