/**
 * The isolation measurement (DESIGN invariant 8: no API request and no controller work delays
 * a proxied request), shared by the tests of each configuration: one process on SQLite
 * (test/e2e/isolation.test.ts), and the fleet configurations on PostgreSQL
 * (test/e2e/isolation-fleet.test.ts).
 *
 * A child process runs the upstream and times sequential requests through the router, so the
 * clock that measures is in none of Turnout's processes or threads. Rounds alternate two phases:
 *
 * - idle: nothing else happens;
 * - busy: the test keeps the API validating the largest Service document it accepts (and ones
 *   rejected for size) back to back, and the controller ticking over a stored Service of that
 *   size (applied in the first busy phase).
 *
 * Interleaving the phases makes the machine's own noise (a busy 2-core CI box) fall on both, so
 * the busy p99 minus the idle p99 of the same run is the latency the admin work added.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { api } from "../helpers.js";

export const ROUNDS = 4;
export const REQUESTS_PER_PHASE = 500;
/** A phase ends after this long even if its requests are not done (the inline router's stalls). */
const PHASE_CAP_MS = 20_000;
export const BODY_LIMIT = 4 * 1024 * 1024;

/**
 * The child: an upstream on port 0, and a client that, per `run N CAP` line on stdin, makes N
 * sequential GETs through the router (keep-alive) and answers with their latencies in ms.
 */
const CHILD = `
const http = require("node:http");
const upstream = http.createServer((req, res) => { req.resume(); res.end("ok"); });
upstream.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ upstream: upstream.address().port }) + "\\n");
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let target = 0;
let host = "127.0.0.1";
const get = () => new Promise((resolve, reject) => {
  const start = process.hrtime.bigint();
  const req = http.get({ host, port: target, path: "/", agent }, (res) => {
    res.resume();
    res.on("end", () => resolve(Number(process.hrtime.bigint() - start) / 1e6));
  });
  req.on("error", reject);
});
let buf = "";
process.stdin.on("data", async (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf("\\n")) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const [cmd, a, b] = line.split(" ");
    if (cmd === "target") {
      target = Number(a);
      if (b) host = b;
      process.stdout.write("{}\\n");
      continue;
    }
    const n = Number(a), cap = Number(b);
    const ms = [];
    const until = Date.now() + cap;
    try {
      while (ms.length < n && Date.now() < until) ms.push(await get());
      process.stdout.write(JSON.stringify({ ms }) + "\\n");
    } catch (err) {
      process.stdout.write(JSON.stringify({ error: String(err) }) + "\\n");
    }
  }
});
`;

/** The measuring child process: the upstream, and the client that times requests. */
export class LatencyClient {
  readonly #proc: ChildProcess;
  readonly #lines: string[] = [];
  #wake: (() => void) | null = null;

  constructor() {
    this.#proc = spawn(process.execPath, ["-e", CHILD], { stdio: ["pipe", "pipe", "inherit"] });
    let buf = "";
    this.#proc.stdout!.on("data", (d) => {
      const parts = (buf + d).split("\n");
      buf = parts.pop() ?? "";
      this.#lines.push(...parts);
      if (parts.length > 0) this.#wake?.();
    });
  }

  /** The upstream's URL (the child's first line). */
  async upstream(): Promise<string> {
    return `http://127.0.0.1:${(await this.next()).upstream}`;
  }

  async next(): Promise<any> {
    while (this.#lines.length === 0) await new Promise<void>((r) => (this.#wake = r));
    return JSON.parse(this.#lines.shift()!);
  }

  async send(line: string): Promise<any> {
    this.#proc.stdin!.write(`${line}\n`);
    return this.next();
  }

  /** Points the client at the router's listener. */
  async target(port: number, host = "127.0.0.1"): Promise<void> {
    await this.send(`target ${port} ${host}`);
  }

  stop(): void {
    this.#proc.kill();
  }
}

/** A Service whose canary has `steps` setWeight steps: the bulk of a big document. */
export function bigService(name: string, port: number, upstream: string, steps: number): string {
  const list = Array.from({ length: steps }, (_, i) => ({ setWeight: (i % 99) + 1 }));
  return JSON.stringify({
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port },
      runtime: { static: { versions: { v1: { upstreams: [upstream] } } } },
      version: "v1",
      strategy: { canary: { steps: list } },
    },
  });
}

/** Steps of a document just under the body limit (each step is about 18 bytes of JSON). */
function stepsNearLimit(name: string, port: number, upstream: string): number {
  const per = bigService(name, port, upstream, 2000).length / 2000;
  let n = Math.floor((BODY_LIMIT - 2048) / per);
  while (bigService(name, port, upstream, n).length > BODY_LIMIT - 1024) n -= 100;
  return n;
}

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}
export const p99 = (xs: number[]) => quantile(xs, 0.99);

