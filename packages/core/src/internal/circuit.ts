/**
 * The synchronous state machine behind `CircuitBreaker`: one mutable `Circuit` per key.
 *
 * Everything here is plain data and plain functions of an explicit `now` (milliseconds), so that the
 * Effect layer on top reads the time once per call through `Clock` and the closed-state happy path is a
 * couple of comparisons and a counter update: no fiber, no timer, no Schedule.
 *
 * Time-driven transitions are evaluated lazily whenever the circuit is consulted (admission, an outcome,
 * a status query): an in-flight call older than the slow-call threshold counts as slow at that moment, an
 * Open circuit whose time has passed becomes HalfOpen, and a probe older than the probe timeout is
 * released and reopens the circuit. Transitions computed late carry the logical time at which they
 * happened (`at`), not the time they were noticed.
 *
 * @internal
 */

/** @internal */
export const CLOSED = 0
/** @internal */
export const OPEN = 1
/** @internal */
export const HALF_OPEN = 2
/** @internal */
export const ISOLATED = 3
/** @internal */
export const FORCED_CLOSED = 4

/** @internal */
export type StateCode = 0 | 1 | 2 | 3 | 4

/** @internal */
export const stateNames = ["Closed", "Open", "HalfOpen", "Isolated", "ForcedClosed"] as const

/** @internal */
export type StateName = (typeof stateNames)[number]

/** @internal */
export const SUCCESS = 0
/** @internal */
export const FAILURE = 1
/** @internal */
export const IGNORED = 2

/** @internal */
export type OutcomeCode = 0 | 1 | 2

/** @internal */
export type TransitionReason =
  | "consecutive-failures"
  | "failure-rate"
  | "slow-call-rate"
  | "open-elapsed"
  | "probe-failed"
  | "probe-timeout"
  | "probes-succeeded"
  | "reported-failure"
  | "isolated"
  | "forced-closed"
  | "reset"
  | "shared"

/** @internal */
export interface Transition {
  readonly key: string
  readonly from: StateName
  readonly to: StateName
  /** Logical time of the transition (epoch ms from `Clock`). */
  readonly at: number
  readonly reason: TransitionReason
  /** For transitions to Open: how long it stays open. */
  readonly openForMs?: number
  /** For transitions to Open: the how-many-th consecutive opening this is. */
  readonly openings?: number
}

/** @internal */
export interface Policy {
  readonly consecutiveFailures: number
  readonly failureRateThreshold: number
  readonly slowCallRateThreshold: number
  readonly slowCallMs: number
  readonly windowMs: number
  readonly buckets: number
  readonly minimumCalls: number
  readonly probes: number
  readonly probeTimeoutMs: number
  /** The n-th consecutive opening lasts `openDurationsMs[min(n, length) - 1]`. */
  readonly openDurationsMs: ReadonlyArray<number>
  readonly maxRetryAfterMs: number
  readonly isolateRetryAfterMs: number
  readonly metricsOnly: boolean
}

/** @internal */
export const NORMAL = 0
/** @internal */
export const PROBE = 1
/** @internal */
export const UNTRACKED = 2

/**
 * One admitted call. `slow` is set when the call was counted as slow while still in flight.
 *
 * @internal
 */
export class Call {
  slow = false
  done = false
  readonly circuit: Circuit
  readonly start: number
  readonly gen: number
  readonly kind: 0 | 1 | 2
  constructor(circuit: Circuit, start: number, gen: number, kind: 0 | 1 | 2) {
    this.circuit = circuit
    this.start = start
    this.gen = gen
    this.kind = kind
  }
}

/** @internal */
export type Sink = (transition: Transition) => void

/**
 * The state of one key.
 *
 * @internal
 */
export class Circuit {
  readonly key: string
  readonly policy: Policy
  readonly sink: Sink
  state: StateCode = CLOSED
  /** Bumped on every state change: outcomes of calls admitted under an older generation are dropped. */
  gen = 0

