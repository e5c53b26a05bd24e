import assert from "node:assert/strict";
import { test } from "node:test";
import { bucketOf } from "../core/hashing.js";
import type { RouteTable } from "../core/model.js";
import type { Exposure, OutcomeEvent } from "../store/experiment-store.js";
import { ExposureLog, experimentOf, recordResponseHeaders, selectArm } from "./exposures.js";
import { UpstreamPools } from "./pools.js";
import { MeasurementRecorder } from "./stats.js";
import { compileTable } from "./table.js";

const pools = new UpstreamPools({
  headersTimeoutMs: 1000,
  bodyTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});
test.after(() => pools.closeAll());
const recorder = new MeasurementRecorder();
const silent = { debug() {}, info() {}, warn() {}, error() {} };

class FakeSink {
  exposures: Exposure[] = [];
  events: OutcomeEvent[] = [];
  fail = false;
  async recordExposures(x: readonly Exposure[]) {
    if (this.fail) throw new Error("store down");
    this.exposures.push(...x);
  }
  async recordEvents(e: readonly OutcomeEvent[]) {
    this.events.push(...e);
  }
}

function setup(key: NonNullable<RouteTable["experiment"]>["key"], log: ExposureLog) {
  const raw: RouteTable = {
    service: "svc",
    revision: 1,
    listen: { host: "127.0.0.1", port: 0 },
    hashVersion: 1,
    updatedAt: 0,
    backends: [
      { version: "v2", weight: 30, endpoints: ["http://127.0.0.1:1"] },
      { version: "v1", weight: 70, endpoints: ["http://127.0.0.1:2"] },
    ],
    experiment: {
      name: "exp",
      arms: [
        { name: "A", version: "v1", weight: 70 },
        { name: "B", version: "v2", weight: 30 },
      ],
      key,
      salt: "salt-1",
      force: { header: "x-arm", query: "arm" },
      responseHeaders: ["x-conf"],
    },
  };
  const { table, problems } = compileTable(raw, {
    pools,
    counters: (v) => recorder.series("svc", v),
    features: { experiment: log },
  });
  assert.deepEqual(problems, []);
  return experimentOf(table)!;
}

const req = (headers: Record<string, string>, url = "/") => ({
  rawHeaders: Object.entries(headers).flat(),
  url,
});

test("arms by the versioned bucket of salt:unit, sticky, and each unit logged once", async () => {
  const sink = new FakeSink();
  const log = new ExposureLog({ sink, logger: silent, now: () => 1000 });
  const x = setup({ header: "x-user" }, log);
  const out = { setCookie: null, experimentUnit: null as string | null };
  let b = 0;
  for (let i = 0; i < 2000; i++) {
    const unit = `u${i}`;
    const backend = selectArm(x, req({ "X-User": unit }), out);
    const want = bucketOf("salt-1", unit, 1) < 700_000 ? "v1" : "v2";
    assert.equal(backend?.version, want, unit);
    assert.equal(out.experimentUnit, unit);
    assert.equal(selectArm(x, req({ "x-user": unit }), out)?.version, want);
    if (want === "v2") b++;
  }
  assert.ok(b > 520 && b < 680, `B got ${b} of 2000`);
  // Without a key: falls through, not an exposure.
  assert.equal(selectArm(x, req({}), out), null);
  assert.equal(out.experimentUnit, null);
  // Forced arms: served, not logged.
  assert.equal(selectArm(x, req({ "x-arm": "B", "x-user": "qa" }), out)?.version, "v2");
  assert.equal(selectArm(x, req({ "x-user": "qa" }, "/p?arm=A"), out)?.version, "v1");
  assert.equal(out.experimentUnit, null);
  await log.flush();
  assert.equal(sink.exposures.length, 2000);
  assert.equal(new Set(sink.exposures.map((e) => e.unit)).size, 2000);
  assert.ok(!sink.exposures.some((e) => e.unit === "qa"));
  assert.deepEqual(sink.exposures[0], {
    experiment: "exp",
    unit: "u0",
    arm: bucketOf("salt-1", "u0", 1) < 700_000 ? "A" : "B",
    at: 1000,
  });
});

