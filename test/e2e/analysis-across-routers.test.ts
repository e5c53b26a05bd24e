/**
 * Analysis across routers (issue #14, item 6): measurements from every router merge, so two
 * routers each carrying half of the traffic reach the same verdicts as one router with all of it.
 *
 * Real routers (real HTTP through real listeners) write to one real store (SQLite, and
 * PostgreSQL where it is installed); their measurement seconds are stamped by an injected clock
 * that moves one second per batch of requests, so both configurations fill the same seconds.
 * The backends decide each request's fate from its sequence number and a seed: whether it fails
 * (500) and how long it takes; the version serving it is fixed by sticky assignment on its user
 * id. So the one request sequence has the same versions and statuses whichever router carries
 * it; only the latencies, measured by real clocks, differ between runs.
 *
 * Per store, for a good canary (the baseline's error rate and latency) and a failing one (25%
 * errors, twice as slow), the sequence goes once split over two routers (even requests to A,
 * odd ones to B) and once through one router. Then, as the controller does, the builtin metric
 * source reads the store (`StoreMeasurementSource`, merged across routers) and the judges decide
 * (`startRun`, `dueMeasurements`, provider `measure`, `observe`). Asserted:
 * - the verdicts are the same in both configurations, and the expected ones (pass, fail);
 * - the merged counts (requests, status classes) are equal exactly; the latency quantiles agree
 *   within what timing noise explains;
 * - the store's merge of the two routers is exact: counts and latency sketch bins equal the sum
 *   of what each router measured itself.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Pool } from "undici";
import {
  dueMeasurements,
  observe,
  type RunState,
  startRun,
  summarize,
} from "../../src/core/analysis/index.js";
import type { AnalysisTemplateSpec } from "../../src/core/model.js";
import { Sketch } from "../../src/core/sketch.js";
import {
  RouterMeasurementSource,
  StoreMeasurementSource,
  type WindowStats,
} from "../../src/metrics/measurements.js";
import { createProvider } from "../../src/metrics/providers/index.js";
import { Router } from "../../src/router/router.js";
import { MemoryRouteTableSource } from "../../src/router/testing.js";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { SqlStore } from "../../src/store/sql-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { tempDir } from "../helpers.js";
import { requirePostgres, sharedCluster } from "../support/postgres.js";

const SEED = 0x5eed;
const T0 = 1_800_000_000_000;
/** Seconds of traffic (by the injected clock), and requests per second per service. */
const SECONDS = 6;
const PER_SECOND = 100;
const IN_FLIGHT = 16;

/** A backend's behaviour, by the request's sequence number. */
interface Behaviour {
  errorRate: number;
  /** Delay in ms: uniform in [minMs, maxMs). */
  minMs: number;
  maxMs: number;
}
const STABLE: Behaviour = { errorRate: 0.01, minMs: 4, maxMs: 12 };
const SCENARIOS = {
  good: { ...STABLE },
  bad: { errorRate: 0.25, minMs: 12, maxMs: 28 },
} as const;
type Scenario = keyof typeof SCENARIOS;

/** Two uniforms in [0, 1) from (seed, version, seq): splitmix32 over a mixed key. */
function uniforms(version: string, seq: number): [number, number] {
  let h = SEED ^ Math.imul(seq + 1, 0x9e3779b1);
  for (let i = 0; i < version.length; i++) h = Math.imul(h ^ version.charCodeAt(i), 0x85ebca6b);
  const next = () => {
    h = (h + 0x9e3779b9) | 0;
    let z = h;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return ((z ^ (z >>> 15)) >>> 0) / 2 ** 32;
  };
  return [next(), next()];
}

