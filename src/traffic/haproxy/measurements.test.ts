/**
 * HAProxy's measurement intake through a store outage longer than its buffers hold (issue #14,
 * item 4), with the clock injected so that every count is exact: log lines as HAProxy's ring
 * sends them (over TCP to the intake), a real SQLite store behind a switch that makes every
 * write fail while "down" (as a PostgreSQL outage does; the e2e variant with a real HAProxy and
 * a real PostgreSQL is test/e2e/haproxy-outage.test.ts).
 *
 * With a 5-second measurement window and room for 10 exposures, 12 seconds of traffic while the
 * store is down must: hold the last 5 seconds and 10 exposures and drop the rest, counted per
 * kind in `buffers()` and in the /metrics families; log one warning when the outage begins and
 * one info line with the counts when it ends; and write everything held once the store is back.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, test } from "node:test";
import { Registry } from "prom-client";
import type { MeasurementRow } from "../../core/measurements.js";
import { withBufferMetrics } from "../../router/buffer-metrics.js";
import { captureLog, type LogLine, OUTAGE_SCENARIO } from "../../router/testing.js";
import { ExperimentStore, type Exposure } from "../../store/experiment-store.js";
import { openSqliteStore } from "../../store/sqlite/sqlite-store.js";
import { HaproxyMeasurements } from "./measurements.js";
import { waitFor } from "./testing.js";

// The router's outage (src/router/outage.test.ts), as HAProxy's log brings it.
const {
  t0: T0,
  windowSeconds: WINDOW_SECONDS,
  maxRows: MAX_ROWS,
  seconds: OUTAGE_SECONDS,
  perSecond: UNITS_PER_SECOND,
} = OUTAGE_SCENARIO;

/** A request line as HAProxy logs it (config.ts LOG_FIELDS): an exposure of `unit` to arm A. */
function logLine(endMs: number, seq: number, unit: string): string {
  const hex = Buffer.from(unit).toString("hex");
  return `T2 ${endMs} 4242 0 ${seq} svc slot0 200 1500 1 -- v1:e_127.0.0.1_9001 - - A ${hex}`;
}

