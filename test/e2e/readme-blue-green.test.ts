/**
 * The docs' blue-green example (docs/rollouts.md, "Blue-green"), as written (only the addresses
 * and ports are this test's), through the real Turnout: store, controller, router and API in one
 * process. The clock is a FakeClock, so the 60 s before the switch and the three looks 10 s apart
 * take no real time.
 * A green that answers well completes; one that fails 20% of its requests is switched back to
 * blue by the post-promotion analysis.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pino } from "pino";
import { FakeClock } from "../../src/core/clock.js";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, ROOT, sendMany, tempDir, waitFor } from "../helpers.js";

/** Where the example lives: the guide to rollouts, which says this test runs it. */
const GUIDE = "docs/rollouts.md";

/** The docs' complete blue-green example: the yaml block with `blueGreen:` and a template. */
function docsExample(): string {
  const guide = readFileSync(join(ROOT, GUIDE), "utf8");
  const blocks = [...guide.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const found = blocks.filter(
    (b) =>
      b.includes("blueGreen:") && b.includes("kind: Service") && b.includes("AnalysisTemplate"),
  );
  assert.equal(found.length, 1, `one complete blue-green example in ${GUIDE}`);
  return found[0]!;
}

function backend(name: string, failEvery = 0): Promise<{ url: string; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    n++;
    const fail = failEvery > 0 && n % failEvery === 0;
    res.writeHead(fail ? 500 : 200, { "content-type": "text/plain" });
    res.end(name);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server });
    }),
  );
}

