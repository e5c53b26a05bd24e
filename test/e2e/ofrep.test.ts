/**
 * OFREP end to end: `turnout up` in a child process on port 0, flags applied through the API,
 * then the protocol checked by hand (status codes and bodies exactly as open-feature/protocol's
 * service/openapi.yaml says) and through the real, unchanged OpenFeature SDKs: the server SDK
 * with @openfeature/ofrep-provider, and the web SDK with @openfeature/ofrep-web-provider (its
 * bulk flow: ETag, If-None-Match, 304).
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { OpenFeature } from "@openfeature/server-sdk";
import { OpenFeature as WebOpenFeature } from "@openfeature/web-sdk";
import { TurnoutProvider } from "../../src/provider/index.js";
import { api, startUp, tempDir, type Up } from "../helpers.js";

const FLAGS = `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: new-checkout }
spec:
  type: boolean
  variants: { on: true, off: false }
  defaultVariant: off
  rules:
    - name: staff
      conditions: [{ attribute: email, op: endsWith, value: "@acme.test" }]
      variant: on
  rollout: { variant: on, percentage: 50 }
---
apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: banner }
spec:
  type: string
  variants: { a: "hello", b: "bonjour" }
  defaultVariant: a
---
apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: limits }
spec:
  type: object
  variants: { small: { max: 10 }, big: { max: 100 } }
  defaultVariant: small
  rules: [{ segments: [pro], variant: big }]
---
apiVersion: turnout.dev/v1
kind: Segment
metadata: { name: pro }
spec:
  conditions: [{ attribute: plan, op: in, values: [pro, team] }]
`;

const json = (r: Response): Promise<any> => r.json();

describe("OFREP", () => {
  let dir: string;
  let up: Up;
  let key: string;
  const ofrep = (path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${up.url}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "x-api-key": key, "content-type": "application/json", ...headers },
      ...(body !== undefined
        ? { body: typeof body === "string" ? body : JSON.stringify(body) }
        : {}),
    });

  before(async () => {
    dir = tempDir();
    up = await startUp(dir);
    key = readFileSync(join(dir, "flag-keys"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("tfk_"))!;
    const r = await api(up, "POST", "/api/v1/apply", FLAGS, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });
  after(async () => {
    await up?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("needs a client key, not the admin token", async () => {
    const none = await fetch(`${up.url}/ofrep/v1/evaluate/flags/banner`, {
      method: "POST",
      body: "{}",
    });
    assert.equal(none.status, 401);
    const admin = await fetch(`${up.url}/ofrep/v1/evaluate/flags/banner`, {
      method: "POST",
      headers: { authorization: `Bearer ${up.token}` },
      body: "{}",
    });
    assert.equal(admin.status, 401);
    const bearer = await fetch(`${up.url}/ofrep/v1/evaluate/flags/banner`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(bearer.status, 200);
    // And a client key is no admin token.
    const adminWithKey = await api(up, "GET", "/api/v1/flags", undefined, { token: key });
    assert.equal(adminWithKey.status, 401);
  });

  it("single evaluation: success, 404 and 400 bodies as the OpenAPI document says", async () => {
    const ok = await ofrep("/ofrep/v1/evaluate/flags/new-checkout", {
      context: { targetingKey: "u1", email: "x@acme.test" },
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(await json(ok), {
      key: "new-checkout",
      value: true,
      reason: "TARGETING_MATCH",
      variant: "on",
      metadata: { generation: 1, rule: "staff" },
    });
    const nf = await ofrep("/ofrep/v1/evaluate/flags/nope", { context: {} });
    assert.equal(nf.status, 404);
    assert.deepEqual(await json(nf), {
      key: "nope",
      errorCode: "FLAG_NOT_FOUND",
      errorDetails: "flag nope not found",
    });
    const parse = await ofrep("/ofrep/v1/evaluate/flags/banner", "{not json");
    assert.equal(parse.status, 400);
    const pj = await json(parse);
    assert.equal(pj.key, "banner");
    assert.equal(pj.errorCode, "PARSE_ERROR");
    assert.equal(typeof pj.errorDetails, "string");
    const tk = await ofrep("/ofrep/v1/evaluate/flags/new-checkout", { context: {} });
    assert.equal(tk.status, 400);
    assert.equal((await json(tk)).errorCode, "TARGETING_KEY_MISSING");
    const ic = await ofrep("/ofrep/v1/evaluate/flags/banner", { context: [1] });
    assert.equal(ic.status, 400);
    assert.equal((await json(ic)).errorCode, "INVALID_CONTEXT");
  });

  it("bulk evaluation with ETag and If-None-Match -> 304; configuration", async () => {
    const ctx = { context: { targetingKey: "u2", plan: "pro" } };
    const a = await ofrep("/ofrep/v1/evaluate/flags", ctx);
    assert.equal(a.status, 200);
    const etag = a.headers.get("etag");
    assert.ok(etag);
    const body = await json(a);
    assert.deepEqual(body.flags.map((f: { key: string }) => f.key).sort(), [
      "banner",
      "limits",
      "new-checkout",
    ]);
    assert.deepEqual(body.flags.find((f: { key: string }) => f.key === "limits").value, {
      max: 100,
    });
    const b = await ofrep("/ofrep/v1/evaluate/flags", ctx, { "if-none-match": etag! });
    assert.equal(b.status, 304);
    // Another context is another answer.
    const c = await ofrep(
      "/ofrep/v1/evaluate/flags",
      { context: { targetingKey: "u3" } },
      { "if-none-match": etag! },
    );
    assert.equal(c.status, 200);
    const bad = await ofrep("/ofrep/v1/evaluate/flags", "[");
    assert.equal(bad.status, 400);
    assert.equal((await json(bad)).errorCode, "PARSE_ERROR");
    const conf = await ofrep("/ofrep/v1/configuration");
    assert.equal(conf.status, 200);
    assert.equal((await json(conf)).name, "turnout");
  });

  it("a targetingKey that is not a string: 400 INVALID_CONTEXT on the single and the bulk route", async () => {
    const context = { targetingKey: 42 };
    const one = await ofrep("/ofrep/v1/evaluate/flags/banner", { context });
    assert.equal(one.status, 400);
    assert.deepEqual(await json(one), {
      key: "banner",
      errorCode: "INVALID_CONTEXT",
      errorDetails: "targetingKey must be a string",
    });
    // Invalid for every flag: the bulk request is refused, not answered flag by flag.
    const all = await ofrep("/ofrep/v1/evaluate/flags", { context });
    assert.equal(all.status, 400);
    assert.deepEqual(await json(all), {
      errorCode: "INVALID_CONTEXT",
      errorDetails: "targetingKey must be a string",
    });
  });

  it("a body over the limit: 413 in OFREP's error shape, whichever way it is sent", async () => {
    const big = `{"context":{"pad":"${"a".repeat(5 * 1024 * 1024)}"}}`;
    const expect413 = (what: string, status: number, body: any, key?: string) => {
      assert.equal(status, 413, what);
      assert.equal(body.key, key, `${what}: the single evaluation's key`);
      assert.equal(body.errorCode, "INVALID_CONTEXT", what);
      assert.match(body.errorDetails, /larger than .*\[TURNOUT_ERR_API_PAYLOAD_TOO_LARGE\]$/, what);
      assert.equal(body.error, undefined, `${what}: Turnout's shape`);
    };
    // The head and a first part of the body, then the answer: the server refuses by the
    // declared length (with Expect: 100-continue, before any of the body is sent).
    const declared = (path: string, expect: boolean) =>
      new Promise<{ status: number; body: any }>((resolve, reject) => {
        const req = request(`${up.url}${path}`, {
          method: "POST",
          headers: {
            "x-api-key": key,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(big),
            ...(expect ? { expect: "100-continue" } : {}),
          },
        });
        req.on("response", async (res) => {
          let t = "";
          for await (const c of res) t += c;
          resolve({ status: res.statusCode!, body: JSON.parse(t) });
          req.destroy();
        });
        req.on("error", reject);
        if (expect) req.flushHeaders();
        else req.write(big.slice(0, 1024));
      });
    for (const [path, flag] of [
      ["/ofrep/v1/evaluate/flags/banner", "banner"],
      ["/ofrep/v1/evaluate/flags", undefined],
    ] as const) {
      for (const expect of [false, true]) {
        const r = await declared(path, expect);
        expect413(`${path}${expect ? " with Expect: 100-continue" : ""}`, r.status, r.body, flag);
      }
    }
    // Chunked, with no length: the single evaluation's fast path counts it.
    const chunked = await fetch(`${up.url}/ofrep/v1/evaluate/flags/banner`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(big.slice(0, 200_000)));
          c.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect413("chunked", chunked.status, await json(chunked), "banner");
  });

  it("the real server SDK with the OFREP provider, and the kill switch reaching it at once", async () => {
    await OpenFeature.setProviderAndWait(
      "ofrep-e2e",
      new OFREPProvider({ baseUrl: up.url, headers: [["X-API-Key", key]] }),
    );
    const client = OpenFeature.getClient("ofrep-e2e");
    const d = await client.getBooleanDetails("new-checkout", false, {
      targetingKey: "u1",
      email: "boss@acme.test",
    });
    assert.equal(d.value, true);
    assert.equal(d.reason, "TARGETING_MATCH");
    assert.equal(d.variant, "on");
    assert.equal(await client.getStringValue("banner", "x"), "hello");
    assert.deepEqual(await client.getObjectValue("limits", {}, { plan: "team" }), { max: 100 });
    // A type the flag is not: the SDK reports TYPE_MISMATCH and returns the caller's default.
    const mismatch = await client.getNumberDetails("banner", 7);
    assert.equal(mismatch.value, 7);
    assert.equal(mismatch.errorCode, "TYPE_MISMATCH");
    const missing = await client.getBooleanDetails("nope", true);
    assert.equal(missing.errorCode, "FLAG_NOT_FOUND");
    assert.equal(missing.value, true);

    // About half of the users get the 50% rollout.
    let on = 0;
    for (let i = 0; i < 200; i++) {
      if (await client.getBooleanValue("new-checkout", false, { targetingKey: `user-${i}` })) on++;
    }
    assert.ok(on > 70 && on < 130, `on for ${on}/200`);

    const kill = await api(up, "POST", "/api/v1/flags/new-checkout/disable", { reason: "e2e" });
    assert.equal(kill.status, 200, JSON.stringify(kill.json));
    // No wait: the API answered once the kill was in force.
    const off = await client.getBooleanDetails("new-checkout", true, {
      targetingKey: "u1",
      email: "boss@acme.test",
    });
    assert.equal(off.value, false);
    assert.equal(off.reason, "DISABLED");
    const back = await api(up, "POST", "/api/v1/flags/new-checkout/enable", {});
    assert.equal(back.status, 200);
    assert.equal(
      await client.getBooleanValue("new-checkout", false, {
        targetingKey: "u1",
        email: "b@acme.test",
      }),
      true,
    );
    await OpenFeature.clearProviders();
  });

  it("the real web SDK's bulk flow: evaluate all, then 304 while nothing changes", async () => {
    const statuses: number[] = [];
    const fetchImplementation = async (input: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(input, init);
      if (String(input instanceof Request ? input.url : input).endsWith("/ofrep/v1/evaluate/flags"))
        statuses.push(res.status);
      return res;
    };
    const provider = new OFREPWebProvider({
      baseUrl: up.url,
      headers: [["X-API-Key", key]],
      fetchImplementation,
      pollInterval: 100,
    } as ConstructorParameters<typeof OFREPWebProvider>[0]);
    await WebOpenFeature.setContext({ targetingKey: "u9", plan: "pro" });
    await WebOpenFeature.setProviderAndWait(provider);
    const client = WebOpenFeature.getClient();
    assert.deepEqual(client.getObjectValue("limits", {}), { max: 100 });
    assert.equal(client.getStringValue("banner", "x"), "hello");
    const deadline = Date.now() + 10_000;
    while (!statuses.includes(304) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(statuses[0], 200);
    assert.ok(statuses.includes(304), `statuses ${statuses.join(",")}`);
    // A change shows up at the next poll (200 with the new values).
    const set = await api(up, "POST", "/api/v1/flags/banner/set", { variant: "b" });
    assert.equal(set.status, 200, JSON.stringify(set.json));
    const until = Date.now() + 10_000;
    while (client.getStringValue("banner", "x") !== "bonjour" && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(client.getStringValue("banner", "x"), "bonjour");
    await WebOpenFeature.clearProviders();
    await provider.onClose?.();
  });
  it("the in-process provider syncs definitions and evaluates locally; a kill arrives by long poll", async () => {
    const changes: string[] = [];
    const provider = new TurnoutProvider({
      url: up.url,
      clientKey: key,
      waitSeconds: 20,
      onChange: (etag) => changes.push(etag),
    });
    await OpenFeature.setProviderAndWait("in-process", provider);
    const client = OpenFeature.getClient("in-process");
    const d = await client.getBooleanDetails("new-checkout", false, {
      targetingKey: "u1",
      email: "boss@acme.test",
    });
    assert.equal(d.value, true);
    assert.equal(d.reason, "TARGETING_MATCH");
    assert.deepEqual(await client.getObjectValue("limits", {}, { plan: "pro" }), { max: 100 });
    assert.equal((await client.getNumberDetails("banner", 1)).errorCode, "TYPE_MISMATCH");
    // The same answers as OFREP for a sample of users (one core, two transports).
    for (let i = 0; i < 50; i++) {
      const ctx = { targetingKey: `user-${i}` };
      const remote = await json(
        await ofrep("/ofrep/v1/evaluate/flags/new-checkout", { context: ctx }),
      );
      assert.equal(await client.getBooleanValue("new-checkout", false, ctx), remote.value);
    }
    const seen = changes.length;
    const kill = await api(up, "POST", "/api/v1/flags/new-checkout/disable", {
      reason: "provider",
    });
    assert.equal(kill.status, 200);
    // The long poll answers with the change; wait for that notification, not for a time.
    const deadline = Date.now() + 10_000;
    while (changes.length === seen && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(changes.length > seen, "the provider got the change");
    assert.equal(
      (await client.getBooleanDetails("new-checkout", true, { targetingKey: "u1" })).reason,
      "DISABLED",
    );
    await api(up, "POST", "/api/v1/flags/new-checkout/enable", {});
    await OpenFeature.clearProviders();
    // Stops the long poll (clearProviders may not close a domain-scoped provider itself).
    await provider.onClose();
  });
});
