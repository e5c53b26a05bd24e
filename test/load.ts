/**
 * A load generator for zero-downtime tests: clients over keep-alive connections and clients
 * that open a fresh connection per request, running until stopped. Every answer that is not
 * a 2xx, and every socket error, is a failure and is kept with what happened.
 */
import { Agent, request } from "node:http";

export interface LoadStats {
  ok: number;
  failed: number;
  /** The first few failures, for the assertion message. */
  failures: string[];
  /** Successful answers per version (x-turnout-version header). */
  byVersion: Record<string, number>;
  keepAlive: number;
  fresh: number;
}

export interface Load {
  stats(): LoadStats;
  /** Resolves once at least `n` more requests have completed (ok or failed). */
  waitFor(n: number): Promise<void>;
  stop(): Promise<LoadStats>;
}

export function startLoad(
  port: number,
  opts: { keepAlive?: number; fresh?: number; path?: string; host?: string } = {},
): Load {
  const stats: LoadStats = {
    ok: 0,
    failed: 0,
    failures: [],
    byVersion: {},
    keepAlive: 0,
    fresh: 0,
  };
  const agent = new Agent({ keepAlive: true, maxSockets: opts.keepAlive ?? 4 });
  let running = true;
  const waiters: { at: number; resolve: () => void }[] = [];
  const done = () => {
    const total = stats.ok + stats.failed;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i] as { at: number; resolve: () => void };
      if (total >= w.at) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };
  const once = (fresh: boolean) =>
    new Promise<void>((resolve) => {
      const req = request(
        {
          host: opts.host ?? "127.0.0.1",
          port,
          path: opts.path ?? "/predict",
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(fresh ? { connection: "close" } : {}),
          },
          agent: fresh ? false : agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              stats.ok++;
              const v = String(res.headers["x-turnout-version"] ?? "?");
              stats.byVersion[v] = (stats.byVersion[v] ?? 0) + 1;
            } else {
              stats.failed++;
              if (stats.failures.length < 10)
                stats.failures.push(`${status}: ${Buffer.concat(chunks).toString().slice(0, 200)}`);
            }
            if (fresh) stats.fresh++;
            else stats.keepAlive++;
            done();
            resolve();
          });
          res.on("error", (err) => {
            stats.failed++;
            if (stats.failures.length < 10) stats.failures.push(`response error: ${err.message}`);
            done();
            resolve();
          });
        },
      );
      req.on("error", (err) => {
        stats.failed++;
        if (stats.failures.length < 10) stats.failures.push(`socket: ${err.message}`);
        done();
        resolve();
      });
      req.end(JSON.stringify({ features: [0.2, 0.4, 0.6] }));
    });
  const loop = async (fresh: boolean) => {
    while (running) await once(fresh);
  };
  const loops = [
    ...Array.from({ length: opts.keepAlive ?? 4 }, () => loop(false)),
    ...Array.from({ length: opts.fresh ?? 2 }, () => loop(true)),
  ];
  return {
    stats: () => ({ ...stats, failures: [...stats.failures], byVersion: { ...stats.byVersion } }),
    waitFor: (n) =>
      new Promise<void>((resolve) => {
        waiters.push({ at: stats.ok + stats.failed + n, resolve });
        done();
      }),
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ...stats };
    },
  };
}

/** One request of a paced load and how it ended (times from `performance.now()`). */
export interface PacedResult {
  sentAt: number;
  endedAt: number;
  /** "timeout": the client gave up after `timeoutMs`, as users and their SDKs do. */
  outcome: "ok" | "timeout" | "failed";
  status?: number;
  /** The x-turnout-version of the answer. */
  version?: string;
}

export interface PacedLoad {
  /** Requests ended so far, in the order they ended. */
  results(): readonly PacedResult[];
  /** Stops sending and resolves once every request sent has ended. */
  stop(): Promise<PacedResult[]>;
}

/**
 * Open-loop load, as users are: `rate` GETs a second on a fixed schedule (request i is due at
 * i / rate seconds, whatever the earlier ones are doing, so a version that hangs does not slow
 * the arrivals down), over keep-alive connections, each abandoned by its client after
 * `timeoutMs` (the socket destroyed, as a client timeout does).
 */
export function startPacedLoad(
  port: number,
  opts: { rate: number; timeoutMs: number; path?: string; host?: string },
): PacedLoad {
  const agent = new Agent({ keepAlive: true });
  const done: PacedResult[] = [];
  let inFlight = 0;
  let sent = 0;
  let idle: (() => void) | null = null;
  const t0 = performance.now();
  const end = (r: PacedResult) => {
    done.push(r);
    inFlight--;
    if (inFlight === 0) idle?.();
  };
  const send = () => {
    const sentAt = performance.now();
    inFlight++;
    let ended = false;
    const finish = (r: Omit<PacedResult, "sentAt" | "endedAt">) => {
      if (ended) return;
      ended = true;
      end({ sentAt, endedAt: performance.now(), ...r });
    };
    const req = request(
      {
        host: opts.host ?? "127.0.0.1",
        port,
        path: opts.path ?? "/",
        agent,
        timeout: opts.timeoutMs,
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          finish({
            outcome: res.statusCode === 200 ? "ok" : "failed",
            status: res.statusCode ?? 0,
            version: String(res.headers["x-turnout-version"] ?? "?"),
          }),
        );
        res.on("error", () => finish({ outcome: "failed" }));
      },
    );
    // `timeout` is the socket's idle time: with no byte of an answer, the client's patience.
    req.on("timeout", () => {
      finish({ outcome: "timeout" });
      req.destroy();
    });
    req.on("error", () => finish({ outcome: "failed" }));
    req.end();
  };
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) * opts.rate) / 1000);
    while (sent < due) {
      sent++;
      send();
    }
  }, 5);
  return {
    results: () => done,
    async stop() {
      clearInterval(timer);
      if (inFlight > 0) await new Promise<void>((r) => (idle = r));
      agent.destroy();
      return done;
    },
  };
}
