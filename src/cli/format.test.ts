import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyStatus } from "../core/rollout.js";
import { formatServices, formatStatus, type StatusView, watchLine } from "./format.js";

function view(over: Partial<StatusView["status"]> & object, now: number): StatusView {
  return {
    service: "web",
    generation: 2,
    desiredVersion: "v2",
    steps: [{ setWeight: 10 }, { pause: { duration: "10s" } }],
    status: {
      ...emptyStatus(0),
      stableVersion: "v1",
      canaryVersion: "v2",
      canaryWeight: 10,
      stepIndex: 1,
      stepStartedAt: 0,
      observedGeneration: 2,
      ...over,
    },
    routeTable: null,
    now,
  };
}

describe("formatStatus: a timed pause", () => {
  it("counts down while it runs", () => {
    assert.match(formatStatus(view({}, 3_000)), /pause 10s {2}\(7s left\)/);
  });

  it("held by a person: what is left once resumed, frozen at the time of the pause", () => {
    const v = view({ phase: "Paused", pausedByUser: true, pausedAt: 5_000 }, 65_000);
    assert.match(formatStatus(v), /pause 10s {2}\(5s left once resumed\)/);
  });

  it("held, from a status without pausedAt: no figure rather than a wrong one", () => {
    const v = view({ phase: "Paused", pausedByUser: true }, 65_000);
    assert.doesNotMatch(formatStatus(v), /left/);
  });

  it("over and held for analysis data: how long it has waited, not '0s left'", () => {
    const v = view({ heldForData: { step: 1, rollout: 1, since: 10_000 } }, 75_000);
    const out = formatStatus(v);
    assert.match(out, /pause 10s {2}\(held 1m5s: no analysis data yet\)/);
    assert.doesNotMatch(out, /left/);
  });
});

describe("output that reads well in a pipe (#18 item 9)", () => {
  it("status --watch: one line per change of phase, step, weights or message, none for traffic", () => {
    const at = new Date(Date.UTC(2026, 0, 1, 12, 0, 5));
    const a = view({ phase: "Progressing", message: "paused at step 2/2 for 10s" }, 0);
    a.routeTable = {
      backends: [
        { version: "v1", weight: 90, endpoints: [] },
        { version: "v2", weight: 10, endpoints: [] },
      ],
    } as unknown as StatusView["routeTable"];
    const first = watchLine(a, at);
    assert.equal(
      first.line,
      "12:00:05 web Progressing step 2/2 (v1 90%, v2 10%): paused at step 2/2 for 10s",
    );
    const moreTraffic = { ...a, traffic: [{ version: "v2", requests: 999 }] } as StatusView;
    assert.equal(watchLine(moreTraffic, at).key, first.key);
    const next = view({ phase: "Completed", canaryVersion: null, message: "v2 is stable" }, 0);
    assert.notEqual(watchLine(next, at).key, first.key);
  });

  it("get services: a message is cut to one short line in the table", () => {
    const long = `background analysis failed: ${"errors 20% vs 1% ".repeat(40)}`;
    const v = view({ message: long }, 0);
    const out = formatServices([
      {
        name: "web",
        generation: 2,
        resource: {
          apiVersion: "turnout.dev/v1",
          kind: "Service",
          metadata: { name: "web" },
          spec: {
            listen: { host: "127.0.0.1", port: 8080 },
            runtime: { static: { versions: {} } },
            version: "v2",
          },
        },
        status: v.status,
      },
    ]);
    const row = out.split("\n")[1]!;
    assert.ok(row.length < 200, `${row.length} characters`);
    assert.match(row, /…$/);
  });
});

describe("status: the traffic line (#18 item 9)", () => {
  const t = (version: string, requests: number) => ({
    version,
    requests,
    status: { "2xx": requests },
    upstreamErrors: 0,
    latencyMsSum: requests * 12,
  });
  it("lists only the versions of the current table and says the window", () => {
    const v = {
      ...view({}, 0),
      routeTable: {
        backends: [
          { version: "v1", weight: 90, endpoints: [] },
          { version: "v2", weight: 10, endpoints: [] },
        ],
      },
      traffic: [t("v0", 5000), t("v1", 900), t("v2", 100)],
    } as unknown as StatusView;
    const line = formatStatus(v)
      .split("\n")
      .find((l) => l.startsWith("Traffic:"));
    assert.ok(line, formatStatus(v));
    assert.match(line, /v1 900 req, 0 errors, mean 12\.0 ms .*v2 100 req/);
    assert.doesNotMatch(line, /v0/);
    assert.match(line, /\(totals since the router started\)/);
  });
  it("counts requests abandoned by their clients among the errors, and says how many", () => {
    const v = {
      ...view({}, 0),
      routeTable: {
        backends: [
          { version: "v1", weight: 50, endpoints: [] },
          { version: "hang", weight: 50, endpoints: [] },
        ],
      },
      traffic: [
        t("v1", 810),
        {
          ...t("hang", 1810),
          status: { "2xx": 0, "4xx": 1250, "5xx": 3 },
          abandoned: 1250,
        },
      ],
    } as unknown as StatusView;
    const line = formatStatus(v)
      .split("\n")
      .find((l) => l.startsWith("Traffic:"));
    assert.ok(line, formatStatus(v));
    assert.match(line, /v1 810 req, 0 errors, mean/);
    assert.match(line, /hang 1,810 req, 1,253 errors \(1,250 abandoned\), mean/);
  });
  it("names a series' flag variants, so the series of one version can be told apart", () => {
    const v = {
      ...view({}, 0),
      routeTable: { backends: [{ version: "v3", weight: 100, endpoints: [] }] },
      traffic: [
        t("v3", 10),
        { ...t("v3", 48), labels: "flag.explanations=on" },
        { ...t("v3", 1653), labels: "flag.explanations=off&flag.x%20y=b" },
      ],
    } as unknown as StatusView;
    const line = formatStatus(v)
      .split("\n")
      .find((l) => l.startsWith("Traffic:"));
    assert.match(
      line ?? "",
      /v3 10 req.*v3 \[flag\.explanations=on\] 48 req.*v3 \[flag\.explanations=off, flag\.x y=b\] 1,653 req/,
    );
  });
});

describe("formatStatus: the data plane's follow-up lines", () => {
  it("a refused table and HAProxy's last error sit under the label column, with no stray colon", () => {
    const v: StatusView = {
      ...view({}, 0),
      dataPlane: {
        provider: "haproxy",
        process: { running: true, lastError: "exit 1" },
        refused: "HAProxy runtime API /run/admin.sock: the socket does not exist",
      },
    };
    const lines = formatStatus(v).split("\n");
    const at = lines.findIndex((l) => l.startsWith("Data plane:"));
    assert.ok(at >= 0);
    assert.match(lines[at + 1] ?? "", /^ {13}\S*refused: HAProxy runtime API/);
    assert.match(lines[at + 2] ?? "", /^ {13}\S*last error: exit 1/);
  });
});
