import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MeasurementRow } from "../store/store.js";
import {
  canonicalLabels,
  MeasurementFlusher,
  MeasurementRecorder,
  type MeasurementSink,
  secondsOf,
} from "./stats.js";

const T0 = 1_700_000_000_000; // a whole second

/** A clock the test moves by hand. */
function clock(t = T0) {
  const c = { t, now: () => c.t };
  return c;
}

/** A sink that stores rows in memory (upserting like the store) and can be made to fail. */
class MemorySink implements MeasurementSink {
  readonly rows = new Map<string, MeasurementRow>();
  fail: Error | null = null;
  writes = 0;
  pruned: number[] = [];
  async writeMeasurements(rows: MeasurementRow[]): Promise<void> {
    this.writes++;
    if (this.fail) throw this.fail;
    for (const r of rows) {
      this.rows.set(`${r.service}|${r.version}|${r.labels}|${r.second}|${r.routerId}`, r);
    }
  }
  async pruneMeasurements(olderThanSec: number): Promise<number> {
    this.pruned.push(olderThanSec);
    return 0;
  }
  seconds(): number[] {
    return [...this.rows.values()].map((r) => r.second).sort((a, b) => a - b);
  }
}

const logs: { level: string; msg: string }[] = [];
const logger = {
  debug: () => {},
  info: (_o: unknown, msg?: string) => void logs.push({ level: "info", msg: msg ?? "" }),
  warn: (_o: unknown, msg?: string) => void logs.push({ level: "warn", msg: msg ?? "" }),
  error: (_o: unknown, msg?: string) => void logs.push({ level: "error", msg: msg ?? "" }),
};

