/**
 * How a handler's failure is described, the same in log lines and in dead-letter records: a code (the
 * error's tag, the defect's class), a message (the error's message, or its fields as JSON) and the
 * operation that failed.
 */
import type * as Policy from "../../Policy.js"
import { tagOf } from "../errorText.js"

/** A tagged error's message, or its fields when it has none (`Data.TaggedError`s often have none). */
const messageOf = (error: unknown): string => {
  if (typeof error === "string") return error
  if (error instanceof Error && error.message !== "") return error.message
  if (typeof error === "object" && error !== null) {
    const json = JSON.stringify(Object.fromEntries(Object.entries(error).filter(([key]) => key !== "_tag")))
    if (json !== undefined && json !== "{}") return json
  }
  return String(error)
}

/** The failure as the dead-letter record and the logs describe it. */
export const describeFailure = (
  failure: Policy.Failure<unknown>
): { readonly code: string; readonly message: string; readonly operation: string } => {
  switch (failure._tag) {
    case "Decode":
      return { code: "DecodeError", message: failure.error.message, operation: `decode (${failure.error.stage})` }
    case "Defect":
      return {
        code: failure.defect instanceof Error ? failure.defect.name : "Defect",
        message: messageOf(failure.defect),
        operation: "handler"
      }
    case "Error":
      return { code: tagOf(failure.error) ?? "Error", message: messageOf(failure.error), operation: "handler" }
  }
}
