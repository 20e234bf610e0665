/**
 * The bookkeeping of `Publisher.publishAll`, which publishes a batch so that a failure can be resumed
 * without duplicates. Every item gets its event id, and is checked and encoded, before the first one is
 * sent, so an invalid item means nothing was sent. After a failure no item is started, the ones in flight
 * run to their end, and the failure says which items were stored (their receipts) and which were not
 * acknowledged, with the event ids that make publishing them again safe.
 *
 * Generic in the receipt `R` the send step gives back: the publisher's `Receipt`.
 */
import { Cause, Effect, Exit, Result } from "effect"

/** One item ready to send: the item, its event id and what the publisher encoded for it. */
export interface Prepared<I, P> {
  readonly item: I
  readonly eventId: string
  readonly encoded: P
}

/** Why a batch was not published in full, and what became of each of its items. */
export interface Incomplete<E, R> {
  /** The item whose failure stopped the batch. */
  readonly index: number
  readonly cause: E
  /** In input order. */
  readonly stored: ReadonlyArray<{ readonly index: number; readonly receipt: R }>
  /** In input order: the items without a receipt. */
  readonly remaining: ReadonlyArray<{ readonly index: number; readonly eventId: string }>
}

/** What the publisher does with one item. */
export interface Steps<I, P, R, EncodeError, SendError> {
  readonly eventIdOf: (item: I) => string
  /** Synchronous: the payload checked against its schema and encoded. */
  readonly encode: (item: I, eventId: string) => Exit.Exit<P, EncodeError>
  readonly send: (prepared: Prepared<I, P>) => Effect.Effect<R, SendError>
}

/**
 * Publishes `items`, up to `concurrency` at a time, and returns their receipts in input order. Every
 * item is encoded first: one that does not encode fails the batch before anything is sent. After the
 * first failed send no item is started; the batch fails once the ones in flight are done.
 */
export const publishAll = <I, P, R, EncodeError, SendError>(
  items: Iterable<I>,
  steps: Steps<I, P, R, EncodeError, SendError>,
  concurrency: number
): Effect.Effect<ReadonlyArray<R>, Incomplete<EncodeError | SendError, R>> =>
  Effect.suspend((): Effect.Effect<ReadonlyArray<R>, Incomplete<EncodeError | SendError, R>> => {
    const eventIds: Array<string> = []
    const prepared: Array<Prepared<I, P>> = []
    let invalid: { readonly index: number; readonly cause: Cause.Cause<EncodeError> } | undefined
    for (const item of items) {
      const eventId = steps.eventIdOf(item)
      // The ids of the items after an invalid one are fixed too: the failure reports them.
      if (invalid === undefined) {
        const encoded = steps.encode(item, eventId)
        if (Exit.isSuccess(encoded)) prepared.push({ item, eventId, encoded: encoded.value })
        else invalid = { index: eventIds.length, cause: encoded.cause }
      }
      eventIds.push(eventId)
    }
    if (invalid !== undefined) {
      const { index } = invalid
      const error = Cause.findError(invalid.cause)
      return Result.isSuccess(error)
        ? Effect.fail({ index, cause: error.success, stored: [], remaining: eventIds.map(remainingAt) })
        : Effect.failCause(error.failure)
    }
    return sendAll(eventIds, prepared, steps.send, concurrency)
  })

const remainingAt = (eventId: string, index: number) => ({ index, eventId })

const sendAll = <I, P, R, E>(
  eventIds: ReadonlyArray<string>,
  prepared: ReadonlyArray<Prepared<I, P>>,
  send: (prepared: Prepared<I, P>) => Effect.Effect<R, E>,
  concurrency: number
): Effect.Effect<ReadonlyArray<R>, Incomplete<E, R>> => {
  const receipts: Array<R> = new Array(prepared.length)
  let failure: { readonly index: number; readonly cause: E } | undefined
  // No item fails the `forEach`, which would interrupt the ones in flight: each of those may have been
  // stored already, and letting it finish tells.
  return Effect.forEach(
    prepared,
    (item, index) =>
      failure !== undefined
        ? Effect.void
        : Effect.match(send(item), {
            onFailure(cause) {
              failure ??= { index, cause }
            },
            onSuccess(receipt) {
              receipts[index] = receipt
            }
          }),
    { concurrency, discard: true }
  ).pipe(
    Effect.flatMap(() =>
      failure === undefined ? Effect.succeed(receipts) : Effect.fail(incomplete(eventIds, receipts, failure))
    )
  )
}

const incomplete = <E, R>(
  eventIds: ReadonlyArray<string>,
  receipts: ReadonlyArray<R | undefined>,
  failure: { readonly index: number; readonly cause: E }
): Incomplete<E, R> => {
  const stored: Array<{ readonly index: number; readonly receipt: R }> = []
  const remaining: Array<{ readonly index: number; readonly eventId: string }> = []
  eventIds.forEach((eventId, index) => {
    const receipt = receipts[index]
    if (receipt === undefined) remaining.push({ index, eventId })
    else stored.push({ index, receipt })
  })
  return { index: failure.index, cause: failure.cause, stored, remaining }
}
