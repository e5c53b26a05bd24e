/**
 * The example model server's graceful stop, which the process runtime's drain relies on: on
 * SIGTERM it stops accepting, finishes the request in flight (answering "connection: close"),
 * closes idle keep-alive sockets at once, and exits 0 well before its own safety timer.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { PortAllocator } from "./ports.js";

const MODEL_SERVER = fileURLToPath(new URL("../../../examples/model/server.mjs", import.meta.url));

describe("examples/model/server.mjs on SIGTERM", { timeout: 20_000 }, () => {
  it("finishes the request in flight, closes idle keep-alive sockets, and exits 0", async () => {
    const port = await new PortAllocator().allocate();
    const child = spawn(process.execPath, [MODEL_SERVER], {
      env: {
        ...process.env,
        PORT: String(port),
        MODEL_VERSION: "v1",
        LATENCY_MS: "500",
        LOG_REQUESTS: "1",
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    const printed = async (text: string) => {
      while (!out.includes(text)) await new Promise((r) => setTimeout(r, 10));
    };
    await printed("listening");
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const request = (p: string) =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path: p, agent }, (res) => {
            res.resume();
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }),
            );
          })
          .on("error", reject);
      });
    try {
      // An idle keep-alive socket (health checks answer at once), then a request in flight.
      const idle = await request("/healthz");
      assert.equal(idle.connection, "keep-alive");
      let idleClosed = false;
      for (const sockets of Object.values(agent.freeSockets))
        for (const s of sockets ?? []) s.once("close", () => (idleClosed = true));
      const t0 = Date.now();
      const inFlight = request("/");
      // In the handler (it waits LATENCY_MS there) when SIGTERM arrives.
      await printed("request GET /");
      child.kill("SIGTERM");
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(res.connection, "close", "answers during shutdown close their connection");
      assert.equal(await exited, 0);
      assert.ok(idleClosed, "the idle keep-alive socket was closed");
      // Exited once the request was done (LATENCY_MS 500), not at the 30 s safety timer
      // (the bound is loose for a loaded machine).
      assert.ok(Date.now() - t0 < 15_000, `exited after ${Date.now() - t0}ms`);
      // No longer accepting.
      await assert.rejects(request("/healthz"));
    } finally {
      agent.destroy();
      child.kill("SIGKILL");
    }
  });
});
