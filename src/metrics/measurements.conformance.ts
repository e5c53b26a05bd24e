/**
 * The conformance suite every `MeasurementSource` passes. An implementation's test calls
 * `describeMeasurementSourceConformance` with a factory that records the given traffic the way
 * that source will see it (through a router's recorder; for the store source, flushed to a
 * store) and returns the source. The suite checks every answer against the ground truth
 * computed from the traffic itself: counts exactly, latency quantiles within 1%.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MeasurementSource, WindowQuery } from "./measurements.js";

/**
 * One request, as the proxy would count it: sent to its version (`start`), its response head
 * (`respond`), and its end (`record`), all at `atMs` (the sources keep seconds, so the order
 * within a second does not matter).
 */
export interface RecordedRequest {
  atMs: number;
  version: string;
  status: number;
  latencyMs: number;
  upstreamError: boolean;
  /** The client left before the response head (status 499, `Counts.abandoned`). */
  abandoned: boolean;
  /** The version's response head came (not for the router's own 502, nor an abandoned one). */
  responded: boolean;
  /** Sent, and never answered nor ended (a version that hangs): counted only as started. */
  hung: boolean;
}

export interface SourceFixture {
  source: MeasurementSource;
  cleanup(): Promise<void>;
}

/** Start of the seeded traffic; a whole second. */
export const TRAFFIC_T0 = 1_700_000_000_000;
/** Seconds of traffic the suite generates. */
export const TRAFFIC_SECONDS = 40;

/** mulberry32, so that every run records the same traffic. */
function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Seeded traffic for two versions over TRAFFIC_SECONDS seconds, in time order: v1 (stable, 90%)
 * lognormal around 5 ms with 1% 5xx; v2 (canary, 10%) slower and with more errors, 1% of its
 * requests abandoned by their clients, silent for seconds 10-14 (a gap the sources must not
 * invent data for), and from second 30 on also sent requests that it never answers.
 */
export function seededTraffic(seed = 1): RecordedRequest[] {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const out: RecordedRequest[] = [];
  for (let s = 0; s < TRAFFIC_SECONDS; s++) {
    const n = 150 + Math.floor(r() * 100);
    for (let k = 0; k < n; k++) {
      const atMs = TRAFFIC_T0 + s * 1000 + Math.floor((k * 1000) / n);
      const canary = r() < 0.1;
      if (canary && s >= 10 && s < 15) continue;
      const version = canary ? "v2" : "v1";
      const latencyMs = Math.exp((canary ? 2 : 1.6) + 0.5 * normal());
      const x = r();
      const failRate = canary ? 0.05 : 0.01;
      const upstreamError = x < failRate / 2;
      const abandoned = canary && x >= failRate && x < failRate + 0.01;
      const status = abandoned
        ? 499
        : x < failRate
          ? 502
          : x < failRate + 0.02
            ? 404
            : x < failRate + 0.03
              ? 304
              : 200;
      const responded = !abandoned && !upstreamError;
      out.push({
        atMs,
        version,
        status,
        latencyMs,
        upstreamError,
        abandoned,
        responded,
        hung: false,
      });
      if (canary && s >= 30 && r() < 0.3) {
        out.push({
          atMs,
          version,
          status: 0,
          latencyMs: 0,
          upstreamError: false,
          abandoned: false,
          responded: false,
          hung: true,
        });
      }
    }
  }
  return out;
}

/** The exact answer for a window, from the traffic itself. */
function truth(traffic: RecordedRequest[], q: WindowQuery) {
  const fromSec = Math.ceil(q.fromMs / 1000);
  const toSec = Math.ceil(q.toMs / 1000);
  const byVersion = new Map<string, RecordedRequest[]>();
  for (const t of traffic) {
    const sec = Math.floor(t.atMs / 1000);
    if (sec < fromSec || sec >= toSec) continue;
    if (q.version !== undefined && t.version !== q.version) continue;
    const list = byVersion.get(t.version) ?? [];
    list.push(t);
    byVersion.set(t.version, list);
  }
  return byVersion;
}

/** What the data plane counted as it happened, for one version's requests of a window. */
function startsOf(reqs: RecordedRequest[]) {
  return {
    started: reqs.length,
    responded: reqs.filter((t) => t.responded).length,
    firstStartedSec: Math.min(...reqs.map((t) => Math.floor(t.atMs / 1000))),
  };
}

