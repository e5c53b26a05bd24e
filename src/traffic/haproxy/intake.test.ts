import assert from "node:assert/strict";
import { copyFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable } from "../../core/model.js";
import { mapText, planService, renderConfig, renderMaps } from "./config.js";
import { LogIntake, parseLogLine } from "./intake.js";
import { RuntimeApi } from "./runtime-api.js";
import { freePort, needsHaproxy, runHaproxy, startUpstream, tempDir, waitFor } from "./testing.js";

const line = (over: Partial<Record<string, string>> = {}) => {
  const f = {
    tag: "T2",
    endMs: "1796248251883",
    pid: "42",
    thread: "0",
    seq: "1",
    frontend: "fraud",
    slot: "slot0",
    status: "200",
    latencyUs: "1234",
    serverMs: "1",
    termination: "--",
    server: "v2:e_127.0.0.1_9001",
    key: Buffer.from("user-42").toString("hex"),
    grpc: "-",
    arm: "-",
    unit: "-",
    ...over,
  };
  return Object.values(f).join(" ");
};

test("a log line parses into the measurement's facts", () => {
  assert.deepEqual(parseLogLine(line()), {
    endMs: 1796248251883,
    pid: 42,
    thread: 0,
    seq: 1,
    series: "fraud",
    version: "v2",
    status: 200,
    latencyMs: 1.234,
    upstreamError: false,
    abandoned: false,
    key: "user-42",
    arm: null,
    unit: null,
  });
  // The server's name leads with its version; a request that got no server is its slot's
  // version (the provider's layout), and one refused before any backend (the frontend's own
  // name, turnout_none) is none.
  assert.equal(parseLogLine(line({ server: "v2.1_rc-3:e_127.0.0.1_9001" }))!.version, "v2.1_rc-3");
  const layout = (frontend: string, slot: string) =>
    frontend === "fraud" && slot === "slot0" ? "v2" : null;
  const nosrv = (over: Partial<Record<string, string>>) =>
    parseLogLine(
      line({ server: "<NOSRV>", status: "503", termination: "SC", ...over }),
      true,
      layout,
    );
  assert.equal(nosrv({})!.version, "v2");
  assert.equal(nosrv({ slot: "turnout_none", key: "-" })!.version, null);
  assert.equal(nosrv({ slot: "fraud", status: "413", termination: "PR" })!.version, null);
  assert.equal(parseLogLine(line({ key: "-" }))!.key, null);
  assert.equal(parseLogLine(line({ frontend: "fraud:preview" }))!.series, "fraud:preview");
  // Server side ends are upstream errors, unless no server was picked.
  assert.equal(parseLogLine(line({ status: "503", termination: "SC" }))!.upstreamError, true);
  assert.equal(parseLogLine(line({ status: "504", termination: "sH" }))!.upstreamError, true);
  assert.equal(
    parseLogLine(line({ status: "503", termination: "SC", server: "<NOSRV>" }))!.upstreamError,
    false,
  );
  assert.equal(parseLogLine(line({ termination: "CD" }))!.upstreamError, false);
  // gRPC statuses count as their HTTP equivalents.
  assert.equal(parseLogLine(line({ grpc: "14" }))!.status, 503);
  assert.equal(parseLogLine(line({ grpc: "3" }))!.status, 400);
  assert.equal(parseLogLine(line({ grpc: "0" }))!.status, 200);
  assert.equal(parseLogLine(line({ grpc: "99" }))!.status, 500);
  assert.equal(parseLogLine(line({ status: "502", grpc: "14" }))!.status, 502);
  for (const bad of [
    "",
    "T2 1 2",
    line().replace("T2", "T1"),
    line({ pid: "x" }),
    `${line()} extra`,
    line({ grpc: "x" }),
  ])
    assert.equal(parseLogLine(bad), null, JSON.stringify(bad));
});

