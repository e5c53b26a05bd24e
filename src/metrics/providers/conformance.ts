/**
 * The conformance suite every MetricProvider passes. Each provider's test file calls
 * `describeProviderConformance` with a fixture factory; the suite owns the contract the analysis
 * engine relies on (a value for a good source, abort and timeout honoured, remote failures
 * reported as `error` and never thrown, request errors thrown, templating, bounded `raw`); the
 * provider's own tests cover its details.
 *
 * A fixture that cannot offer a case (builtin sources have nothing to template) declares the
 * skip as data, with the reason: `skips: [{ reason, tests: ["templating"] }]`. A case that is
 * neither offered nor skipped fails, so a new provider cannot pass by omission.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TurnoutError } from "../../errors.js";
import {
  type Measurement,
  type MeasureRequest,
  type MetricProvider,
  type ProviderSourceSpec,
  RAW_LIMIT_CHARS,
} from "./provider.js";

/** A source and the arguments to measure it with. */
export interface SourceCase {
  source: ProviderSourceSpec;
  args?: Record<string, string>;
  /** Default "svc"; lets a fixture whose source has no address (builtin) pick a behaviour. */
  service?: string;
}

export type ConformanceTest = "templating" | "timeout" | "abort" | "failure" | "noData" | "hugeRaw";

export interface ProviderFixture {
  provider: MetricProvider;
  /** Yields a value (for two-sided providers: candidate "v2" and baseline "v1" have data). */
  good: SourceCase;
  /**
   * A source using `{{args.value}}` that yields exactly the number passed in `args.value`
   * (proving the substitution reached the source).
   */
  templated?: () => ProviderSourceSpec;
  /** A source that never answers by itself; with `timeoutSeconds`, one that times out then. */
  hanging?: (timeoutSeconds?: number) => SourceCase;
  /** The source fails remotely (HTTP 500, an unreachable address, a crashed command...). */
  failing?: SourceCase;
  /** The source answers, with nothing for the window. */
  noData?: SourceCase;
  /** The source answers with far more than `RAW_LIMIT_CHARS` of data. */
  huge?: SourceCase;
  skips?: { reason: string; tests: ConformanceTest[] }[];
  cleanup(): Promise<void>;
}

/** The request the suite sends; the window is the minute before `now`. */
export function conformanceRequest(c: SourceCase, now = Date.now()): MeasureRequest {
  return {
    metric: "conformance",
    source: c.source,
    args: c.args ?? {},
    service: c.service ?? "svc",
    candidate: "v2",
    baseline: "v1",
    fromMs: now - 60_000,
    toMs: now,
    now,
  };
}

/** Checks the shape every measurement has, whatever happened. */
export function assertWellFormed(m: Measurement): void {
  const rawJson = JSON.stringify(m.raw);
  assert.ok(rawJson !== undefined, "raw is JSON-serializable (null when there is nothing)");
  assert.ok(
    rawJson.length <= RAW_LIMIT_CHARS,
    `raw is bounded: ${rawJson.length} > ${RAW_LIMIT_CHARS} chars`,
  );
  if (m.error !== undefined) {
    assert.equal(typeof m.error, "string");
    assert.ok(m.error.length > 0, "error says something");
    assert.ok(["noData", "timeout", "aborted", "failed"].includes(m.errorKind));
    assert.equal(m.value, undefined, "a failed measurement has no value");
    return;
  }
  assert.ok(
    m.value !== undefined || (m.values !== undefined && m.values.length > 0),
    "a measurement has a value or samples",
  );
  if (m.value !== undefined) assert.ok(Number.isFinite(m.value), `value ${m.value} is finite`);
  for (const v of m.values ?? []) assert.ok(Number.isFinite(v), `sample ${v} is finite`);
  for (const side of [m.candidate, m.baseline]) {
    if (!side) continue;
    assert.ok(Number.isFinite(side.value));
    assert.ok(Number.isInteger(side.sampleSize) && side.sampleSize >= 0);
    for (const v of side.values ?? []) assert.ok(Number.isFinite(v));
  }
  if (m.candidate) assert.equal(m.value, m.candidate.value, "value mirrors the candidate's");
}

/** A source of another kind than `kind`, to check that a provider refuses it. */
function otherKind(kind: string): ProviderSourceSpec {
  return kind === "command"
    ? { web: { url: "http://127.0.0.1:9/", method: "GET", timeoutSeconds: 1 } }
    : { command: { command: ["true"], timeoutSeconds: 1 } };
}

