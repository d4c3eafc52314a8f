/**
 * Builds the `CallReport` of one step of the pipeline as its attempts end (internal/pipeline.ts), and
 * merges the reports of the steps a fallback plan walked (FallbackPlan.ts).
 *
 * @internal
 */
import type { AttemptReport, Report } from "../CallReport.ts"

type Next = AttemptReport["next"]

/** One attempt's record. */
export const attemptReport = (
  step: string,
  outcome: string,
  admissionWaitMs: number,
  next: Next,
  reason?: string,
  waitedMs?: number
): AttemptReport => {
  const a: { -readonly [K in keyof AttemptReport]: AttemptReport[K] } = { step, outcome, admissionWaitMs, next }
  if (reason !== undefined) a.reason = reason
  if (waitedMs !== undefined) a.waitedMs = waitedMs
  return a
}

/** A report from its attempts: the total admission wait is their sum. */
export const reportOf = (attempts: ReadonlyArray<AttemptReport>, answeredBy: string | undefined): Report => {
  let wait = 0
  for (let i = 0; i < attempts.length; i++) wait += attempts[i].admissionWaitMs
  return answeredBy === undefined
    ? { attempts, admissionWaitMs: wait }
    : { attempts, answeredBy, admissionWaitMs: wait }
}

/** The report of a call answered by its first attempt: the happy path's one record. */
export const answered = (step: string, admissionWaitMs: number): Report => ({
  attempts: [{ step, outcome: "ok", admissionWaitMs, next: "answered" }],
  answeredBy: step,
  admissionWaitMs
})

/** The attempts of one step while it retries: created at its first failure. */
export class Trail {
  readonly attempts: Array<AttemptReport> = []
  readonly step: string
  /** The admission wait of the attempt in flight (set when it ends). */
  admissionWaitMs: number
  constructor(step: string, admissionWaitMs: number) {
    this.step = step
    this.admissionWaitMs = admissionWaitMs
  }
  push(outcome: string, next: Next, reason?: string, waitedMs?: number): void {
    this.attempts.push(attemptReport(this.step, outcome, this.admissionWaitMs, next, reason, waitedMs))
    this.admissionWaitMs = 0
  }
}
