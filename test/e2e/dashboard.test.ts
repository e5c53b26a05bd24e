/**
 * The dashboard in a real browser: `turnout up` in a child process serving the built page,
 * Debian's chromium driven by playwright-core, two static versions on real HTTP servers.
 * Sign in through the Token form; a service applied through the API appears without a reload
 * (server-sent events); promote by clicking moves the router's real split to the next step;
 * abort with a reason; the kill switch, after which OFREP answers DISABLED; the one-time
 * sign-in link; signed out, nothing can be read or changed; a request without the session's
 * CSRF header, or from another origin, changes nothing; the shadow chart starts from the
 * stored history of its phase; chart labels fit and six versions get six colours; the page
 * reconnects after a restart.
 *
 * Skips (with the reason) when chromium is missing, except under CI=true, where it fails.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { emptyCounts } from "../../src/core/measurements.js";
import { ShadowAggregate } from "../../src/core/shadow/aggregate.js";
import { comparePair, compileCompare } from "../../src/core/shadow/compare.js";
import { Sketch } from "../../src/core/sketch.js";
import { SqlShadowStore } from "../../src/store/sql-shadow-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { chromiumMissing, type Launched, launchChromium } from "../browser.js";
import { api, cli, freePort, ROOT, sendMany, startBackend, tempDir, waitFor } from "../helpers.js";

const missing = chromiumMissing();
if (missing && process.env.CI === "true") {
  throw new Error(`the dashboard's browser test must run in CI: ${missing}`);
}

/** Builds dist/web/ when a source of the page is newer than the build. */
function ensureBuilt(): void {
  const newest = (dir: string): number => {
    let t = 0;
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p);
      t = Math.max(t, st.isDirectory() ? newest(p) : st.mtimeMs);
    }
    return t;
  };
  const built = statSync(join(ROOT, "dist/web/index.html"), { throwIfNoEntry: false });
  const src = Math.max(
    newest(join(ROOT, "web/src")),
    statSync(join(ROOT, "web/index.html")).mtimeMs,
  );
  if (built && built.mtimeMs > src && process.env.CI !== "true") return;
  const r = spawnSync(
    process.execPath,
    [join(ROOT, "node_modules/vite/bin/vite.js"), "build", "--config", "web/vite.config.ts"],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  assert.equal(r.status, 0, `vite build failed: ${r.stderr}${r.stdout}`);
}

interface Up {
  proc: ChildProcess;
  url: string;
  token: string;
  stop(): Promise<void>;
}

/** `turnout up` on a fixed port (a restart keeps the page's origin). */
async function upAt(dataDir: string, port: number): Promise<Up> {
  const proc = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "src/cli/main.ts"),
      "up",
      "--port",
      String(port),
      "--data-dir",
      dataDir,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, TURNOUT_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`turnout up exited: ${err}`)));
  });
  const token = readFileSync(join(dataDir, "token"), "utf8").trim();
  return {
    proc,
    url,
    token,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGINT");
      await exited;
    },
  };
}

function serviceYaml(port: number, upstreams: Record<string, string>, version: string): string {
  return `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: ${port} }
  runtime:
    static:
      versions:
${Object.entries(upstreams)
  .map(([v, u]) => `        ${v}: { upstreams: ["${u}"] }`)
  .join("\n")}
  version: ${version}
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {}
        - setWeight: 60
        - pause: {}
---
apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: new-checkout }
spec:
  type: boolean
  variants: { on: true, off: false }
  defaultVariant: off
  state: ENABLED
  rollout: { variant: on, percentage: 100 }
`;
}

function share(counts: Map<string, number>, name: string): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return (100 * (counts.get(name) ?? 0)) / total;
}

