import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { request } from "undici";
import { FakeClock } from "../core/clock.js";
import { API_VERSION, type ServiceResource, type ServiceStatus } from "../core/model.js";
import { type BufferSource, withBufferMetrics } from "../router/buffer-metrics.js";
import { MIRROR_METRIC_NAMES, withMirrorMetrics } from "../router/mirror-metrics.js";
import { MeasurementRecorder } from "../router/stats.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import {
  createMetricsRegistry,
  DURATION_BUCKETS_SECONDS,
  type MetricFamily,
  mergeMetricFamilies,
  recorderMetricFamilies,
  registerForwardedMetrics,
  registerRouterMetrics,
} from "./metrics.js";
import { buildApi } from "./server.js";

const T0 = 1_700_000_000_000;
const V1_LATENCIES_MS = [0.3, 0.7, 3, 7, 15, 40, 70, 200];
const TOKEN = "secret-token";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text format: sample lines, plus the TYPE of each family. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function find(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

function service(name: string): ServiceResource {
  return {
    apiVersion: API_VERSION,
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port: 8080, host: "127.0.0.1" },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
    },
  } as ServiceResource;
}

function status(phase: ServiceStatus["phase"]): ServiceStatus {
  return {
    phase,
    message: "",
    observedGeneration: 1,
    stableVersion: "v1",
    canaryVersion: "v2",
    stepIndex: 0,
    stepStartedAt: T0,
    canaryWeight: 10,
    pausedByUser: false,
    abortedVersion: null,
    rolloutStartedAt: T0,
    rolloutNumber: 1,
    previousStableVersions: [],
    lastTransitionAt: T0,
  };
}

async function seededStore(): Promise<Store> {
  const store = await openSqliteStore({ path: ":memory:" });
  await store.applyResources([service("shop")], { actor: "test", now: T0 });
  await store.commit({
    service: "shop",
    status: status("Progressing"),
    routeTable: {
      service: "shop",
      listen: { host: "127.0.0.1", port: 8080 },
      hashVersion: 1,
      backends: [
        { version: "v2", weight: 10, endpoints: [] },
        { version: "v1", weight: 90, endpoints: [] },
      ],
      updatedAt: T0,
    },
    now: T0,
  });
  return store;
}

