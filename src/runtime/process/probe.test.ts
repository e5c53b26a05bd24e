/**
 * The readiness probe's deadline against Turnout's own lag: an answer that arrived in time but
 * waits unread because Turnout's event loop was busy (its router proxying flat out) must count
 * as an answer, or every instance looks unready at once and a version loses all its endpoints.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { probeHttp } from "./probe.js";

describe("probeHttp", () => {
  it("an answer that arrived before the deadline, unread while the loop was busy, passes", async () => {
    const timeoutMs = 1000;
    let startedAt = 0;
    const server = createServer((_req, res) => {
      res.end("ok");
      // The answer is on its way over loopback; now this process stays busy until the
      // deadline has passed, as a loaded Turnout would.
      while (Date.now() < startedAt + timeoutMs + 100) {}
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as AddressInfo;
      startedAt = Date.now();
      const r = await probeHttp(`http://127.0.0.1:${port}/healthz`, timeoutMs).result;
      assert.deepEqual(r, { ok: true, detail: "HTTP 200" });
    } finally {
      server.close();
    }
  });

  it("no answer by the deadline is a timeout", async () => {
    // Accepts the connection and never answers.
    const server = createServer(() => {});
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as AddressInfo;
      const r = await probeHttp(`http://127.0.0.1:${port}/healthz`, 100).result;
      assert.deepEqual(r, { ok: false, detail: "timed out after 0.1s" });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
