/**
 * The conformance suite every Runtime passes (static, process, and later kubernetes). Each
 * implementation's test file calls `describeRuntimeConformance` with a fixture factory; the
 * suite owns the behaviour the controller relies on, the implementation's own tests cover the
 * rest (probes, signals, logs...).
 *
 * Nothing here sleeps for a guessed time: waits subscribe to `onChange` and poll `instances`
 * until a predicate holds, with a deadline that only matters when something is broken.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { RuntimeSpec } from "../core/model.js";
import type { Instance, Runtime } from "./runtime.js";

/** The versions the suite uses; a fixture may prepare exactly these. */
export const CONFORMANCE_VERSIONS = ["v1", "v2"] as const;
/** Instances the suite asks for per version. A runtime whose count comes from its spec
 *  (static) must describe this many per version. */
export const CONFORMANCE_REPLICAS = 2;

export interface RuntimeFixture {
  runtime: Runtime;
  /**
   * A spec under which each of `versions` can run, every instance answering `GET /` at its url
   * with JSON `{"version": "<version>", ...}` (examples/model/server.mjs does).
   */
  spec(versions: string[]): RuntimeSpec;
  /** Frees what the fixture made (servers, temp dirs); the suite has already shut the runtime down. */
  cleanup(): Promise<void>;
}

export interface WaitOptions {
  timeoutMs?: number;
  /** Poll as well as listen (default). Off: only onChange can wake the wait, which tests that it fires. */
  poll?: boolean;
}

/** Resolves with the service's instances once `predicate` holds; rejects after the deadline. */
export function waitForInstances(
  runtime: Runtime,
  service: string,
  predicate: (list: Instance[]) => boolean,
  what: string,
  opts: WaitOptions = {},
): Promise<Instance[]> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = () => {
      done = true;
      off();
      if (poll) clearInterval(poll);
      clearTimeout(deadline);
    };
    const check = () => {
      if (done) return;
      const list = runtime.instances(service);
      if (predicate(list)) {
        finish();
        resolve(list);
      }
    };
    const off = runtime.onChange(check);
    const poll = opts.poll === false ? undefined : setInterval(check, 20);
    const deadline = setTimeout(() => {
      finish();
      const now = JSON.stringify(runtime.instances(service));
      reject(
        new Error(
          `timed out after ${timeoutMs}ms waiting for ${what}; instances of ${service}: ${now}`,
        ),
      );
    }, timeoutMs);
    check();
  });
}

/** GET `url` with a fresh connection (no keep-alive left to hold an instance's graceful close). */
export function httpGet(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
  });
}

const ofVersion = (list: Instance[], v: string) => list.filter((i) => i.version === v);
const allReady = (list: Instance[], versions: readonly string[]) =>
  versions.every((v) => ofVersion(list, v).length === CONFORMANCE_REPLICAS) &&
  list.length === versions.length * CONFORMANCE_REPLICAS &&
  list.every((i) => i.state === "ready");

