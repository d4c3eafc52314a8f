import { describe } from "@effect/vitest"
import { Effect } from "effect"
import { AdmissionStore } from "@llm-resilience/core"
import { admissionStoreSuite } from "./admissionStoreSuite.ts"

describe("AdmissionStore (in memory)", () => {
  admissionStoreSuite(() => Effect.sync(AdmissionStore.makeMemory))
})
