/**
 * Endpoint health: passive ejection (outlier detection) and active health checks.
 *
 * Both act on the same per-endpoint state (`HealthTarget`, implemented by `Endpoint` in
 * pools.ts), which is shared by every table that names the endpoint's URL, so a swap keeps what
 * was learnt about an instance. The balancer reads one boolean, `available`, per candidate:
 * everything here keeps it equal to `!ejected && activeHealthy`.
 *
 * Time comes from an injectable `Clock` so that tests drive ejection times and check intervals
 * without waiting for real seconds.
 */
import type { Pool } from "undici";
import type { TrafficPolicySpec } from "../core/model.js";

export type OutlierDetectionSpec = TrafficPolicySpec["outlierDetection"];
export type HealthCheckSpec = NonNullable<TrafficPolicySpec["healthCheck"]>;

/** Opaque timer handle of a `Clock`. */
export type TimerHandle = unknown;

/** Time and timers; `systemClock` in production, a manual clock in tests. */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Real time; its timers never keep the process alive. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** The health state of one endpoint (one upstream URL). */
export interface HealthTarget {
  readonly url: string;
  /** What the balancer reads: `!ejected && activeHealthy`. */
  available: boolean;
  /** Connect errors and 5xx in a row; reset by any other answer. */
  consecutiveFailures: number;
  ejected: boolean;
  /** Ejection multiplier: the n-th ejection in a row lasts 2^(n-1) × ejectionSeconds. */
  ejections: number;
  /** When the last ejection ended (clock ms); the multiplier decays from there. */
  lastUnejectedAt: number;
  ejectionTimer: TimerHandle | null;
  /** The active health check's verdict; true while no check runs. */
  activeHealthy: boolean;
}

/** The initial health fields of a new endpoint. */
export function initialHealth(): Omit<HealthTarget, "url"> {
  return {
    available: true,
    consecutiveFailures: 0,
    ejected: false,
    ejections: 0,
    lastUnejectedAt: 0,
    ejectionTimer: null,
    activeHealthy: true,
  };
}

/** A change of an endpoint's health, for logs. */
export interface HealthEvent {
  url: string;
  kind: "ejected" | "unejected" | "unhealthy" | "healthy";
  /** For "ejected": how long, in ms. */
  durationMs?: number;
  /** Consecutive failures (ejected) or the probe's reason (unhealthy). */
  reason?: string;
}

/** Envoy's default `max_ejection_time`: doubling stops here (or at the base time if longer). */
export const MAX_EJECTION_MS = 300_000;

/**
 * Passive ejection, as Envoy's outlier detection does it: after `consecutiveFailures` connect
 * errors or 5xx in a row, the endpoint is skipped for `ejectionSeconds`, doubling with each
 * ejection that follows soon after the last (capped at `MAX_EJECTION_MS`); the multiplier
 * decays by one for every `ejectionSeconds` the endpoint stays in service. At most
 * `maxEjectionPercent` of a version's endpoints are ejected at once (at least one, as in
 * Envoy); the balancer still uses ejected endpoints when a version has no other (see
 * `pickEndpoint`), so ejection can shift traffic but never turn it into 503s.
 */
export class OutlierDetector {
  constructor(
    private readonly clock: Clock = systemClock,
    private readonly onEvent: (e: HealthEvent) => void = () => {},
    /**
     * Where doubling stops (or at the base time if longer). The router's upstreams use Envoy's
     * `MAX_EJECTION_MS`; the mirror's shadows (mirror.ts), whose "ejection" is its circuit
     * breaker, a shorter cap, so that a shadow that comes back is copied to again soon.
     */
    private readonly maxEjectionMs: number = MAX_EJECTION_MS,
  ) {}