describe("the dashboard, in a real browser", { skip: missing ?? false }, () => {
  let dir: string;
  let up: Up;
  let apiPort: number;
  let routerPort: number;
  let chrome: Launched;
  let page: Page;
  const backends: Awaited<ReturnType<typeof startBackend>>[] = [];
  let upstreams: Record<string, string>;
  const status = async () => (await api(up, "GET", "/api/v1/services/shop/status")).json;

  before(async () => {
    ensureBuilt();
    dir = tempDir("turnout-dash-");
    for (const name of ["v1", "v2"]) backends.push(await startBackend(name));
    upstreams = { v1: backends[0]!.url, v2: backends[1]!.url };
    apiPort = await freePort();
    routerPort = await freePort();
    up = await upAt(dir, apiPort);
    chrome = await launchChromium();
    page = await chrome.browser.newPage();
  });

  after(async () => {
    await chrome?.close();
    await up?.stop();
    for (const b of backends) await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the page at / with its assets, no bearer token needed", async () => {
    const res = await fetch(`${up.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const html = await res.text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(js, html);
    const asset = await fetch(`${up.url}${js}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get("cache-control") ?? "", /immutable/);
    assert.equal((await fetch(`${up.url}/assets/..%2ftoken`)).status, 404);
  });

  it("signed out: the page shows the sign-in form and can neither read nor change anything", async () => {
    await page.goto(`${up.url}/`);
    await page.getByLabel("Token").waitFor();
    const tried = await page.evaluate(async () => {
      const get = await fetch("/api/v1/services");
      const apply = await fetch("/api/v1/apply", {
        method: "POST",
        headers: { "content-type": "application/json", "x-turnout-csrf": "x" },
        body: JSON.stringify({
          apiVersion: "turnout.dev/v1",
          kind: "Flag",
          metadata: { name: "x" },
        }),
      });
      const stream = await fetch("/api/v1/events/stream");
      return [get.status, apply.status, stream.status];
    });
    assert.deepEqual(tried, [401, 401, 401]);
    // A wrong token is refused in the form.
    await page.getByLabel("Token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That token is not right.").waitFor();
  });

  it("signs in through the Token form", async () => {
    await page.getByLabel("Token").fill(up.token);
    await page.getByLabel(/Your name/).fill("tester");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Services" }).waitFor();
    await page.getByText("live", { exact: true }).waitFor();
    const cookies = await chrome.browser.cookies(up.url);
    const c = cookies.find((x) => x.name === "turnout_session");
    assert.ok(c, "a session cookie");
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, "Strict");
    assert.ok(!c.value.includes(up.token), "the cookie does not carry the token");
  });

  it("a service appears when applied, without a reload", async () => {
    await page.evaluate(() => {
      (globalThis as any).marker = 42;
    });
    const r = await api(up, "POST", "/api/v1/apply", serviceYaml(routerPort, upstreams, "v1"), {
      contentType: "application/yaml",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await page.locator('[data-service="shop"]').waitFor();
    await page.locator('[data-service="shop"]').getByText("Healthy").waitFor();
    assert.equal(await page.evaluate(() => (globalThis as any).marker), 42);
  });

  it("promote by clicking: the router's split moves to the next step", async () => {
    await waitFor("v1 serving", async () => (await status()).status?.stableVersion === "v1");
    const r = await api(up, "POST", "/api/v1/apply", serviceYaml(routerPort, upstreams, "v2"), {
      contentType: "application/yaml",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor("paused at 20%", async () => {
      const s = (await status()).status;
      return s?.canaryWeight === 20 && s.phase === "Paused";
    });
    // The card shows the pause (pushed, no reload), and opens by keyboard.
    const card = page.locator('[data-service="shop"]');
    await card.getByText("needs attention").waitFor();
    await card.focus();
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "shop" }).waitFor();
    const at20 = share(await sendMany(routerPort, 500), "v2");
    assert.ok(Math.abs(at20 - 20) < 8, `v2 share at step 1: ${at20}%`);

    await page.getByRole("button", { name: "Promote", exact: true }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Go on to the next step now.").waitFor();
    // Escape closes the dialog without promoting.
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    assert.equal((await status()).status.canaryWeight, 20);
    await page.getByRole("button", { name: "Promote", exact: true }).click();
    await dialog.getByRole("button", { name: "Promote" }).click();
    await dialog.waitFor({ state: "hidden" });
    await waitFor("weight 60", async () => (await status()).status?.canaryWeight === 60);
    await page
      .locator("li.current")
      .getByText("weight 60%")
      .or(page.locator("li.current").getByText("pause"))
      .first()
      .waitFor();
    const at60 = share(await sendMany(routerPort, 500), "v2");
    assert.ok(Math.abs(at60 - 60) < 8, `v2 share after promote: ${at60}%`);
    const h = (await api(up, "GET", "/api/v1/services/shop/history")).json.events as {
      type: string;
      actor: string;
    }[];
    assert.ok(
      h.some((e) => e.actor === "dashboard:tester" && /promot/i.test(e.type)),
      `a promotion recorded with the actor: ${JSON.stringify(h.map((e) => [e.type, e.actor]))}`,
    );
  });

  it("refuses a change without the session's CSRF header, or from another origin", async () => {
    const noHeader = await page.evaluate(async () => {
      const r = await fetch("/api/v1/services/shop/pause", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      return [r.status, ((await r.json()) as any).error.code];
    });
    assert.deepEqual(noHeader, [403, "TURNOUT_ERR_AUTH_CSRF"]);
    // A forged request carrying the cookie, as a cross-site form post would.
    const cookie = (await chrome.browser.cookies(up.url)).find(
      (x) => x.name === "turnout_session",
    )!;
    const forged = await fetch(`${up.url}/api/v1/services/shop/abort`, {
      method: "POST",
      headers: {
        cookie: `turnout_session=${cookie.value}`,
        origin: "http://evil.example",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "reason=x",
    });
    assert.equal(forged.status, 403);
    const s = (await status()).status;
    assert.equal(s.canaryVersion, "v2", "nothing was aborted");
    assert.equal(s.pausedByUser, false);
    // Reading with the cookie works (a GET changes nothing).
    const read = await fetch(`${up.url}/api/v1/services`, {
      headers: { cookie: `turnout_session=${cookie.value}` },
    });
    assert.equal(read.status, 200);
  });

  it("aborts with a reason", async () => {
    await page.getByRole("button", { name: "Abort" }).click();
    const dialog = page.getByRole("dialog");
    const confirm = dialog.getByRole("button", { name: "Abort" });
    assert.equal(await confirm.isDisabled(), true, "a reason is required");
    await dialog.getByLabel("Reason").fill("checkout errors seen by support");
    await confirm.click();
    await dialog.waitFor({ state: "hidden" });
    await waitFor("aborted", async () => {
      const s = (await status()).status;
      return s?.canaryVersion === null && s.abortedVersion === "v2";
    });
    await page.getByText("Degraded").first().waitFor();
    const counts = await sendMany(routerPort, 200);
    assert.equal(counts.get("v1"), 200, JSON.stringify([...counts]));
    const h = (await api(up, "GET", "/api/v1/services/shop/history")).json.events as {
      type: string;
      actor: string;
      message: string;
    }[];
    const ab = h.find((e) => e.type === "RolloutAborted");
    assert.ok(ab, JSON.stringify(h.map((e) => e.type)));
    assert.match(ab.message, /checkout errors seen by support/);
    assert.match(ab.message, /dashboard:tester/);
    // The history on the page got it pushed.
    await page.getByText("RolloutAborted").first().waitFor();
  });

  it("the kill switch turns a flag off; OFREP then answers DISABLED", async () => {
    const key = readFileSync(join(dir, "flag-keys"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("tfk_"))!;
    const ofrep = async () => {
      const r = await fetch(`${up.url}/ofrep/v1/evaluate/flags/new-checkout`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ context: { targetingKey: "u1" } }),
      });
      return (await r.json()) as { value: unknown; reason: string };
    };
    assert.equal((await ofrep()).value, true);
    await page.getByRole("link", { name: "Flags" }).click();
    await page.locator('[data-flag="new-checkout"]').click();
    await page.getByTestId("flag-state").getByText("ENABLED").waitFor();
    await page.getByRole("button", { name: /Kill switch/ }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Turn off" }).click();
    await page.getByTestId("flag-state").getByText("DISABLED").waitFor();
    const off = await ofrep();
    assert.equal(off.reason, "DISABLED");
    assert.equal(off.value, false);
  });

  it("shadow: the agreement chart starts from the stored history, before the page opened", async () => {
    // A phase that routers flushed five times, ten to two minutes ago, written to the data
    // dir's database by a second store (as a router in its own process would).
    const store = await openSqliteStore({ path: join(dir, "turnout.db") });
    const opened = Date.now();
    try {
      const shadow = new SqlShadowStore(store);
      const agg = new ShadowAggregate();
      const c = compileCompare();
      const body = (y: number) => ({
        status: 200,
        headers: {},
        body: new TextEncoder().encode(JSON.stringify({ y })),
        truncated: false,
        latencyMs: 5,
      });
      for (let i = 0; i < 5; i++) {
        // 10 pairs a flush; 3 mismatched in the first, none after: agreement climbs.
        for (let k = 0; k < 10; k++)
          agg.addPair(comparePair(c, body(1), body(i === 0 && k < 3 ? 2 : 1)), {
            requestId: `h${i}-${k}`,
            method: "GET",
            target: "/",
          });
        await shadow.saveShadowAggregates([
          {
            service: "shop",
            id: "r9-s0-v2",
            version: "v2",
            routerId: "e2e",
            state: agg.toJSON(),
            updatedAt: opened - 600_000 + i * 120_000,
          },
        ]);
      }
    } finally {
      await store.close();
    }
    await page.goto(`${up.url}/#/services/shop/shadow`);
    await page.getByText("Phase r9-s0-v2").waitFor();
    const chart = page.locator("figure", { hasText: "Agreement over time" });
    // Five stored points, all drawn: the live stream alone could give one at most here
    // (no new comparisons arrive while the page is open).
    const path = chart.locator("svg path[stroke]").first();
    await waitFor(
      "the stored points drawn",
      async () => ((await path.getAttribute("d")) ?? "").split(/[ML]/).length - 1 >= 5,
    );
    const d = (await path.getAttribute("d"))!;
    const ys = [...d.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
    assert.ok(ys.length >= 5, d);
    // The agreement climbs (a smaller y is higher on the chart) from 70% to 94%.
    assert.ok(ys[0]! > ys[4]!, d);
    // The label follows the page's state (stored history, then the live stream), which a busy
    // machine may deliver in either order: wait for it as a user would see it settle.
    await waitFor("the latest agreement, 94%", async () =>
      /94\.0%/.test((await chart.locator("svg").getAttribute("aria-label")) ?? ""),
    );
    // The earliest x-axis label is a time before the page opened.
    const labels = await chart.locator("svg text").allTextContents();
    const clocks = labels.filter((t) => /^\d\d:\d\d:\d\d$/.test(t));
    assert.ok(clocks.length > 0, labels.join(" "));
    const first = await page.evaluate((t) => {
      const [h, m, s] = t.split(":").map(Number);
      const d = new Date();
      d.setHours(h!, m!, s!, 0);
      return d.getTime();
    }, clocks[0]!);
    // A label of yesterday's clock when the test runs just after midnight.
    const firstAt = first > opened ? first - 86_400_000 : first;
    assert.ok(firstAt < opened - 60_000, `first label ${clocks[0]} is before the page opened`);
    // Back where the previous case left the page, for the next one.
    await page
      .getByRole("navigation", { name: "Screens" })
      .getByRole("link", { name: "Flags" })
      .click();
    await page.locator('[data-flag="new-checkout"]').waitFor();
  });

  it("charts: axis labels fit inside the chart; six versions get six colours", async () => {
    // Latencies up to seconds on six versions, as routers would have flushed them (written to
    // the data dir's database by a second store): the longest y labels, and more versions
    // than stable, candidate and the first palette had colours for.
    const versions = ["v1", "v2", "v3", "v4", "v5", "v6"];
    const r = await api(up, "POST", "/api/v1/apply", {
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name: "slow" },
      spec: {
        listen: { port: await freePort() },
        runtime: {
          static: {
            versions: Object.fromEntries(
              versions.map((v) => [v, { upstreams: ["http://127.0.0.1:9"] }]),
            ),
          },
        },
        version: "v1",
      },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const store = await openSqliteStore({ path: join(dir, "turnout.db") });
    try {
      const now = Math.floor(Date.now() / 1000);
      const rows = [];
      for (let second = now - 120; second <= now; second++)
        for (const [i, version] of versions.entries()) {
          const latency = new Sketch();
          for (let k = 0; k < 10; k++) latency.add(1500 * (i + 1) + 100 * k);
          rows.push({
            service: "slow",
            version,
            labels: "",
            second,
            routerId: "e2e",
            ...emptyCounts(),
            requests: 10,
            s2xx: 10,
            latency: latency.toJSON(),
          });
        }
      await store.writeMeasurements(rows);
    } finally {
      await store.close();
    }
    await page.goto(`${up.url}/#/services/slow`);
    const latency = page.locator("figure", { hasText: "Latency p50 and p99 per version" });
    await latency.locator("svg text", { hasText: /^1\d000 ms$/ }).waitFor();
    // Every label of every chart inside its SVG's view box (560 wide), none cut at an edge.
    const outside = await page.evaluate(() =>
      [...(globalThis as any).document.querySelectorAll("svg.chart text")]
        .map((t: any) => ({ text: t.textContent, box: t.getBBox() }))
        .filter(({ box }) => box.x < 0 || box.x + box.width > 560)
        .map(
          ({ text, box }) => `${text} at x ${box.x.toFixed(1)}..${(box.x + box.width).toFixed(1)}`,
        ),
    );
    assert.deepEqual(outside, []);
    // One colour per version (p50 solid, p99 dashed in the same colour).
    const strokes = await latency
      .locator("svg path[stroke]:not([stroke-dasharray])")
      .evaluateAll((paths) => paths.map((p) => (globalThis as any).getComputedStyle(p).stroke));
    assert.equal(strokes.length, versions.length, strokes.join(" "));
    assert.equal(new Set(strokes).size, versions.length, strokes.join(" "));
    // Back where the previous cases left the page, for the next one.
    await page
      .getByRole("navigation", { name: "Screens" })
      .getByRole("link", { name: "Flags" })
      .click();
    await page.locator('[data-flag="new-checkout"]').waitFor();
  });

  it("reconnects after a restart of turnout up, without signing in again", async () => {
    await page.getByRole("link", { name: "Services" }).click();
    await page.locator('[data-service="shop"]').waitFor();
    await up.stop();
    await page.getByText(/reconnecting|disconnected/).waitFor();
    up = await upAt(dir, apiPort);
    await page.getByText("live", { exact: true }).waitFor({ timeout: 20_000 });
    // A change after the restart is pushed to the page.
    const r = await api(up, "POST", "/api/v1/services/shop/retry", {});
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await page.locator('[data-service="shop"]').getByText("needs attention").waitFor();
  });

  it("signs in with a one-time link from `turnout dashboard`; the code works once and leaves no trace", async () => {
    const res = await cli(["dashboard", "--no-open"], { TURNOUT_DATA_DIR: dir });
    assert.equal(res.code, 0, res.stderr);
    const link = res.stdout.trim();
    assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/#code=[\w-]+$/);
    assert.ok(!link.includes(up.token));
    const other = await launchChromium();
    try {
      const p = await other.browser.newPage();
      await p.goto(link);
      await p.getByRole("heading", { name: "Services" }).waitFor();
      assert.ok(!p.url().includes("code="), p.url());
      assert.equal(await p.evaluate(() => (globalThis as any).location.hash), "#/");
    } finally {
      await other.close();
    }
    // Used up: a second browser with the same link is asked for the token.
    const third = await launchChromium();
    try {
      const p2 = await third.browser.newPage();
      await p2.goto(link);
      await p2.getByLabel("Token").waitFor();
      await p2.getByText(/unknown, used or expired/).waitFor();
    } finally {
      await third.close();
    }
  });

  it("signs out: the cookie is gone and the page cannot read anything", async () => {
    const cookie = (await chrome.browser.cookies(up.url)).find(
      (x) => x.name === "turnout_session",
    )!;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").waitFor();
    const st = await page.evaluate(async () => (await fetch("/api/v1/services")).status);
    assert.equal(st, 401);
    // The old cookie, replayed, is revoked.
    const replay = await fetch(`${up.url}/api/v1/services`, {
      headers: { cookie: `turnout_session=${cookie.value}` },
    });
    assert.equal(replay.status, 401);
  });
});
