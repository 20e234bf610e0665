/**
 * JetStream publishes with their acknowledgements matched by us, the way nats.go's `PublishAsync`
 * works: one wildcard inbox subscription per connection, each publish sent with a reply subject of
 * its own under it, and the server's `PubAck` routed back to the waiting fiber through a `Map`.
 *
 * nats.js's `js.publish` builds a request object, two Promises, a timer and a `RequestError` per
 * publish (the error even when it succeeds); here a publish costs a map entry and the callback that
 * resumes its fiber. Deadlines are checked by one sweep fiber per publisher, every 50 ms while anything
 * is pending and asleep on a latch otherwise, not by a timer per message.
 *
 * Failures become the reasons `internal/nats/errors` gives them. What the connection does matters too:
 * a publish whose acknowledgement may have been lost with a disconnect fails at once as `Disconnected`
 * (the `Publisher` retries it under the same `Nats-Msg-Id`, so it is stored once); while disconnected,
 * a publish fails at once as `Disconnected` instead of being buffered (nats.js drops what it buffered when
 * it reconnects); when the connection closes, everything pending fails with `Closed`.
 *
 * The inbox subscription and the status watcher are made on the first publish, followed by a fiber in the
 * publisher's scope, and live until the scope ends or the connection closes or drains. Not here:
 * retrying (the `Publisher`'s `Schedule`) and telling a missing stream from a JetStream that is not
 * ready yet (`streamLookup`).
 */

import { JetStreamApiCodes, jserrors } from "@nats-io/jetstream/internal"
import type { Msg, MsgHdrs, NatsConnection, Status, Subscription } from "@nats-io/transport-node"
import { errors as coreErrors, createInbox, headers as natsHeaders } from "@nats-io/transport-node"
import { Duration, Effect, Exit, Latch, Predicate, Result, type Scope, Stream } from "effect"
import type { PublishAck, PublishRequest } from "../../Broker.js"
import * as NatsError from "../../NatsError.js"
import { parseJson } from "../json.js"
import { stopStatusIterator } from "./connectionOptions.js"
import { fromCause } from "./errors.js"
import type { StreamLookup } from "./streamLookup.js"

/** How often pending publishes are checked against their deadlines: a timeout fires up to this late. */
const SWEEP_MILLIS = 50

interface Pending {
  readonly subject: string
  readonly timeoutMillis: number
  /** The sweep count at which the publish has waited at least `timeoutMillis`. */
  readonly expiresAt: number
  readonly resume: (outcome: Effect.Effect<PublishAck, NatsError.NatsError>) => void
}

/** The inbox subscription and the status watcher, made together and ended together. */
interface Session {
  /** `<inbox>.`: a reply subject is this plus a token. */
  readonly prefix: string
  readonly subscription: Subscription
  readonly statuses: AsyncIterable<Status>
}

const failure = (reason: NatsError.NatsErrorReason) => Exit.fail(NatsError.make("publish", reason))

const closed = failure(new NatsError.Closed({ message: "the connection is closed" }))

const disconnected = failure(
  new NatsError.Disconnected({ message: "disconnected from NATS, reconnecting; nothing was sent" })
)

const ackLost = (subject: string) =>
  failure(
    new NatsError.Disconnected({
      message: `the connection dropped before JetStream acknowledged the publish to ${subject}`
    })
  )

const closedWhilePending = (subject: string) =>
  failure(
    new NatsError.Closed({
      message: `the connection closed before JetStream acknowledged the publish to ${subject}`
    })
  )

const timedOut = (pending: Pending) =>
  failure(
    new NatsError.Timeout({
      message: `JetStream did not acknowledge the publish to ${pending.subject} within ${pending.timeoutMillis} ms`
    })
  )

// What nats.js's `js.publish` says when nobody answers a publish: no stream listens on the subject.
const noStream = (subject: string) =>
  NatsError.make(
    "publish",
    new NatsError.StreamNotFound({
      message: `no stream for subject ${subject}`,
      subject,
      cause: new coreErrors.NoRespondersError(subject)
    })
  )

interface ApiError {
  readonly code: number
  readonly err_code?: number
  readonly description: string
}

const isApiError = (value: unknown): value is ApiError =>
  Predicate.isObject(value) &&
  typeof value.code === "number" &&
  typeof value.description === "string" &&
  (value.err_code === undefined || typeof value.err_code === "number")

// The error nats.js would have thrown for this API error, translated as every other one is.
const apiFailure = (subject: string, error: ApiError) => {
  const api = new jserrors.JetStreamApiError({ ...error, err_code: error.err_code ?? 0 })
  const cause =
    error.err_code === JetStreamApiCodes.JetStreamNotEnabledForAccount
      ? new jserrors.JetStreamNotEnabled(api.message, { cause: api })
      : api
  return fromCause("publish", { subject })(cause)
}

