/**
 * The notification service of the examples: on `evt.merchant.created.v1` it "sends" a welcome email through
 * a provider that fails now and then, and publishes `evt.notification.email.sent.v1` or
 * `evt.notification.email.failed.v1`.
 *
 * The policy shows the three ways a failure is handled: an unavailable provider is retried in process,
 * then redelivered later with backoff; a rejected mailbox is dead-lettered at once (after telling the rest
 * of the system it failed); an unsubscribed merchant is acknowledged and dropped on purpose.
 */
import { Policy, Publisher, Subscriber } from "@glam/messaging"
import { Events } from "@glam/messaging/glam"
import { Context, Data, Effect, Layer, Schedule } from "effect"

export class ProviderUnavailable extends Data.TaggedError("ProviderUnavailable")<{ readonly status: number }> {}
export class MailboxRejected extends Data.TaggedError("MailboxRejected")<{ readonly address: string }> {}
export class Unsubscribed extends Data.TaggedError("Unsubscribed")<{ readonly address: string }> {}
export type EmailError = ProviderUnavailable | MailboxRejected | Unsubscribed

/**
 * The email provider: a stand-in that rejects "bounce" addresses, refuses "unsubscribed" ones, and is
 * unavailable for the first three calls for a "flaky" address (so in-process retries are not enough and
 * the message is redelivered a second later).
 */
export class EmailProvider extends Context.Service<
  EmailProvider,
  {
    readonly send: (to: string, template: string) => Effect.Effect<string, EmailError>
    readonly stats: Effect.Effect<{ readonly calls: number; readonly unavailable: number }>
  }
>()("examples/EmailProvider") {
  static readonly layer = Layer.sync(EmailProvider, () => {
    const attempts = new Map<string, number>()
    let calls = 0
    let unavailable = 0
    return EmailProvider.of({
      send: (to, template) =>
        Effect.suspend((): Effect.Effect<string, EmailError> => {
          calls++
          const attempt = (attempts.get(to) ?? 0) + 1
          attempts.set(to, attempt)
          if (to.includes("unsubscribed")) return Effect.fail(new Unsubscribed({ address: to }))
          if (to.includes("bounce")) return Effect.fail(new MailboxRejected({ address: to }))
          if (to.includes("flaky") && attempt <= 3) {
            unavailable++
            return Effect.fail(new ProviderUnavailable({ status: 503 }))
          }
          return Effect.succeed(`msg-${calls}-${template}`)
        }),
      stats: Effect.sync(() => ({ calls, unavailable }))
    })
  })
}

export const WelcomeEmails = Subscriber.layer(Events.MerchantCreated, {
  queueGroup: "welcome-email",
  concurrency: 4,
  // Written here, the policy needs no type argument: its rules are checked against the handler's errors
  // (EmailError | Publisher.PublishError), and a tag without a rule is a compile error naming it.
  policy: Policy.make({
    rules: {
      // 3 quick tries here, then give the message back to the server for 1 s, 2 s, 4 s, ... (at most 1 min)
      ProviderUnavailable: Policy.retry(Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 2 }))).pipe(
        Policy.andThen(Policy.redeliver(Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("1 minute")])))
      ),
      MailboxRejected: Policy.deadLetter,
      Unsubscribed: Policy.ack,
      // the follow-up events could not be published: try again later
      NatsError: Policy.redeliverWithBackoff,
      EncodeError: Policy.deadLetter
    },
    maxDeliveries: 5
  }),
  handler: (envelope) =>
    Effect.gen(function* () {
      const provider = yield* EmailProvider
      const publisher = yield* Publisher.Publisher
      const merchant = envelope.data
      const notification = {
        identifiers: merchant.identifiers,
        notification_id: crypto.randomUUID(),
        template_type: "welcome",
        recipient_email: merchant.email
      }
      const messageId = yield* provider.send(merchant.email, "welcome").pipe(
        Effect.tapError((error) =>
          error._tag === "MailboxRejected"
            ? publisher.publish(Events.NotificationEmailFailed, {
                ...notification,
                error_code: error._tag,
                error_message: `mailbox ${error.address} rejected the message`,
                retry_count: 0
              })
            : Effect.succeed(undefined)
        )
      )
      yield* publisher.publish(Events.NotificationEmailSent, {
        ...notification,
        provider: "example-provider",
        provider_message_id: messageId
      })
      yield* Effect.log(`welcome email sent to ${merchant.email}`)
    })
})