export function describeProviderConformance(
  name: string,
  make: () => ProviderFixture | Promise<ProviderFixture>,
): void {
  describe(`MetricProvider conformance: ${name}`, { timeout: 30_000 }, () => {
    let fx: ProviderFixture;
    before(async () => {
      fx = await make();
    });
    after(async () => {
      await fx?.cleanup();
    });
    const measure = (c: SourceCase, signal = new AbortController().signal) =>
      fx.provider.measure(conformanceRequest(c), signal);
    /** The case, or undefined when the fixture declared a skip for the test; fails when neither. */
    const needs = <T>(
      test: ConformanceTest,
      value: T | undefined,
      t: { skip(m: string): void },
    ) => {
      const skip = fx.skips?.find((s) => s.tests.includes(test));
      if (skip) {
        t.skip(skip.reason);
        return undefined;
      }
      if (value !== undefined) return value;
      assert.fail(`the ${name} fixture offers no "${test}" case and declares no skip for it`);
    };

    it("returns a value for a good source", async () => {
      const m = await measure(fx.good);
      assertWellFormed(m);
      assert.equal(m.error, undefined, `unexpected error: ${m.error}`);
    });

    it("substitutes {{args.NAME}} into the source", async (t) => {
      const templated = needs("templating", fx.templated, t);
      if (!templated) return;
      for (const n of [3, 41.5]) {
        const m = await measure({ source: templated(), args: { value: String(n) } });
        assertWellFormed(m);
        assert.equal(m.error, undefined, `unexpected error: ${m.error}`);
        assert.equal(m.value, n);
      }
    });

    it("throws, naming it, when an argument is missing", async (t) => {
      const templated = needs("templating", fx.templated, t);
      if (!templated) return;
      await assert.rejects(
        measure({ source: templated(), args: { other: "1" } }),
        (err: unknown) =>
          err instanceof TurnoutError &&
          err.code === "TURNOUT_ERR_RESOURCE_INVALID" &&
          /"value"/.test(err.message),
      );
    });

    it("throws for a source of another kind", async () => {
      await assert.rejects(
        measure({ source: otherKind(fx.provider.kind) }),
        (err: unknown) => err instanceof TurnoutError,
      );
    });

    it("honours abort: resolves promptly with errorKind aborted", async (t) => {
      const hanging = needs("abort", fx.hanging, t);
      if (!hanging) return;
      const pre = new AbortController();
      pre.abort();
      const m0 = await measure(hanging(), pre.signal);
      assertWellFormed(m0);
      assert.equal(m0.errorKind, "aborted");

      const ctl = new AbortController();
      const started = performance.now();
      const p = measure(hanging(), ctl.signal);
      setTimeout(() => ctl.abort(), 100);
      const m = await p;
      assertWellFormed(m);
      assert.equal(m.errorKind, "aborted", m.error);
      assert.ok(performance.now() - started < 5000, "abort is prompt");
    });

    it("honours the source's timeout: resolves with errorKind timeout", async (t) => {
      const hanging = needs("timeout", fx.hanging, t);
      if (!hanging) return;
      const started = performance.now();
      const m = await measure(hanging(0.3));
      const elapsed = performance.now() - started;
      assertWellFormed(m);
      assert.equal(m.errorKind, "timeout", m.error);
      assert.ok(elapsed >= 250, `waited for the timeout (${elapsed} ms)`);
      assert.ok(elapsed < 5000, `but not much longer (${elapsed} ms)`);
    });

    it("reports a remote failure as error, without throwing", async (t) => {
      const failing = needs("failure", fx.failing, t);
      if (!failing) return;
      const m = await measure(failing);
      assertWellFormed(m);
      assert.equal(m.errorKind, "failed", m.error);
    });

    it("reports no data as errorKind noData", async (t) => {
      const noData = needs("noData", fx.noData, t);
      if (!noData) return;
      const m = await measure(noData);
      assertWellFormed(m);
      assert.equal(m.errorKind, "noData", m.error);
      assert.match(m.error!, /no data/i);
    });

    it("bounds raw when the source answers with a lot", async (t) => {
      const huge = needs("hugeRaw", fx.huge, t);
      if (!huge) return;
      const m = await measure(huge);
      assertWellFormed(m);
    });
  });
}
