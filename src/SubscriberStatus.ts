/**
 * What each subscriber is doing, as a value and as a stream of changes: starting (provisioning its
 * consumer, waiting for its streams), consuming, restarting (its consume loop failed: the last error and
 * how many attempts so far), or stopping (its scope is closing).
 *
 * Every running subscriber is entered in a `Registry`, by default one for the process, so that a
 * readiness check can ask whether all of them are consuming without being handed each one. A subscriber
 * leaves the registry when its scope has closed.
 *
 * @since 0.2.0
 */
import { Context, Effect, Queue, Stream } from "effect"

/**
 * A subscriber's status.
 *
 * @category models
 * @since 0.2.0
 */
export type Status =
  | { readonly _tag: "Starting" }
  /** `since`: epoch millis (Effect `Clock`) when it last began consuming. */
  | { readonly _tag: "Consuming"; readonly since: number }
  /**
   * The consume loop failed and is being started again: `attempts` failures in this outage, the last
   * one's message, and when the outage began (epoch millis).
   */
  | { readonly _tag: "Restarting"; readonly attempts: number; readonly lastError: string; readonly since: number }
  | { readonly _tag: "Stopping" }

/**
 * One subscriber in the registry.
 *
 * @category models
 * @since 0.2.0
 */
export interface Entry {
  readonly durable: string
  /** Undefined while the subscriber is still looking for the stream that captures its subjects. */
  readonly stream: string | undefined
  readonly subjects: ReadonlyArray<string>
  readonly status: Status
}

/**
 * A subscriber's own view of its status: the current value and every change from now on.
 *
 * @category models
 * @since 0.2.0
 */
export interface Handle {
  readonly durable: string
  readonly status: Effect.Effect<Status>
  /** The current status, then each change, until the subscriber has stopped. */
  readonly changes: Stream.Stream<Status>
}

/**
 * Where subscribers enter their statuses.
 *
 * @category models
 * @since 0.2.0
 */
export interface Registry {
  /** Every running subscriber, in the order they started. */
  readonly all: Effect.Effect<ReadonlyArray<Entry>>
  /** Each change of any subscriber's status (an entry with its new status), from now on. */
  readonly changes: Stream.Stream<Entry>
  /** Enters a subscriber as `Starting`; `set` changes its status, `remove` takes it out. */
  readonly enterUnsafe: (entry: Omit<Entry, "status">) => Slot
}

/**
 * A subscriber's place in a registry.
 *
 * @category models
 * @since 0.2.0
 */
export interface Slot {
  readonly current: () => Status
  readonly set: (status: Status) => void
  /** Names the stream once the subscriber has found it. */
  readonly setStream: (stream: string) => void
  readonly remove: () => void
  readonly handle: Handle
}

const changesOf = <A>(
  subscribe: (listener: (value: A | undefined) => void) => () => void,
  initial?: () => A | undefined
): Stream.Stream<A> =>
  Stream.callback<A>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const first = initial?.()
        if (first !== undefined) Queue.offerUnsafe(queue, first)
        // `undefined` ends the stream: the subscriber has stopped.
        return subscribe((value) => (value === undefined ? Queue.endUnsafe(queue) : Queue.offerUnsafe(queue, value)))
      }),
      (unsubscribe) => Effect.sync(unsubscribe)
    )
  )

/**
 * A registry of its own (tests, or a process that wants readiness per group of subscribers).
 *
 * @category constructors
 * @since 0.2.0
 */
export const makeRegistryUnsafe = (): Registry => {
  const entries = new Map<object, Entry>()
  const listeners = new Set<(entry: Entry) => void>()
  const notify = (entry: Entry) => {
    for (const listener of listeners) listener(entry)
  }
  const enterUnsafe = (described: Omit<Entry, "status">): Slot => {
    const key = {}
    let entry: Entry = { ...described, status: { _tag: "Starting" } }
    entries.set(key, entry)
    const own = new Set<(status: Status | undefined) => void>()
    const set = (status: Status) => {
      if (!entries.has(key)) return
      entry = { ...entry, status }
      entries.set(key, entry)
      notify(entry)
      for (const listener of own) listener(status)
    }
    const remove = () => {
      entries.delete(key)
      for (const listener of own) listener(undefined)
      own.clear()
    }
    const subscribe = (listener: (status: Status | undefined) => void) => {
      own.add(listener)
      return () => own.delete(listener)
    }
    const setStream = (stream: string) => {
      entry = { ...entry, stream }
      if (entries.has(key)) entries.set(key, entry)
    }
    return {
      current: () => entry.status,
      set,
      setStream,
      remove,
      handle: {
        durable: described.durable,
        status: Effect.sync(() => entry.status),
        changes: changesOf<Status>(subscribe, () => (entries.has(key) ? entry.status : undefined))
      }
    }
  }
  return {
    all: Effect.sync(() => Array.from(entries.values())),
    changes: changesOf<Entry>((listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }),
    enterUnsafe
  }
}

/**
 * The registry subscribers enter themselves in; by default one for the whole process.
 *
 * @category services
 * @since 0.2.0
 */
export const Registry: Context.Reference<Registry> = Context.Reference<Registry>(
  "@glam/messaging/SubscriberStatus/Registry",
  { defaultValue: makeRegistryUnsafe }
)

/**
 * Every running subscriber of the current registry.
 *
 * @category accessors
 * @since 0.2.0
 */
export const all: Effect.Effect<ReadonlyArray<Entry>> = Effect.flatMap(
  Effect.service(Registry),
  (registry) => registry.all
)

/**
 * Whether every subscriber in the current registry is consuming; the ones that are not, otherwise.
 *
 * @category accessors
 * @since 0.2.0
 */
export const notConsuming: Effect.Effect<ReadonlyArray<Entry>> = Effect.map(all, (entries) =>
  entries.filter((entry) => entry.status._tag !== "Consuming")
)