/** The outcome of a publish from the message that answered it. */
const outcomeOf = (
  msg: Msg,
  subject: string,
  streams: StreamLookup
): Effect.Effect<PublishAck, NatsError.NatsError> => {
  const data = msg.data
  if (data.length === 0) {
    const status = msg.headers
    if (status?.code === 503) return streams.unanswered(subject, noStream(subject))
    const code = status?.code ?? 0
    return failure(
      new NatsError.Other({
        message: `JetStream answered the publish to ${subject} with status ${code} ${status?.description ?? ""}`.trim(),
        code
      })
    )
  }
  const ack = Result.getOrUndefined(parseJson(msg.string()))
  if (Predicate.isObject(ack)) {
    if (isApiError(ack.error)) {
      const error = apiFailure(subject, ack.error)
      return error.reason._tag === "StreamNotFound" ? streams.unanswered(subject, error) : Exit.fail(error)
    }
    if (typeof ack.stream === "string" && ack.stream !== "" && typeof ack.seq === "number") {
      return Exit.succeed({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true })
    }
  }
  return failure(new NatsError.Other({ message: `invalid acknowledgement of the publish to ${subject}` }))
}

const headersOf = (request: PublishRequest): MsgHdrs | undefined => {
  if (request.headers.length === 0 && request.messageId === undefined && request.expectedLastSequence === undefined) {
    return undefined
  }
  // nats.js refuses names and values it cannot send (CR or LF in them) by throwing here.
  const headers = natsHeaders()
  for (const [name, value] of request.headers) headers.append(name, value)
  if (request.messageId !== undefined) headers.set("Nats-Msg-Id", request.messageId)
  if (request.expectedLastSequence !== undefined) {
    headers.set("Nats-Expected-Last-Sequence", `${request.expectedLastSequence}`)
  }
  return headers
}

// A connection made with nats.js's `inboxPrefix` option answers on inboxes under that prefix only.
const inboxPrefixOf = (connection: NatsConnection): string | undefined =>
  Predicate.hasProperty(connection, "options") &&
  Predicate.hasProperty(connection.options, "inboxPrefix") &&
  typeof connection.options.inboxPrefix === "string"
    ? connection.options.inboxPrefix
    : undefined

/**
 * Publishes to JetStream over one connection, until the scope it was made in ends. Made by `make`.
 */
export class JetStreamPublisher {
  private readonly pending = new Map<string, Pending>()
  private session: Session | undefined = undefined
  private connected = true
  private nextToken = 0
  private sweeps = 0
  /** Open while anything is pending: the sweep fiber waits on it, so an idle publisher costs no timer. */
  private readonly sweeping = Latch.makeUnsafe(false)

  constructor(
    private readonly connection: NatsConnection,
    private readonly streams: StreamLookup,
    private readonly scope: Scope.Scope
  ) {}

  /** Publishes `request` and waits for JetStream's acknowledgement, at most `request.timeout`. */
  readonly publish = (request: PublishRequest): Effect.Effect<PublishAck, NatsError.NatsError> =>
    Effect.callback<PublishAck, NatsError.NatsError>((resume) => this.send(request, resume))

  private send(request: PublishRequest, resume: Pending["resume"]): void {
    if (this.connection.isClosed() || !this.connected) {
      resume(this.connection.isClosed() ? closed : disconnected)
      return
    }
    const session = this.session
    if (session === undefined) {
      // The first publish, or the first since the inbox subscription ended: open it, then publish.
      resume(Effect.andThen(this.open, this.publish(request)))
      return
    }
    const subject = request.subject
    const token = (this.nextToken++).toString(36)
    const sent = Result.try(() => {
      const headers = headersOf(request)
      const reply = session.prefix + token
      this.connection.publish(subject, request.payload, headers === undefined ? { reply } : { reply, headers })
    })
    if (Result.isFailure(sent)) {
      resume(Exit.fail(fromCause("publish", { subject })(sent.failure)))
      return
    }
    const timeoutMillis = Duration.toMillis(request.timeout)
    this.pending.set(token, {
      subject,
      timeoutMillis,
      expiresAt: this.sweeps + Math.ceil(timeoutMillis / SWEEP_MILLIS) + 1,
      resume
    })
    this.sweeping.openUnsafe()
  }

