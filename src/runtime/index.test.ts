import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RuntimeSpec } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { MultiRuntime, runtimeKind } from "./index.js";
import type { Instance, Runtime, VersionTarget } from "./runtime.js";
import { StaticRuntime } from "./static/static-runtime.js";

/** Records calls; instances are one per target so dispatch is visible in `instances()`. */
class FakeRuntime implements Runtime {
  readonly calls: string[] = [];
  private readonly services = new Map<string, Instance[]>();
  private readonly listeners = new Set<() => void>();
  constructor(private readonly name: string) {}
  async ensure(service: string, _spec: RuntimeSpec, targets: VersionTarget[]): Promise<void> {
    this.calls.push(`ensure ${service}`);
    this.services.set(
      service,
      targets.map((t) => ({
        id: `${this.name}:${service}/${t.version}/0`,
        version: t.version,
        url: "http://x",
        state: "ready",
      })),
    );
  }
  instances(service: string): Instance[] {
    return this.services.get(service) ?? [];
  }
  async remove(service: string): Promise<void> {
    this.calls.push(`remove ${service}`);
    this.services.delete(service);
  }
  async shutdown(): Promise<void> {
    this.calls.push("shutdown");
    this.services.clear();
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  fire(): void {
    for (const l of this.listeners) l();
  }
}

const staticSpec: RuntimeSpec = {
  static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } },
};
const processSpec = {
  process: {
    command: ["node", "server.mjs"],
    replicas: 1,
    readiness: { path: "/healthz", periodSeconds: 1, timeoutSeconds: 1, initialDelaySeconds: 0 },
    startupTimeoutSeconds: 10,
    terminationGracePeriodSeconds: 5,
  },
} satisfies RuntimeSpec;
const v1 = [{ version: "v1", replicas: 1 }];

describe("runtimeKind", () => {
  it("names the one key present", () => {
    assert.equal(runtimeKind(staticSpec), "static");
    assert.equal(runtimeKind(processSpec), "process");
  });
  it("rejects none or both, saying what it got", () => {
    assert.throws(
      () => runtimeKind({} as RuntimeSpec),
      (e: unknown) =>
        e instanceof TurnoutError &&
        e.details.path === "spec.runtime" &&
        /got none/.test(e.message),
    );
    assert.throws(
      () => runtimeKind({ ...staticSpec, ...processSpec } as RuntimeSpec),
      /got static, process/,
    );
  });
});

describe("MultiRuntime", () => {
  it("dispatches each service by the key of its spec and remembers it for instances/remove", async () => {
    const s = new FakeRuntime("static");
    const p = new FakeRuntime("process");
    const rt = new MultiRuntime({ static: s, process: p });
    await rt.ensure("a", staticSpec, v1);
    await rt.ensure("b", processSpec, v1);
    assert.equal(rt.instances("a")[0]!.id, "static:a/v1/0");
    assert.equal(rt.instances("b")[0]!.id, "process:b/v1/0");
    assert.deepEqual(rt.instances("unknown"), []);
    await rt.remove("a");
    await rt.remove("unknown");
    assert.deepEqual(s.calls, ["ensure a", "remove a"]);
    assert.deepEqual(p.calls, ["ensure b"]);
  });

  it("removes a service from its old runtime when it switches kind", async () => {
    const s = new FakeRuntime("static");
    const p = new FakeRuntime("process");
    const rt = new MultiRuntime({ static: s, process: p });
    await rt.ensure("a", staticSpec, v1);
    await rt.ensure("a", processSpec, v1);
    assert.deepEqual(s.calls, ["ensure a", "remove a"]);
    assert.deepEqual(p.calls, ["ensure a"]);
    assert.equal(rt.instances("a")[0]!.id, "process:a/v1/0");
    assert.deepEqual(s.instances("a"), []);
  });

  it("merges onChange of both runtimes and unsubscribes from both", () => {
    const s = new FakeRuntime("static");
    const p = new FakeRuntime("process");
    const rt = new MultiRuntime({ static: s, process: p });
    let n = 0;
    const off = rt.onChange(() => n++);
    s.fire();
    p.fire();
    assert.equal(n, 2);
    off();
    s.fire();
    p.fire();
    assert.equal(n, 2);
  });

  it("shuts both down even when one fails, then reports the failure", async () => {
    const s = new FakeRuntime("static");
    const p = new FakeRuntime("process");
    s.shutdown = async () => {
      throw new Error("static broke");
    };
    const rt = new MultiRuntime({ static: s, process: p });
    await assert.rejects(rt.shutdown(), /static broke/);
    assert.deepEqual(p.calls, ["shutdown"]);
  });

  it("builds default runtimes when none are given", async () => {
    const rt = new MultiRuntime();
    assert.ok(rt.staticRuntime instanceof StaticRuntime);
    await rt.ensure("a", staticSpec, v1);
    assert.equal(rt.instances("a")[0]!.url, "http://127.0.0.1:9001");
    await rt.shutdown();
  });
});
