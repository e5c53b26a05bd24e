/**
 * The Prometheus provider against a real Prometheus server: started here on a free loopback
 * port, with storage in a temp dir and a config scraping a /metrics endpoint this test serves
 * every second. Skipped, with the reason, when no `prometheus` binary is found (set
 * PROMETHEUS_BIN, or install it: `.ci/prometheus.sh` does on Debian/Ubuntu).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { assertWellFormed } from "../conformance.js";
import type { Measurement, MeasureRequest, PrometheusSourceSpec } from "../provider.js";
import { PrometheusProvider } from "./prometheus-provider.js";

function findPrometheus(): string | undefined {
  const candidates = process.env.PROMETHEUS_BIN
    ? [process.env.PROMETHEUS_BIN]
    : (process.env.PATH ?? "").split(delimiter).map((d) => join(d, "prometheus"));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const bin = findPrometheus();
const skip = bin
  ? false
  : process.env.PROMETHEUS_BIN
    ? `PROMETHEUS_BIN=${process.env.PROMETHEUS_BIN} is not an executable file`
    : "no prometheus binary on PATH (set PROMETHEUS_BIN, or run .ci/prometheus.sh to install it)";

describe("PrometheusProvider against a real Prometheus", { skip, timeout: 60_000 }, () => {
  let dir: string;
  let target: http.Server;
  let prom: ChildProcess | undefined;
  let address: string;
  let logs = "";
  let scrapes = 0;
  const provider = new PrometheusProvider();

  before(async () => {
    // 1. A /metrics endpoint: two gauge series and a counter that grows by 1 per scrape.
    target = http.createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      scrapes++;
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(
        [
          "# TYPE turnout_it_value gauge",
          'turnout_it_value{arm="a"} 3',
          'turnout_it_value{arm="b"} 4',
          "# TYPE turnout_it_scrapes_total counter",
          `turnout_it_scrapes_total ${scrapes}`,
          "",
        ].join("\n"),
      );
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as AddressInfo).port;

    // 2. Prometheus on a free loopback port, scraping it every second.
    dir = mkdtempSync(join(tmpdir(), "turnout-prom-"));
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: turnout-it",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${targetPort}"]`,
        "",
      ].join("\n"),
    );
    const port = await freePort();
    address = `http://127.0.0.1:${port}`;
    prom = spawn(
      bin!,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    prom.stderr!.on("data", (c: Buffer) => {
      logs = (logs + c.toString()).slice(-4000);
    });

    // 3. Wait (bounded, polling the API through the provider) until three samples exist, so
    //    a range query over the last two seconds at a 1 s step has three points. Most of this
    //    test's ~10 s is spent here: Prometheus hands new targets to its scrapers at most every
    //    5 s, so the first sample arrives 5-6 s after it starts.
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (prom.exitCode !== null) {
        throw new Error(`prometheus exited with ${prom.exitCode}: ${logs}`);
      }
      const m = await query({ query: 'count_over_time(turnout_it_value{arm="a"}[1m])' });
      if (m.value !== undefined && m.value >= 3) break;
      if (Date.now() > deadline) {
        throw new Error(`no samples after 30 s (last: ${m.error ?? m.value}); logs: ${logs}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  after(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once("exit", r));
      prom.kill("SIGTERM");
      const timer = setTimeout(() => prom!.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => {
      target?.closeAllConnections();
      target ? target.close(() => resolve()) : resolve();
    });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function query(
    spec: Partial<PrometheusSourceSpec>,
    req: Partial<MeasureRequest> = {},
  ): Promise<Measurement> {
    const now = Date.now();
    return provider.measure(
      {
        metric: "it",
        source: { prometheus: { address, query: "up", timeoutSeconds: 5, ...spec } },
        args: {},
        service: "svc",
        candidate: "v2",
        baseline: "v1",
        fromMs: now - 2000,
        toMs: now,
        now,
        ...req,
      },
      new AbortController().signal,
    );
  }

  it("instant query: one series is its value; args are templated into the query", async () => {
    const a = await query({ query: 'turnout_it_value{arm="a"}' });
    assertWellFormed(a);
    assert.equal(a.value, 3, a.error);
    const b = await query(
      { query: 'turnout_it_value{arm="{{args.arm}}"}' },
      { args: { arm: "b" } },
    );
    assert.equal(b.value, 4, b.error);
    assert.equal((await query({ query: "sum(turnout_it_value)" })).value, 7);
  });

  it("instant query: two series need a reduce", async () => {
    const both = await query({ query: "turnout_it_value" });
    assertWellFormed(both);
    assert.equal(both.errorKind, "failed");
    assert.match(both.error!, /returned 2 series .*arm="a".*reduce/);
    assert.equal((await query({ query: "turnout_it_value", reduce: "sum" })).value, 7);
    assert.equal((await query({ query: "turnout_it_value", reduce: "max" })).value, 4);
    assert.equal((await query({ query: "turnout_it_value", reduce: "first" })).value, 3);
  });

  it("range query: the points over the window, in time order", async () => {
    const m = await query({ query: 'turnout_it_value{arm="a"}', rangeQuery: { step: "1s" } });
    assertWellFormed(m);
    assert.equal(m.error, undefined, m.error);
    assert.ok(m.values!.length >= 3, `points: ${m.values}`);
    assert.ok(m.values!.every((v) => v === 3));
    assert.equal(m.sampleSize, m.values!.length);
    const counter = await query({ query: "turnout_it_scrapes_total", rangeQuery: { step: "1s" } });
    assert.equal(counter.error, undefined, counter.error);
    const xs = counter.values!;
    assert.ok(
      xs.every((x, i) => i === 0 || x >= xs[i - 1]!),
      `a counter never goes down: ${xs}`,
    );
    assert.equal(counter.value, xs[xs.length - 1]);
    const summed = await query({
      query: "turnout_it_value",
      rangeQuery: { step: "1s" },
      reduce: "sum",
    });
    assert.ok(
      summed.values!.every((v) => v === 7),
      `${summed.values}`,
    );
  });

  it("a query with no series is no data", async () => {
    const m = await query({ query: 'turnout_it_value{arm="nobody"}' });
    assertWellFormed(m);
    assert.equal(m.errorKind, "noData");
    const r = await query({ query: 'turnout_it_value{arm="nobody"}', rangeQuery: { step: "1s" } });
    assert.equal(r.errorKind, "noData");
  });

  it("NaN (0/0) is an error, not a value", async () => {
    const m = await query({ query: 'turnout_it_value{arm="a"} * 0 / 0' });
    assertWellFormed(m);
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /NaN/);
  });

  it("a bad query is an error with Prometheus' own message and status", async () => {
    const m = await query({ query: "sum(" });
    assertWellFormed(m);
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /HTTP 400: bad_data: .*parse error/);
  });

  it("a scalar is its value", async () => {
    assert.equal((await query({ query: "scalar(sum(turnout_it_value)) / 2" })).value, 3.5);
  });
});
