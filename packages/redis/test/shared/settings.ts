/**
 * The scale of the shared-limits acceptance test: a provider window of 5 s instead of a minute (so a run of
 * a few windows takes seconds), 4 instances of 50 callers, and limits of 60 requests and 1,800 tokens per
 * window (requests bind: a call is 12 tokens at the chaos server, about 20 estimated). Callers start over
 * the first window (a ramp), as traffic does, rather than all in the same millisecond.
 */
export const settings = {
  instances: 4,
  callers: 50,
  /** The chaos server's sliding window (the provider's minute, scaled). */
  windowMs: 5_000,
  /**
   * Admission's window: the provider's plus 10%. A call is counted by admission when it is reserved and by
   * the provider when it arrives, later, and not equally later for every call (on a loaded 2-core machine
   * the spread reaches hundreds of milliseconds); the margin absorbs that difference, as headroom on a real
   * minute would.
   */
  admissionWindowMs: 5_500,
  rpm: 60,
  tpm: 1_800,
  maxWaitMs: 6_000,
  totalMs: 2_000,
  redisTimeoutMs: 1_000
} as const
