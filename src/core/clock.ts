/**
 * The one clock type: time and timers as every part of Turnout sees them. Inject a `FakeClock`
 * in tests and the simulator; never call `Date.now()` or `setTimeout` in `core/` (the pure core
 * reads time only as `now`, passed in by the controller).
 *
 * Two real clocks, one type: `systemClock` reads the wall clock (epoch ms: what is stored and
 * shown); `monotonicClock` reads a clock that never jumps (for intervals on the data plane,
 * such as health checks, which a wall-clock step must not bunch up or stall). Their timers are
 * unref'd: a pending timer never keeps a Node process alive that has nothing else to do.
 */

/** Opaque timer handle of a `Clock`. */
export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds: since the Unix epoch (`systemClock`), or on a monotonic scale. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds of this clock. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

function unrefTimeout(fn: () => void, ms: number): TimerHandle {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}

const clearNodeTimeout = (h: TimerHandle) => clearTimeout(h as NodeJS.Timeout);

/** Wall-clock time (epoch ms), with real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: unrefTimeout,
  clearTimeout: clearNodeTimeout,
};

/** Monotonic time (ms since the process started, `performance.now()`), with real timers. */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  setTimeout: unrefTimeout,
  clearTimeout: clearNodeTimeout,
};

/**
 * A clock that moves only when told to; for deterministic tests and the simulator. `advance`
 * runs every timer that falls due, earliest first (in order of creation at the same time), with
 * `now()` at the timer's own time while it runs; `set` only moves the time.
 */
export class FakeClock implements Clock {
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(private t = 1_700_000_000_000) {}

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Timers not yet run. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, running every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Number.POSITIVE_INFINITY;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && timer.at < nextAt) {
          nextAt = timer.at;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const timer = this.#timers.get(nextId)!;
      this.#timers.delete(nextId);
      this.t = timer.at;
      timer.fn();
    }
    this.t = end;
  }

  set(ms: number): void {
    this.t = ms;
  }
}
