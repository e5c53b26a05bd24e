/**
 * The guide docs/guides/your-own-model.md, run as written: the six examples/model-*.yaml
 * through the real CLI (`validate`, `apply`, `status --watch`, `promote`, `shadow`,
 * `events post`, `experiment results`, `flags ...`) against one real `turnout up`, which runs
 * the guide's model server (examples/model-server/server.mjs) as local processes, with users
 * from the guide's traffic generator (examples/model-server/traffic.mjs).
 *
 * What the test changes in the files, and only that: the ports (free ones instead of
 * 8081..8086 and 8092, so that the test runs beside anything) and the line `version: v1`,
 * which the guide tells the reader to change. The six scenarios run at once on the one
 * Turnout, each on its own service and ports. Every wait is for a condition (a phase, a
 * process's exit); the YAMLs' own short intervals (pauses of 5 s, looks every 2 s) are the
 * guide's, so the whole file takes about as long as the longest scenario.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  api,
  CLI,
  type CliResult,
  cli,
  freePort,
  ROOT,
  startUp,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";

const EXAMPLES = ["canary", "bluegreen", "rolling", "shadow", "abtest", "flags"] as const;
type Example = (typeof EXAMPLES)[number];
const file = (name: Example) => join(ROOT, "examples", `model-${name}.yaml`);
const TRAFFIC = join(ROOT, "examples/model-server/traffic.mjs");

/** The CLI as the helpers run it (the build when it is fresh: test/helpers.ts). */
const TURNOUT = CLI;

interface StatusView {
  status: {
    phase: string;
    message: string;
    stableVersion: string | null;
    canaryVersion: string | null;
    stepIndex: number | null;
    canaryWeight: number;
  } | null;
  routeTable: { backends: { version: string; endpoints: string[] }[] } | null;
}

/** The guide's traffic generator against a router port; `stop` sends Ctrl-C and returns its output. */
function traffic(port: number, args: string[] = []) {
  const child: ChildProcess = spawn(
    process.execPath,
    [TRAFFIC, "--url", `http://127.0.0.1:${port}`, ...args],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    output: () => out,
    exited,
    async stop(): Promise<string> {
      if (child.exitCode === null) child.kill("SIGINT");
      await exited;
      return out;
    },
  };
}

/** The summary line traffic.mjs prints at the end. */
function summary(out: string) {
  const m =
    /sent (\d+) requests? in \d+s: (.*); (\d+) errors? \(5xx\); (\d+) not connected; (\d+) with explanations/.exec(
      out,
    );
  assert.ok(m, `no summary in the traffic output:\n${out}`);
  const byVersion = new Map<string, number>();
  for (const part of m[2]!.split(", ")) {
    const v = /^(\S+) (\d+) \(/.exec(part);
    if (v) byVersion.set(v[1]!, Number(v[2]));
  }
  return {
    sent: Number(m[1]),
    byVersion,
    errors: Number(m[3]),
    notConnected: Number(m[4]),
    explained: Number(m[5]),
  };
}

/** One POST /predict as a user; the version that answered (router header) and the body. */
async function predict(port: number, user: string, headers: Record<string, string> = {}) {
  const res = await fetch(`http://127.0.0.1:${port}/predict`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-user-id": user, ...headers },
    body: JSON.stringify({ features: [0.9, 0.1, 0.5, 0.2] }),
  });
  const body = (await res.json()) as { prediction?: string; explanation?: unknown };
  return { status: res.status, version: res.headers.get("x-turnout-version"), body };
}

const GUIDE = join(ROOT, "docs/guides/your-own-model.md");

