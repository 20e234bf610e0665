/**
 * The notification service as a process on NATS.
 *
 *   NATS_SERVERS=nats://127.0.0.1:4222 SERVICE_NAME=notification-service npx tsx examples/notification-service.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { NatsBroker, NatsClient, Publisher, ServiceIdentity, Topology } from "@glam/messaging"
import { Layer } from "effect"
import { EmailProvider, WelcomeEmails } from "./notifications/NotificationService.js"

const Main = WelcomeEmails.pipe(
  Layer.provide(EmailProvider.layer),
  Layer.provideMerge(Publisher.layer()),
  Layer.provideMerge(Topology.layer(Topology.glam)),
  Layer.provideMerge(NatsBroker.layerFromClient),
  Layer.provide(NatsClient.layerConfig()),
  Layer.provide(ServiceIdentity.layerConfig())
)

NodeRuntime.runMain(Layer.launch(Main))
