/**
 * Hostile input end to end: `turnout up` in a child process with a static service over a real
 * upstream, then every document of the hostile corpus (test/fixtures/hostile) sent twice to
 * every endpoint that parses a body, while a prober keeps calling the router and /healthz.
 * Each must answer 4xx with Turnout's error body (OFREP's own shape on /ofrep) and its code,
 * and the process must keep serving throughout: before the input limits, the second 2,000-deep
 * document aborted the process and took every router down with it.
 * Also `turnout validate -f` on hostile files: exit 1 and a message, no crash.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { INPUT_LIMITS } from "../../src/resources/input-limits.js";
import { type Hostile, hostileCorpus } from "../fixtures/hostile/corpus.js";
import {
  api,
  cli,
  freePort,
  ROOT,
  startBackend,
  startUp,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";

const FLAG = `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: banner }
spec:
  type: string
  variants: { a: "hello", b: "bonjour" }
  defaultVariant: a
`;

interface Target {
  name: string;
  path: string;
  /** Which documents go there: resources take both formats, the rest take JSON. */
  formats: Hostile["format"][];
  auth: "admin" | "client";
  /** Checks one answer. */
  check(h: Hostile, status: number, body: any): void;
}

function turnoutError(h: Hostile, status: number, body: any): void {
  assert.ok(
    body?.error,
    `${h.name}: a Turnout error body, got ${JSON.stringify(body)?.slice(0, 200)}`,
  );
  assert.equal(body.error.code, h.code, `${h.name}: ${body.error.message}`);
  assert.equal(status, h.code === "TURNOUT_ERR_API_PAYLOAD_TOO_LARGE" ? 413 : 400, h.name);
  assert.equal(typeof body.error.message, "string");
}

/** OFREP answers in its own shape: a bounded context is not a valid one. */
function ofrepError(singleKey: string | undefined) {
  return (h: Hostile, status: number, body: any) => {
    assert.equal(status, 400, `${h.name}: ${JSON.stringify(body).slice(0, 200)}`);
    assert.equal(body.errorCode, "INVALID_CONTEXT", h.name);
    assert.ok(body.errorDetails.includes(h.code), `${h.name}: ${body.errorDetails}`);
    if (singleKey !== undefined) assert.equal(body.key, singleKey);
  };
}

/**
 * POSTs with `Expect: 100-continue`, sending the body only after a 100: how a client sends a
 * body that may be refused, so that a refusal does not reset it halfway through the upload.
 */
function postExpecting(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let continued = false;
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: { ...headers, expect: "100-continue", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text, continued }));
      },
    );
    req.on("continue", () => {
      continued = true;
      req.end(body);
    });
    req.on("error", reject);
  });
}

const TARGETS: Target[] = [
  {
    name: "validate",
    path: "/api/v1/validate",
    formats: ["yaml", "json"],
    auth: "admin",
    check: turnoutError,
  },
  {
    name: "apply",
    path: "/api/v1/apply",
    formats: ["yaml", "json"],
    auth: "admin",
    check: turnoutError,
  },
  { name: "events", path: "/api/v1/events", formats: ["json"], auth: "admin", check: turnoutError },
  {
    name: "flag change",
    path: "/api/v1/flags/banner/set",
    formats: ["json"],
    auth: "admin",
    check: turnoutError,
  },
  {
    name: "OFREP bulk",
    path: "/ofrep/v1/evaluate/flags",
    formats: ["json"],
    auth: "client",
    check: ofrepError(undefined),
  },
  {
    name: "OFREP single",
    path: "/ofrep/v1/evaluate/flags/banner",
    formats: ["json"],
    auth: "client",
    check: ofrepError("banner"),
  },
];