async function run(greenFailEvery: number) {
  const dir = tempDir();
  const servers: Server[] = [];
  const clock = new FakeClock();
  let t: RunningTurnout | undefined;
  try {
    const blue = await backend("v1");
    const green = await backend("v2", greenFailEvery);
    servers.push(blue.server, green.server);
    const port = await freePort();
    const previewPort = await freePort();
    const example = docsExample();
    const yaml = example
      .replace('"http://127.0.0.1:9001"', `"${blue.url}"`)
      .replace('"http://127.0.0.1:9002"', `"${green.url}"`)
      .replace("port: 8080", `port: ${port}`)
      .replace("port: 8081", `port: ${previewPort}`);
    assert.notEqual(yaml, example);
    t = await startTurnout({
      dataDir: dir,
      port: 0,
      clock,
      router: "inline",
      pollIntervalMs: 50,
      logger: pino({ level: "silent" }),
    });
    const turnout = t;
    const status = async () =>
      (await api(turnout, "GET", "/api/v1/services/shop/status")).json.status;
    const apply = async (text: string) => {
      const r = await api(turnout, "POST", "/api/v1/apply", text, {
        contentType: "application/yaml",
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    };

    // "apply it with `version: v1`"
    await apply(yaml.replace("version: v2", "version: v1"));
    for (let i = 0; i < 100 && (await status())?.phase !== "Healthy"; i++)
      await t.controller.tick();
    assert.equal((await status())?.phase, "Healthy");

    // "then change it to `version: v2` and apply again": the file as written.
    await apply(yaml);
    const startedAt = clock.now();
    let preview: Map<string, number> | null = null;
    let before: Map<string, number> | null = null;
    let switchedAt: number | null = null;
    // One simulated second per round: users' requests, then the controller's tick.
    for (let s = 0; s < 200; s++) {
      const st = await status();
      if (st?.phase === "Completed" || st?.phase === "Degraded" || st?.phase === "Paused") break;
      if (st?.preview && preview === null) {
        preview = await sendMany(previewPort, 20, 4);
        before = await sendMany(port, 20, 4);
      }
      const second = Math.floor(clock.now() / 1000);
      const users = await sendMany(port, 60, 4);
      if (switchedAt === null && (users.get("v2") ?? 0) > 0) switchedAt = clock.now();
      clock.advance(1000);
      // The router flushes a second to the store once it is over, on its own (real-time) timer;
      // the analysis reads the store. Wait until the second just ended is there before the
      // controller ticks, so a busy machine cannot leave the judges a window without data.
      for (const [version, n] of users) {
        if (n === 0 || !/^v\d$/.test(version)) continue;
        await waitFor(`the router's flush of ${version}'s second ${second}`, async () =>
          (
            await turnout.store.readMeasurements({
              service: "shop",
              fromSec: second,
              toSec: second + 1,
              version,
            })
          ).some((r) => r.requests > 0),
        );
      }
      await t.controller.tick();
      // A measurement runs outside the tick; the next tick hands it to the judges.
      await t.controller.tick();
    }
    const events = (await api(t, "GET", "/api/v1/services/shop/history")).json.events as {
      type: string;
      message: string;
    }[];
    return {
      status: await status(),
      events,
      preview,
      before,
      switchAfterMs: switchedAt === null ? null : switchedAt - startedAt,
      after: await sendMany(port, 40, 4),
    };
  } finally {
    await t?.stop();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the docs' blue-green example, through the real controller", () => {
  it("previews green, switches after autoPromotionSeconds, and completes after the post-promotion analysis", async () => {
    const r = await run(0);
    const trail = r.events.map((e) => `${e.type}: ${e.message}`).join("\n");
    assert.equal(r.status?.phase, "Completed", trail);
    assert.equal(r.status?.stableVersion, "v2");
    // Before the switch: the preview port answers green, users get blue.
    assert.deepEqual([...(r.preview ?? [])], [["v2", 20]]);
    assert.deepEqual([...(r.before ?? [])], [["v1", 20]]);
    // autoPromotionSeconds: 60 (counted from green's readiness).
    assert.ok(r.switchAfterMs !== null && r.switchAfterMs >= 60_000, String(r.switchAfterMs));
    assert.ok(
      r.events.some((e) => e.type === "AnalysisSucceeded" || /analysis passed/.test(e.message)),
      trail,
    );
    assert.deepEqual([...r.after], [["v2", 40]]);
  });

  it("a green that fails 20% of its requests is switched back to blue", async () => {
    const r = await run(5);
    const trail = r.events.map((e) => `${e.type}: ${e.message}`).join("\n");
    assert.equal(r.status?.phase, "Degraded", trail);
    assert.equal(r.status?.stableVersion, "v1");
    assert.match(r.status?.message ?? "", /errors/);
    assert.deepEqual([...r.after], [["v1", 40]]);
  });
});

describe("apply refuses the traps of #18 before any traffic moves", () => {
  it("a comparative judge after the switch, and an endless inline analysis, with the fix", async () => {
    const dir = tempDir();
    const t = await startTurnout({ dataDir: dir, port: 0, logger: pino({ level: "silent" }) });
    try {
      const port = await freePort();
      const example = docsExample().replace("port: 8080", `port: ${port}`);
      const compare = example.replace(
        "judge: { threshold: { max: 0.01 } }",
        "judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } }",
      );
      const r = await api(t, "POST", "/api/v1/apply", compare, { contentType: "application/yaml" });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.code, "TURNOUT_ERR_RESOURCE_INVALID");
      const e = r.json.error.details.errors[0];
      assert.equal(e.path, "spec.strategy.blueGreen.postPromotionAnalysis.templates[0]");
      assert.match(e.message, /after the switch blue serves no traffic.*threshold/);
      const endless = example.replace(/\n\s*count: 3[^\n]*/, "");
      const r2 = await api(t, "POST", "/api/v1/apply", endless, {
        contentType: "application/yaml",
      });
      assert.equal(r2.status, 400);
      assert.match(
        r2.json.error.details.errors[0].message,
        /AnalysisTemplate error-budget, metric "errors" has interval 10s and no count/,
      );
      // Nothing was stored.
      assert.equal((await api(t, "GET", "/api/v1/services")).json.items.length, 0);

      // `apply` places the API's errors in the file, as `validate` does its own: the template
      // is stored (it is valid alone), the file holds the Service only, so only the API knows.
      const [serviceDoc, templateDoc] = compare.split(/^---$/m);
      const stored = await api(t, "POST", "/api/v1/apply", templateDoc, {
        contentType: "application/yaml",
      });
      assert.equal(stored.status, 200, JSON.stringify(stored.json));
      const file = join(dir, "shop.yaml");
      writeFileSync(file, serviceDoc!);
      const a = await cli(["--server", t.url, "--token", t.token, "apply", "-f", file]);
      assert.equal(a.code, 1);
      assert.match(
        a.stderr,
        /error: 1 problem in the resources \[TURNOUT_ERR_RESOURCE_INVALID\]:\n {2}\S+shop\.yaml:\d+:\d+ document 1 Service\/shop: spec\.strategy\.blueGreen\.postPromotionAnalysis\.templates\[0\]: AnalysisTemplate error-budget/,
      );
      const line = Number(/shop\.yaml:(\d+):/.exec(a.stderr)?.[1]);
      assert.match(
        compare.split("\n")[line - 1] ?? "",
        /postPromotionAnalysis: \{ templates: \[error-budget\] \}/,
      );
    } finally {
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