test("a cookie key is issued when absent; numeric response headers become events", async () => {
  const sink = new FakeSink();
  const log = new ExposureLog({ sink, logger: silent, now: () => 5 });
  const x = setup({ cookie: "uid" }, log);
  const out = { setCookie: null as string | null, experimentUnit: null as string | null };
  assert.ok(selectArm(x, req({}), out));
  assert.match(
    out.setCookie ?? "",
    /^uid=[0-9a-f-]{36}; Path=\/; Max-Age=31536000; HttpOnly; SameSite=Lax$/,
  );
  const unit = out.experimentUnit!;
  out.setCookie = null;
  selectArm(x, req({ cookie: `a=1; uid=${unit}` }), out);
  assert.equal(out.setCookie, null);
  assert.equal(out.experimentUnit, unit);
  recordResponseHeaders(x, unit, { "x-conf": "0.75", other: "1" }, "req-1");
  recordResponseHeaders(x, unit, { "x-conf": "n/a" }, "req-2");
  await log.flush();
  assert.equal(sink.exposures.length, 1);
  assert.deepEqual(sink.events, [
    {
      idempotencyKey: "router:req-1:x-conf",
      unit,
      metric: "header:x-conf",
      value: 0.75,
      timestamp: 5,
    },
  ]);
});

test("a failed flush keeps the rows for the next one", async () => {
  const sink = new FakeSink();
  const log = new ExposureLog({ sink, logger: silent });
  log.expose("e", "u1", "A");
  sink.fail = true;
  await log.flush();
  assert.equal(log.pending, 1);
  sink.fail = false;
  log.expose("e", "u2", "B");
  log.expose("e", "u1", "A"); // already seen by this router: not again
  await log.flush();
  assert.deepEqual(
    sink.exposures.map((e) => e.unit),
    ["u1", "u2"],
  );
  assert.equal(log.pending, 0);
});

test("a third arm on a version without weight is served to its units only", () => {
  const log = new ExposureLog({ sink: new FakeSink(), logger: silent, now: () => 0 });
  const raw: RouteTable = {
    service: "svc",
    revision: 1,
    listen: { host: "127.0.0.1", port: 0 },
    hashVersion: 1,
    updatedAt: 0,
    backends: [
      { version: "v2", weight: 33, endpoints: ["http://127.0.0.1:1"] },
      { version: "v1", weight: 67, endpoints: ["http://127.0.0.1:2"] },
      { version: "v3", weight: 0, endpoints: ["http://127.0.0.1:3"] },
    ],
    experiment: {
      name: "exp3",
      arms: [
        { name: "A", version: "v1", weight: 34 },
        { name: "B", version: "v2", weight: 33 },
        { name: "C", version: "v3", weight: 33 },
      ],
      key: { header: "x-user" },
      salt: "s3",
    },
  };
  const { table, problems } = compileTable(raw, {
    pools,
    counters: (v) => recorder.series("svc", v),
    features: { experiment: log },
  });
  assert.deepEqual(problems, []);
  const x = experimentOf(table)!;
  const out = { setCookie: null, experimentUnit: null as string | null };
  const seen: Record<string, number> = {};
  for (let i = 0; i < 3000; i++) {
    const v = selectArm(x, req({ "x-user": `u${i}` }), out)?.version ?? "none";
    seen[v] = (seen[v] ?? 0) + 1;
  }
  assert.deepEqual(Object.keys(seen).sort(), ["v1", "v2", "v3"]);
  assert.ok((seen.v3 ?? 0) > 900 && (seen.v3 ?? 0) < 1100, JSON.stringify(seen));
  // The split (requests without a unit id) never sends anything to the weightless version.
  assert.ok(!table.backends.some((b) => b.version === "v3"));
});
