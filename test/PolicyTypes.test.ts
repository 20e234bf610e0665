/**
 * What the compiler says about policies: the rule set is checked against the handler's errors, a
 * handler that can fail needs a policy, and the errors name what is missing. The `@ts-expect-error`
 * lines are checked by `npm run typecheck`; the messages themselves by compiling small programs.
 */
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Schema } from "effect"
import ts from "typescript"
import { expectTypeOf } from "vitest"
import * as Event from "../src/Event.js"
import * as Policy from "../src/Policy.js"
import * as Subscriber from "../src/Subscriber.js"

class A extends Data.TaggedError("A")<{}> {}
class B extends Data.TaggedError("B")<{}> {}
const Happened = Event.make("evt.test.policy-types.v1", Schema.Struct({ n: Schema.Number }))
const failing = (n: number): Effect.Effect<void, A | B> => (n > 0 ? Effect.fail(new A()) : Effect.fail(new B()))

describe("Policy types", () => {
  it("an inline policy takes its error type from its rules, checked against the handler's errors", () => {
    const inferred = Policy.make({ rules: { A: Policy.ack, B: Policy.term } })
    const withDefault = Policy.make({ rules: { A: Policy.ack }, default: Policy.term })
    const noRules = Policy.make({ rules: {}, maxDeliveries: 3 })
    expectTypeOf(inferred).toEqualTypeOf<Policy.Policy<Policy.Tagged<"A" | "B">>>()
    expectTypeOf(withDefault).toEqualTypeOf<Policy.Policy<unknown>>()
    expectTypeOf(noRules).toEqualTypeOf<Policy.Policy<never>>()
    expectTypeOf(Policy.make({ default: Policy.ack })).toEqualTypeOf<Policy.Policy<unknown>>()
    Subscriber.layer(Happened, {
      handler: (envelope) => failing(envelope.data.n),
      policy: Policy.make({ rules: { A: Policy.ack, B: Policy.deadLetter } })
    })
    Subscriber.make(Happened, {
      handler: () => failing(1),
      policy: Policy.make({ rules: { A: Policy.ack }, default: Policy.redeliverWithBackoff })
    })
    Subscriber.layer(Happened, {
      handler: (envelope) => failing(envelope.data.n),
      // Refused: the inline policy has no rule for B.
      // @ts-expect-error Type 'B' is not assignable to type 'Tagged<"A">'
      policy: Policy.make({ rules: { A: Policy.ack } })
    })
    // Refused: a policy with explicit rules for A only cannot serve a handler that also fails with B.
    // @ts-expect-error Type 'B' is not assignable to type 'A'
    Subscriber.layer(Happened, { handler: () => failing(1), policy: Policy.make<A>({ rules: { A: Policy.ack } }) })
    expect([inferred, withDefault, noRules].map((policy) => policy.maxDeliveries)).toStrictEqual([5, 5, 3])
  })

  it("a handler that can fail needs a policy; one that cannot needs none", () => {
    // Refused: the handler fails with A | B and no policy says what to do with them.
    // @ts-expect-error Property 'policy' is missing
    Subscriber.layer(Happened, { handler: (envelope) => failing(envelope.data.n) })
    // Refused: the same through Subscriber.make.
    // @ts-expect-error Property 'policy' is missing
    Subscriber.make(Happened, { durable: "no-policy", handler: () => failing(1) })
    // Refused: `policy: undefined` is no policy either.
    // @ts-expect-error Type 'undefined' is not assignable to type 'Policy<NoInfer<A | B>>'
    Subscriber.layer(Happened, { handler: () => failing(1), policy: undefined })
    Subscriber.layer(Happened, { handler: () => Effect.void })
    Subscriber.layer(Happened, { handler: () => failing(1), policy: Policy.defaults })
  })

  it("a policy for an error union names each tag without a rule and each rule without a tag", () => {
    Policy.make<A | B>({ rules: { A: Policy.ack, B: Policy.term } })
    Policy.make<A | B>({ rules: { A: Policy.ack }, default: Policy.term })
    // Refused: no rule for B and no default.
    // @ts-expect-error Property 'B' is missing
    Policy.make<A | B>({ rules: { A: Policy.ack } })
    // Refused: a rule for a tag the union does not have.
    // @ts-expect-error 'C' does not exist
    Policy.make<A | B>({ rules: { A: Policy.ack, B: Policy.term, C: Policy.ack } })
  })
})