/** Waits until the router serves the client's target. */
export async function routerServes(client: LatencyClient): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await client.send("run 1 1000");
    if (r.ms?.length === 1) return;
    if (Date.now() > deadline) throw new Error(`the router does not serve: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export interface IsolationRun {
  /** The API to keep busy (its token). */
  api: { url: string; token: string };
  /** One controller tick over the store (the big Service included); none if not given. */
  tick?: () => Promise<unknown>;
  /** A free port for the big Service's listener. */
  otherPort: number;
  upstream: string;
  client: LatencyClient;
}

/** What one measurement collected: every request's latency by phase, and the admin work done. */
export interface IsolationSamples {
  largestBytes: number;
  nearLimitBytes: number;
  idle: number[];
  busy: number[];
  validations: number;
  ticks: number;
}

export interface IsolationSummary {
  largestBytes: number;
  nearLimitBytes: number;
  samples: { idle: number; busy: number };
  p50: { idle: number; busy: number };
  p99: { idle: number; busy: number };
  max: { idle: number; busy: number };
  addedP99Ms: number;
  validations: number;
  ticks: number;
}

/** The figures of one measurement, or of several pooled (their samples together). */
export function summarizeIsolation(...runs: IsolationSamples[]): IsolationSummary {
  const idle = runs.flatMap((r) => r.idle);
  const busy = runs.flatMap((r) => r.busy);
  return {
    largestBytes: runs[0]!.largestBytes,
    nearLimitBytes: runs[0]!.nearLimitBytes,
    samples: { idle: idle.length, busy: busy.length },
    p50: { idle: quantile(idle, 0.5), busy: quantile(busy, 0.5) },
    p99: { idle: p99(idle), busy: p99(busy) },
    max: { idle: Math.max(...idle), busy: Math.max(...busy) },
    addedP99Ms: p99(busy) - p99(idle),
    validations: runs.reduce((n, r) => n + r.validations, 0),
    ticks: runs.reduce((n, r) => n + r.ticks, 0),
  };
}

/**
 * The rounds of idle and busy phases (see the module comment); asserts that the API was kept
 * busy, the controller ticked and every busy request was answered, and returns the samples
 * (`summarizeIsolation` gives the figures; the caller asserts on `addedP99Ms`).
 */
export async function measureIsolation(o: IsolationRun): Promise<IsolationSamples> {
  const { client, upstream, otherPort } = o;
  // The documents: one near the body limit (valid today; rejected for size once limits
  // exist), the largest that validates (found by doubling), and one over the body limit.
  const doc = (steps: number) => bigService("big", otherPort, upstream, steps);
  const validate = (body: string) =>
    fetch(`${o.api.url}/api/v1/validate`, {
      method: "POST",
      headers: { authorization: `Bearer ${o.api.token}`, "content-type": "application/json" },
      body,
    }).then(async (res) => ({ status: res.status, text: await res.text() }));
  const near = doc(stepsNearLimit("big", otherPort, upstream));
  let largest = near;
  if ((await validate(near)).status !== 200) {
    largest = doc(1);
    for (let n = 1000; ; n *= 2) {
      const d = doc(n);
      if (d.length > BODY_LIMIT || (await validate(d)).status !== 200) break;
      largest = d;
    }
  }
  const over = `${near.slice(0, -1)}, "padding": "${"x".repeat(BODY_LIMIT - near.length + 64)}"}`;
  assert.equal((await validate(over)).status, 413, "a body over the limit is refused");
  const idle: number[] = [];
  const busy: number[] = [];
  let validations = 0;
  let ticks = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const quiet = await client.send(`run ${REQUESTS_PER_PHASE} ${PHASE_CAP_MS}`);
    assert.ok(quiet.ms, JSON.stringify(quiet));
    idle.push(...quiet.ms);

    let stop = false;
    const docs = [largest, near, over];
    const apiLoad = (async () => {
      // First, stored: the controller then ticks over a Service of the largest accepted size
      // (and the store takes a write of that size while the router flushes its own).
      if (round === 0) {
        const applied = await api(o.api, "POST", "/api/v1/apply", largest);
        assert.equal(applied.status, 200, JSON.stringify(applied.json).slice(0, 500));
      }
      for (let i = 0; !stop; i++) {
        const r = await validate(docs[i % docs.length]!);
        assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), r.text.slice(0, 300));
        validations++;
      }
    })();
    const tick = o.tick;
    const controllerLoad = (async () => {
      if (tick === undefined) return;
      while (!stop) {
        await tick();
        ticks++;
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    // Once the first validation is under way (its body sent), the API is busy.
    await new Promise((res) => setTimeout(res, 200));
    const loaded = await client.send(`run ${REQUESTS_PER_PHASE} ${PHASE_CAP_MS}`);
    stop = true;
    await Promise.all([apiLoad, controllerLoad]);
    assert.ok(loaded.ms, JSON.stringify(loaded));
    busy.push(...loaded.ms);
  }

  assert.ok(validations >= ROUNDS, `the API was kept busy (${validations} validations)`);
  if (o.tick !== undefined) assert.ok(ticks >= ROUNDS, `the controller ticked (${ticks})`);
  assert.equal(busy.length, ROUNDS * REQUESTS_PER_PHASE, "every busy request was answered");
  return {
    largestBytes: largest.length,
    nearLimitBytes: near.length,
    idle,
    busy,
    validations,
    ticks,
  };
}