const WINDOWS: { name: string; q: (service: string) => WindowQuery }[] = [
  {
    name: "everything",
    q: (service) => ({ service, fromMs: TRAFFIC_T0, toMs: TRAFFIC_T0 + TRAFFIC_SECONDS * 1000 }),
  },
  {
    name: "an unaligned range",
    q: (service) => ({
      service,
      fromMs: TRAFFIC_T0 + 7_250,
      toMs: TRAFFIC_T0 + 31_500,
    }),
  },
  {
    name: "only the canary",
    q: (service) => ({
      service,
      version: "v2",
      fromMs: TRAFFIC_T0 + 5_000,
      toMs: TRAFFIC_T0 + 20_000,
    }),
  },
  {
    name: "the canary's silent seconds",
    q: (service) => ({
      service,
      version: "v2",
      fromMs: TRAFFIC_T0 + 10_000,
      toMs: TRAFFIC_T0 + 15_000,
    }),
  },
  {
    name: "before any traffic",
    q: (service) => ({ service, fromMs: TRAFFIC_T0 - 60_000, toMs: TRAFFIC_T0 }),
  },
  { name: "an empty range", q: (service) => ({ service, fromMs: TRAFFIC_T0, toMs: TRAFFIC_T0 }) },
];

/** Registers the conformance tests for one MeasurementSource. */
export function describeMeasurementSourceConformance(
  name: string,
  /** Records `traffic` for service "svc" and returns a source that reads it. */
  open: (traffic: RecordedRequest[]) => Promise<SourceFixture>,
): void {
  describe(`MeasurementSource conformance: ${name}`, () => {
    const traffic = seededTraffic();

    for (const w of WINDOWS) {
      it(`window: ${w.name}`, async () => {
        const f = await open(traffic);
        try {
          const q = w.q("svc");
          const got = await f.source.window(q);
          const want = truth(traffic, q);
          assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
          for (const [version, all] of want) {
            const s = got.get(version)!;
            assert.deepEqual(s.starts, startsOf(all), `${version}: requests sent and answered`);
            const reqs = all.filter((t) => !t.hung);
            const count = (lo: number, hi: number) =>
              reqs.filter((t) => t.status >= lo && t.status < hi).length;
            assert.equal(s.version, version);
            assert.equal(s.requests, reqs.length);
            assert.deepEqual(s.status, {
              "2xx": count(200, 300),
              "3xx": count(300, 400),
              "4xx": count(400, 500),
              "5xx": count(500, 600),
            });
            assert.equal(s.upstreamErrors, reqs.filter((t) => t.upstreamError).length);
            const abandoned = reqs.filter((t) => t.abandoned).length;
            assert.equal(s.abandoned, abandoned);
            // Errors as the builtin error_rate counts them: 5xx and abandoned requests.
            assert.equal(s.errorRate, (count(500, 600) + abandoned) / reqs.length);
            const secs = [...new Set(reqs.map((t) => Math.floor(t.atMs / 1000)))].sort();
            assert.equal(s.seconds, secs.length);
            assert.equal(s.firstSec, secs[0]);
            assert.equal(s.lastSec, secs.at(-1));
            const lat = reqs.map((t) => t.latencyMs).sort((a, b) => a - b);
            assert.equal(s.latency.count, lat.length);
            const sum = lat.reduce((a, b) => a + b, 0);
            assert.ok(Math.abs(s.latency.sum - sum) <= 1e-9 * sum);
            for (const [qq, got] of [
              [0.5, s.p50Ms],
              [0.9, s.p90Ms],
              [0.99, s.p99Ms],
            ] as const) {
              const exact = lat[Math.floor(qq * (lat.length - 1))]!;
              assert.ok(
                got !== null && Math.abs(got - exact) / exact <= 0.01 + 1e-12,
                `${version} p${qq * 100}: ${got} vs ${exact}`,
              );
            }
          }
        } finally {
          await f.cleanup();
        }
      });
    }

    it("an unknown service has no data", async () => {
      const f = await open(traffic);
      try {
        const got = await f.source.window({
          service: "nope",
          fromMs: TRAFFIC_T0,
          toMs: TRAFFIC_T0 + 60_000,
        });
        assert.equal(got.size, 0);
      } finally {
        await f.cleanup();
      }
    });
  });
}