describe("the guide's text (docs/guides/your-own-model.md)", () => {
  it("quotes the examples as they are: every line of its YAML excerpts is in an example", () => {
    const guide = readFileSync(GUIDE, "utf8");
    const examples = new Set(
      EXAMPLES.flatMap((n) => readFileSync(file(n), "utf8").split("\n")).map((l) => l.trim()),
    );
    const blocks = [...guide.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(blocks.length >= 6, "an excerpt per strategy");
    for (const block of blocks) {
      if (block.includes("upstreams:")) continue; // the static runtime: an illustration
      for (const line of block.split("\n").map((l) => l.trim()))
        if (line !== "" && line !== "---")
          assert.ok(examples.has(line), `the guide quotes a line no example has: ${line}`);
    }
  });

  it("links only to files and headings that exist", () => {
    const guide = readFileSync(GUIDE, "utf8");
    // GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens.
    const slug = (h: string) =>
      h
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-");
    const links = [...guide.matchAll(/\]\((\.\.\/[^)#]+)(?:#([^)]+))?\)/g)];
    assert.ok(links.length > 10);
    for (const [, path, anchor] of links) {
      const target = join(ROOT, "docs/guides", path!);
      const st = statSync(target, { throwIfNoEntry: false });
      assert.ok(st, `no ${path}`);
      if (anchor) {
        const ids = readFileSync(target, "utf8")
          .split("\n")
          .filter((l) => /^#{1,6} /.test(l))
          .map((l) => slug(l.replace(/^#+ /, "")));
        assert.ok(ids.includes(anchor), `no heading #${anchor} in ${path}`);
      }
    }
  });
});

describe("the guide's examples (docs/guides/your-own-model.md), end to end", () => {
  let up: Up;
  let dir: string;
  /** The test's copy of each example: free ports, `version:` as given. */
  const copies = new Map<Example, { text: string; port: number; ports: Map<number, number> }>();
  const turnout = (...args: string[]): Promise<CliResult> =>
    cli(["--data-dir", join(dir, ".turnout"), ...args], {}, TURNOUT);
  const ok = (r: CliResult, what: string) => {
    assert.equal(r.code, 0, `${what} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  /** Writes the example with `version: v1` changed to `version` and returns the file's path. */
  const withVersion = (name: Example, version: string): string => {
    const copy = copies.get(name)!;
    const path = join(dir, `model-${name}-${version}.yaml`);
    writeFileSync(path, copy.text.replace("version: v1", `version: ${version}`));
    return path;
  };
  /** The history through the API (`turnout history` prints the same events). */
  const history = async (service: string): Promise<string> =>
    (
      (await api(up, "GET", `/api/v1/services/${service}/history`)).json.events as {
        type: string;
        message: string;
      }[]
    )
      .map((e) => `${e.type} ${e.message}`)
      .join("\n");
  const view = async (service: string): Promise<StatusView> =>
    (await api(up, "GET", `/api/v1/services/${service}/status`)).json as StatusView;
  const phase = (service: string, want: (s: NonNullable<StatusView["status"]>) => boolean) =>
    waitFor(
      `${service} to reach the expected state`,
      async () => {
        const s = (await view(service)).status;
        return s && want(s) ? s : null;
      },
      60_000,
    );

  before(async () => {
    dir = tempDir("turnout-examples-");
    up = await startUp(join(dir, ".turnout"), {}, [], TURNOUT);
    for (const name of EXAMPLES) {
      let text = readFileSync(file(name), "utf8");
      // The guide changes the version with `sed 's/version: v1/version: v2/'`: it must find
      // exactly the one line.
      assert.equal(
        text.match(/version: v1/g)?.length,
        1,
        `${name}: "version: v1" once, on the line the reader changes`,
      );
      assert.match(text, /^ {2}version: v1\b/m);
      const ports = new Map<number, number>();
      for (const m of text.matchAll(/\bport: (\d+)/g)) ports.set(Number(m[1]), await freePort());
      assert.ok(ports.size > 0, `${name}: a listen port`);
      text = text.replace(/\bport: (\d+)/g, (_, p: string) => `port: ${ports.get(Number(p))}`);
      const listen = Number(/listen: \{ port: (\d+)/.exec(text)?.[1]);
      copies.set(name, { text, port: listen, ports });
    }
  });

  after(async () => {
    await up?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("turnout validate: every example is valid as written, and all six together", async () => {
    const all = await turnout("validate", ...EXAMPLES.flatMap((n) => ["-f", file(n)]));
    const out = ok(all, "validate");
    for (const name of EXAMPLES) assert.match(out, new RegExp(`Service/model-${name}\\b`));
    assert.match(out, /Flag\/explanations/);
    for (const t of ["canary-errors", "bluegreen-errors", "rolling-errors", "explanations-errors"])
      assert.match(out, new RegExp(`AnalysisTemplate/${t}\\b`));
  });

  describe("each strategy against the model server", { concurrency: true }, () => {
    before(async () => {
      // As the guide starts: the examples copied to my/ and applied, v1 serving on each.
      const my = join(dir, "my");
      mkdirSync(my);
      for (const name of EXAMPLES)
        writeFileSync(join(my, `model-${name}.yaml`), copies.get(name)!.text);
      const out = ok(await turnout("apply", "-f", my), "apply -f my/");
      for (const name of EXAMPLES) assert.match(out, new RegExp(`service/model-${name} created`));
      // Serving means every instance ready (`get services` says "(2/2 ready)") and the router
      // answering: a new service is Healthy at once, before its instances are up.
      for (const name of EXAMPLES) {
        await phase(
          `model-${name}`,
          (s) =>
            s.phase === "Healthy" &&
            s.stableVersion === "v1" &&
            /\((\d+)\/\1 ready\)/.test(s.message),
        );
        const { port } = copies.get(name)!;
        await waitFor(`model-${name} answering on its port`, async () => {
          const r = await predict(port, "probe").catch(() => null);
          return r?.status === 200 && r.version === "v1";
        });
      }
    });

    it("canary: v2 goes 20% -> 50% -> promoted; v3, a broken build, is rolled back by the analysis", async () => {
      const { port } = copies.get("canary")!;
      const users = traffic(port, ["--rate", "60"]);
      try {
        const applied = ok(await turnout("apply", "-f", withVersion("canary", "v2")), "apply v2");
        assert.match(applied, /spec\.version v1 -> v2: a new rollout v1 -> v2 of 4 steps/);
        await phase("model-canary", (s) => s.phase === "Paused" && s.canaryVersion === "v2");
        const status = ok(await turnout("status", "model-canary"), "status");
        assert.match(status, /Phase: +Paused +paused at step 4\/4 with v2 at 50%, until promoted/);
        assert.match(
          status,
          /✓ setWeight 20\n\s+✓ pause 5s\n\s+✓ setWeight 50\n\s+▶ pause \(until promoted\)/,
        );
        assert.match(status, /errors Running \(\d+ pass, 0 fail/);
        ok(await turnout("promote", "model-canary"), "promote");
        const watched = ok(
          await turnout("status", "model-canary", "--watch", "--timeout", "60"),
          "status --watch",
        );
        assert.match(watched, /Completed .*v2 is stable and serves 100%/);

        // The broken build: 30% of its answers fail; the background analysis sends everyone back.
        const v3 = ok(await turnout("apply", "-f", withVersion("canary", "v3")), "apply v3");
        assert.match(v3, /a new rollout v2 -> v3/);
        const rolledBack = await turnout("status", "model-canary", "--watch", "--timeout", "60");
        assert.equal(rolledBack.code, 1, `${rolledBack.stdout}\n${rolledBack.stderr}`);
        assert.match(
          rolledBack.stdout,
          /Degraded .*rollout to v3 aborted: background analysis failed: errors failed: .*errors \d+(\.\d+)?% \(\d+\/\d+\) vs baseline [\d.]+% \(\d+\/\d+\): \+\d+(\.\d+)? points > \+2 allowed \(mSPRT p=[\d.e-]+ < alpha 0\.01\); v2 serves 100%/,
        );
        const after = await predict(port, "user-1");
        assert.equal(after.version, "v2");
      } finally {
        const s = summary(await users.stop());
        // Users saw v3's failures only while it was the canary: some, and far fewer than 30%.
        assert.ok(s.byVersion.get("v2")! > 0);
        assert.ok(s.errors < s.sent * 0.1, `${s.errors} errors of ${s.sent}`);
        assert.equal(s.notConnected, 0);
      }
    });

    it("blue-green: green previewed on its own port, promoted, checked, switched at once", async () => {
      const { port, ports } = copies.get("bluegreen")!;
      const preview = ports.get(8092)!;
      const users = traffic(port, ["--rate", "30"]);
      try {
        ok(await turnout("apply", "-f", withVersion("bluegreen", "v2")), "apply v2");
        await phase("model-bluegreen", (s) => s.phase === "Paused" && s.canaryVersion === "v2");
        // Testers reach green on the preview port; users still get blue.
        assert.equal((await predict(preview, "tester")).version, "v2");
        assert.equal((await predict(port, "user-1")).version, "v1");
        assert.equal((await view("model-bluegreen")).status?.canaryWeight, 0);
        ok(await turnout("promote", "model-bluegreen"), "promote");
        const watched = ok(
          await turnout("status", "model-bluegreen", "--watch", "--timeout", "60"),
          "status --watch",
        );
        assert.match(watched, /Completed .*v2 is stable and serves 100%/);
        assert.equal((await predict(port, "user-1")).version, "v2");
        assert.match(await history("model-bluegreen"), /AnalysisSucceeded/);
      } finally {
        const s = summary(await users.stop());
        assert.equal(s.errors + s.notConnected, 0, "no user saw an error during the switch");
        assert.ok(s.byVersion.get("v1")! > 0 && s.byVersion.get("v2")! > 0);
      }
    });

    it("rolling: three instances replaced one at a time, each batch checked, no request lost", async () => {
      const { port } = copies.get("rolling")!;
      const users = traffic(port, ["--rate", "40"]);
      try {
        ok(await turnout("apply", "-f", withVersion("rolling", "v2")), "apply v2");
        const watched = ok(
          await turnout("status", "model-rolling", "--watch", "--timeout", "60"),
          "status --watch",
        );
        assert.match(watched, /Completed .*v2 is stable and serves 100%/);
        const events = await history("model-rolling");
        assert.ok((events.match(/BatchScaled/g) ?? []).length >= 3, events);
        assert.ok((events.match(/AnalysisSucceeded/g) ?? []).length >= 2, events);
        assert.match(events, /step 1\/1 \(rolling update\) done: 3\/3 replaced/);
      } finally {
        const s = summary(await users.stop());
        assert.equal(s.errors + s.notConnected, 0, "zero downtime");
        assert.ok(s.byVersion.get("v1")! > 0 && s.byVersion.get("v2")! > 0);
      }
    });

    it("shadow: v2 sees copies, users get v1, agreement is reported and the gate passes; v3's wrong answers fail it", async () => {
      const { port } = copies.get("shadow")!;
      ok(await turnout("apply", "-f", withVersion("shadow", "v2")), "apply v2");
      // During the shadow step users get v1's answers while v2 answers the copies: ask until
      // the report has compared pairs (each router flushes it every second). Before the
      // users arrive, and far below the gate's 300 pairs, so the step cannot end meanwhile.
      await phase("model-shadow", (s) => s.canaryVersion === "v2" && s.stepIndex === 0);
      const answered = new Map<string | null, number>();
      let asked = 0;
      await waitFor(
        "compared pairs in the shadow report",
        async () => {
          const r = await predict(port, `user-${asked++}`);
          answered.set(r.version, (answered.get(r.version) ?? 0) + 1);
          const v = (await api(up, "GET", "/api/v1/services/model-shadow/shadow")).json;
          return v.report?.version === "v2" && v.report.report.samples > 0;
        },
        30_000,
      );
      assert.deepEqual([...answered.keys()], ["v1"], "users get only v1's answers in the shadow");
      const users = traffic(port, ["--rate", "60"]);
      try {
        const watched = ok(
          await turnout("status", "model-shadow", "--watch", "--timeout", "60"),
          "status --watch",
        );
        assert.match(watched, /Completed .*v2 is stable and serves 100%/);
        const report = ok(await turnout("shadow", "model-shadow"), "shadow");
        const agreement = /Agreement: +([\d.]+)% of (\d+) labelled pairs/.exec(report);
        assert.ok(agreement, report);
        // v2 changes about 8% of v1's labels on these inputs (traffic.mjs, seed 1).
        assert.ok(Number(agreement[1]) >= 85 && Number(agreement[1]) < 100, report);
        assert.ok(Number(agreement[2]) >= 300, report);
        assert.match(report, /Regression: +MAE [\d.]+, max [\d.]+/);
        assert.match(report, /Drift: +PSI [\d.]+/);
        assert.match(await history("model-shadow"), /ShadowPassed .*agreement [\d.]+% >= 85\.0%/);

        // v3 flips 30% of the labels with a 200: the comparison catches it, no user got it.
        ok(await turnout("apply", "-f", withVersion("shadow", "v3")), "apply v3");
        const failed = await turnout("status", "model-shadow", "--watch", "--timeout", "60");
        assert.equal(failed.code, 1, `${failed.stdout}\n${failed.stderr}`);
        assert.match(
          failed.stdout,
          /Degraded .*rollout to v3 aborted: shadow gate failed.*agreement/,
        );
      } finally {
        const s = summary(await users.stop());
        assert.equal(s.byVersion.get("v3") ?? 0, 0, "no user got an answer from v3");
        assert.equal(s.errors + s.notConnected, 0);
      }
    });

    it("A/B test: sticky arms, outcomes posted with `events post`, B wins and is promoted", async () => {
      const { port } = copies.get("abtest")!;
      ok(await turnout("apply", "-f", withVersion("abtest", "v2")), "apply v2");
      // The experiment is in force once the QA override reaches B.
      await waitFor(
        "the experiment in the router",
        async () => (await predict(port, "qa", { "x-turnout-arm": "B" })).version === "v2",
        60_000,
      );
      // Sticky: a user stays in their arm.
      for (const user of ["user-3", "user-4", "user-5"]) {
        const seen = new Set<string | null>();
        for (let i = 0; i < 4; i++) seen.add((await predict(port, user)).version);
        assert.equal(seen.size, 1, `${user} saw ${[...seen].join(", ")}`);
      }
      // 1,000 users ask once each; the app's outcomes go in with `turnout events post`.
      const outcomes = join(dir, "outcomes.json");
      const users = traffic(port, ["--rate", "250", "--count", "1000", "--outcomes", outcomes]);
      assert.equal(await users.exited, 0, users.output());
      const s = summary(users.output());
      assert.equal(s.sent, 1000);
      assert.ok(s.byVersion.get("v1")! > 300 && s.byVersion.get("v2")! > 300, users.output());
      const posted = ok(await turnout("events", "post", "-f", outcomes), "events post");
      const accepted = Number(/(\d+) accepted/.exec(posted)?.[1]);
      assert.ok(accepted > 800, posted);
      const watched = ok(
        await turnout("status", "model-abtest", "--watch", "--timeout", "60"),
        "status --watch",
      );
      assert.match(watched, /Completed .*v2 is stable and serves 100%/);
      const results = ok(await turnout("experiment", "results", "model-abtest-v2"), "results");
      const arms = /arms: +A=v1: (\d+) units, B=v2: (\d+) units/.exec(results);
      assert.ok(arms, results);
      // Every user counted once, in one arm: user-0..user-999 (the sticky checks' users are
      // among them; "qa" was forced into B, which is not an exposure).
      assert.equal(Number(arms[1]) + Number(arms[2]), 1000, results);
      assert.match(results, /SRM: +ok/);
      assert.match(results, /verdict: +win/);
      assert.match(results, /correct +goal +B +\d+ +[\d.]+% +\+[\d.]+ pts .* better/);
    });

    it("blue-green with feature flags: the switch, the feature raised 10% -> 50% -> 100%, the kill switch; v3's buggy feature turned off by the analysis", async () => {
      const { port } = copies.get("flags")!;
      const users = traffic(port, ["--rate", "100"]);
      try {
        ok(await turnout("apply", "-f", withVersion("flags", "v2")), "apply v2");
        const watched = ok(
          await turnout("status", "model-flags", "--watch", "--timeout", "60"),
          "status --watch",
        );
        assert.match(watched, /Completed .*v2 is stable and serves 100%/);
        const flagHistory = ok(await turnout("flags", "history", "explanations"), "flags history");
        const raised = [...flagHistory.matchAll(/setFlag explanations (\d+)%/g)].map((m) => m[1]);
        assert.deepEqual(raised, ["10", "50", "100"], flagHistory);
        assert.ok((await predict(port, "user-7")).body.explanation, "the feature is on");

        // The kill switch: in force for the very next request.
        ok(
          await turnout("flags", "disable", "explanations", "--reason", "guide: kill switch"),
          "flags disable",
        );
        const next = await predict(port, "user-7");
        assert.equal(next.status, 200);
        assert.equal(next.body.explanation, undefined, "the kill switch turned it off");
        assert.match(
          ok(await turnout("flags", "get"), "flags get"),
          /explanations +boolean +DISABLED +off +100% on/,
        );
        assert.doesNotMatch(users.output(), /\(5xx/, "no user saw an error so far");

        // v3's explanations fail one time in five. The feature is back on at 100%, as v2's
        // rollout left it; v3's rollout ships dark again (the flag off at the switch), raises
        // it to 10% and its analysis turns it off by itself.
        ok(await turnout("flags", "enable", "explanations"), "flags enable");
        ok(await turnout("apply", "-f", withVersion("flags", "v3")), "apply v3");
        const killed = ok(
          await turnout("status", "model-flags", "--watch", "--timeout", "60"),
          "status --watch",
        );
        assert.match(
          killed,
          /Completed .*rollout 2 completed with the feature off: flag explanations turned off \(analysis at step 5\/8 failed: .*explanations-on-vs-off [\d.]+ vs baseline 0: \+[\d.]+ > \+0\.02 allowed\); v3 serves 100%/,
        );
        const v3History = ok(
          await turnout("flags", "history", "explanations", "--limit", "3"),
          "flags history",
        );
        assert.match(
          v3History,
          /setFlag explanations off \(step 2\/8\)[\s\S]*setFlag explanations 10% \(step 4\/8\)[\s\S]*turned off: analysis at step 5\/8 failed/,
        );
        const flag = (await api(up, "GET", "/api/v1/flags/explanations")).json;
        assert.equal(flag.effective.state, "DISABLED");
        assert.equal((await predict(port, "user-7")).body.explanation, undefined);
      } finally {
        const out = await users.stop();
        const s = summary(out);
        assert.equal(s.notConnected, 0);
        // Errors only from v3's explanations, for 10% of users, until the analysis caught them.
        assert.ok(s.errors < s.sent * 0.05, `${s.errors} errors of ${s.sent}`);
        // Gradual: seconds in which some, but not all, of v2's answers carried explanations.
        const partial = [...out.matchAll(/\] v2 (\d+) \([^)]*\); (\d+) with explanations/g)].filter(
          (m) => Number(m[2]) > 0 && Number(m[2]) < Number(m[1]) / 2,
        );
        assert.ok(partial.length > 0, out);
      }
    });
  });
});