test("a client that aborted before the server's response head is abandoned: a 499, not an upstream error", () => {
  // Waiting for the response headers, queued, connecting: abandoned, whatever status was logged.
  for (const [termination, status, server] of [
    ["CH", "400", "e_127.0.0.1_9001"],
    ["CH", "-1", "e_127.0.0.1_9001"],
    ["CQ", "503", "<NOSRV>"],
    ["CC", "503", "e_127.0.0.1_9001"],
  ] as const) {
    const l = parseLogLine(line({ termination, status, server, serverMs: "-1" }))!;
    assert.equal(l.abandoned, true, termination);
    assert.equal(l.status, 499, termination);
    assert.equal(l.upstreamError, false, termination);
  }
  // During data: the response was under way (its head came, %Tr >= 0), not abandoned...
  const cd = parseLogLine(line({ termination: "CD", status: "200", serverMs: "12" }))!;
  assert.equal(cd.abandoned, false);
  assert.equal(cd.status, 200);
  // ...unless no response head came at all (HAProxy 2.6 logs a client's reset so).
  const reset = parseLogLine(line({ termination: "CD", status: "-1", serverMs: "-1" }))!;
  assert.equal(reset.abandoned, true);
  // Other ends are not the client's leaving.
  for (const termination of ["--", "SH", "sH", "cD", "CR", "PH"])
    assert.equal(
      parseLogLine(line({ termination, serverMs: "-1" }))!.abandoned,
      false,
      termination,
    );

  // Recorded as the router records it: a 4xx, counted abandoned, with its wait as latency.
  const sec = 1_796_248_251;
  const intake = new LogIntake({ now: () => (sec + 60) * 1000, routerId: "hx" });
  intake.ingest(
    [
      line({ seq: "1", endMs: String(sec * 1000 + 10) }),
      line({
        seq: "2",
        endMs: String(sec * 1000 + 20),
        termination: "CH",
        status: "400",
        serverMs: "-1",
        latencyUs: "2000000",
      }),
      line({
        seq: "3",
        endMs: String(sec * 1000 + 30),
        termination: "CD",
        status: "200",
        serverMs: "3",
      }),
    ].join("\n"),
  );
  const v2 = intake.recorder.window("fraud", sec * 1000, (sec + 1) * 1000).get("v2")!;
  assert.equal(v2.requests, 3);
  assert.equal(v2.abandoned, 1);
  assert.deepEqual(v2.status, { "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 0 });
  assert.equal(v2.latency.max, 2000);
  assert.equal(intake.recorder.collect(true).rows[0]!.abandoned, 1);
});

test("lines become the router's measurement rows: per series and version, at the line's second", () => {
  let now = 1_796_248_300_000;
  const intake = new LogIntake({ now: () => now, routerId: "hx" });
  const sec = 1_796_248_251;
  intake.ingest(
    [
      line({ seq: "1", endMs: String(sec * 1000 + 10) }),
      line({ seq: "2", endMs: String(sec * 1000 + 900), status: "503", termination: "SC" }),
      line({ seq: "3", endMs: String((sec + 1) * 1000), server: "v1:e_127.0.0.1_9002" }),
      line({ seq: "4", frontend: "fraud:preview" }),
      line({ seq: "5", slot: "turnout_none", server: "<NOSRV>", status: "503" }),
      "T2 garbage",
      // HAProxy's own messages in the ring are not request lines, nor unparsable ones.
      "3 events dropped",
      "Server slot0/v2:e_127.0.0.1_9002 is DOWN, reason: Layer4 connection problem.",
    ].join("\n"),
  );
  assert.deepEqual(intake.stats(), {
    lines: 4,
    unparsable: 1,
    lost: 0,
    late: 0,
    unrouted: 1,
    // 49 s after their second: complete for the store long ago.
    delayed: 4,
    connections: 0,
  });
  const w = intake.recorder.window("fraud", sec * 1000, (sec + 1) * 1000);
  const v2 = w.get("v2")!;
  assert.equal(v2.requests, 2);
  assert.equal(v2.status["5xx"], 1);
  assert.equal(v2.upstreamErrors, 1);
  assert.deepEqual(v2.seconds, [sec]);
  assert.equal(w.has("v1"), false, "v1's line ended in the next second");
  assert.equal(
    intake.recorder.window("fraud", (sec + 1) * 1000, (sec + 2) * 1000).get("v1")!.requests,
    1,
  );
  assert.deepEqual(intake.recorder.services(), ["fraud", "fraud:preview"]);
  const rows = intake.recorder.collect(true).rows;
  assert.equal(rows.find((r) => r.version === "v2")!.routerId, "hx");
  // Outside a batch the recorder reads the real clock again, less the store's grace.
  now += 5;
  assert.equal(intake.recorder.now(), now - 500);
});

test("a second goes to the store once its late lines are in; lines later than the grace are counted", () => {
  const sec = 1_796_248_251;
  let now = sec * 1000 + 1200;
  const intake = new LogIntake({ now: () => now, routerId: "hx", storeGraceMs: 500 });
  // A line of second `sec` arrives 210 ms after it ended: in time.
  intake.ingest(line({ seq: "1", endMs: String(sec * 1000 + 990) }));
  // The flusher's view: `sec` is not complete yet, so it is not written (nor marked written).
  let batch = intake.recorder.collect(false);
  assert.deepEqual(
    batch.rows.map((r) => r.second),
    [],
  );
  batch.commit();
  intake.ingest(line({ seq: "2", endMs: String(sec * 1000 + 999) }));
  // 500 ms after its end, the second is complete and written with both lines.
  now = sec * 1000 + 1600;
  batch = intake.recorder.collect(false);
  assert.deepEqual(
    batch.rows.map((r) => [r.second, r.requests]),
    [[sec, 2]],
  );
  batch.commit();
  assert.equal(intake.stats().delayed, 0);
  // A line of that second arriving now, after it was written, is counted: not silent.
  now = sec * 1000 + 2600;
  intake.ingest(line({ seq: "3", endMs: String(sec * 1000 + 500) }));
  assert.equal(intake.stats().delayed, 1);
  assert.equal(intake.stats().lines, 3);
});

test("missing sequence numbers count as lost after the timeout, and come back if they arrive late", () => {
  let now = 1_000_000;
  const intake = new LogIntake({ now: () => now, lossTimeoutMs: 1000 });
  const seqs = (pid: string, thread: string, ns: number[]) =>
    ns.map((n) => line({ pid, thread, seq: String(n) })).join("\n");
  intake.ingest(seqs("1", "0", [1, 2, 4, 5, 8]));
  intake.ingest(seqs("1", "1", [1, 2, 3]));
  intake.ingest(seqs("2", "0", [2]));
  intake.sweep(now + 999);
  assert.equal(intake.stats().lost, 0, "a long request may still be running");
  intake.ingest(seqs("1", "0", [3]));
  now += 1000;
  intake.sweep(now);
  // pid 1 thread 0: 6 and 7 missing; pid 2: 1 missing; thread 1 complete.
  assert.equal(intake.stats().lost, 3);
  intake.ingest(seqs("1", "0", [6, 9]));
  assert.equal(intake.stats().late, 1);
  assert.equal(intake.stats().lost, 2);
  intake.sweep(now + 10_000);
  assert.equal(intake.stats().lost, 2);
});

describe("intake from a real HAProxy", needsHaproxy(), () => {
  test("every request sent is counted once, per version, with the split's exact share", async () => {
    const dir = tempDir();
    const [v1, v2] = await Promise.all([startUpstream("v1"), startUpstream("v2")]);
    v2.status = 500;
    const intake = new LogIntake({ routerId: "hx-test" });
    const addr = await intake.listen();
    const port = await freePort();
    const table: RouteTable = {
      service: "fraud",
      revision: 1,
      listen: { host: "127.0.0.1", port },
      hashVersion: 1,
      stickiness: { header: "x-user-id", salt: "fraud" },
      backends: [
        { version: "v2", weight: 10, endpoints: [v2.url] },
        { version: "v1", weight: 90, endpoints: [v1.url] },
      ],
      policy: DEFAULT_TRAFFIC_POLICY,
      updatedAt: 0,
    };
    const plan = planService(table);
    const slots = ["v2", "v1", null, null];
    const opts = { dir: dir.path, socketDir: dir.path, intake: addr, protocol: "http" as const };
    copyFileSync(
      fileURLToPath(new URL("./turnout.lua", import.meta.url)),
      join(dir.path, "turnout.lua"),
    );
    for (const [name, lines] of Object.entries(renderMaps(plan, slots)))
      writeFileSync(join(dir.path, name), mapText(lines));
    const api = new RuntimeApi(join(dir.path, "admin.sock"));
    const hx = await runHaproxy(dir.path, renderConfig({ plan, slots }, opts), () => api.answers());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const N = 2000;
      const get = (headers: Record<string, string>) =>
        new Promise<void>((resolve, reject) => {
          http
            .get({ host: "127.0.0.1", port, path: "/", agent, headers }, (res) => {
              res.resume();
              res.on("end", () => resolve());
            })
            .on("error", reject);
        });
      for (let i = 0; i < N; i += 8) {
        await Promise.all(
          Array.from({ length: 8 }, (_, j) => get(j % 2 === 0 ? { "x-user-id": `u${i + j}` } : {})),
        );
      }
      await waitFor("every line", () => intake.stats().lines === N);
      const stats = intake.recorder.stats("fraud");
      const by = Object.fromEntries(stats.map((s) => [s.version, s]));
      assert.equal(by.v1!.requests + by.v2!.requests, N);
      assert.equal(by.v2!.requests, v2.count);
      assert.equal(by.v1!.requests, v1.count);
      assert.equal(by.v2!.status["5xx"], by.v2!.requests);
      assert.equal(by.v1!.status["2xx"], by.v1!.requests);
      assert.ok(by.v1!.p50Ms !== null && by.v1!.p50Ms > 0);
      // Unkeyed requests (half) split exactly; keyed ones by their buckets (binomial around 10%).
      const share = by.v2!.requests / N;
      assert.ok(share > 0.07 && share < 0.13, `v2 got ${share}`);
      intake.sweep(Date.now() + 120_000);
      assert.deepEqual(
        {
          lost: intake.stats().lost,
          unparsable: intake.stats().unparsable,
          unrouted: intake.stats().unrouted,
        },
        { lost: 0, unparsable: 0, unrouted: 0 },
      );
    } finally {
      agent.destroy();
      await hx.stop();
      await intake.close();
      await Promise.all([v1.close(), v2.close()]);
      dir.remove();
    }
  });
});
