import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { compileFlags, evaluate } from "../core/flags/evaluate.js";
import type { FlagStepOverride } from "../core/model.js";
import { emptyStatus, type ReconcileOutput } from "../core/rollout.js";
import { buildRouteTable } from "../core/routes.js";
import { compileExperiment, type ExperimentOutput, selectArm } from "../router/exposures.js";
import { UpstreamPools } from "../router/pools.js";
import { type SelectOutput, selectBackend } from "../router/select.js";
import { MeasurementRecorder } from "../router/stats.js";
import { compileTable } from "../router/table.js";
import { layer } from "../store/flag-store.js";
import { FLAG_KEY, FLAG_SPEC, serviceSpec, TRAFFIC } from "./config.js";
import { runLab } from "./lab.js";
import { workerPool } from "./pool.js";
import { assess, toJson } from "./report.js";
import {
  CANDIDATE,
  EXPERIMENT_SALT,
  flagOn,
  routingOf,
  runGoodAndWrong,
  runOne,
  SERVICE,
  STABLE,
  servesCandidate,
  userBuckets,
  userId,
} from "./run.js";
import { labSvg } from "./svg.js";

const SEEDS = 3;

describe("strategy lab", () => {
  it("gives the same JSON for the same seed, in this process and on worker processes", async () => {
    const opts = {
      seeds: 2,
      seed: 11,
      strategies: ["canary", "shadow"] as const,
      scenarios: ["errors", "crash"] as const,
    };
    const a = toJson(await runLab(opts));
    const b = toJson(await runLab(opts));
    assert.deepEqual(a, b);
    const c = toJson(await runLab({ ...opts, execute: workerPool(2) }));
    assert.deepEqual(a, c);
    const d = toJson(await runLab({ ...opts, seed: 12 }));
    assert.notDeepEqual(a.results, d.results, "another seed, other traffic");
  });

  it("orders the strategies as their mechanisms imply on errors, crash and wrong answers", async () => {
    const r = await runLab({ seeds: SEEDS, seed: 1 });
    const get = (strategy: string, scenario: string) =>
      r.results.find((x) => x.strategy === strategy && x.scenario === scenario)!;
    // Shadow: users only get the stable version's answers, and the gate sees each failure.
    for (const sc of ["errors", "latency", "wrongPredictions", "crash"]) {
      assert.equal(get("shadow", sc).usersExposed, 0, sc);
      assert.equal(get("shadow", sc).recoverSeconds, 0, sc);
      assert.notEqual(get("shadow", sc).detectSeconds, null, sc);
    }
    // A canary shows the bad version to fewer users than an all-at-once switch.
    assert.ok(get("canary", "errors").usersExposed < get("blueGreen", "errors").usersExposed);
    assert.ok(get("canary", "errors").failedRequests < get("blueGreen", "errors").failedRequests);
    // Every strategy waits for its instances to be ready: a crash is caught before any traffic.
    for (const s of ["blueGreen", "canary", "rolling", "shadow", "abTest", "blueGreenFlags"]) {
      const x = get(s, "crash");
      assert.notEqual(x.detectSeconds, null, s);
      assert.equal(x.usersExposed, 0, s);
      assert.equal(x.failedRequests, 0, s);
    }
    // Wrong answers with a 200: only a comparison of answers sees them.
    for (const s of ["blueGreen", "canary", "rolling", "abTest", "blueGreenFlags"]) {
      const x = get(s, "wrongPredictions");
      assert.equal(x.detectSeconds, null, s);
      assert.equal(x.recoverSeconds, null, s);
      assert.ok(x.wrongAnswers > 0, s);
    }
    // A good release reaches 100% without a false alarm; blue-green waits for one promotion.
    for (const s of ["blueGreen", "canary", "rolling", "shadow", "blueGreenFlags"]) {
      assert.notEqual(get(s, "good").totalSeconds, null, s);
      assert.equal(get(s, "good").detectSeconds, null, s);
    }
    assert.equal(get("blueGreen", "good").manualActions, 1);
    assert.equal(get("canary", "good").manualActions, 0);
    // Blue-green keeps two full environments: more extra capacity than a rolling update.
    assert.ok(
      get("blueGreen", "good").extraInstanceSeconds > get("rolling", "good").extraInstanceSeconds,
    );
    // The assessment follows from these numbers.
    const a = assess(r);
    assert.equal(a.find((x) => x.strategy === "shadow")?.risk, "Very low");
    assert.equal(a.find((x) => x.strategy === "shadow")?.rollback, "No impact on users");
    assert.ok(a.every((x) => x.reasons.length >= 3));
    const svg = labSvg(r);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal(
      (svg.match(/<title>/g) ?? []).length,
      6 * 4,
      "a point per strategy per bad scenario",
    );
  });

  it("measures wrongPredictions from the good run exactly as from a run of its own", async () => {
    for (const strategy of [
      "blueGreen",
      "canary",
      "rolling",
      "abTest",
      "blueGreenFlags",
    ] as const) {
      for (const seed of [2, 9]) {
        const [good, wrong] = await runGoodAndWrong(strategy, seed, { events: true });
        assert.deepEqual(good, await runOne(strategy, "good", seed, { events: true }));
        assert.deepEqual(wrong, await runOne(strategy, "wrongPredictions", seed, { events: true }));
      }
    }
    await assert.rejects(runGoodAndWrong("shadow", 1), /compares answers/);
  });

  it("counts failed and wrong answers against what the stable version would have answered", async () => {
    const good = await runOne("canary", "good", 5);
    assert.equal(
      good.failedRequests,
      0,
      "the good version fails no request v1 would have answered",
    );
    assert.equal(good.wrongAnswers, 0);
    const bad = await runOne("canary", "errors", 5, { events: true });
    assert.ok(bad.failedRequests > 0);
    const aborted = bad.events.find((e) => e.type === "RolloutAborted");
    assert.ok(aborted, "rolled back by the real analysis");
    assert.equal(
      bad.detectSeconds,
      bad.events.find((e) => e.type === "AnalysisVerdict")?.atSeconds,
    );
  });
});

