/**
 * The broker contract on `MemoryBroker`: every scenario but the server restarts (it has no server), each
 * on a new in-process broker. Its timers run on the `Clock`, here the real one, so the same scenario code
 * waits the same delays as on NATS; scenarios run concurrently, since nothing is shared between them.
 */
import * as MemoryBroker from "../../src/MemoryBroker.js"
import { suite } from "./BrokerContract.js"

suite(
  "BrokerContract: MemoryBroker",
  () => MemoryBroker.layer,
  { serverRestart: false, realTime: true, interruptGivesBackAtOnce: true },
  { concurrent: true }
)