// Each snippet is compiled in one program with the project's compiler options; the diagnostics of a
// snippet are what a user would read in their editor.
const snippets = {
  missingRule: `
    export const policy = Policy.make<A | B>({ rules: { A: Policy.ack } })
  `,
  missingRuleInline: `
    export const subscriber = Subscriber.layer(Happened, {
      handler: (envelope) => failing(envelope.data.n),
      policy: Policy.make({ rules: { A: Policy.ack } })
    })
  `,
  noPolicy: `
    export const subscriber = Subscriber.layer(Happened, { handler: (envelope) => failing(envelope.data.n) })
  `,
  inline: `
    export const subscriber = Subscriber.layer(Happened, {
      handler: (envelope) => failing(envelope.data.n),
      policy: Policy.make({ rules: { A: Policy.retry(Schedule.recurs(2)), B: Policy.deadLetter }, maxDeliveries: 3 })
    })
    export const policy: Policy.Policy<Policy.Tagged<"A" | "B">> = Policy.make({
      rules: { A: Policy.ack, B: Policy.term }
    })
  `
} as const

const prelude = `
  import { Data, Effect, Schedule, Schema } from "effect"
  import { Event, Policy, Subscriber } from "../src/index.js"
  class A extends Data.TaggedError("A")<{}> {}
  class B extends Data.TaggedError("B")<{}> {}
  const Happened = Event.make("evt.test.policy-types.v1", Schema.Struct({ n: Schema.Number }))
  const failing = (n: number): Effect.Effect<void, A | B> => (n > 0 ? Effect.fail(new A()) : Effect.fail(new B()))
`

/** Compiles every snippet in one program; gives the diagnostics of each, as the text an editor shows. */
const compileSnippets = (): ((name: keyof typeof snippets) => ReadonlyArray<string>) => {
  const projectFile = fileURLToPath(new URL("../tsconfig.json", import.meta.url))
  const project = ts.getParsedCommandLineOfConfigFile(
    projectFile,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
      }
    }
  )
  if (project === undefined) throw new Error(`cannot read ${projectFile}`)
  const pathOf = (name: string) => fileURLToPath(new URL(`./policy-snippet-${name}.ts`, import.meta.url))
  const files = new Map(Object.entries(snippets).map(([name, body]) => [pathOf(name), `${prelude}\n${body}`]))
  // The snippets import more than each one uses.
  const options = { ...project.options, noUnusedLocals: false }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile
  host.fileExists = (file) => files.has(file) || ts.sys.fileExists(file)
  host.readFile = (file) => files.get(file) ?? ts.sys.readFile(file)
  host.getSourceFile = (file, languageVersion, ...rest) => {
    const text = files.get(file)
    return text === undefined
      ? getSourceFile(file, languageVersion, ...rest)
      : ts.createSourceFile(file, text, languageVersion, true)
  }
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host })
  return (name) => {
    const source = program.getSourceFile(pathOf(name))
    if (source === undefined) throw new Error(`snippet ${name} was not compiled`)
    return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)].map((diagnostic) =>
      ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
    )
  }
}

describe("Policy type errors, as the compiler reports them", () => {
  it("name the tag without a rule, and the missing policy", { timeout: 120_000 }, () => {
    const diagnostics = compileSnippets()
    const [missingRule] = diagnostics("missingRule")
    expect(diagnostics("missingRule")).toHaveLength(1)
    expect(missingRule).toContain(`Property 'B' is missing`)
    expect(missingRule).not.toContain(`'default' is missing`)
    expect(diagnostics("missingRuleInline")).toHaveLength(1)
    expect(diagnostics("missingRuleInline")[0]).toContain(`Type 'B' is not assignable to type 'Tagged<"A">'`)
    expect(diagnostics("noPolicy")).toHaveLength(1)
    expect(diagnostics("noPolicy")[0]).toContain(`Property 'policy' is missing`)
    expect(diagnostics("inline")).toStrictEqual([])
  })
})
