/**
 * docs/reference/http-api.md against the routes a real `turnout up` registers: every route
 * the server has is documented (a heading per route), and every documented route exists.
 * The routes are read from the server object itself: fastify announces each instance on the
 * `fastify.initialization` diagnostics channel before any route is added, and its `onRoute`
 * hook then sees every route, those of plugins (OFREP) included. The metrics table is checked
 * against a real scrape of `/metrics`.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, RouteOptions } from "fastify";
import pino from "pino";
import { type RunningTurnout, startTurnout } from "../server.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOC = "docs/reference/http-api.md";
const METHODS = "GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS";

/** `METHOD /path` of every route in a `###` heading of the doc (a heading may name several). */
function documentedRoutes(doc: string): Set<string> {
  const routes = new Set<string>();
  for (const heading of doc.match(/^### .*$/gm) ?? []) {
    for (const m of heading.matchAll(new RegExp(`\`(${METHODS}) (/[^\`\\s]*)\``, "g")))
      routes.add(`${m[1]} ${m[2]}`);
  }
  return routes;
}

describe(`${DOC} documents every route of the server`, () => {
  let dir: string;
  let t: RunningTurnout;
  const registered = new Set<string>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-http-api-doc-"));
    const onInit = (message: unknown) => {
      const { fastify } = message as { fastify: FastifyInstance };
      fastify.addHook("onRoute", (r: RouteOptions) => {
        for (const method of [r.method].flat()) registered.add(`${method} ${r.url}`);
      });
    };
    subscribe("fastify.initialization", onInit);
    try {
      t = await startTurnout({
        dataDir: dir,
        port: 0,
        router: "inline",
        logger: pino({ level: "silent" }),
      });
    } finally {
      unsubscribe("fastify.initialization", onInit);
    }
  });
  after(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("every registered route has a heading, and every heading's route is registered", () => {
    // HEAD is fastify's automatic twin of every GET; the doc says so once.
    const routes = [...registered].filter(
      (r) => !(r.startsWith("HEAD ") && registered.has(`GET ${r.slice(5)}`)),
    );
    assert.ok(routes.length > 30, `only ${routes.length} routes seen: the hook missed them`);
    const documented = documentedRoutes(readFileSync(join(ROOT, DOC), "utf8"));
    const missing = routes.filter((r) => !documented.has(r)).sort();
    const extra = [...documented].filter((r) => !registered.has(r)).sort();
    assert.deepEqual(missing, [], `routes the server registers but ${DOC} does not document`);
    assert.deepEqual(extra, [], `routes ${DOC} documents but the server does not register`);
  });

  it("the table at a glance lists every route too", () => {
    const doc = readFileSync(join(ROOT, DOC), "utf8");
    const glance = doc.slice(
      doc.indexOf("## Routes at a glance"),
      doc.indexOf("\n## ", doc.indexOf("## Routes at a glance") + 1),
    );
    const rows = new Set<string>();
    for (const m of glance.matchAll(new RegExp(`^\\|\\s*\`(${METHODS})\`\\s*\\|([^|]*)\\|`, "gm")))
      for (const p of m[2]!.matchAll(/`(\/[^`]*)`/g)) rows.add(`${m[1]} ${p[1]}`);
    for (const r of registered) {
      if (r.startsWith("HEAD ")) continue;
      assert.ok(rows.has(r), `${r} is missing from the table "Routes at a glance"`);
    }
    for (const r of rows) assert.ok(registered.has(r), `${r} in the table is not a route`);
  });

  it("every metric family of /metrics is in the metrics table", async () => {
    const res = await fetch(`${t.url}/metrics`);
    assert.equal(res.status, 200);
    const families = [...(await res.text()).matchAll(/^# TYPE (turnout_\w+) /gm)].map((m) => m[1]!);
    const own = families.filter((f) => !/^turnout_(process|nodejs)_/.test(f));
    assert.ok(own.includes("turnout_route_weight_percent"), "the scrape has Turnout's families");
    const doc = readFileSync(join(ROOT, DOC), "utf8");
    for (const f of own)
      assert.match(
        doc,
        new RegExp(`^\\| \`${f}[{\`]`, "m"),
        `${f} is not in ${DOC}'s metrics table`,
      );
  });
});