  /** Counts one failed attempt on `target`; `peers` are the endpoints of its version. */
  failure(target: HealthTarget, peers: readonly HealthTarget[], spec: OutlierDetectionSpec): void {
    target.consecutiveFailures++;
    if (target.ejected || target.consecutiveFailures < spec.consecutiveFailures) return;
    if (spec.maxEjectionPercent <= 0 || spec.ejectionSeconds <= 0) return;
    let ejected = 0;
    for (let i = 0; i < peers.length; i++) if (peers[i]!.ejected) ejected++;
    const max = Math.max(1, Math.floor((peers.length * spec.maxEjectionPercent) / 100));
    // Over the cap the endpoint stays in service; its failures keep counting, so it is ejected
    // as soon as another endpoint returns.
    if (ejected >= max) return;
    this.eject(target, spec.ejectionSeconds * 1000);
  }

  /** Ends an ejection early (a passing active check) or when its time is up. */
  uneject(target: HealthTarget): void {
    if (!target.ejected) return;
    if (target.ejectionTimer !== null) this.clock.clearTimeout(target.ejectionTimer);
    target.ejectionTimer = null;
    target.ejected = false;
    target.consecutiveFailures = 0;
    target.lastUnejectedAt = this.clock.now();
    target.available = target.activeHealthy;
    this.onEvent({ url: target.url, kind: "unejected" });
  }

  /** Cancels a pending un-ejection timer (the endpoint is going away). */
  dispose(target: HealthTarget): void {
    if (target.ejectionTimer !== null) this.clock.clearTimeout(target.ejectionTimer);
    target.ejectionTimer = null;
  }

  private eject(target: HealthTarget, baseMs: number): void {
    const now = this.clock.now();
    if (target.ejections > 0) {
      const decay = Math.floor((now - target.lastUnejectedAt) / baseMs);
      target.ejections = Math.max(0, target.ejections - decay);
    }
    target.ejections++;
    const durationMs = Math.min(
      baseMs * 2 ** (target.ejections - 1),
      Math.max(baseMs, this.maxEjectionMs),
    );
    target.ejected = true;
    target.available = false;
    const failures = target.consecutiveFailures;
    target.ejectionTimer = this.clock.setTimeout(() => {
      target.ejectionTimer = null;
      this.uneject(target);
    }, durationMs);
    this.onEvent({
      url: target.url,
      kind: "ejected",
      durationMs,
      reason: `${failures} consecutive failures`,
    });
  }
}

/** Probes one endpoint once; resolves to true when it is healthy. Never rejects. */
export type Probe = (target: ProbeTarget, spec: HealthCheckSpec) => Promise<ProbeResult>;

export interface ProbeTarget extends HealthTarget {
  readonly pool: Pool;
  /** Path of the endpoint's base URL, without trailing slash; prefixed to the check path. */
  readonly pathPrefix: string;
}

export interface ProbeResult {
  ok: boolean;
  /** Why it failed ("status 503", "ECONNREFUSED", "timeout"). */
  reason?: string;
}

/**
 * The default probe: `GET <base><path>` through the endpoint's own keep-alive pool; a 2xx or
 * 3xx within `timeoutSeconds` passes (as the process runtime's readiness probe does).
 */
