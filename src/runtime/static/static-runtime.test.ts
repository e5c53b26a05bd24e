import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import type { RuntimeSpec } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import {
  CONFORMANCE_REPLICAS,
  CONFORMANCE_VERSIONS,
  describeRuntimeConformance,
} from "../runtime.conformance.js";
import { StaticRuntime } from "./static-runtime.js";

/** In-process upstreams answering `GET /` with their version, as the suite expects. */
async function startUpstream(version: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", connection: "close" });
    res.end(JSON.stringify({ version }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describeRuntimeConformance("static", async () => {
  const upstreams = new Map<string, { url: string; close(): Promise<void> }[]>();
  for (const v of CONFORMANCE_VERSIONS) {
    upstreams.set(
      v,
      await Promise.all(Array.from({ length: CONFORMANCE_REPLICAS }, () => startUpstream(v))),
    );
  }
  return {
    runtime: new StaticRuntime(),
    spec: (versions) => ({
      static: {
        versions: Object.fromEntries(
          versions.map((v) => [v, { upstreams: (upstreams.get(v) ?? []).map((u) => u.url) }]),
        ),
      },
    }),
    cleanup: async () => {
      await Promise.all([...upstreams.values()].flat().map((u) => u.close()));
    },
  };
});

describe("StaticRuntime", () => {
  const spec: RuntimeSpec = {
    static: {
      versions: {
        v1: { upstreams: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] },
        v2: { upstreams: ["http://127.0.0.1:9003"] },
      },
    },
  };

  it("lists the configured upstreams of targeted versions, ready, with ids service/version/i", async () => {
    const rt = new StaticRuntime();
    // replicas is ignored: the spec says how many upstreams a version has.
    await rt.ensure("fraud", spec, [
      { version: "v1", replicas: 5 },
      { version: "v2", replicas: 1 },
    ]);
    assert.deepEqual(rt.instances("fraud"), [
      { id: "fraud/v1/0", version: "v1", url: "http://127.0.0.1:9001", state: "ready" },
      { id: "fraud/v1/1", version: "v1", url: "http://127.0.0.1:9002", state: "ready" },
      { id: "fraud/v2/0", version: "v2", url: "http://127.0.0.1:9003", state: "ready" },
    ]);
  });

  it("emits onChange only when the set changes", async () => {
    const rt = new StaticRuntime();
    let changes = 0;
    rt.onChange(() => changes++);
    await rt.ensure("fraud", spec, [{ version: "v1", replicas: 1 }]);
    await rt.ensure("fraud", spec, [{ version: "v1", replicas: 1 }]);
    assert.equal(changes, 1);
    await rt.ensure("fraud", spec, [{ version: "v2", replicas: 1 }]);
    assert.equal(changes, 2);
    await rt.remove("fraud");
    await rt.remove("fraud");
    assert.equal(changes, 3);
  });

  it("rejects a targeted version without upstreams and keeps what it had", async () => {
    const rt = new StaticRuntime();
    await rt.ensure("fraud", spec, [{ version: "v1", replicas: 1 }]);
    const before = rt.instances("fraud");
    for (const version of ["v3", "constructor"]) {
      await assert.rejects(
        rt.ensure("fraud", spec, [{ version, replicas: 1 }]),
        (e: unknown) =>
          e instanceof TurnoutError &&
          e.code === "TURNOUT_ERR_RESOURCE_INVALID" &&
          e.details.path === `spec.runtime.static.versions.${version}`,
      );
    }
    assert.deepEqual(rt.instances("fraud"), before);
  });

  it("rejects a process spec and a version listed twice", async () => {
    const rt = new StaticRuntime();
    const processSpec = { process: { command: ["x"] } } as unknown as RuntimeSpec;
    await assert.rejects(rt.ensure("fraud", processSpec, []), TurnoutError);
    await assert.rejects(
      rt.ensure("fraud", spec, [
        { version: "v1", replicas: 1 },
        { version: "v1", replicas: 1 },
      ]),
      /listed twice/,
    );
  });

  it("returns copies: callers cannot change its state", async () => {
    const rt = new StaticRuntime();
    await rt.ensure("fraud", spec, [{ version: "v2", replicas: 1 }]);
    const [i] = rt.instances("fraud");
    i!.state = "failed";
    assert.equal(rt.instances("fraud")[0]!.state, "ready");
  });
});
