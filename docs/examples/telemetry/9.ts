// Generated from docs/telemetry.md (block 9) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { Headers } from "effect/http"

// a gateway that takes its credential in a header of its own
export const program = Effect.void.pipe(
  Effect.provideService(Headers.CurrentRedactedNames, [
    ...Headers.CurrentRedactedNames.defaultValue(),
    "x-gateway-credential"
  ])
)
