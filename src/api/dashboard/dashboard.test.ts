/**
 * The dashboard's API side on a real socket: sign-in by token and by one-time code, the
 * session cookie as auth, CSRF and origin checks, sign-out, expiry (Sessions with an injected
 * clock), the event stream with Last-Event-ID, and the series route.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { FakeClock } from "../../core/clock.js";
import { Sketch } from "../../core/sketch.js";
import { openSqliteStore } from "../../store/sqlite/sqlite-store.js";
import type { Store } from "../../store/store.js";
import { buildApi } from "../server.js";
import {
  SESSION_IDLE_MS,
  SESSION_MAX_MS,
  Sessions,
  SIGN_IN_MAX_FAILURES,
  SignInLimiter,
} from "./sessions.js";

const TOKEN = "dash-test-token";

function svc(name: string) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port: 18080 },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
    },
  };
}

describe("Sessions", () => {
  it("expire after 12 h idle and 7 days in all, and cannot be forged or revived", () => {
    let now = 1_000_000;
    const s = new Sessions({ token: TOKEN, now: () => now });
    const a = s.create("ann");
    const cookie = s.encode(a);
    assert.equal(s.decode(cookie)?.name, "ann");
    // Tampering with the payload breaks the MAC.
    const [v, payload, mac] = cookie.split(".");
    const forged = Buffer.from(
      JSON.stringify([a.id, "mallory", a.issuedAt, a.signedInAt, a.expiresAt + 9e9]),
    ).toString("base64url");
    assert.equal(s.decode(`${v}.${forged}.${mac}`), null);
    assert.equal(s.decode(`${v}.${payload}.x${mac!.slice(1)}`), null);
    // Another token's sessions are not this one's.
    assert.equal(new Sessions({ token: "other", now: () => now }).decode(cookie), null);
    now += SESSION_IDLE_MS + 1;
    assert.equal(s.decode(cookie), null, "idle too long");
    // Activity pushes the idle expiry out, but not past the absolute limit.
    now = 1_000_000;
    let cur = a;
    for (let t = 0; t < SESSION_MAX_MS; t += SESSION_IDLE_MS / 2) {
      now = 1_000_000 + t;
      const back = s.decode(s.encode(cur));
      assert.ok(back, `alive at ${t / 3600_000} h`);
      cur = s.refresh(back) ?? back;
    }
    now = 1_000_000 + SESSION_MAX_MS + 1;
    assert.equal(s.decode(s.encode(cur)), null, "past 7 days");
    // Revoked is revoked.
    now = 1_000_000;
    s.revoke(a);
    assert.equal(s.decode(cookie), null);
  });

  it("one-time codes work once and expire after 60 s", () => {
    let now = 0;
    const s = new Sessions({ token: TOKEN, now: () => now });
    const { code } = s.issueCode();
    assert.equal(s.redeemCode(code), true);
    assert.equal(s.redeemCode(code), false, "used");
    const late = s.issueCode().code;
    now += 60_001;
    assert.equal(s.redeemCode(late), false, "expired");
    assert.equal(s.redeemCode("made-up"), false);
  });
});

describe("dashboard API", () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;
  let url: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-dash-api-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    app = buildApi({ store, clock: new FakeClock(), token: TOKEN, version: "test" });
    url = (await app.listen({ host: "127.0.0.1", port: 0 })).replace("[::1]", "127.0.0.1");
  });
  after(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const signIn = async (body: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(`${url}/api/v1/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    const cookie = /turnout_session=([^;]*)/.exec(r.headers.get("set-cookie") ?? "")?.[1];
    return {
      status: r.status,
      json: (await r.json()) as any,
      cookie,
      setCookie: r.headers.get("set-cookie") ?? "",
    };
  };

  it("signed out, every API route is 401, and / serves the page shell", async () => {
    for (const [m, p] of [
      ["GET", "/api/v1/services"],
      ["GET", "/api/v1/events/stream"],
      ["GET", "/api/v1/sessions/current"],
      ["POST", "/api/v1/services/x/promote"],
      ["POST", "/api/v1/sessions/codes"],
    ] as const) {
      const r = await fetch(`${url}${p}`, { method: m });
      assert.equal(r.status, 401, `${m} ${p}`);
    }
    const page = await fetch(`${url}/`);
    // Built (200) or not (503 with how to build it): never the API's 401.
    assert.ok(page.status === 200 || page.status === 503, String(page.status));
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  });

  it("signs in with the token; the cookie is HttpOnly, SameSite=Strict, and authenticates reads", async () => {
    const bad = await signIn({ token: "nope" });
    assert.equal(bad.status, 401);
    assert.equal(bad.cookie, undefined);
    const ok = await signIn({ token: TOKEN, name: "ann" });
    assert.equal(ok.status, 200);
    assert.match(ok.setCookie, /HttpOnly/);
    assert.match(ok.setCookie, /SameSite=Strict/);
    assert.doesNotMatch(
      ok.setCookie,
      /Secure/,
      "plain http: no Secure (the browser would drop it)",
    );
    assert.ok(ok.json.csrf);
    const r = await fetch(`${url}/api/v1/services`, {
      headers: { cookie: `turnout_session=${ok.cookie}` },
    });
    assert.equal(r.status, 200);
    const cur = await fetch(`${url}/api/v1/sessions/current`, {
      headers: { cookie: `turnout_session=${ok.cookie}` },
    });
    assert.deepEqual(await cur.json(), ok.json);
  });

  it("rejects unknown sign-in fields and bad names with the path", async () => {
    const r = await signIn({ token: TOKEN, admin: true });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.path, "admin");
    const n = await signIn({ token: TOKEN, name: "<script>" });
    assert.equal(n.status, 400);
    assert.equal(n.json.error.path, "name");
  });

  it("a change with the cookie needs the session's CSRF header and this origin; the actor is the session's", async () => {
    const { cookie, json } = await signIn({ token: TOKEN, name: "ann" });
    const apply = (headers: Record<string, string>) =>
      fetch(`${url}/api/v1/apply`, {
        method: "POST",
        headers: {
          cookie: `turnout_session=${cookie}`,
          "content-type": "application/json",
          ...headers,
        },
        body: JSON.stringify(svc("shop")),
      });
    const none = await apply({});
    assert.equal(none.status, 403);
    assert.equal(((await none.json()) as any).error.code, "TURNOUT_ERR_AUTH_CSRF");
    assert.equal((await apply({ "x-turnout-csrf": "wrong" })).status, 403);
    const other = await signIn({ token: TOKEN });
    assert.equal(
      (await apply({ "x-turnout-csrf": other.json.csrf })).status,
      403,
      "another session's value",
    );
    assert.equal(
      (await apply({ "x-turnout-csrf": json.csrf, origin: "http://evil.example" })).status,
      403,
    );
    assert.equal(
      (await apply({ "x-turnout-csrf": json.csrf, "sec-fetch-site": "cross-site" })).status,
      403,
    );
    assert.equal(await store.getResource("Service", "shop"), null, "nothing was stored");
    const own = new URL(url).origin;
    const ok = await apply({
      "x-turnout-csrf": json.csrf,
      origin: own,
      "x-turnout-actor": "someone-else",
    });
    assert.equal(ok.status, 200, await ok.text());
    const events = await store.listEvents("shop");
    assert.equal(events[0]?.actor, "dashboard:ann");
  });

  it("one-time codes: issued to the admin token only, exchanged once for a session", async () => {
    const { cookie, json } = await signIn({ token: TOKEN });
    const bySession = await fetch(`${url}/api/v1/sessions/codes`, {
      method: "POST",
      headers: { cookie: `turnout_session=${cookie}`, "x-turnout-csrf": json.csrf },
    });
    assert.equal(bySession.status, 401);
    const r = await fetch(`${url}/api/v1/sessions/codes`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(r.status, 200);
    const { code, url: link } = (await r.json()) as { code: string; url: string };
    assert.ok(link.endsWith(`/#code=${code}`), link);
    assert.ok(!link.includes(TOKEN));
    const first = await signIn({ code });
    assert.equal(first.status, 200);
    assert.ok(first.cookie);
    const again = await signIn({ code });
    assert.equal(again.status, 401);
    assert.match(again.json.error.message, /used or expired/);
  });

  it("sign-out revokes the session", async () => {
    const { cookie, json } = await signIn({ token: TOKEN });
    const h = { cookie: `turnout_session=${cookie}` };
    const out = await fetch(`${url}/api/v1/sessions`, {
      method: "DELETE",
      headers: { ...h, "x-turnout-csrf": json.csrf },
    });
    assert.equal(out.status, 200);
    assert.match(out.headers.get("set-cookie") ?? "", /Max-Age=0/);
    assert.equal((await fetch(`${url}/api/v1/services`, { headers: h })).status, 401);
  });

  it("streams status and history; a reconnect with Last-Event-ID gets the events it missed", async () => {
    const ctl = new AbortController();
    const res = await fetch(`${url}/api/v1/events/stream`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: ctl.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = res.body!.getReader();
    let buf = "";
    const next = async (type: string, pred: (d: any) => boolean = () => true) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        for (const block of buf.split("\n\n").slice(0, -1)) {
          const ev = /^event: (.+)$/m.exec(block)?.[1];
          const data = /^data: (.+)$/m.exec(block)?.[1];
          const id = /^id: (.+)$/m.exec(block)?.[1];
          buf = buf.slice(buf.indexOf(block) + block.length + 2);
          if (ev === type && data && pred(JSON.parse(data)))
            return { data: JSON.parse(data), id: Number(id) };
        }
        if (Date.now() > deadline) throw new Error(`no ${type} event; have: ${buf}`);
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buf += new TextDecoder().decode(value);
      }
    };
    const ready = await next("ready");
    assert.ok(ready.data.services.includes("shop"));
    await store.applyResources([svc("cart") as any], { actor: "bob", now: 1 });
    const status = await next("status", (d) => d.service === "cart");
    assert.equal(status.data.view.desiredVersion, "v1");
    const applied = await next("event", (d) => d.service === "cart");
    assert.equal(applied.data.type, "ResourceApplied");
    assert.equal(applied.id, applied.data.id, "the id is the history event's");
    ctl.abort();
    // Missed while away: replayed on reconnect, nothing before it.
    await store.applyResources(
      [
        {
          ...svc("cart"),
          spec: { ...svc("cart").spec, version: "v1", listen: { port: 18081 } },
        } as any,
      ],
      {
        actor: "bob",
        now: 2,
      },
    );
    const again = await fetch(`${url}/api/v1/events/stream`, {
      headers: { authorization: `Bearer ${TOKEN}`, "last-event-id": String(applied.id) },
    });
    const r2 = again.body!.getReader();
    let text = "";
    while (!text.includes("event: ready"))
      text += new TextDecoder().decode((await r2.read()).value);
    await r2.cancel();
    const replayed = [...text.matchAll(/event: event\ndata: (.+)/g)].map((m) => JSON.parse(m[1]!));
    assert.ok(replayed.length >= 1, text);
    assert.ok(replayed.every((e) => e.id > applied.id));
    assert.equal(replayed[0].service, "cart");
  });

  it("series: buckets per version with share, error rate and quantiles; bad parameters named", async () => {
    const nowSec = 1_700_000_000; // the FakeClock's
    const sk = (ms: number[]) => {
      const k = new Sketch();
      for (const m of ms) k.add(m);
      return k.toJSON();
    };
    const row = (
      version: string,
      second: number,
      requests: number,
      s5xx: number,
      lat: number[],
      abandoned = 0,
    ) => ({
      service: "shop",
      version,
      labels: "",
      second,
      routerId: "r1",
      requests,
      s2xx: requests - s5xx - abandoned,
      s3xx: 0,
      s4xx: abandoned,
      s5xx,
      upstreamErrors: 0,
      abandoned,
      latency: sk(lat),
    });
    await store.writeMeasurements([
      row("v1", nowSec - 15, 30, 0, Array(30).fill(10)),
      row("v2", nowSec - 15, 10, 1, Array(10).fill(20)),
      // Another router's share of the same second adds up.
      { ...row("v2", nowSec - 14, 10, 1, Array(10).fill(40), 2), routerId: "r2" },
    ]);
    const r = await fetch(`${url}/api/v1/services/shop/series?seconds=60&step=10`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(r.status, 200);
    const body = (await r.json()) as any;
    assert.equal(body.stepSec, 10);
    assert.equal(body.points.length, 6);
    assert.deepEqual(body.versions, ["v1", "v2"]);
    const p = body.points.find((x: any) => x.versions.v1);
    assert.ok(p.t <= nowSec - 15 && nowSec - 14 < p.t + 10);
    assert.equal(p.versions.v1.requests, 30);
    assert.equal(p.versions.v2.requests, 20);
    assert.equal(p.versions.v2.share, 0.4);
    // Errors as analysis counts them: 2 5xx and 2 requests abandoned by their clients.
    assert.equal(p.versions.v2.errorRate, 0.2);
    assert.equal(p.versions.v2.abandoned, 2);
    assert.equal(p.versions.v1.abandoned, 0);
    assert.equal(p.versions.v2.rps, 2);
    assert.ok(Math.abs(p.versions.v1.p50Ms - 10) < 0.2);
    assert.ok(Math.abs(p.versions.v2.p99Ms - 40) < 0.5);
    const bad = await fetch(`${url}/api/v1/services/shop/series?step=0`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).error.path, "step");
    const none = await fetch(`${url}/api/v1/services/nope/series`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(none.status, 404);
  });
});

describe("sign-in rate limit", () => {
  it("allows N failures per address in a sliding window, then refuses until one leaves it", () => {
    let t = 1_000_000;
    const l = new SignInLimiter(() => t, 3, 60_000);
    assert.equal(l.blockedFor("a"), 0);
    l.failed("a");
    t += 10_000;
    l.failed("a");
    t += 10_000;
    assert.equal(l.blockedFor("a"), 0, "two failures: still allowed");
    l.failed("a");
    assert.equal(l.blockedFor("a"), 40_000, "until the first failure is a minute old");
    assert.equal(l.blockedFor("b"), 0, "per address");
    t += 40_000;
    assert.equal(l.blockedFor("a"), 0);
    l.failed("a");
    assert.equal(l.blockedFor("a"), 10_000, "the second failure is now the oldest in the window");
    l.succeeded("a");
    assert.equal(l.blockedFor("a"), 0, "a sign-in clears the address");
  });

  it("answers 429 with a JSON body and Retry-After after too many wrong tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-dash-rl-"));
    const store = await openSqliteStore({ path: join(dir, "t.db") });
    const app = buildApi({ store, clock: new FakeClock(), token: TOKEN, version: "test" });
    try {
      const url = (await app.listen({ host: "127.0.0.1", port: 0 })).replace("[::1]", "127.0.0.1");
      const signIn = (token: string) =>
        fetch(`${url}/api/v1/sessions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token }),
        });
      for (let i = 0; i < SIGN_IN_MAX_FAILURES; i++)
        assert.equal((await signIn(`guess-${i}`)).status, 401, `guess ${i}`);
      const limited = await signIn("guess-again");
      assert.equal(limited.status, 429);
      const retryAfter = Number(limited.headers.get("retry-after"));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      const body = (await limited.json()) as any;
      assert.equal(body.error.code, "TURNOUT_ERR_AUTH_RATE_LIMITED");
      assert.match(body.error.message, /too many failed sign-ins from 127\.0\.0\.1/);
      // Even the right token is refused while blocked: a guesser learns nothing from the answer.
      const right = await signIn(TOKEN);
      assert.equal(right.status, 429);
      assert.equal(right.headers.get("set-cookie"), null);
      // The bearer token still works for the CLI: only sign-in is throttled.
      const info = await fetch(`${url}/api/v1/info`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(info.status, 200);
    } finally {
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