describe("the lab's selection agrees with the router and the flag evaluator", () => {
  const pools = new UpstreamPools({
    headersTimeoutMs: 1000,
    bodyTimeoutMs: 1000,
    connectTimeoutMs: 1000,
  });
  after(() => pools.closeAll());
  const recorder = new MeasurementRecorder();
  const ub = userBuckets();
  const ready = {
    [STABLE]: { ready: 4, failed: 0 },
    [CANDIDATE]: { ready: 4, failed: 0 },
  };
  const endpoints = (v: string) => [`http://127.0.0.1:${v === STABLE ? 9001 : 9002}`];

  function decision(status: ReturnType<typeof emptyStatus>, weight: number): ReconcileOutput {
    return {
      status,
      events: [],
      commandResults: [],
      weights: [
        { version: STABLE, weight: 100 - weight },
        { version: CANDIDATE, weight },
      ],
      targets: [],
      wakeAt: null,
    };
  }

  it("sticky weights: the same users go to the candidate as through selectBackend", () => {
    const status = {
      ...emptyStatus(0),
      stableVersion: STABLE,
      canaryVersion: CANDIDATE,
      canaryWeight: 25,
    };
    const out = decision(status, 25);
    const raw = buildRouteTable({
      service: SERVICE,
      spec: serviceSpec("canary", CANDIDATE),
      status,
      weights: out.weights,
      endpoints,
      now: 0,
    });
    const { table } = compileTable(
      { ...raw, revision: 1 },
      { pools, counters: (v) => recorder.series(SERVICE, v) },
    );
    const r = routingOf(out, ready);
    const sel: SelectOutput = { setCookie: null };
    let candidates = 0;
    for (let u = 0; u < 3000; u++) {
      const b = selectBackend(table, { rawHeaders: ["x-user-id", userId(u)], url: "/" }, sel);
      const lab = servesCandidate(ub, r, u);
      assert.equal(lab, b?.version === CANDIDATE, `user ${u}`);
      if (lab) candidates++;
    }
    assert.ok(candidates > 600 && candidates < 900, `about 25%: ${candidates}`);
  });

  it("experiment arms: the same users are in B as through the router's selectArm", () => {
    const status = {
      ...emptyStatus(0),
      stableVersion: STABLE,
      canaryVersion: CANDIDATE,
      canaryWeight: 50,
      experiment: {
        name: EXPERIMENT_SALT,
        rollout: 1,
        stepIndex: 0,
        startedAt: 0,
        arms: [
          { name: "A", version: STABLE, weight: 50 },
          { name: "B", version: CANDIDATE, weight: 50 },
        ],
        key: { header: "x-user-id" },
        salt: EXPERIMENT_SALT,
      },
    };
    const out = decision(status, 50);
    const raw = {
      ...buildRouteTable({
        service: SERVICE,
        spec: serviceSpec("abTest", CANDIDATE),
        status,
        weights: out.weights,
        endpoints,
        now: 0,
      }),
      revision: 1,
    };
    assert.ok(raw.experiment, "the route table carries the experiment");
    const { table } = compileTable(raw, { pools, counters: (v) => recorder.series(SERVICE, v) });
    const problems: string[] = [];
    const experiment = compileExperiment(raw, table, null, problems);
    assert.deepEqual(problems, []);
    const r = routingOf(out, ready);
    const o: ExperimentOutput = { setCookie: null, experimentUnit: null };
    for (let u = 0; u < 3000; u++) {
      const b = selectArm(experiment!, { rawHeaders: ["x-user-id", userId(u)], url: "/" }, o);
      assert.equal(servesCandidate(ub, r, u), b?.version === CANDIDATE, `user ${u}`);
    }
  });

  it("flag percentage and kill switch: the same users get the feature as through evaluate", () => {
    const cases: [FlagStepOverride, boolean][] = [
      [{ at: 0, rollout: 1, step: 3, reason: "", state: "ENABLED", percentage: 10 }, true],
      [{ at: 0, rollout: 1, step: 3, reason: "", state: "DISABLED", percentage: 10 }, false],
    ];
    for (const [override, expectOn] of cases) {
      const status = {
        ...emptyStatus(0),
        stableVersion: STABLE,
        canaryVersion: CANDIDATE,
        canaryWeight: 100,
        flags: { [FLAG_KEY]: override },
      };
      const r = routingOf(decision(status, 100), ready);
      // As the flag snapshot serves it: the rollout's override laid over the resource.
      const flags = compileFlags([
        { key: FLAG_KEY, spec: layer(FLAG_SPEC, undefined, [override]) },
      ]);
      let on = 0;
      for (let u = 0; u < 3000; u++) {
        const res = evaluate(flags, FLAG_KEY, { targetingKey: userId(u) }, "boolean");
        assert.equal(flagOn(ub, r.flagEnd, u), res.value === true, `user ${u}`);
        if (res.value === true) on++;
      }
      if (expectOn) assert.ok(on > 200 && on < 400, `about 10%: ${on}`);
      else assert.equal(on, 0);
    }
  });

  it("users are the configured population", () => {
    assert.equal(ub.route.length, TRAFFIC.users);
  });
});
