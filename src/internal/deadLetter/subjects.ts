/**
 * The subjects of dead letters: the `dlq.` form of an original subject (the Python package's naming),
 * the message id of a record, the reserved subjects of chunks, gone messages and replay markers, and
 * the subjects a dead-letter stream needs for a stream of its own.
 */
import { isSubsetOf, overlaps } from "../subjects.js"

/** Documented as `DeadLetter.subjectFor`. */
export const subjectFor = (subject: string): string =>
  `dlq.${subject.startsWith("evt.") || subject.startsWith("cmd.") ? subject.slice(4) : subject}`

/** Documented as `DeadLetter.messageIdFor`. */
export const messageIdFor = (stream: string, seq: number): string => `dlq:${stream}:${seq}`

/**
 * Where the chunks of the original bytes of a message of `stream` go, when they are too big for its
 * record (a reserved subject: no records). Before 0.2.0 every chunk went to `dlq._chunk`.
 */
export const chunkSubject = (stream: string): string => `dlq._chunk.${stream}`

/** Whether a subject of a dead-letter stream holds chunks (of this version or an earlier one). */
export const isChunkSubject = (subject: string): boolean =>
  subject === "dlq._chunk" || subject.startsWith("dlq._chunk.")

/**
 * Where the markers of replays from the dead-letter stream `deadLetterStream` go (a reserved subject:
 * no records). Before 0.2.0 every marker went to `dlq._replayed`.
 */
export const replayedSubject = (deadLetterStream: string): string => `dlq._replayed.${deadLetterStream}`

/** Whether a subject of a dead-letter stream holds replay markers (of this version or an earlier one). */
export const isReplayedSubject = (subject: string): boolean =>
  subject === "dlq._replayed" || subject.startsWith("dlq._replayed.")

/** Where the record of a message gone from its stream goes, its original subject being unknown. */
export const missingSubject = (stream: string): string => `dlq._missing.${stream}`

/**
 * The subjects a dead-letter stream needs for the messages of a stream on `subjects`: the `dlq.` form
 * of each (as `subjectFor` maps the subjects they match), and the reserved subjects of the stream's
 * chunks and gone messages, and of the replay markers of the dead-letter stream itself; no two of them
 * overlap.
 */
export const deadLetterSubjectsOf = (
  stream: string,
  subjects: ReadonlyArray<string>,
  deadLetterStream: string
): ReadonlyArray<string> => {
  const derived = subjects.flatMap((pattern): ReadonlyArray<string> => {
    const [first, ...rest] = pattern.split(".")
    if (first === ">") return ["dlq.>"]
    if (rest.length === 0) return [`dlq.${pattern}`]
    // `subjectFor` drops an `evt.` or `cmd.` in front; a wildcard there matches those and the rest.
    if (first === "evt" || first === "cmd") return [`dlq.${rest.join(".")}`]
    if (first === "*") return [`dlq.${rest.join(".")}`, `dlq.${pattern}`]
    return [`dlq.${pattern}`]
  })
  const all = [...derived, chunkSubject(stream), missingSubject(stream), replayedSubject(deadLetterStream)]
  // The server refuses a stream whose own subjects overlap: a pattern covered by another is left out, and
  // two that overlap otherwise (`dlq.orders.>` and `dlq.*.orders.>`) become the one that covers both.
  const patterns: Array<string> = []
  for (const pattern of all) {
    let merged = pattern
    const overlapping = () => patterns.findIndex((other) => overlaps(other, merged))
    for (let at = overlapping(); at !== -1; at = overlapping()) {
      const [other = merged] = patterns.splice(at, 1)
      merged = isSubsetOf(merged, other) ? other : isSubsetOf(other, merged) ? merged : cover(other, merged)
    }
    patterns.push(merged)
  }
  return patterns
}

/** The narrowest pattern matching every subject that `a` or `b` matches, token by token. */
const cover = (a: string, b: string): string => {
  const left = a.split(".")
  const right = b.split(".")
  const tokens: Array<string> = []
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const l = left[i]
    const r = right[i]
    if (l === ">" || r === ">" || l === undefined || r === undefined) return [...tokens, ">"].join(".")
    tokens.push(l === r ? l : "*")
  }
  return tokens.join(".")
}