  // closed-state counters
  streak = 0
  calls = 0
  failures = 0
  slowCalls = 0
  readonly bucketCalls: Int32Array
  readonly bucketFailures: Int32Array
  readonly bucketSlow: Int32Array
  readonly bucketMs: number
  headEpoch = -1
  nextBucketAt = 0
  /** In-flight calls in start order, not yet known to be slow (lazily pruned). */
  pending: Array<Call> = []
  pendingHead = 0
  /** In-flight calls already counted as slow. */
  pendingSlow = 0
  /** A provider's Retry-After seen since the last close, as an absolute time. */
  hintUntil = 0
  /** Recorded successes that a later stage may still turn into failures (see `downgrade`). */
  downgradable = 0
  /** Downgrades reported before the success they are about was recorded. */
  pendingDowngrades = 0
  /** The streak a success reset, so that a downgrade of that success can restore it. */
  savedStreak = 0

  // open
  openedAt = 0
  openUntil = 0
  openings = 0
  lastOpenForMs = 0
  resetAt = 0

  // half-open
  probes: Array<Call> = []
  probesAdmitted = 0
  probeSuccesses = 0

  // for the caller: set when `admit` rejects
  rejectRetryAfterMs = 0
  rejections = 0

  constructor(key: string, policy: Policy, sink: Sink, now: number) {
    this.key = key
    this.policy = policy
    this.sink = sink
    this.bucketCalls = new Int32Array(policy.buckets)
    this.bucketFailures = new Int32Array(policy.buckets)
    this.bucketSlow = new Int32Array(policy.buckets)
    this.bucketMs = policy.windowMs / policy.buckets
    this.advance(now)
  }

  // -------------------------------------------------------------------------------------------------
  // admission
  // -------------------------------------------------------------------------------------------------

  /**
   * Admits a call at `now`, or returns `undefined` and sets `rejectRetryAfterMs`. In metrics-only mode a
   * call that would be rejected is counted as a rejection and admitted untracked.
   */
  admit(now: number): Call | undefined {
    if (this.state === CLOSED) {
      if (now >= this.nextBucketAt) {
        this.advance(now)
        this.evaluate(now)
      }
      if (
        this.pendingHead < this.pending.length &&
        this.pending[this.pendingHead].start + this.policy.slowCallMs <= now
      ) {
        this.scanSlow(now)
      }
      if (this.state === CLOSED) return this.track(now)
    } else {
      this.refresh(now)
    }
    switch (this.state as StateCode) {
      case CLOSED:
      case FORCED_CLOSED:
        return this.track(now)
      case HALF_OPEN: {
        if (this.probesAdmitted < this.policy.probes) {
          this.probesAdmitted++
          const call = new Call(this, now, this.gen, PROBE)
          this.probes.push(call)
          return call
        }
        let earliest = Number.POSITIVE_INFINITY
        for (const probe of this.probes) earliest = Math.min(earliest, probe.start + this.policy.probeTimeoutMs)
        return this.reject(now, earliest === Number.POSITIVE_INFINITY ? 0 : earliest - now)
      }
      case OPEN:
        return this.reject(now, this.openUntil - now)
      default:
        return this.reject(now, this.policy.isolateRetryAfterMs)
    }
  }

  /** Whether a call would be admitted at `now`, without admitting it (sets `rejectRetryAfterMs`). */
  wouldAdmit(now: number): boolean {
    this.refresh(now)
    switch (this.state) {
      case CLOSED:
      case FORCED_CLOSED:
        return true
      case HALF_OPEN: {
        if (this.probesAdmitted < this.policy.probes) return true
        let earliest = Number.POSITIVE_INFINITY
        for (const probe of this.probes) earliest = Math.min(earliest, probe.start + this.policy.probeTimeoutMs)
        this.rejectRetryAfterMs = Math.max(0, earliest - now)
        return false
      }
      case OPEN:
        this.rejectRetryAfterMs = Math.max(0, this.openUntil - now)
        return false
      default:
        this.rejectRetryAfterMs = this.policy.isolateRetryAfterMs
        return false
    }
  }