export const httpProbe: Probe = async (target, spec) => {
  const timeoutMs = spec.timeoutSeconds * 1000;
  try {
    const res = await target.pool.request({
      path: target.pathPrefix + spec.path,
      method: "GET",
      headers: { "user-agent": "turnout-health-check" },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body.dump();
    return res.statusCode >= 200 && res.statusCode < 400
      ? { ok: true }
      : { ok: false, reason: `status ${res.statusCode}` };
  } catch (err) {
    const e = err as { code?: string; name?: string; message?: string };
    const timeout = e.name === "TimeoutError" || e.code === "UND_ERR_HEADERS_TIMEOUT";
    return { ok: false, reason: timeout ? "timeout" : (e.code ?? e.message ?? String(err)) };
  }
};

/** One endpoint's active checker; one per URL, whatever the number of tables naming it. */
class Checker {
  passes = 0;
  fails = 0;
  timer: TimerHandle | null = null;
  stopped = false;
  running = false;

  constructor(
    readonly monitor: HealthMonitor,
    readonly target: ProbeTarget,
    public spec: HealthCheckSpec,
  ) {}

  start(): void {
    // The first check runs at once: a table may name an endpoint that died meanwhile.
    this.run();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.monitor.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  run(): void {
    this.timer = null;
    if (this.stopped) return;
    this.running = true;
    this.monitor.probe(this.target, this.spec).then(
      (r) => this.done(r),
      (err) => this.done({ ok: false, reason: String(err) }),
    );
  }

  done(r: ProbeResult): void {
    this.running = false;
    if (this.stopped) return;
    this.monitor.verdict(this, r);
    // The interval counts from the end of a check, so a slow endpoint is never probed twice
    // at once.
    this.timer = this.monitor.clock.setTimeout(() => this.run(), this.spec.intervalSeconds * 1000);
  }
}

export interface HealthMonitorOptions {
  clock?: Clock;
  probe?: Probe;
  /** Needed to end an ejection when a check passes. */
  outliers: OutlierDetector;
  onEvent?: (e: HealthEvent) => void;
}

/**
 * Runs the active health checks: `sync` with the endpoints that the tables in force want
 * checked starts checkers for new ones, updates changed settings and stops the rest.
 */
export class HealthMonitor {
  readonly clock: Clock;
  readonly probe: Probe;
  readonly #outliers: OutlierDetector;
  readonly #onEvent: (e: HealthEvent) => void;
  readonly #checkers = new Map<string, Checker>();

  constructor(opts: HealthMonitorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.probe = opts.probe ?? httpProbe;
    this.#outliers = opts.outliers;
    this.#onEvent = opts.onEvent ?? (() => {});
  }

  /** Makes the running checkers exactly `wanted` (by URL). */
  sync(wanted: ReadonlyMap<string, { target: ProbeTarget; spec: HealthCheckSpec }>): void {
    for (const [url, c] of this.#checkers) {
      const w = wanted.get(url);
      if (w !== undefined && w.target === c.target) continue;
      this.#stop(url, c);
    }
    for (const [url, w] of wanted) {
      const c = this.#checkers.get(url);
      if (c !== undefined) {
        // New settings apply from the next check; the counts so far stay.
        c.spec = w.spec;
        continue;
      }
      const created = new Checker(this, w.target, w.spec);
      this.#checkers.set(url, created);
      created.start();
    }
  }

  /** URLs being checked (for tests and status pages). */
  checked(): string[] {
    return [...this.#checkers.keys()];
  }

  stopAll(): void {
    for (const [url, c] of this.#checkers) this.#stop(url, c);
  }

  #stop(url: string, c: Checker): void {
    c.stop();
    this.#checkers.delete(url);
    // Without checks there is no verdict: the endpoint counts as healthy again (passive
    // ejection still applies).
    const t = c.target;
    if (!t.activeHealthy) {
      t.activeHealthy = true;
      t.available = !t.ejected;
    }
  }

  /** Applies one check's result (called by the checker). */
  verdict(c: Checker, r: ProbeResult): void {
    const t = c.target;
    if (r.ok) {
      c.fails = 0;
      c.passes++;
      // A passing check ends a passive ejection at once (Envoy's default,
      // `successful_active_health_check_uneject_host`).
      if (t.ejected) this.#outliers.uneject(t);
      if (!t.activeHealthy && c.passes >= c.spec.healthyThreshold) {
        t.activeHealthy = true;
        t.available = !t.ejected;
        this.#onEvent({ url: t.url, kind: "healthy" });
      }
    } else {
      c.passes = 0;
      c.fails++;
      if (t.activeHealthy && c.fails >= c.spec.unhealthyThreshold) {
        t.activeHealthy = false;
        t.available = false;
        this.#onEvent({ url: t.url, kind: "unhealthy", reason: r.reason ?? "failed" });
      }
    }
  }
}

/** A clock for tests: time moves only when `advance` is called; due timers then run in order. */
export class ManualClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Pending timers. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, running every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Number.POSITIVE_INFINITY;
      for (const [id, t] of this.#timers) {
        if (t.at <= end && t.at < nextAt) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const t = this.#timers.get(nextId)!;
      this.#timers.delete(nextId);
      this.#now = t.at;
      t.fn();
    }
    this.#now = end;
  }
}
