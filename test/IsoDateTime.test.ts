import { describe, expect, it } from "@effect/vitest"
import * as IsoDateTime from "../src/internal/isoDateTime.js"

// A deterministic spread of instants over Python's years 1-9999, millisecond precision.
const instants = (count: number): ReadonlyArray<number> => {
  // Date.UTC reads the years 0-99 as 1900-1999; setUTCFullYear does not.
  const first = new Date(0).setUTCFullYear(1, 0, 1)
  const last = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
  let state = 12345
  return Array.from({ length: count }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    const fraction = state / 2 ** 32
    return Math.floor(first + fraction * (last - first))
  })
}

describe("IsoDateTime", () => {
  it("reads back what it writes, for 5,000 instants over the years 1-9999", () => {
    const wrong = instants(5_000).filter((millis) => {
      const text = IsoDateTime.format(millis)
      return text === undefined || IsoDateTime.parse(text) !== millis
    })
    expect(wrong).toStrictEqual([])
  })

  it("reads the canonical forms, Z and +00:00, with and without a fraction, microseconds truncated", () => {
    const at = Date.UTC(2026, 10, 26, 12, 33, 37, 123)
    expect(IsoDateTime.parse("2026-11-26T12:33:37.123456+00:00")).toBe(at)
    expect(IsoDateTime.parse("2026-11-26T12:33:37.123999Z")).toBe(at)
    expect(IsoDateTime.parse("2026-11-26T12:33:37+00:00")).toBe(at - 123)
    expect(IsoDateTime.parse("2026-11-26T12:33:37Z")).toBe(at - 123)
    // the same instants in forms the canonical reader leaves to the general one
    expect(IsoDateTime.parse("2026-11-26T13:33:37.123+01:00")).toBe(at)
    expect(IsoDateTime.parse("2026-11-26 12:33:37.1234")).toBe(at)
  })

  it("refuses canonical-looking text that is not a date-time", () => {
    for (const text of [
      "2026-02-30T12:33:37.123456+00:00",
      "2026-13-01T12:33:37+00:00",
      "2026-11-26T24:00:00+00:00",
      "2026-11-26T12:60:00Z",
      "2026-11-26T12:33:61Z",
      "2026-11-26T12:33:37.12x456+00:00",
      "2026-1a-26T12:33:37+00:00",
      "0000-11-26T12:33:37+00:00",
      "2026-11-26X12:33:37+00:00",
      "2026-11-26T12:33:37+00:0x"
    ]) {
      expect([text, IsoDateTime.parse(text)]).toStrictEqual([text, undefined])
    }
  })
})
