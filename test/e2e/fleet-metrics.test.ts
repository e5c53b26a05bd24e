/**
 * Every router of a fleet can be scraped: a `--roles router` process has no API, so
 * `--metrics-address` gives it a listener of its own for `/metrics` and `/healthz`. Real
 * processes on a private PostgreSQL cluster (test/support/postgres.ts): a router process
 * (`--router-address 127.0.0.2 --metrics-address 127.0.0.1:0`) and an `api,controller` one.
 *
 * - the router's own families are there, with exact counts of what it answered, and its store
 *   gauges (`turnout_router_store_reachable`, buffered and dropped rows);
 * - the store's gauges (weights, phases, `turnout_store_up`) are not: the API's process serves
 *   them, once for the fleet, and a scrape of a router never reads the store;
 * - with PostgreSQL down, the router is still scraped and says so (reachable 0, rows held), and
 *   says it is back once PostgreSQL is.
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import {
  api,
  cli,
  freePort,
  startBackend,
  startUp,
  staticService,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";
import { type PgCluster, requirePostgres, startCluster } from "../support/postgres.js";

const skip = requirePostgres();
const ROUTER_HOST = "127.0.0.2";

/** One sample of a Prometheus text exposition: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample of `name` whose labels include `labels`; null when none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  const s = samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s === undefined ? null : s.value;
}

describe("a router-only process serves /metrics on --metrics-address", { skip }, () => {
  let pg: PgCluster;
  const dirs: string[] = [];
  const ups: Up[] = [];
  let backend: Awaited<ReturnType<typeof startBackend>>;
  const dir = () => {
    const d = tempDir("turnout-fleet-metrics-");
    dirs.push(d);
    return d;
  };

  before(async () => {
    pg = await startCluster({ crashSafe: true });
    backend = await startBackend("v1");
  });
  after(async () => {
    for (const u of ups) await u.stop();
    await backend?.close();
    await pg?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("a bad --metrics-address is a usage error; nothing starts", async () => {
    for (const [given, why] of [
      ["9464", /the port is missing/],
      [":9464", /the host is missing/],
      ["127.0.0.1:70000", /port 70000 is not 0\.\.65535/],
    ] as const) {
      const r = await cli(["up", "--data-dir", dir(), "--metrics-address", given]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /TURNOUT_ERR_CLI_USAGE/);
    }
  });

  it("the router's families, exact counts, and its view of the store through an outage", async () => {
    const url = await pg.createDatabase();
    const tokenFile = join(dir(), "token");
    writeFileSync(tokenFile, "metrics-fleet-token-0123456789\n", { mode: 0o600 });
    const shared = ["--store", url, "--token-file", tokenFile];
    const [router, main] = await Promise.all([
      startUp(dir(), {}, [
        ...shared,
        "--roles",
        "router",
        "--router-address",
        ROUTER_HOST,
        "--metrics-address",
        "127.0.0.1:0",
      ]),
      startUp(dir(), {}, [...shared, "--roles", "api,controller"]),
    ]);
    ups.push(router, main);
    const metricsUrl = /served at (http:\/\/\S+)/.exec(router.stdout())?.[1];
    assert.ok(metricsUrl !== undefined, router.stdout());
    const scrape = async () => {
      const res = await fetch(`${metricsUrl}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      return parseSamples(await res.text());
    };

    const health = await fetch(`${metricsUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(((await health.json()) as { roles: string[] }).roles, ["router"]);
    const other = await fetch(`${metricsUrl}/api/v1/services`);
    assert.equal(other.status, 404);
    assert.equal(
      ((await other.json()) as { error: { code: string } }).error.code,
      "TURNOUT_ERR_API_NOT_FOUND",
    );

    const port = await freePort();
    const r = await api(
      main,
      "POST",
      "/api/v1/apply",
      staticService(port, { v1: [backend.url] }, "v1"),
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // Every answer from v1 is counted. Before the table is in force the listener refuses
    // connections, and the router's own 503 before v1 is probed ready belongs to no version.
    let answered = 0;
    const send = async () => {
      const res = await request(`http://${ROUTER_HOST}:${port}/`);
      await res.body.text();
      if (res.statusCode === 200) answered++;
      return res.statusCode;
    };
    await waitFor("the router to answer", async () => (await send().catch(() => 0)) === 200);
    for (let i = 0; i < 25; i++) assert.equal(await send(), 200);

    const v1 = { service: "shop", version: "v1" };
    let samples = await scrape();
    assert.equal(
      sampleValue(samples, "turnout_router_requests_total", { ...v1, code_class: "2xx" }),
      answered,
    );
    // The histogram counts the same responses as the counter, every class together.
    const byClass = samples.filter(
      (s) => s.name === "turnout_router_requests_total" && s.labels.service === "shop",
    );
    assert.equal(
      sampleValue(samples, "turnout_router_request_duration_seconds_count", v1),
      byClass.reduce((sum, s) => sum + s.value, 0),
    );
    assert.equal(sampleValue(samples, "turnout_router_store_reachable"), 1);
    assert.equal(
      sampleValue(samples, "turnout_router_dropped_rows_total", { kind: "measurements" }),
      0,
    );
    assert.ok(sampleValue(samples, "turnout_process_cpu_seconds_total") !== null);
    // The store's gauges are the API's: the fleet reports each once.
    for (const name of [
      "turnout_store_up",
      "turnout_route_weight_percent",
      "turnout_rollout_phase",
    ])
      assert.ok(!samples.some((s) => s.name === name), `${name} on a router`);
    const fromApi = parseSamples(await (await fetch(`${main.url}/metrics`)).text());
    assert.equal(sampleValue(fromApi, "turnout_store_up"), 1);
    assert.equal(sampleValue(fromApi, "turnout_route_weight_percent", v1), 100);

    // PostgreSQL down: the router is still scraped, and says what it holds.
    pg.down();
    try {
      for (let i = 0; i < 10; i++) assert.equal(await send(), 200);
      samples = await waitFor("the outage in the router's /metrics", async () => {
        const s = await scrape();
        const held = sampleValue(s, "turnout_router_buffered_rows", { kind: "measurements" }) ?? 0;
        return sampleValue(s, "turnout_router_store_reachable") === 0 && held > 0 ? s : undefined;
      });
      assert.equal(
        sampleValue(samples, "turnout_router_requests_total", { ...v1, code_class: "2xx" }),
        answered,
      );
    } finally {
      pg.up();
    }
    await waitFor("its end in the router's /metrics", async () => {
      const s = await scrape();
      return (
        sampleValue(s, "turnout_router_store_reachable") === 1 &&
        sampleValue(s, "turnout_router_buffered_rows", { kind: "measurements" }) === 0
      );
    });
    assert.equal(
      sampleValue(await scrape(), "turnout_router_dropped_rows_total", { kind: "measurements" }),
      0,
    );
  });
});