  private track(now: number): Call {
    const call = new Call(this, now, this.gen, NORMAL)
    if (this.policy.slowCallMs !== Number.POSITIVE_INFINITY) {
      // Calls that already finished at the head are dropped now, not when the head turns slow: otherwise
      // every call of the last `slowCallMs` would stay referenced (millions at high rates).
      const pending = this.pending
      let head = this.pendingHead
      while (head < pending.length && pending[head].done) head++
      if (head === pending.length && head > 0) {
        pending.length = 0
        head = 0
      }
      this.pendingHead = head
      if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
        this.pending = this.pending.slice(this.pendingHead)
        this.pendingHead = 0
      }
      this.pending.push(call)
    }
    return call
  }

  private reject(now: number, retryAfterMs: number): Call | undefined {
    this.rejections++
    this.rejectRetryAfterMs = Math.max(0, retryAfterMs)
    return this.policy.metricsOnly ? new Call(this, now, -1, UNTRACKED) : undefined
  }

  // -------------------------------------------------------------------------------------------------
  // outcomes
  // -------------------------------------------------------------------------------------------------

  /** Records the outcome of an admitted call. Idempotent per call. */
  complete(call: Call, outcome: OutcomeCode, now: number, retryAfterMs: number | undefined): void {
    if (call.done) return
    call.done = true
    if (call.kind === UNTRACKED) return
    this.refresh(now)
    if (call.gen !== this.gen) return
    const slow = now - call.start >= this.policy.slowCallMs
    if (call.kind === PROBE) {
      const i = this.probes.indexOf(call)
      if (i >= 0) this.probes.splice(i, 1)
      if (outcome === FAILURE || slow) {
        this.noteHint(now, retryAfterMs)
        this.open(now, "probe-failed")
      } else if (outcome === IGNORED) {
        // an interrupted probe decides nothing: its slot goes to the next caller
        this.probesAdmitted--
      } else if (++this.probeSuccesses >= this.policy.probes) {
        this.close(now, "probes-succeeded")
      }
      return
    }
    if (call.slow) this.pendingSlow--
    // an interrupted call that was slow still tells us the provider is slow
    if (outcome === IGNORED && !slow) return
    this.sample(now, outcome === FAILURE, slow, call.slow, retryAfterMs)
  }

  /** An outcome reported by another stage (cost, quality judge), not tied to an admitted call. */
  report(outcome: OutcomeCode, now: number, latencyMs: number | undefined, retryAfterMs: number | undefined): void {
    this.refresh(now)
    const slow = latencyMs !== undefined && latencyMs >= this.policy.slowCallMs
    if (outcome === IGNORED && !slow) return
    const failed = outcome === FAILURE
    switch (this.state) {
      case CLOSED:
      case FORCED_CLOSED:
        this.sample(now, failed, slow, false, retryAfterMs)
        return
      case HALF_OPEN:
        if (failed || slow) {
          this.noteHint(now, retryAfterMs)
          this.open(now, "reported-failure")
        }
        return
      case OPEN:
        if (retryAfterMs !== undefined) {
          const until = now + Math.min(retryAfterMs, this.policy.maxRetryAfterMs)
          if (until > this.openUntil) {
            this.lastOpenForMs += until - this.openUntil
            this.openUntil = until
          }
        }
        return
    }
  }

  /**
   * A later stage judged a call that was recorded as a success to be a failure (too expensive, poor
   * quality): turn the latest such success into a failure, or, when that success has not been recorded
   * yet, count the next success as a failure.
   */
  downgrade(now: number): void {
    this.refresh(now)
    switch (this.state) {
      case CLOSED:
      case FORCED_CLOSED: {
        if (this.downgradable === 0) {
          this.pendingDowngrades++
          return
        }
        this.downgradable--
        if (now >= this.nextBucketAt) this.advance(now)
        this.bucketFailures[this.headEpoch % this.policy.buckets]++
        this.failures++
        this.streak = this.savedStreak + 1
        this.savedStreak = this.streak
        if (this.state === CLOSED) this.evaluate(now)
        return
      }
      case HALF_OPEN:
        this.open(now, "reported-failure")
        return
    }
  }

  private sample(now: number, failed: boolean, slow: boolean, countedSlow: boolean, retryAfterMs?: number): void {
    if (now >= this.nextBucketAt) this.advance(now)
    const i = this.headEpoch % this.policy.buckets
    this.bucketCalls[i]++
    this.calls++
    if (failed) {
      this.bucketFailures[i]++
      this.failures++
    }
    if (slow) {
      this.bucketSlow[i]++
      this.slowCalls++
    }
    if (!failed && !slow && this.pendingDowngrades > 0) {
      this.pendingDowngrades--
      failed = true
      this.bucketFailures[i]++
      this.failures++
    }
    if (failed || slow) {
      if (!countedSlow) this.streak++
    } else {
      this.savedStreak = this.streak
      this.streak = 0
      if (this.downgradable < 1024) this.downgradable++
    }
    this.noteHint(now, retryAfterMs)
    if (this.state === CLOSED) this.evaluate(now)
  }

  private noteHint(now: number, retryAfterMs: number | undefined): void {
    if (retryAfterMs !== undefined && retryAfterMs > 0) {
      this.hintUntil = Math.max(this.hintUntil, now + Math.min(retryAfterMs, this.policy.maxRetryAfterMs))
    }
  }

  // -------------------------------------------------------------------------------------------------
  // time
  // -------------------------------------------------------------------------------------------------

  /** Applies every transition that time alone causes, up to `now`. */
  refresh(now: number): void {
    for (let guard = 0; guard < 64; guard++) {
      switch (this.state) {
        case CLOSED: {
          if (now >= this.nextBucketAt) {
            this.advance(now)
            this.evaluate(now)
          }
          if (this.state === CLOSED) this.scanSlow(now)
          return
        }
        case FORCED_CLOSED: {
          if (now >= this.nextBucketAt) this.advance(now)
          return
        }
        case OPEN: {
          if (now < this.openUntil) return
          this.halfOpen(this.openUntil)
          continue
        }
        case HALF_OPEN: {
          let hung: Call | undefined
          for (const probe of this.probes) {
            if (probe.start + this.policy.probeTimeoutMs <= now && (hung === undefined || probe.start < hung.start)) {
              hung = probe
            }
          }
          if (hung === undefined) return
          this.open(hung.start + this.policy.probeTimeoutMs, "probe-timeout")
          continue
        }
        default:
          return
      }
    }
  }

  /** Moves the window's head to the bucket of `now`, dropping buckets that left the window. */
  private advance(now: number): void {
    const epoch = Math.floor(now / this.bucketMs)
    const n = this.policy.buckets
    if (this.headEpoch < 0) {
      this.headEpoch = epoch
    } else if (epoch > this.headEpoch) {
      const steps = Math.min(epoch - this.headEpoch, n)
      for (let s = 1; s <= steps; s++) {
        const i = (this.headEpoch + s) % n
        this.calls -= this.bucketCalls[i]
        this.failures -= this.bucketFailures[i]
        this.slowCalls -= this.bucketSlow[i]
        this.bucketCalls[i] = 0
        this.bucketFailures[i] = 0
        this.bucketSlow[i] = 0
      }
      this.headEpoch = epoch
    }
    this.nextBucketAt = (this.headEpoch + 1) * this.bucketMs
  }

  /** Counts in-flight calls older than the slow-call threshold as slow, now. */
  private scanSlow(now: number): void {
    const threshold = this.policy.slowCallMs
    let found = false
    while (this.pendingHead < this.pending.length) {
      const call = this.pending[this.pendingHead]
      if (call.done) {
        this.pendingHead++
        continue
      }
      if (call.start + threshold > now) break
      this.pendingHead++
      call.slow = true
      this.pendingSlow++
      this.streak++
      found = true
    }
    if (this.pendingHead === this.pending.length && this.pendingHead > 0) {
      this.pending.length = 0
      this.pendingHead = 0
    }
    if (found) this.evaluate(now)
  }

  /** Opens the circuit if any trip policy says so. */
  private evaluate(now: number): void {
    const p = this.policy
    if (this.streak >= p.consecutiveFailures) {
      this.open(now, "consecutive-failures")
      return
    }
    const total = this.calls + this.pendingSlow
    if (total < p.minimumCalls || total === 0) return
    if (this.failures > 0 && this.failures / total >= p.failureRateThreshold) {
      this.open(now, "failure-rate")
      return
    }
    const slow = this.slowCalls + this.pendingSlow
    if (slow > 0 && slow / total >= p.slowCallRateThreshold) this.open(now, "slow-call-rate")
  }

  // -------------------------------------------------------------------------------------------------
  // transitions
  // -------------------------------------------------------------------------------------------------

  private resetCounters(): void {
    this.streak = 0
    this.calls = 0
    this.failures = 0
    this.slowCalls = 0
    this.bucketCalls.fill(0)
    this.bucketFailures.fill(0)
    this.bucketSlow.fill(0)
    this.pending = []
    this.pendingHead = 0
    this.pendingSlow = 0
    this.probes = []
    this.probesAdmitted = 0
    this.probeSuccesses = 0
    this.downgradable = 0
    this.pendingDowngrades = 0
    this.savedStreak = 0
  }

  private emit(from: StateCode, at: number, reason: TransitionReason, open?: boolean): void {
    this.sink(
      open
        ? {
            key: this.key,
            from: stateNames[from],
            to: stateNames[this.state],
            at,
            reason,
            openForMs: this.lastOpenForMs,
            openings: this.openings
          }
        : { key: this.key, from: stateNames[from], to: stateNames[this.state], at, reason }
    )
  }

  /** Opens at logical time `at` for the next duration of the schedule, or longer if a Retry-After says so. */
  open(at: number, reason: TransitionReason): void {
    const from = this.state
    if (from === CLOSED && this.openings > 0 && at >= this.resetAt) this.openings = 0
    this.openings++
    const durations = this.policy.openDurationsMs
    const base = durations[Math.min(this.openings, durations.length) - 1]
    const openFor = Math.max(base, this.hintUntil - at)
    this.state = OPEN
    this.gen++
    this.openedAt = at
    this.openUntil = at + openFor
    this.lastOpenForMs = openFor
    this.hintUntil = 0
    this.resetCounters()
    this.emit(from, at, reason, true)
  }

  private halfOpen(at: number): void {
    const from = this.state
    this.state = HALF_OPEN
    this.gen++
    this.probes = []
    this.probesAdmitted = 0
    this.probeSuccesses = 0
    this.emit(from, at, "open-elapsed")
  }

  close(at: number, reason: TransitionReason): void {
    const from = this.state
    this.state = CLOSED
    this.gen++
    this.resetAt = at + this.lastOpenForMs
    this.hintUntil = 0
    this.resetCounters()
    this.headEpoch = -1
    this.advance(at)
    this.emit(from, at, reason)
  }

  /**
   * Follows the state another instance decided (a shared store's answer): Closed, Open for `retryAfterMs`
   * more after `openings` consecutive openings, or HalfOpen. Manual states are kept.
   */
  follow(to: typeof CLOSED | typeof OPEN | typeof HALF_OPEN, now: number, retryAfterMs = 0, openings = 0): void {
    const from = this.state
    if (from === ISOLATED || from === FORCED_CLOSED) return
    if (to === CLOSED) {
      if (from !== CLOSED) this.close(now, "shared")
      return
    }
    if (to === OPEN) {
      this.openings = openings
      this.openUntil = now + retryAfterMs
      if (from === OPEN) return
      this.lastOpenForMs = retryAfterMs
      this.openedAt = now
    } else if (from === HALF_OPEN) return
    this.state = to
    this.gen++
    this.resetCounters()
    this.emit(from, now, "shared", to === OPEN)
  }

  /** Manual control: force open until released. */
  isolate(at: number): void {
    if (this.state === ISOLATED) return
    const from = this.state
    this.state = ISOLATED
    this.gen++
    this.resetCounters()
    this.emit(from, at, "isolated")
  }

  /** Manual control: keep closed (record, never trip) until released. */
  forceClose(at: number): void {
    if (this.state === FORCED_CLOSED) return
    const from = this.state
    this.state = FORCED_CLOSED
    this.gen++
    this.resetCounters()
    this.headEpoch = -1
    this.advance(at)
    this.emit(from, at, "forced-closed")
  }

  /** Manual control: back to automatic, Closed, with fresh counters and backoff. */
  reset(at: number): void {
    const from = this.state
    this.state = CLOSED
    this.gen++
    this.openings = 0
    this.lastOpenForMs = 0
    this.hintUntil = 0
    this.resetCounters()
    this.headEpoch = -1
    this.advance(at)
    if (from !== CLOSED) this.emit(from, at, "reset")
  }
}
