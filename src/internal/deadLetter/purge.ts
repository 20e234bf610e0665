/**
 * Purging a dead-letter stream by age: the first message young enough to keep is found by a binary
 * search over sequences (a stream stores its messages in time order), and one purge removes everything
 * before it. Only the messages the search probes are read, so a large stream costs a few dozen reads.
 *
 * Not public: `DeadLetter.purge` documents it.
 */
import { Clock, DateTime, Duration, Effect, Option } from "effect"
import type { Broker, StoredMessage } from "../../Broker.js"
import * as NatsError from "../../NatsError.js"
import { streamNotFound } from "../brokerErrors.js"
import { isChunkSubject } from "./subjects.js"

// The first message from `seq` on and below `end`, stepping over sequences with none (deleted, expired).
const firstFrom = Effect.fnUntraced(function* (
  broker: Broker["Service"],
  stream: string,
  seq: number,
  end: number
): Effect.fn.Return<StoredMessage | undefined, NatsError.NatsError> {
  for (let next = seq; next < end; next++) {
    const stored = yield* broker.getMessage(stream, next)
    if (Option.isSome(stored)) return stored.value
  }
  return undefined
})

/** The first sequence from `firstSeq` to `lastSeq` whose message was stored at or after `cutoff`; `lastSeq + 1` when none was. */
const firstKept = Effect.fnUntraced(function* (
  broker: Broker["Service"],
  stream: string,
  firstSeq: number,
  lastSeq: number,
  cutoff: number
) {
  // Every message below `low` is older than the cut-off, and none from `high` on.
  let low = firstSeq
  let high = lastSeq + 1
  while (low < high) {
    const middle = Math.floor((low + high) / 2)
    const found = yield* firstFrom(broker, stream, middle, high)
    if (found === undefined || found.timestampMillis >= cutoff) high = middle
    else low = found.seq + 1
  }
  // A record's chunks are written just before it: a cut right after a chunk would take the bytes of a
  // record that stays, so the chunks in front of the first message kept stay too.
  while (low > firstSeq) {
    const previous = yield* broker.getMessage(stream, low - 1)
    if (Option.isNone(previous) || !isChunkSubject(previous.value.subject)) break
    low--
  }
  return low
})

/** Removes the messages of `stream` stored before now − `olderThan`; says how many went and where the cut was. */
export const purgeOlder = Effect.fnUntraced(function* (
  broker: Broker["Service"],
  stream: string,
  olderThan: Duration.Duration
) {
  const info = yield* broker.streamInfo(stream)
  if (Option.isNone(info)) return yield* NatsError.make("DeadLetter.purge", streamNotFound(stream))
  const cutoff = (yield* Clock.currentTimeMillis) - Duration.toMillis(olderThan)
  const { firstSeq, lastSeq, messages } = info.value.state
  const before = messages === 0 ? firstSeq : yield* firstKept(broker, stream, firstSeq, lastSeq, cutoff)
  const removed = before > firstSeq ? yield* broker.purgeStream(stream, { before }) : 0
  return { stream, removed, before, cutoff: DateTime.makeUnsafe(cutoff) }
})