test("HAProxy's intake through a store outage: holds what fits, counts what does not, writes the rest when the store is back", async (t) => {
  const store = await openSqliteStore({ path: ":memory:" });
  after(() => store.close());
  const experiments = new ExperimentStore(store);
  // The store behind a switch: down, every write fails as a cut connection does.
  let down = false;
  const refused = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432"));
  const written = { measurements: [] as MeasurementRow[], exposures: [] as Exposure[] };
  const sink = {
    writeMeasurements: async (rows: MeasurementRow[]) => {
      if (down) return refused();
      await store.writeMeasurements(rows);
      written.measurements.push(...rows);
    },
    pruneMeasurements: (before: number) => (down ? refused() : store.pruneMeasurements(before)),
  };
  const exposures = {
    recordExposures: async (x: readonly Exposure[]) => {
      if (down) return refused();
      await experiments.recordExposures(x);
      written.exposures.push(...x);
    },
    recordEvents: (...args: Parameters<ExperimentStore["recordEvents"]>) =>
      down ? refused() : experiments.recordEvents(...args),
  };

  // Half past: the intake writes a second once its late lines are in, half a second after it
  // ends (`storeGraceMs`), so each step of the clock completes the second before it.
  let clock = T0 + 500;
  const lines: LogLine[] = [];
  const m = new HaproxyMeasurements({
    measurements: {
      sink,
      now: () => clock,
      windowSeconds: WINDOW_SECONDS,
      flushIntervalMs: 20,
      retentionSeconds: 0,
    },
    exposures,
    maxBufferedRows: MAX_ROWS,
    logger: captureLog(lines),
    experimentOf: (series) => (series === "svc" ? "exp" : undefined),
  });
  const metrics = withBufferMetrics(new Registry(), m);
  const intake = await m.start();
  t.after(() => m.stop());
  // HAProxy's ring forwarder: one TCP connection, lines as requests end.
  const ring = net.connect(intake.port, intake.host);
  await new Promise((resolve) => ring.once("connect", resolve));
  t.after(() => ring.destroy());
  let seq = 0;
  let units = 0;
  /** One second of traffic by the injected clock: `n` new units, then the clock moves on. */
  const second = async (n: number, before?: () => Promise<unknown>) => {
    const at = clock + 100;
    ring.write(
      `${Array.from({ length: n }, () => logLine(at, ++seq, `u${units++}`)).join("\n")}\n`,
    );
    await waitFor("the lines taken in", () => m.stats().lines === seq);
    await before?.();
    clock += 1000;
  };
  const totals = (f: "buffered" | "dropped") =>
    Object.values(m.buffers()).reduce((n, x) => n + x[f], 0);

  // 1. The store is up: one second goes all the way.
  await second(3);
  await waitFor(
    "the first second written",
    () => written.measurements.length === 1 && written.exposures.length === 3,
  );
  assert.equal(totals("buffered"), 0);
  assert.equal(m.storeReachable, true);

  // 2. The outage: 12 seconds of traffic by the clock, 2 new units a second.
  // The exposures of its first second are the first write to fail: the outage begins then.
  down = true;
  await second(UNITS_PER_SECOND, () =>
    waitFor("the outage noticed", () => !m.storeReachable, 5000),
  );
  for (let s = 1; s < OUTAGE_SECONDS; s++) await second(UNITS_PER_SECOND);
  const outageUnits = OUTAGE_SECONDS * UNITS_PER_SECOND;
  // The writers retry every 20 ms: wait for a failed attempt that saw every second.
  await waitFor(
    "the buffers to fill",
    () =>
      m.buffers().measurements.buffered === WINDOW_SECONDS &&
      m.buffers().exposures.buffered === MAX_ROWS,
  );
  const during = m.buffers();
  // The ring holds 5 seconds: 12 seconds written into it lose the first 7.
  assert.deepEqual(during, {
    measurements: { buffered: WINDOW_SECONDS, dropped: OUTAGE_SECONDS - WINDOW_SECONDS },
    exposures: { buffered: MAX_ROWS, dropped: outageUnits - MAX_ROWS },
    events: { buffered: 0, dropped: 0 },
    shadow: { buffered: 0, dropped: 0 },
  });
  assert.equal(m.storeReachable, false);
  // The same numbers in /metrics, every kind.
  const text = await metrics.metrics();
  assert.match(text, /^turnout_router_store_reachable 0$/m);
  for (const [kind, b] of Object.entries(during)) {
    const sample = (name: string, v: number) => `\n${name}{kind="${kind}"} ${v}\n`;
    assert.ok(text.includes(sample("turnout_router_buffered_rows", b.buffered)), kind);
    assert.ok(text.includes(sample("turnout_router_dropped_rows_total", b.dropped)), kind);
  }
  const warnings = lines.filter((l) => l.level === "warn");
  assert.equal(warnings.length, 1, JSON.stringify(warnings.map((w) => w.msg)));
  assert.match(warnings[0]!.msg, /the store is unreachable/);

  // 3. Back: everything held is written, the outage is told once with its counts.
  down = false;
  await waitFor("the held rows written", () => totals("buffered") === 0);
  const end = await waitFor("the end of the outage told", () =>
    lines.find((l) => l.level === "info" && /reachable again/.test(l.msg)),
  );
  t.diagnostic(`${end.msg} ${JSON.stringify(end.obj)}`);
  assert.deepEqual(end.obj.dropped, {
    measurements: OUTAGE_SECONDS - WINDOW_SECONDS,
    exposures: outageUnits - MAX_ROWS,
    events: 0,
    shadow: 0,
  });
  assert.deepEqual(end.obj.buffered, { measurements: 0, exposures: 0, events: 0, shadow: 0 });
  assert.deepEqual(end.obj.written, {
    measurements: WINDOW_SECONDS,
    exposures: MAX_ROWS,
    events: 0,
    shadow: 0,
  });
  assert.equal(end.obj.outageMs, OUTAGE_SECONDS * 1000);
  assert.equal(m.storeReachable, true);
  assert.match(await metrics.metrics(), /^turnout_router_store_reachable 1$/m);
  assert.equal(lines.filter((l) => l.level === "warn").length, 1, "no further warning");

  // Stored: the second before the outage and its last 5, 3 + 10 exposures.
  const firstOutageSec = T0 / 1000 + 1;
  const lastSec = firstOutageSec + OUTAGE_SECONDS - 1;
  const stored = await store.readMeasurements({
    service: "svc",
    fromSec: T0 / 1000,
    toSec: lastSec + 1,
  });
  assert.deepEqual(
    stored.map((r) => r.second).sort((a, b) => a - b),
    [
      T0 / 1000,
      ...Array.from({ length: WINDOW_SECONDS }, (_, i) => lastSec - WINDOW_SECONDS + 1 + i),
    ],
  );
  assert.equal(
    stored.reduce((n, r) => n + r.requests, 0),
    3 + WINDOW_SECONDS * UNITS_PER_SECOND,
  );
  assert.equal(written.exposures.length, 3 + MAX_ROWS);
  // The first exposures kept are the oldest of the outage: the newest were dropped.
  assert.deepEqual(
    written.exposures.slice(3).map((x) => x.unit),
    Array.from({ length: MAX_ROWS }, (_, i) => `u${3 + i}`),
  );
});
