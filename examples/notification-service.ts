/**
 * The notification service as a process on NATS.
 *
 *   NATS_SERVERS=nats://127.0.0.1:4222 SERVICE_NAME=notification-service npx tsx examples/notification-service.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Glam } from "@glam/messaging/glam"
import { Layer } from "effect"
import { EmailProvider, WelcomeEmails } from "./notifications/NotificationService.js"

// The stack is built first: the GLAM streams exist before the subscriber starts.
const Main = WelcomeEmails.pipe(Layer.provide(EmailProvider.layer), Layer.provide(Glam.layerNats()))

NodeRuntime.runMain(Layer.launch(Main))
