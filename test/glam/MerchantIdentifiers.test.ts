import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as MerchantIdentifiers from "../../src/glam/MerchantIdentifiers.js"
import { identifiers } from "./samples.js"

describe("Uuid", () => {
  const decode = Schema.decodeUnknownSync(MerchantIdentifiers.Uuid)
  const encode = Schema.encodeUnknownSync(MerchantIdentifiers.Uuid)
  const canonical = "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00"

  it("reads what Python's UUID() reads, as the lowercase hyphenated form", () => {
    for (const form of [
      canonical,
      canonical.toUpperCase(),
      canonical.replaceAll("-", ""),
      `{${canonical}}`,
      `urn:uuid:${canonical}`,
      "0b5e3f5c8d7a-4c1e-9f2b6a4d3c2b1a00"
    ]) {
      expect(decode(form), form).toBe(canonical)
    }
    expect(decode("00000000-0000-0000-0000-000000000000")).toBe("00000000-0000-0000-0000-000000000000")
    expect(decode("ffffffff-ffff-0fff-cfff-ffffffffffff")).toBe("ffffffff-ffff-0fff-cfff-ffffffffffff")
  })

  it("rejects what is not 128 hex bits", () => {
    for (const bad of ["", "not-a-uuid", canonical.slice(1), `${canonical}0`, canonical.replace("b", "g")]) {
      expect(() => decode(bad), bad).toThrow("Expected a UUID")
    }
    expect(() => decode(42)).toThrow("Expected string")
  })

  it("writes lowercase and refuses a malformed value", () => {
    expect(encode(canonical.toUpperCase())).toBe(canonical)
    expect(() => encode(canonical.replaceAll("-", ""))).toThrow("Expected a UUID")
  })
})

describe("MerchantIdentifiers", () => {
  it("needs all four identifiers and drops unknown keys, as pydantic does", () => {
    const decode = Schema.decodeUnknownSync(MerchantIdentifiers.MerchantIdentifiers)
    expect(decode({ ...identifiers, shop_plan: "plus" })).toEqual(identifiers)
    expect(() => decode({ ...identifiers, domain: undefined })).toThrow('["domain"]')
  })
})

describe("OpenEventPayload", () => {
  const decode = Schema.decodeUnknownSync(MerchantIdentifiers.OpenEventPayload)
  const encode = Schema.encodeUnknownSync(MerchantIdentifiers.OpenEventPayload)

  it("keeps unknown JSON fields both ways", () => {
    const wire = { identifiers, plan: "pro", nested: { list: [1, "two", null, { deep: true }] } }
    expect(decode(wire)).toEqual(wire)
    expect(encode(decode(wire))).toEqual(wire)
  })

  it("still requires the identifiers", () => {
    expect(() => decode({ plan: "pro" })).toThrow('["identifiers"]')
    expect(() => decode({ identifiers: { ...identifiers, merchant_id: "x" } })).toThrow("Expected a UUID")
  })

  it("refuses extra fields JSON cannot carry", () => {
    expect(() => encode({ identifiers, amount: 10n })).toThrow()
    expect(() => encode({ identifiers, callback: () => 1 })).toThrow()
  })
})
