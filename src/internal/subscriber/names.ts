/**
 * The names a subscriber derives when none is given: the filter of its consumer (the common prefix of
 * its events' subjects) and its queue group (from that filter).
 */

/** The one subject, or the common prefix of the subjects followed by `>`. */
export const commonPrefixFilter = (subjects: ReadonlyArray<string>): string => {
  const [first, ...rest] = subjects.map((subject) => subject.split("."))
  if (first === undefined) return ">"
  if (rest.length === 0) return first.join(".")
  let length = 0
  while (length < first.length && rest.every((tokens) => tokens[length] === first[length])) length++
  return length === 0 ? ">" : `${first.slice(0, length).join(".")}.>`
}

/** A queue group name from a filter: `evt.merchant.>` → `evt-merchant`. */
export const groupName = (filter: string): string =>
  filter
    .split(".")
    .filter((token) => token !== ">" && token !== "*")
    .join("-") || "all"