describe("hostile input", () => {
  let dir: string;
  let up: Up;
  let port: number;
  let key: string;
  let backend: Awaited<ReturnType<typeof startBackend>>;

  before(async () => {
    dir = tempDir();
    backend = await startBackend("v1");
    port = await freePort();
    up = await startUp(dir);
    key = readFileSync(join(dir, "flag-keys"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("tfk_"))!;
    const svc = `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: web }
spec:
  listen: { port: ${port} }
  runtime: { static: { versions: { v1: { upstreams: ["${backend.url}"] } } } }
  version: v1
---
${FLAG}`;
    const r = await api(up, "POST", "/api/v1/apply", svc, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor("the router to proxy", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => null);
      return res?.status === 200 && (await res.text()) === "v1";
    });
  });

  after(async () => {
    await up?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers every hostile document twice at every parsing endpoint with 4xx, and keeps serving", async () => {
    // The prober: a request to the router and one to /healthz, again and again, all along.
    let probing = true;
    const probeFailures: string[] = [];
    let probes = 0;
    const prober = (async () => {
      while (probing) {
        try {
          const r = await fetch(`http://127.0.0.1:${port}/`);
          const text = await r.text();
          if (r.status !== 200 || text !== "v1") probeFailures.push(`router: ${r.status} ${text}`);
          const h = await fetch(`${up.url}/healthz`);
          if (h.status !== 200) probeFailures.push(`healthz: ${h.status}`);
          await h.text();
          probes++;
        } catch (err) {
          probeFailures.push(String(err));
        }
      }
    })();

    let answered = 0;
    for (const h of hostileCorpus()) {
      for (const t of TARGETS) {
        if (!t.formats.includes(h.format)) continue;
        for (let round = 1; round <= 2; round++) {
          const headers: Record<string, string> = {
            "content-type": h.format === "yaml" ? "application/yaml" : "application/json",
            ...(t.auth === "admin"
              ? { authorization: `Bearer ${up.token}` }
              : { "x-api-key": key }),
          };
          let status: number;
          let text: string;
          if (h.text.length > INPUT_LIMITS.maxBytes) {
            const r = await postExpecting(`${up.url}${t.path}`, headers, h.text);
            assert.equal(r.continued, false, `${t.name} ${h.name}: refused before the body`);
            ({ status, text } = r);
          } else {
            const res = await fetch(`${up.url}${t.path}`, {
              method: "POST",
              headers,
              body: h.text,
            });
            status = res.status;
            text = await res.text();
          }
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            assert.fail(`${t.name} ${h.name} #${round}: not JSON: ${status} ${text.slice(0, 200)}`);
          }
          assert.ok(status >= 400 && status < 500, `${t.name} ${h.name} #${round}: ${status}`);
          t.check(h, status, body);
          answered++;
        }
      }
      assert.equal(up.proc.exitCode, null, `the process exited after ${h.name}: ${up.stderr()}`);
    }
    probing = false;
    await prober;
    assert.ok(answered > 100, `answered ${answered}`);
    assert.deepEqual(probeFailures, []);
    assert.ok(probes > 0, "the prober ran");

    // Afterwards: still serving, and nothing of the hostile documents was stored.
    assert.equal(await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()), "v1");
    assert.equal((await api(up, "GET", "/healthz", undefined, { token: null })).status, 200);
    const services = await api(up, "GET", "/api/v1/services");
    assert.deepEqual(
      services.json.items.map((s: { name: string }) => s.name),
      ["web"],
    );
    const flags = await api(up, "GET", "/api/v1/flags");
    assert.deepEqual(
      flags.json.flags.map((f: { name: string }) => f.name),
      ["banner"],
    );
    assert.doesNotMatch(up.stderr(), /FATAL|RangeError|Maximum call stack/);
  });

  it("turnout validate -f on hostile files exits 1 with the limit and the place, no crash", async () => {
    const files: [string, string, RegExp][] = [
      [
        join(ROOT, "test/fixtures/hostile/deep-flow.yaml"),
        "TURNOUT_ERR_INPUT_TOO_DEEP",
        /deep-flow\.yaml:6:\d+: .*nests deeper than 64 levels/,
      ],
      [
        join(ROOT, "test/fixtures/hostile/billion-laughs.yaml"),
        "alias",
        /billion-laughs\.yaml.*alias bomb/,
      ],
      [
        join(ROOT, "test/fixtures/hostile/many-aliases.yaml"),
        "alias",
        /many-aliases\.yaml:\d+:\d+: .*more than 100 YAML aliases/,
      ],
    ];
    const big = join(dir, "big.yaml");
    writeFileSync(big, `a: "${"z".repeat(10_000_000)}"\n`);
    files.push([big, "size", /big\.yaml: the file is larger than 4 MiB/]);
    const deepJson = join(dir, "deep.json");
    writeFileSync(deepJson, "[".repeat(20_000) + "]".repeat(20_000));
    files.push([deepJson, "depth", /deep\.json:1:\d+: .*nests deeper than 64 levels/]);
    for (const [file, what, message] of files) {
      const r = await cli(["validate", "-f", file]);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /FATAL|RangeError|Maximum call stack|at .*\.ts:\d+/, what);
    }
  });
});
