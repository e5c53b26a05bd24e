/** `GET /api/v1/services/:name/logs` and its client `turnout logs`, over log files in a data dir. */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { FakeClock } from "../core/clock.js";
import { parseResources } from "../resources/load.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { buildApi } from "./server.js";

const TOKEN = "test-token";
const auth = { authorization: `Bearer ${TOKEN}` };
const CLI = fileURLToPath(new URL("../cli/main.ts", import.meta.url));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", CLI, ...args],
      { timeout: 20_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("logs API and CLI", () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let logDir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-logs-api-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    app = buildApi({ store, clock: new FakeClock(), token: TOKEN, version: "test", logsDir: dir });
    url = await app.listen({ host: "127.0.0.1", port: 0 });
    logDir = join(dir, "logs", "shop");
    mkdirSync(logDir, { recursive: true });
    writeFileSync(join(logDir, "v1-0.log"), "a1\na2\na3\n");
    writeFileSync(join(logDir, "v1-1.log"), "b1\nb2\n");
    writeFileSync(join(logDir, "v2-0.log"), "c1\n");
    // Rotated: the tail continues into it.
    writeFileSync(join(logDir, "v2-0.log.1"), "old1\nold2\n");
  });
  after(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (q: string, headers: Record<string, string> = auth) =>
    app.inject({ method: "GET", url: `/api/v1/services/shop/logs${q}`, headers });

  it("needs the bearer token", async () => {
    const res = await get("", {});
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error.code, "TURNOUT_ERR_AUTH_UNAUTHORIZED");
  });

  it("returns every instance's last lines, filtered by version and instance", async () => {
    const all = (await get("?tail=2")).json();
    assert.deepEqual(all, {
      service: "shop",
      logs: [
        { version: "v1", instance: 0, offset: 9, lines: ["a2", "a3"] },
        { version: "v1", instance: 1, offset: 6, lines: ["b1", "b2"] },
        { version: "v2", instance: 0, offset: 3, lines: ["old2", "c1"] },
      ],
    });
    const one = (await get("?version=v1&instance=1")).json();
    assert.deepEqual(
      one.logs.map((l: { lines: string[] }) => l.lines),
      [["b1", "b2"]],
    );
  });

  it("follows from an offset, whole lines only", async () => {
    appendFileSync(join(logDir, "v1-0.log"), "a4\npartial");
    const res = (await get("?version=v1&instance=0&from=9")).json();
    assert.deepEqual(res.logs, [{ version: "v1", instance: 0, offset: 12, lines: ["a4"] }]);
    appendFileSync(join(logDir, "v1-0.log"), "-done\n");
  });

  it("rejects bad parameters with the parameter's path, and unknown services", async () => {
    for (const [q, path] of [
      ["?tail=x", "tail"],
      ["?tail=100000", "tail"],
      ["?instance=-1", "instance"],
      ["?from=3", "from"],
    ] as const) {
      const res = await get(q);
      assert.equal(res.statusCode, 400, q);
      assert.equal(res.json().error.code, "TURNOUT_ERR_API_BAD_REQUEST");
      assert.equal(res.json().error.path, path);
    }
    const res = await app.inject({
      method: "GET",
      url: "/api/v1/services/nobody/logs",
      headers: auth,
    });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, "TURNOUT_ERR_SERVICE_NOT_FOUND");
  });

  it("an unknown version is a 404 that lists the known ones, not an empty answer", async () => {
    const res = await get("?version=v9");
    assert.equal(res.statusCode, 404);
    const e = res.json().error;
    assert.equal(e.code, "TURNOUT_ERR_VERSION_NOT_FOUND");
    assert.equal(e.path, "version");
    assert.equal(e.message, 'service "shop" has no version "v9"; known: v1, v2');
    assert.deepEqual(e.details.known, ["v1", "v2"]);
  });

  it("a version the service names but that has no logs yet answers no lines", async () => {
    // A static runtime's versions run elsewhere; a process runtime's new version may not have
    // started yet: either way it is known, and empty.
    await store.applyResources(
      [
        parseResources(
          "apiVersion: turnout.dev/v1\nkind: Service\nmetadata: { name: cart }\nspec:\n  listen: { port: 8081 }\n  runtime: { static: { versions: { v1: { upstreams: ['http://127.0.0.1:9'] }, v2: { upstreams: ['http://127.0.0.1:9'] } } } }\n  version: v2\n",
        ).resources[0]!,
      ],
      { actor: "test", now: 0 },
    );
    const cart = (q: string) =>
      app.inject({ method: "GET", url: `/api/v1/services/cart/logs${q}`, headers: auth });
    for (const v of ["v1", "v2"]) {
      const res = await cart(`?version=${v}`);
      assert.equal(res.statusCode, 200, v);
      assert.deepEqual(res.json(), { service: "cart", logs: [] });
    }
    const res = await cart("?version=v3");
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.message, 'service "cart" has no version "v3"; known: v1, v2');
  });

  it("turnout logs prints them (prefixed when instances mix), VERSION and --instance filter", async () => {
    const common = ["--server", url, "--token", TOKEN];
    const many = await cli(["logs", "shop", "--tail", "1", ...common]);
    assert.equal(many.code, 0, many.stderr);
    assert.match(many.stdout, /^\[v1\/0\] \S+$/m);
    assert.match(many.stdout, /\[v2\/0\] .*c1\n/);
    const one = await cli(["logs", "shop", "v1", "--instance", "1", ...common]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, "b1\nb2\n");
    const bad = await cli(["logs", "nobody", ...common]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no service named "nobody"/);
    const typo = await cli(["logs", "shop", "nosuchversion", ...common]);
    assert.equal(typo.code, 1);
    assert.equal(typo.stdout, "");
    assert.match(
      typo.stderr,
      /service "shop" has no version "nosuchversion"; known: v1, v2 \[TURNOUT_ERR_VERSION_NOT_FOUND\]/,
    );
  });
  it("turnout logs --follow prints new lines as they come, and instances that appear", async () => {
    const p = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        CLI,
        "logs",
        "shop",
        "v1",
        "-f",
        "--tail",
        "1",
        "--server",
        url,
        "--token",
        TOKEN,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    p.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    const printed = async (text: string) => {
      const deadline = Date.now() + 20_000;
      while (!out.includes(text)) {
        if (Date.now() > deadline)
          assert.fail(`no ${JSON.stringify(text)} in ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await printed("[v1/1] b2\n");
      appendFileSync(join(logDir, "v1-1.log"), "b3\nb4\n");
      await printed("[v1/1] b3\n[v1/1] b4\n");
      writeFileSync(join(logDir, "v1-7.log"), "new instance\n");
      await printed("[v1/7] new instance\n");
    } finally {
      p.kill();
    }
  });
});
