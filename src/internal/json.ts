/**
 * JSON text to a value, with the parser's complaint as the failure: the one place `JSON.parse` is
 * called on bytes that came from the wire.
 */
import { Result } from "effect"
import { messageOf } from "./errorText.js"

export const parseJson = (text: string): Result.Result<unknown, string> =>
  Result.try({ try: (): unknown => JSON.parse(text), catch: messageOf })
