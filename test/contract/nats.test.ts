/**
 * The broker contract on `NatsBroker`: every scenario on a nats-server of its own, including the
 * server restarts only a broker with a server can go through.
 */
import { Effect, Layer } from "effect"
import * as NatsBroker from "../../src/NatsBroker.js"
import * as NatsClient from "../../src/NatsClient.js"
import * as NatsServer from "../support/NatsServer.js"
import { suite } from "./BrokerContract.js"

const natsBroker = () =>
  NatsBroker.layerFromClient.pipe(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(NatsServer.NatsServerService, (server) =>
          // Reconnect quickly, so that the restart scenario spends its time on messages, not on waiting.
          NatsClient.layer({ servers: server.url, reconnectWait: "100 millis" })
        )
      )
    ),
    Layer.provideMerge(NatsServer.layer())
  )

suite("BrokerContract: NatsBroker", natsBroker, {
  serverRestart: { restart: NatsServer.NatsServerService.use((server) => server.restart) },
  realTime: true,
  interruptGivesBackAtOnce: false
})