export function describeRuntimeConformance(
  name: string,
  make: () => RuntimeFixture | Promise<RuntimeFixture>,
): void {
  describe(`Runtime conformance: ${name}`, { timeout: 30_000 }, () => {
    let fx: RuntimeFixture;
    const targets = (versions: readonly string[]) =>
      versions.map((version) => ({ version, replicas: CONFORMANCE_REPLICAS }));
    const ensure = (service: string, versions: readonly string[]) =>
      fx.runtime.ensure(service, fx.spec([...versions]), targets(versions));
    const ready = (service: string, versions: readonly string[]) =>
      waitForInstances(
        fx.runtime,
        service,
        (l) => allReady(l, versions),
        `${versions.join("+")} ready`,
      );

    beforeEach(async () => {
      fx = await make();
    });
    afterEach(async () => {
      await fx.runtime.shutdown();
      await fx.cleanup();
    });

    it("has no instances for a service it was never told about", () => {
      assert.deepEqual(fx.runtime.instances("nobody"), []);
    });

    it("ensure(one version): instances appear and become ready, with onChange firing", async () => {
      let changes = 0;
      const off = fx.runtime.onChange(() => changes++);
      await ensure("svc", ["v1"]);
      assert.ok(
        fx.runtime.instances("svc").length > 0,
        "instances are listed as soon as ensure returns",
      );
      // poll: false, so only onChange can end this wait.
      const list = await waitForInstances(
        fx.runtime,
        "svc",
        (l) => allReady(l, ["v1"]),
        "v1 ready via onChange",
        {
          poll: false,
        },
      );
      off();
      assert.ok(changes > 0);
      assert.equal(new Set(list.map((i) => i.id)).size, list.length, "ids are unique");
      assert.equal(new Set(list.map((i) => i.url)).size, list.length, "urls are distinct");
      for (const i of list) {
        assert.equal(i.version, "v1");
        assert.match(i.url, /^https?:\/\/[^/]+/);
      }
    });

    it("ensure is idempotent: the same targets keep the same instances", async () => {
      await ensure("svc", ["v1"]);
      const before = await ready("svc", ["v1"]);
      await ensure("svc", ["v1"]);
      await ensure("svc", ["v1"]);
      const after = fx.runtime.instances("svc");
      assert.deepEqual(
        after.map((i) => [i.id, i.url, i.state]),
        before.map((i) => [i.id, i.url, i.state]),
      );
    });

    it("ensure(two versions): both are present and ready", async () => {
      await ensure("svc", ["v1"]);
      await ready("svc", ["v1"]);
      await ensure("svc", ["v1", "v2"]);
      const list = await ready("svc", ["v1", "v2"]);
      assert.equal(ofVersion(list, "v1").length, CONFORMANCE_REPLICAS);
      assert.equal(ofVersion(list, "v2").length, CONFORMANCE_REPLICAS);
    });

    it("ensure without a version: its instances go away, the other's are untouched", async () => {
      await ensure("svc", ["v1", "v2"]);
      const both = await ready("svc", ["v1", "v2"]);
      await ensure("svc", ["v2"]);
      const list = await waitForInstances(
        fx.runtime,
        "svc",
        (l) => ofVersion(l, "v1").length === 0,
        "v1 gone",
      );
      assert.deepEqual(
        list.map((i) => [i.id, i.url, i.state]),
        ofVersion(both, "v2").map((i) => [i.id, i.url, i.state]),
      );
    });

    it("a version dropped by ensure is never listed ready again, and onChange reports its removal", async () => {
      await ensure("svc", ["v1", "v2"]);
      await ready("svc", ["v1", "v2"]);
      await ensure("svc", ["v2"]);
      // The moment ensure returns, routing built from instances() must not pick v1 any more.
      assert.deepEqual(
        fx.runtime.instances("svc").filter((i) => i.version === "v1" && i.state === "ready"),
        [],
      );
      // poll: false: only onChange can end the wait, so the controller hears of the removal.
      await waitForInstances(
        fx.runtime,
        "svc",
        (l) => ofVersion(l, "v1").length === 0,
        "v1 gone via onChange",
        { poll: false },
      );
    });

    it("instances() is a snapshot: changing it changes nothing in the runtime", async () => {
      await ensure("svc", ["v1"]);
      const list = await ready("svc", ["v1"]);
      const copy = JSON.stringify(list);
      list[0]!.state = "failed";
      list.pop();
      assert.equal(JSON.stringify(fx.runtime.instances("svc")), copy);
    });

    it("restarts and lastExit, when reported, are a count and a reason", async () => {
      await ensure("svc", ["v1"]);
      for (const i of await ready("svc", ["v1"])) {
        if (i.restarts !== undefined) assert.ok(Number.isInteger(i.restarts) && i.restarts >= 0);
        if (i.lastExit !== undefined) assert.equal(typeof i.lastExit, "string");
      }
    });

    it("instances answer HTTP at their url, each with its own version", async () => {
      await ensure("svc", ["v1", "v2"]);
      const list = await ready("svc", ["v1", "v2"]);
      for (const i of list) {
        const res = await httpGet(`${i.url}/`);
        assert.equal(res.status, 200, `GET ${i.url}/`);
        assert.equal(JSON.parse(res.body).version, i.version, `GET ${i.url}/ serves ${i.version}`);
      }
    });

    it("remove() stops every instance of one service and leaves the others", async () => {
      await ensure("a", ["v1"]);
      await ensure("b", ["v1"]);
      await ready("a", ["v1"]);
      const bBefore = await ready("b", ["v1"]);
      await fx.runtime.remove("a");
      assert.deepEqual(
        fx.runtime.instances("a"),
        [],
        "remove() resolves once the instances are gone",
      );
      assert.deepEqual(fx.runtime.instances("b"), bBefore);
      await fx.runtime.remove("never-existed");
    });

    it("shutdown() stops everything", async () => {
      await ensure("a", ["v1"]);
      await ensure("b", ["v2"]);
      await ready("a", ["v1"]);
      await ready("b", ["v2"]);
      await fx.runtime.shutdown();
      assert.deepEqual(fx.runtime.instances("a"), []);
      assert.deepEqual(fx.runtime.instances("b"), []);
    });
  });
}
