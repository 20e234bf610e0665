/**
 * The notification service as a process on NATS.
 *
 *   NATS_SERVERS=nats://127.0.0.1:4222 SERVICE_NAME=notification-service npx tsx examples/notification-service.ts
 *
 * `LOG_LEVEL=debug` shows more, `LOG_FORMAT=json` prints one JSON object per line.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Logging } from "@glam/messaging"
import { Glam } from "@glam/messaging/glam"
import { Layer } from "effect"
import { EmailProvider, WelcomeEmails } from "./notifications/NotificationService.js"

// The stack is built first: the GLAM streams exist before the subscriber starts. The log lines, as
// LOG_LEVEL and LOG_FORMAT say, go around all of it, so that connecting and provisioning are logged too.
const Main = WelcomeEmails.pipe(
  Layer.provide(EmailProvider.layer),
  Layer.provide(Glam.layerNats()),
  Layer.provide(Logging.layerConfig())
)

NodeRuntime.runMain(Layer.launch(Main))