  /**
   * The inbox subscription and the status watcher, with a fiber in the publisher's scope that follows
   * both: statuses fail what a disconnect cut off, and the subscription's end fails what it can no
   * longer answer.
   */
  private readonly open: Effect.Effect<void, NatsError.NatsError> = Effect.suspend(() => {
    if (this.session !== undefined) return Effect.void
    const opened = Result.try(() => {
      const inbox = createInbox(inboxPrefixOf(this.connection))
      const subscription = this.connection.subscribe(`${inbox}.*`, {
        callback: (error, msg) => this.onReply(error, msg)
      })
      return { prefix: `${inbox}.`, subscription, statuses: this.connection.status() }
    })
    if (Result.isFailure(opened)) return Effect.fail(fromCause("publish")(opened.failure))
    const session = opened.success
    this.session = session
    this.connected = true
    const statuses = Stream.fromAsyncIterable(session.statuses, () => undefined).pipe(
      Stream.runForEach((status) => Effect.sync(() => this.onStatus(status))),
      Effect.ignore
    )
    const ended = Effect.promise(() => session.subscription.closed.catch(() => undefined)).pipe(
      Effect.andThen(Effect.sync(() => this.end(session)))
    )
    return Effect.all([statuses, ended], { concurrency: 2, discard: true }).pipe(
      Effect.forkIn(this.scope),
      Effect.asVoid
    )
  })

  /** The subscription ended (the connection closed or drained): what was pending can no longer be answered. */
  private end(session: Session): void {
    stopStatusIterator(session.statuses)
    if (this.session !== session) return
    this.session = undefined
    const closing = this.connection.isClosed() || this.connection.isDraining()
    this.failAll((pending) => (closing ? closedWhilePending(pending.subject) : ackLost(pending.subject)))
  }

  private onReply(error: Error | null, msg: Msg): void {
    const session = this.session
    if (error !== null) {
      // A subscription the server refused (permissions): every pending publish loses its answer.
      const reason = fromCause("publish")(error)
      this.failAll(() => Exit.fail(reason))
      return
    }
    if (session === undefined) return
    const token = msg.subject.slice(session.prefix.length)
    const pending = this.pending.get(token)
    // An answer after the publish timed out: the retry gets its own.
    if (pending === undefined) return
    this.pending.delete(token)
    pending.resume(outcomeOf(msg, pending.subject, this.streams))
  }

  private onStatus(status: Status): void {
    switch (status.type) {
      case "disconnect":
        this.connected = false
        this.failAll((pending) => ackLost(pending.subject))
        return
      case "reconnect":
        this.connected = true
        return
      case "error": {
        const error = status.error
        if (error instanceof coreErrors.PermissionViolationError && error.operation === "publish") {
          const refused = fromCause("publish", { subject: error.subject })(error)
          this.failAll(
            () => Exit.fail(refused),
            (pending) => pending.subject === error.subject
          )
        }
        return
      }
      default:
        return
    }
  }

  /** Ends the inbox subscription and the status watcher, failing what is still pending with `Closed`. */
  close(): void {
    const session = this.session
    if (session !== undefined) {
      this.session = undefined
      stopStatusIterator(session.statuses)
      if (!session.subscription.isClosed()) session.subscription.unsubscribe()
    }
    this.failAll((pending) => closedWhilePending(pending.subject))
  }

  /**
   * Every `SWEEP_MILLIS` while anything is pending: fails what waited past its timeout. One fiber for
   * all pending publishes, rather than a timer each.
   */
  readonly sweeper: Effect.Effect<never> = Effect.forever(
    Effect.andThen(
      this.sweeping.await,
      Effect.delay(
        Effect.sync(() => this.sweep()),
        Duration.millis(SWEEP_MILLIS)
      )
    )
  )

  private sweep(): void {
    this.sweeps++
    for (const [token, pending] of this.pending) {
      if (pending.expiresAt <= this.sweeps) {
        this.pending.delete(token)
        pending.resume(timedOut(pending))
      }
    }
    if (this.pending.size === 0) this.sweeping.closeUnsafe()
  }

  private failAll(
    outcome: (pending: Pending) => Effect.Effect<never, NatsError.NatsError>,
    which: (pending: Pending) => boolean = () => true
  ): void {
    for (const [token, pending] of this.pending) {
      if (which(pending)) {
        this.pending.delete(token)
        pending.resume(outcome(pending))
      }
    }
  }
}

/**
 * A publisher over `connection` for the life of the current scope: its sweep fiber and the fibers of
 * its inbox subscription run in that scope, and the subscription ends with it.
 */
export const make = (
  connection: NatsConnection,
  streams: StreamLookup
): Effect.Effect<JetStreamPublisher, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const publisher = yield* Effect.acquireRelease(
      Effect.sync(() => new JetStreamPublisher(connection, streams, scope)),
      (publisher) => Effect.sync(() => publisher.close())
    )
    yield* Effect.forkIn(publisher.sweeper, scope)
    return publisher
  })