describe("MeasurementRecorder", () => {
  it("counts per second and merges any window of seconds", () => {
    const c = clock();
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1" });
    const v1 = rec.series("svc", "v1");
    const v2 = rec.series("svc", "v2");
    assert.equal(rec.series("svc", "v1"), v1, "same key, same counters");
    for (let s = 0; s < 10; s++) {
      for (let k = 0; k < 100; k++) {
        c.t = T0 + s * 1000 + k * 5;
        v1.record(k < 95 ? 200 : 503, 1 + k / 10, k >= 98);
      }
      v2.record(404, 50, false);
      v2.record(302, 50, false);
    }
    const w = rec.window("svc", T0 + 2000, T0 + 5000);
    const a = w.get("v1");
    assert.ok(a);
    assert.deepEqual(a.seconds, [T0 / 1000 + 2, T0 / 1000 + 3, T0 / 1000 + 4]);
    assert.equal(a.requests, 300);
    assert.deepEqual(a.status, { "2xx": 285, "3xx": 0, "4xx": 0, "5xx": 15 });
    assert.equal(a.upstreamErrors, 6);
    assert.equal(a.latency.count, 300);
    assert.equal(a.latency.min, 1);
    // Rank floor(0.5 × 299) = 149 of 1.0, 1.0, 1.0, 1.1, ...: 5.9.
    assert.ok(Math.abs(a.latency.quantile(0.5) - 5.9) / 5.9 <= 0.01);
    assert.deepEqual(w.get("v2")?.status, { "2xx": 0, "3xx": 3, "4xx": 3, "5xx": 0 });

    // A window that starts mid-second leaves that second out; the end is exclusive.
    assert.deepEqual(rec.window("svc", T0 + 2001, T0 + 4001).get("v1")?.seconds, [
      T0 / 1000 + 3,
      T0 / 1000 + 4,
    ]);
    // The current (last) second is in the window while it runs.
    assert.equal(rec.window("svc", T0 + 9000, T0 + 10_000).get("v1")?.requests, 100);
    assert.equal(rec.window("svc", T0 + 20_000, T0 + 30_000).size, 0);
    assert.equal(rec.window("other", T0, T0 + 10_000).size, 0);
  });

  it("keeps only the last windowSeconds; totals keep everything", () => {
    const c = clock();
    const rec = new MeasurementRecorder({ now: c.now, windowSeconds: 10 });
    const s = rec.series("svc", "v1");
    for (let i = 0; i < 25; i++) {
      c.t = T0 + i * 1000;
      s.record(200, i + 1, false);
    }
    const w = rec.window("svc", T0, T0 + 25_000).get("v1");
    assert.equal(w?.requests, 10);
    assert.equal(w?.seconds[0], T0 / 1000 + 15);
    const [st] = rec.stats("svc");
    assert.equal(st?.latencyCount, 25);
    assert.equal(st?.status["2xx"], 25);
    assert.equal(st?.latencyMsSum, (25 * 26) / 2);
    assert.equal(st?.latencyMsMax, 25);
    assert.ok(Math.abs((st?.p50Ms ?? 0) - 13) / 13 <= 0.01);
    assert.ok(Math.abs((st?.p99Ms ?? 0) - 24) / 24 <= 0.01);
    const [tot] = rec.totals("svc");
    assert.equal(tot?.responses, 25);
    assert.equal(tot?.latency.count, 25);
  });

  it("live stats keep the fields the CLI reads", () => {
    const rec = new MeasurementRecorder();
    const s = rec.series("svc", "v1");
    s.requests += 3;
    s.record(200, 10, false);
    s.record(502, 20, true);
    assert.deepEqual(rec.stats("svc"), [
      {
        version: "v1",
        requests: 3,
        status: { "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 1 },
        upstreamErrors: 1,
        abandoned: 0,
        latencyMsSum: 30,
        latencyCount: 2,
        latencyMsMax: 20,
        // Lower-rank quantiles: rank floor(q × (n − 1)), so p99 of two values is the first.
        p50Ms: 10,
        p99Ms: 10,
      },
    ]);
    assert.equal(rec.series("empty", "v1").snapshot().p50Ms, null);
  });

  it("recordSince measures the latency from a performance.now() reading and stamps the second", () => {
    const rec = new MeasurementRecorder();
    const s = rec.series("svc", "v1");
    const before = Math.floor(Date.now() / 1000);
    s.recordSince(200, performance.now() - 25, true);
    const after = Math.floor(Date.now() / 1000);
    const w = rec.window("svc", before * 1000, (after + 1) * 1000).get("v1");
    assert.equal(w?.requests, 1);
    assert.equal(w?.upstreamErrors, 1);
    assert.ok(w!.seconds[0]! >= before && w!.seconds[0]! <= after);
    const lat = w!.latency.max;
    assert.ok(lat >= 25 && lat < 25 + 1000, `latency ${lat}`);

    // With an injected clock, that clock stamps the second.
    const fake = new MeasurementRecorder({ now: () => T0 + 1500 });
    fake.series("svc", "v1").recordSince(200, performance.now(), false);
    assert.deepEqual(fake.window("svc", T0, T0 + 5000).get("v1")?.seconds, [T0 / 1000 + 1]);
  });

  it("a request abandoned by its client is a 499 with its wait as latency, counted everywhere", () => {
    const c = clock(T0 + 200);
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1" });
    const s = rec.series("svc", "v2");
    s.requests += 3;
    s.record(200, 5, false);
    s.recordAbandonedSince(performance.now() - 2000);
    s.record(499, 7, false); // an upstream's own 499 is its answer, not an abandoned request
    const w = rec.window("svc", T0, T0 + 1000).get("v2");
    assert.equal(w?.requests, 3);
    assert.equal(w?.abandoned, 1);
    assert.deepEqual(w?.status, { "2xx": 1, "3xx": 0, "4xx": 2, "5xx": 0 });
    assert.equal(w?.upstreamErrors, 0);
    const waited = w!.latency.max;
    assert.ok(waited >= 2000 && waited < 2000 + 1000, `latency ${waited}`);
    const [st] = rec.stats("svc");
    assert.equal(st?.abandoned, 1);
    assert.equal(rec.totals("svc")[0]?.abandoned, 1);
    // The row the flusher writes carries it; a second without any carries 0.
    c.t = T0 + 1200;
    s.record(200, 5, false);
    const rows = rec.collect(true).rows.sort((a, b) => a.second - b.second);
    assert.deepEqual(
      rows.map((r) => [r.second - T0 / 1000, r.requests, r.s4xx, r.abandoned]),
      [
        [0, 3, 2, 1],
        [1, 1, 0, 0],
      ],
    );
  });

  it("requests sent and response heads are counted as they happen, before anything ends", () => {
    const c = clock(T0 + 200);
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1" });
    const hung = rec.series("svc", "v2");
    const ok = rec.series("svc", "v1");
    // Three requests to a version that answers none: nothing has ended, yet the window says so.
    for (let i = 0; i < 3; i++) hung.start(performance.now());
    ok.start(performance.now());
    c.t = T0 + 1300;
    ok.respond();
    ok.record(200, 1100, false);
    const w = rec.window("svc", T0, T0 + 2000);
    assert.equal(w.get("v2")?.requests, 0);
    assert.deepEqual(w.get("v2")?.starts, { started: 3, responded: 0, firstStartedSec: T0 / 1000 });
    assert.deepEqual(w.get("v2")?.seconds, [T0 / 1000]);
    assert.deepEqual(w.get("v1")?.starts, { started: 1, responded: 1, firstStartedSec: T0 / 1000 });
    assert.equal(rec.stats("svc").find((s) => s.version === "v2")?.requests, 3);
    // Each count in the second it happened: the start at arrival, the head when it came.
    const rows = rec
      .collect(true)
      .rows.sort((a, b) => a.version.localeCompare(b.version) || a.second - b.second);
    assert.deepEqual(
      rows.map((r) => [r.version, r.second - T0 / 1000, r.started, r.responded, r.requests]),
      [
        ["v1", 0, 1, 0, 0],
        ["v1", 1, 0, 1, 1],
        ["v2", 0, 3, 0, 0],
      ],
    );
  });

  it("a series fed only with ended requests (HAProxy's log) leaves the counts of starts out: not known", () => {
    const c = clock(T0 + 200);
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1" });
    const s = rec.series("svc", "v1");
    s.record(200, 5, false);
    assert.equal(rec.window("svc", T0, T0 + 1000).get("v1")?.starts, undefined);
    const [row] = rec.collect(true).rows;
    assert.ok(row && !("started" in row) && !("responded" in row), JSON.stringify(row));
  });

  it("a clock that steps back keeps counting into the newest second", () => {
    const c = clock(T0 + 5000);
    const rec = new MeasurementRecorder({ now: c.now });
    const s = rec.series("svc", "v1");
    s.record(200, 1, false);
    c.t = T0 + 3000;
    s.record(200, 1, false);
    const w = rec.window("svc", T0, T0 + 10_000).get("v1");
    assert.deepEqual(w?.seconds, [T0 / 1000 + 5]);
    assert.equal(w?.requests, 2);
  });

  it("series are keyed by version and labels", () => {
    const rec = new MeasurementRecorder();
    const plain = rec.series("svc", "v1");
    const armB = rec.series("svc", "v1", canonicalLabels({ variant: "on", arm: "b" }));
    assert.notEqual(plain, armB);
    assert.equal(armB.labels, "arm=b&variant=on");
    assert.equal(canonicalLabels({}), "");
    assert.equal(canonicalLabels({ "a&b": "c=d" }), "a%26b=c%3Dd");
    plain.record(200, 1, false);
    armB.record(200, 1, false);
    assert.deepEqual([...rec.window("svc", 0, Date.now() + 1000).keys()].sort(), [
      "v1",
      "v1\u0000arm=b&variant=on",
    ]);
  });

  it("collect() gives completed seconds once; the current one only when asked, again later", () => {
    const c = clock();
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1" });
    const s = rec.series("svc", "v1");
    s.record(200, 1, false);
    c.t = T0 + 1500;
    s.record(200, 2, false);
    let b = rec.collect(false);
    assert.deepEqual(
      b.rows.map((r) => [r.second, r.requests, r.routerId]),
      [[T0 / 1000, 1, "r1"]],
    );
    b.commit();
    assert.deepEqual(rec.collect(false).rows, []);
    b = rec.collect(true);
    assert.deepEqual(
      b.rows.map((r) => [r.second, r.requests]),
      [[T0 / 1000 + 1, 1]],
    );
    b.commit();
    s.record(200, 3, false);
    c.t = T0 + 2000;
    const again = rec.collect(false).rows;
    assert.deepEqual(
      again.map((r) => [r.second, r.requests]),
      [[T0 / 1000 + 1, 2]],
      "the partial second is written again, complete",
    );
    assert.equal(
      again[0]?.latency.c.reduce((x, y) => x + y, 0),
      2,
    );
  });

  it("a request that lands in a second already written, or being written, writes it again", () => {
    const c = clock(T0 + 900);
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1" });
    const s = rec.series("svc", "v1");
    s.record(200, 1, false);
    c.t = T0 + 1_000;
    // The flush collects second T0 (complete by this clock) and writes it...
    const b = rec.collect(false);
    assert.deepEqual(
      b.rows.map((r) => [r.second, r.requests]),
      [[T0 / 1000, 1]],
    );
    // ...while a request stamped a few ms earlier (a clock resync stepped back) lands in it.
    c.t = T0 + 998;
    s.record(200, 1, false);
    b.commit();
    c.t = T0 + 2_000;
    const again = rec.collect(false);
    assert.deepEqual(
      again.rows.map((r) => [r.second, r.requests]),
      [[T0 / 1000, 2]],
      "second T0 again, complete",
    );
    again.commit();
    // And once committed: a late request re-opens the second as well.
    c.t = T0 + 999;
    s.record(200, 1, false);
    c.t = T0 + 2_500;
    assert.deepEqual(
      rec.collect(false).rows.map((r) => [r.second, r.requests]),
      [[T0 / 1000, 3]],
    );
  });

  it("retired services disappear from readers and are forgotten once flushed", () => {
    const c = clock();
    const rec = new MeasurementRecorder({ now: c.now });
    rec.series("svc", "v1").record(200, 1, false);
    rec.retire("svc");
    assert.deepEqual(rec.stats("svc"), []);
    assert.deepEqual(rec.services(), []);
    rec.sweep();
    // Not flushed yet: still held for the flusher.
    assert.equal(rec.collect(true).rows.length, 1);
    c.t += 1000;
    rec.collect(false).commit();
    rec.sweep();
    assert.equal(rec.collect(true).rows.length, 0);
    // A table coming back starts a fresh series.
    assert.equal(rec.series("svc", "v1").snapshot().latencyCount, 0);
  });

  it("frees the ring of a series idle for a window, keeping its totals", () => {
    const c = clock();
    const rec = new MeasurementRecorder({ now: c.now, windowSeconds: 5 });
    const s = rec.series("svc", "v1");
    s.record(200, 1, false);
    c.t += 3000;
    rec.collect(false).commit();
    rec.sweep();
    assert.equal(s.idle, false, "not idle for a whole window yet");
    c.t += 5000;
    rec.collect(false).commit();
    rec.sweep();
    assert.equal(s.idle, true);
    assert.equal(rec.stats("svc")[0]?.latencyCount, 1);
    assert.equal(rec.window("svc", T0, c.t).size, 0);
    s.record(200, 2, false);
    assert.equal(s.idle, false);
    assert.equal(rec.stats("svc")[0]?.latencyCount, 2);
  });

  it("secondsOf takes the seconds that start in [from, to)", () => {
    assert.deepEqual(secondsOf(1000, 4000), { fromSec: 1, toSec: 4 });
    assert.deepEqual(secondsOf(1001, 4001), { fromSec: 2, toSec: 5 });
  });
});

describe("MeasurementFlusher", () => {
  it("writes completed seconds, survives a store outage, and catches up", async () => {
    logs.length = 0;
    const c = clock();
    const sink = new MemorySink();
    const rec = new MeasurementRecorder({ now: c.now, routerId: "r1", windowSeconds: 60 });
    const f = new MeasurementFlusher({ recorder: rec, sink, logger, retentionSeconds: 3600 });
    const s = rec.series("svc", "v1");

    for (let i = 0; i < 3; i++) {
      c.t = T0 + i * 1000;
      s.record(200, 1, false);
    }
    await f.flush();
    assert.deepEqual(sink.seconds(), [T0 / 1000, T0 / 1000 + 1]);
    assert.deepEqual(sink.pruned, [T0 / 1000 + 2 - 3600]);

    sink.fail = new Error("database is locked");
    for (let i = 3; i < 10; i++) {
      c.t = T0 + i * 1000;
      s.record(200, 1, false);
      await f.flush();
    }
    assert.equal(logs.filter((l) => l.level === "warn").length, 1, "one warning per outage");
    assert.equal(sink.rows.size, 2);

    sink.fail = null;
    await f.flush();
    assert.deepEqual(
      sink.seconds(),
      Array.from({ length: 9 }, (_, i) => T0 / 1000 + i),
    );
    assert.match(logs.at(-1)?.msg ?? "", /written again/);

    await f.stop();
    assert.equal(sink.rows.size, 10, "stop() writes the current second too");
    assert.equal(rec.droppedSeconds, 0);
  });

  it("an outage longer than the window loses the oldest seconds, counted, memory bounded", async () => {
    logs.length = 0;
    const c = clock();
    const sink = new MemorySink();
    sink.fail = new Error("down");
    const rec = new MeasurementRecorder({ now: c.now, windowSeconds: 5 });
    const f = new MeasurementFlusher({ recorder: rec, sink, logger });
    const s = rec.series("svc", "v1");
    for (let i = 0; i < 12; i++) {
      c.t = T0 + i * 1000;
      s.record(200, 1, false);
      await f.flush();
    }
    assert.equal(rec.droppedSeconds, 7);
    sink.fail = null;
    await f.flush();
    assert.deepEqual(
      sink.seconds(),
      [7, 8, 9, 10].map((i) => T0 / 1000 + i),
    );
    assert.ok(logs.some((l) => l.level === "info"));
  });

  it("without a sink it only keeps memory in check", async () => {
    const c = clock();
    const rec = new MeasurementRecorder({ now: c.now, windowSeconds: 5 });
    const f = new MeasurementFlusher({ recorder: rec, logger });
    const s = rec.series("svc", "v1");
    s.record(200, 1, false);
    c.t += 10_000;
    await f.flush();
    assert.equal(s.idle, true);
    assert.equal(rec.droppedSeconds, 0);
    await f.stop();
  });
});