describe("GET /metrics", () => {
  it("serves Prometheus text without a token: router counters, latency histogram, weights, phases, process", async (t) => {
    const store = await seededStore();
    t.after(() => store.close());
    const clock = { t: T0 };
    const recorder = new MeasurementRecorder({ now: () => clock.t });
    const v1 = recorder.series("shop", "v1");
    const v2 = recorder.series("shop", "v2");
    // v1: 1000 responses over several seconds, at latencies well inside the histogram's
    // buckets (a value within 1% of a bound may fall on either side); v2: slow ones and errors.
    const latencies = (i: number) => V1_LATENCIES_MS[i % V1_LATENCIES_MS.length]!;
    for (let i = 0; i < 1000; i++) {
      clock.t = T0 + i * 7;
      v1.record(i % 100 === 0 ? 404 : 200, latencies(i), false);
    }
    v2.record(200, 300, false);
    v2.record(502, 4, true);
    v2.record(504, 30_000, true);
    // A client that gave up on v2 after 20 s.
    v2.record(499, 20_000, false, true);

    const api = buildApi({
      store,
      clock: new FakeClock(T0),
      token: TOKEN,
      version: "test",
      metrics: createMetricsRegistry({ store, recorder }),
    });
    t.after(() => api.close());
    const url = await api.listen({ host: "127.0.0.1", port: 0 });

    const res = await request(`${url}/metrics`);
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parse(await res.body.text());

    // Counters.
    assert.equal(types.get("turnout_router_requests_total"), "counter");
    const req = (version: string, code_class: string) =>
      find(samples, "turnout_router_requests_total", { service: "shop", version, code_class });
    assert.equal(req("v1", "2xx"), 990);
    assert.equal(req("v1", "4xx"), 10);
    assert.equal(req("v1", "5xx"), 0);
    assert.equal(req("v2", "5xx"), 2);
    assert.equal(req("v2", "4xx"), 1);
    assert.equal(
      find(samples, "turnout_router_upstream_errors_total", { service: "shop", version: "v2" }),
      2,
    );
    assert.equal(types.get("turnout_router_abandoned_requests_total"), "counter");
    const abandoned = (version: string) =>
      find(samples, "turnout_router_abandoned_requests_total", { service: "shop", version });
    assert.equal(abandoned("v2"), 1);
    assert.equal(abandoned("v1"), 0);

    // Histogram: cumulative buckets, +Inf = count, sum in seconds.
    assert.equal(types.get("turnout_router_request_duration_seconds"), "histogram");
    const bucket = (version: string, le: string) =>
      find(samples, "turnout_router_request_duration_seconds_bucket", {
        service: "shop",
        version,
        le,
      });
    const counts = DURATION_BUCKETS_SECONDS.map((le) => bucket("v1", String(le))!);
    assert.ok(
      counts.every((c, i) => i === 0 || c >= counts[i - 1]!),
      "cumulative",
    );
    assert.equal(bucket("v1", "+Inf"), 1000);
    const v1Values = Array.from({ length: 1000 }, (_, i) => latencies(i));
    for (const le of DURATION_BUCKETS_SECONDS) {
      const exact = v1Values.filter((ms) => ms <= le * 1000).length;
      assert.equal(bucket("v1", String(le)), exact, `le=${le}`);
    }
    assert.equal(bucket("v2", "0.005"), 1);
    assert.equal(bucket("v2", "10"), 2);
    assert.equal(bucket("v2", "+Inf"), 4);
    const v1SumMs = v1Values.reduce((a, b) => a + b);
    const sum = find(samples, "turnout_router_request_duration_seconds_sum", {
      service: "shop",
      version: "v1",
    })!;
    assert.ok(Math.abs(sum - v1SumMs / 1000) < 1e-9);
    assert.equal(
      find(samples, "turnout_router_request_duration_seconds_count", {
        service: "shop",
        version: "v1",
      }),
      1000,
    );

    // Store gauges.
    assert.equal(
      find(samples, "turnout_route_weight_percent", { service: "shop", version: "v2" }),
      10,
    );
    assert.equal(
      find(samples, "turnout_route_weight_percent", { service: "shop", version: "v1" }),
      90,
    );
    assert.equal(
      find(samples, "turnout_rollout_phase", { service: "shop", phase: "Progressing" }),
      1,
    );
    assert.equal(find(samples, "turnout_rollout_phase", { service: "shop", phase: "Healthy" }), 0);
    assert.equal(
      samples.filter((s) => s.name === "turnout_rollout_phase").length,
      5,
      "one sample per phase",
    );
    assert.equal(find(samples, "turnout_store_up", {}), 1);

    // Process metrics, prefixed.
    assert.ok((find(samples, "turnout_process_cpu_user_seconds_total", {}) ?? -1) >= 0);
    assert.ok((find(samples, "turnout_process_resident_memory_bytes", {}) ?? 0) > 0);

    // Counters only go up: more traffic, a second scrape.
    clock.t += 5000;
    v1.record(200, 1, false);
    const again = parse(await (await request(`${url}/metrics`)).body.text()).samples;
    assert.equal(
      find(again, "turnout_router_requests_total", {
        service: "shop",
        version: "v1",
        code_class: "2xx",
      }),
      991,
    );

    // Everything else still wants the token.
    const denied = await request(`${url}/api/v1/services`);
    assert.equal(denied.statusCode, 401);
    await denied.body.dump();
  });

  it("a failing store sets turnout_store_up to 0 and the scrape still succeeds", async () => {
    const broken = {
      listRouteTables: () => Promise.reject(new Error("down")),
      listResources: () => Promise.reject(new Error("down")),
      getStatus: () => Promise.reject(new Error("down")),
    } as unknown as Store;
    const registry = createMetricsRegistry({ store: broken, processMetrics: false });
    const { samples } = parse(await registry.metrics());
    assert.equal(find(samples, "turnout_store_up", {}), 0);
    assert.equal(samples.filter((s) => s.name === "turnout_route_weight_percent").length, 0);
    assert.equal(samples.filter((s) => s.name.startsWith("turnout_router_")).length, 0);
  });

  it("without a registry there is no /metrics route", async (t) => {
    const store = await openSqliteStore({ path: ":memory:" });
    t.after(() => store.close());
    const api = buildApi({ store, clock: new FakeClock(T0), token: TOKEN, version: "test" });
    t.after(() => api.close());
    const res = await api.inject({ method: "GET", url: "/metrics" });
    assert.equal(res.statusCode, 401);
  });

  it("router families collected in another registry (the router thread's) print the same text", async (t) => {
    const store = await seededStore();
    t.after(() => store.close());
    const clock = { t: T0 };
    const recorder = new MeasurementRecorder({ now: () => clock.t });
    for (let i = 0; i < 300; i++) {
      clock.t = T0 + i * 11;
      recorder
        .series("shop", i % 3 === 0 ? "v2" : "v1")
        .record(i % 50 === 0 ? 503 : 200, i % 40, i % 50 === 0);
    }
    const mirrors = {
      allStats: () => [
        {
          service: "shop",
          id: "p1",
          version: "v2",
          mirrored: 40,
          sent: 38,
          compared: 30,
          inFlight: 1,
          queued: 0,
          drops: { queue_full: 2, shadow_timeout: 5 },
        },
      ],
    };
    // One thread: the live recorder and mirrors.
    const live = withMirrorMetrics(
      createMetricsRegistry({ store, recorder, processMetrics: false }),
      mirrors,
    );
    // Two threads: the router's own registry, collected as plain data (cloned as a message is).
    const routerSide = new Registry();
    registerRouterMetrics(routerSide, recorder);
    withMirrorMetrics(routerSide, mirrors);
    let collections = 0;
    const collect = async (): Promise<MetricFamily[]> => {
      collections++;
      return structuredClone(await routerSide.getMetricsAsJSON());
    };
    const forwarded = createMetricsRegistry({
      store,
      routerMetrics: collect,
      processMetrics: false,
    });
    registerForwardedMetrics(forwarded, MIRROR_METRIC_NAMES, collect);

    const text = await live.metrics();
    assert.match(text, /turnout_router_request_duration_seconds_bucket\{/);
    assert.match(text, /turnout_mirror_drops_total\{service="shop",reason="shadow_timeout"\} 5/);
    assert.equal(await forwarded.metrics(), text);
    assert.equal(collections, 2, "one collection per scrape for each group of families");
  });

  it("a router that does not answer leaves its families empty and the scrape succeeds", async (t) => {
    const store = await seededStore();
    t.after(() => store.close());
    let up = true;
    const recorder = new MeasurementRecorder({ now: () => T0 });
    recorder.series("shop", "v1").record(200, 3, false);
    const routerSide = new Registry();
    registerRouterMetrics(routerSide, recorder);
    const registry = createMetricsRegistry({
      store,
      processMetrics: false,
      routerMetrics: async () => {
        if (!up) throw new Error("the router thread exited");
        return routerSide.getMetricsAsJSON();
      },
    });
    assert.equal(
      find(parse(await registry.metrics()).samples, "turnout_router_requests_total", {
        service: "shop",
        version: "v1",
        code_class: "2xx",
      }),
      1,
    );
    up = false;
    // A scrape's collection is shared until the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    const { samples, types } = parse(await registry.metrics());
    assert.equal(samples.filter((s) => s.name.startsWith("turnout_router_")).length, 0);
    assert.equal(types.get("turnout_router_requests_total"), "counter", "help and type kept");
    assert.equal(find(samples, "turnout_store_up", {}), 1);
  });

  it("services carried by HAProxy join the router's families, from HAProxy's measurements", async (t) => {
    const store = await seededStore();
    t.after(() => store.close());
    // The router measured "shop"; HAProxy's intake measured "hx" (and "shop" too, as after a
    // move from one data plane to the other: its series are added, never printed twice).
    const router = new MeasurementRecorder({ now: () => T0 });
    router.series("shop", "v1").record(200, 3, false);
    router.series("shop", "v1").record(200, 30, false);
    const haproxy = new MeasurementRecorder({ now: () => T0 });
    for (let i = 0; i < 9; i++) haproxy.series("hx", "v1").record(200, 2, false);
    haproxy.series("hx", "v2").record(503, 700, true);
    haproxy.series("shop", "v1").record(500, 4, false);
    const routerSide = new Registry();
    registerRouterMetrics(routerSide, router);
    const haproxyFamilies = recorderMetricFamilies(haproxy);
    const registry = createMetricsRegistry({
      store,
      processMetrics: false,
      routerMetrics: async () =>
        mergeMetricFamilies(await routerSide.getMetricsAsJSON(), await haproxyFamilies()),
    });
    const text = await registry.metrics();
    const { samples, types } = parse(text);
    const req = (service: string, version: string, code_class: string) =>
      find(samples, "turnout_router_requests_total", { service, version, code_class });
    assert.equal(req("hx", "v1", "2xx"), 9);
    assert.equal(req("hx", "v2", "5xx"), 1);
    assert.equal(req("shop", "v1", "2xx"), 2);
    assert.equal(req("shop", "v1", "5xx"), 1);
    assert.equal(
      find(samples, "turnout_router_upstream_errors_total", { service: "hx", version: "v2" }),
      1,
    );
    assert.equal(types.get("turnout_router_request_duration_seconds"), "histogram");
    const bucket = (service: string, version: string, le: string) =>
      find(samples, "turnout_router_request_duration_seconds_bucket", { service, version, le });
    assert.equal(bucket("hx", "v1", "0.0025"), 9);
    assert.equal(bucket("hx", "v2", "0.5"), 0);
    assert.equal(bucket("hx", "v2", "1"), 1);
    assert.equal(bucket("shop", "v1", "+Inf"), 3);
    assert.equal(bucket("shop", "v1", "0.005"), 2);
    assert.equal(
      find(samples, "turnout_router_request_duration_seconds_count", {
        service: "shop",
        version: "v1",
      }),
      3,
    );
    // One sample line per name and label set: Prometheus rejects duplicates.
    const lines = text.split("\n").filter((l) => l.startsWith("turnout_router_"));
    assert.equal(new Set(lines.map((l) => l.slice(0, l.lastIndexOf(" ")))).size, lines.length);
    // One family header each.
    assert.equal(text.match(/^# TYPE turnout_router_requests_total /gm)?.length, 1);
  });

  it("merging families: same name and labels added, the rest kept in order", () => {
    const fam = (name: string, values: { labels: Record<string, string>; value: number }[]) =>
      ({ name, help: name, type: "counter", aggregator: "sum", values }) as unknown as MetricFamily;
    const merged = mergeMetricFamilies(
      [fam("a", [{ labels: { s: "x", v: "1" }, value: 2 }]), fam("b", [])],
      [
        fam("a", [
          { labels: { v: "1", s: "x" }, value: 3 },
          { labels: { s: "y", v: "1" }, value: 1 },
        ]),
        fam("c", [{ labels: {}, value: 7 }]),
      ],
    );
    assert.deepEqual(
      merged.map((f) => [f.name, f.values.map((v) => [v.labels, v.value])]),
      [
        [
          "a",
          [
            [{ s: "x", v: "1" }, 5],
            [{ s: "y", v: "1" }, 1],
          ],
        ],
        ["b", []],
        ["c", [[{}, 7]]],
      ],
    );
  });

  it("merging families: a family's aggregator says how its samples combine (the store is reachable only if every data plane reaches it)", async () => {
    const counts = (n: number) => ({
      measurements: { buffered: n, dropped: 1 },
      exposures: { buffered: 0, dropped: n },
      events: { buffered: 0, dropped: 0 },
      shadow: { buffered: 0, dropped: 0 },
    });
    const up = { buffers: () => counts(0), storeReachable: true };
    const cutOff = { buffers: () => counts(3), storeReachable: false };
    const families = async (source: BufferSource) =>
      withBufferMetrics(new Registry(), source).getMetricsAsJSON();
    const value = (merged: MetricFamily[], name: string, labels: Record<string, string> = {}) =>
      merged
        .find((f) => f.name === name)
        ?.values.find((v) => JSON.stringify(v.labels) === JSON.stringify(labels))?.value;
    const both = mergeMetricFamilies(await families(up), await families(cutOff));
    assert.equal(value(both, "turnout_router_store_reachable"), 0);
    assert.equal(value(both, "turnout_router_buffered_rows", { kind: "measurements" }), 3);
    assert.equal(value(both, "turnout_router_dropped_rows_total", { kind: "measurements" }), 2);
    assert.equal(value(both, "turnout_router_dropped_rows_total", { kind: "exposures" }), 3);
    const healthy = mergeMetricFamilies(await families(up), await families(up));
    assert.equal(value(healthy, "turnout_router_store_reachable"), 1);
  });
});