async function backend(version: string, b: Behaviour): Promise<{ url: string; close(): void }> {
  const server = http.createServer((req, res) => {
    req.resume();
    const seq = Number(req.headers["x-seq"]);
    const [u1, u2] = uniforms(version, seq);
    setTimeout(
      () => {
        res.statusCode = u1 < b.errorRate ? 500 : 200;
        res.end(version);
      },
      b.minMs + u2 * (b.maxMs - b.minMs),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

const TEMPLATE: AnalysisTemplateSpec = {
  metrics: [
    {
      name: "errors",
      source: { builtin: "error_rate" },
      // Generous for 300 requests a side: the always-valid bound is wide at that size.
      judge: { sequential: { maxIncrease: 0.08, alpha: 0.05 } },
      interval: "6s",
      count: 1,
      minSamples: 200,
    },
    {
      name: "latency",
      source: { builtin: "latency" },
      judge: { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 } },
      interval: "6s",
      count: 1,
      minSamples: 200,
    },
  ],
};

/** What one configuration's analysis saw and decided, per scenario. */
interface Outcome {
  /** Per metric: its run's phase and the outcome of its verdict. */
  verdicts: Record<string, { phase: string; outcome: string }>;
  /** Per metric: its run, summarized (for messages). */
  summaries: Record<string, unknown>;
  windows: Map<string, WindowStats>;
}

/**
 * Runs the analysis over the store as the controller does: the builtin source reads the
 * window, the judges decide. One run per metric, so that each metric gets its verdict (in one
 * run, the first failing metric ends it, and the others' measurements are not judged).
 */
async function analyse(store: SqlStore, service: string): Promise<Outcome> {
  const now = T0 + SECONDS * 1000;
  const measurements = new StoreMeasurementSource(store);
  const verdicts: Outcome["verdicts"] = {};
  const summaries: Outcome["summaries"] = {};
  for (const metric of TEMPLATE.metrics) {
    let run: RunState = startRun([{ name: "golden", spec: { metrics: [metric] } }], {}, T0, {
      kind: "inline",
    });
    for (const due of dueMeasurements(run, now)) {
      const obs = await createProvider(due.source, { measurements }).measure(
        {
          metric: due.metric,
          source: due.source,
          args: run.args,
          service,
          candidate: "v2",
          baseline: "v1",
          fromMs: due.fromMs,
          toMs: due.toMs,
          now,
        },
        AbortSignal.timeout(10_000),
      );
      run = observe(run, due.metric, obs, now, due);
    }
    verdicts[metric.name] = {
      phase: run.phase,
      outcome: run.metrics[0]!.verdicts.at(-1)?.verdict.outcome ?? "none",
    };
    summaries[metric.name] = summarize(run);
  }
  const windows = await measurements.window({ service, fromMs: T0, toMs: now });
  return { verdicts, summaries, windows };
}

/** Routers sharing one store and one clock: one configuration. */
interface Configuration {
  routers: Router[];
  clock: { t: number };
}

/**
 * Sends the request sequence of both scenarios through every configuration at once, second by
 * second of their clocks: request i of a configuration goes to its router i mod n. The
 * configurations' copies of a request go out one after the other, so the machine's noise
 * (this box is shared) falls on both alike.
 */
async function drive(configs: Configuration[]): Promise<void> {
  const pools = configs.map((c) =>
    c.routers.map((r) =>
      Object.fromEntries(
        r
          .listeners()
          .map((l) => [
            l.service,
            new Pool(`http://127.0.0.1:${l.port}`, { connections: IN_FLIGHT }),
          ]),
      ),
    ),
  );
  try {
    for (let s = 0; s < SECONDS; s++) {
      for (const c of configs) c.clock.t = T0 + s * 1000;
      const jobs: { seq: number; service: Scenario; config: number }[] = [];
      for (let i = 0; i < PER_SECOND; i++) {
        const seq = s * PER_SECOND + i;
        for (const service of Object.keys(SCENARIOS) as Scenario[])
          for (let config = 0; config < configs.length; config++)
            jobs.push({ seq, service, config });
      }
      // Every request of this second is answered before the clocks move on.
      let next = 0;
      const worker = async () => {
        while (next < jobs.length) {
          const { seq, service, config } = jobs[next++]!;
          const routers = pools[config]!;
          const pool = routers[seq % routers.length]![service]!;
          const res = await pool.request({
            path: "/",
            method: "GET",
            headers: { "x-seq": String(seq), "x-user-id": `user-${seq}` },
          });
          await res.body.text();
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    }
  } finally {
    for (const c of pools)
      for (const p of c) for (const pool of Object.values(p)) await pool.close();
  }
}

/** Counts of a window, for exact comparison. */
function counts(w: Map<string, WindowStats>) {
  return Object.fromEntries(
    [...w].map(([v, s]) => [
      v,
      {
        requests: s.requests,
        status: s.status,
        upstreamErrors: s.upstreamErrors,
        latencyCount: s.latency.count,
      },
    ]),
  );
}

/** The latency sketch of each version merged over routers' in-memory windows. */
async function mergedInMemory(routers: Router[], service: string) {
  const out = new Map<string, { requests: number; s5xx: number; latency: Sketch }>();
  for (const r of routers) {
    const w = await new RouterMeasurementSource(r.measurements).window({
      service,
      fromMs: T0,
      toMs: T0 + SECONDS * 1000,
    });
    for (const [v, s] of w) {
      const m = out.get(v) ?? {
        requests: 0,
        s5xx: 0,
        latency: new Sketch({ alpha: s.latency.alpha }),
      };
      m.requests += s.requests;
      m.s5xx += s.status["5xx"];
      m.latency.merge(s.latency);
      out.set(v, m);
    }
  }
  return out;
}

const sketchBins = (s: Sketch) => {
  const { i, c, zero } = s.toJSON();
  return { i, c, zero, count: s.count };
};

function describeStore(kind: string, skip: string | undefined, open: () => Promise<SqlStore>) {
  describe(`analysis across routers on ${kind}`, { skip }, () => {
    const closers: (() => unknown)[] = [];
    let backends: Record<string, { url: string; close(): void }>;

    before(async () => {
      backends = {
        v1: await backend("v1", STABLE),
        good: await backend("v2", SCENARIOS.good),
        bad: await backend("v2", SCENARIOS.bad),
      };
      closers.push(...Object.values(backends).map((b) => b.close));
    });
    after(async () => {
      for (const c of closers.reverse()) await c();
    });

    /** Routers for one configuration: their own clock, one store, the two services. */
    async function configuration(n: number, name: string) {
      const store = await open();
      closers.push(() => store.close());
      const clock = { t: T0 };
      const source = new MemoryRouteTableSource();
      for (const service of Object.keys(SCENARIOS) as Scenario[]) {
        source.set({
          service,
          listen: { host: "127.0.0.1", port: 0 },
          stickiness: { header: "x-user-id", salt: "across-routers" },
          // Canary first: its buckets are the first half.
          backends: [
            { version: "v2", weight: 50, endpoints: [backends[service]!.url] },
            { version: "v1", weight: 50, endpoints: [backends.v1!.url] },
          ],
        });
      }
      const routers = Array.from(
        { length: n },
        (_, i) =>
          new Router({
            source,
            routerId: `${name}-${i}`,
            measurements: { sink: store, now: () => clock.t, retentionSeconds: 0 },
          }),
      );
      for (const r of routers) await r.start();
      closers.push(async () => {
        for (const r of routers) await r.stop();
      });
      return { store, routers, clock };
    }

    /** After the traffic: what the routers measured themselves, then the analysis of the store. */
    async function results(c: Awaited<ReturnType<typeof configuration>>) {
      const inMemory = {
        good: await mergedInMemory(c.routers, "good"),
        bad: await mergedInMemory(c.routers, "bad"),
      };
      // Stopping writes every second left, the current one included.
      for (const r of c.routers) await r.stop();
      return {
        store: c.store,
        inMemory,
        good: await analyse(c.store, "good"),
        bad: await analyse(c.store, "bad"),
      };
    }

    it("two routers with half of the traffic each reach the verdicts of one router with all of it", async (t) => {
      const configs = [await configuration(2, "split"), await configuration(1, "single")];
      await drive(configs);
      const split = await results(configs[0]!);
      const single = await results(configs[1]!);

      for (const scenario of ["good", "bad"] as const) {
        const a = split[scenario];
        const b = single[scenario];
        const quantiles = (o: Outcome) =>
          ["v1", "v2"]
            .map(
              (v) =>
                `${v} ${o.windows.get(v)?.p50Ms?.toFixed(2)}/${o.windows.get(v)?.p90Ms?.toFixed(2)}`,
            )
            .join(", ");
        t.diagnostic(
          `${scenario}: split ${JSON.stringify(a.verdicts)}, p50/p90 ms ${quantiles(a)}; one router ${JSON.stringify(b.verdicts)}, ${quantiles(b)}`,
        );
        // The same verdicts, and the expected ones.
        assert.deepEqual(a.verdicts, b.verdicts, JSON.stringify([a.summaries, b.summaries]));
        const expected =
          scenario === "good"
            ? { phase: "Successful", outcome: "pass" }
            : { phase: "Failed", outcome: "fail" };
        assert.deepEqual(
          a.verdicts,
          { errors: expected, latency: expected },
          JSON.stringify(a.summaries),
        );
        // The merged counts are the same, exactly: the same requests met the same fates.
        assert.deepEqual(counts(a.windows), counts(b.windows));
        assert.equal(
          [...a.windows.values()].reduce((n, w) => n + w.requests, 0),
          SECONDS * PER_SECOND,
        );
        // Latencies are measured by real clocks: each quantile within what the backends' delay
        // spread and the machine's noise allow (the delays are the same by construction).
        for (const v of ["v1", "v2"]) {
          for (const q of ["p50Ms", "p90Ms"] as const) {
            const x = a.windows.get(v)![q]!;
            const y = b.windows.get(v)![q]!;
            assert.ok(
              Math.abs(x - y) <= Math.max(3, 0.25 * Math.max(x, y)),
              `${scenario} ${v} ${q}: ${x.toFixed(2)} split vs ${y.toFixed(2)} one router`,
            );
          }
        }
        // The store's merge across routers is exact: what each router measured, summed.
        const own = split.inMemory[scenario];
        for (const [v, w] of a.windows) {
          const m = own.get(v)!;
          assert.equal(w.requests, m.requests);
          assert.equal(w.status["5xx"], m.s5xx);
          assert.deepEqual(sketchBins(w.latency), sketchBins(m.latency));
          assert.equal(w.p50Ms, m.latency.quantile(0.5));
          assert.equal(w.p99Ms, m.latency.quantile(0.99));
        }
      }
      // Two routers wrote; their rows are told apart by router id.
      const rows = await split.store.readMeasurements({
        service: "good",
        fromSec: T0 / 1000,
        toSec: T0 / 1000 + SECONDS,
      });
      assert.deepEqual([...new Set(rows.map((r) => r.routerId))].sort(), ["split-0", "split-1"]);
    });
  });
}

const dirs: string[] = [];
describeStore("SQLite", undefined, async () => {
  const dir = tempDir("turnout-across-");
  dirs.push(dir);
  return openSqliteStore({ path: join(dir, "turnout.db") });
});

const pgMissing = requirePostgres();
describeStore("PostgreSQL", pgMissing, async () => {
  const pg = await sharedCluster();
  return openPostgresStore({ url: await pg.createDatabase(), poolSize: 4 });
});

after(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (pgMissing === undefined) await (await sharedCluster()).stop();
});
