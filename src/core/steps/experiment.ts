/**
 * `experiment: {...}`: an A/B test between the stable version (A, the control) and the
 * candidate (B). The step puts the arms in the status (the route table carries them to the
 * router, which assigns units and logs exposures), then on every tick analyzes what the
 * controller read from the experiment store (`input.experimentData`) and decides:
 *
 *   1. SRM (chi-square p < 0.001): decisions are blocked and the message says so; at the
 *      maximum duration the rollout rolls back (A stays);
 *   2. "lose" (a guardrail or a goal significantly worse): roll back at once, with the numbers;
 *   3. "win": decision auto -> the step is done and the rollout goes on (B is promoted);
 *      decision manual -> paused until `turnout promote` (or `abort`);
 *   4. "inconclusive" (a fixed horizon reached without a difference), or still running at
 *      `maxDuration`: keep A (roll back) and say that it was inconclusive, not a loss;
 *   5. otherwise wait, and look again at the next tick.
 */
import { durationMs, formatDuration } from "../duration.js";
import type { ExperimentNumbers } from "../events.js";
import {
  analyzeExperiment,
  canaryShare,
  type ExperimentResults,
  type ExperimentSpec,
  experimentName,
  resolveArms,
} from "../experiment/index.js";
import type { ServiceStatus } from "../model.js";
import { replicasOf } from "../replicas.js";
import { roundWeight } from "./setWeight.js";
import type { StepKind } from "./types.js";

/** Numbers behind a decision, for the event history. */
function numbers(r: ExperimentResults): ExperimentNumbers {
  return {
    experiment: r.name,
    verdict: r.verdict,
    method: r.method,
    units: Object.fromEntries(r.arms.map((a) => [a.name, a.units])),
    srm: { pValue: r.srm.pValue, mismatch: r.srm.mismatch },
    metrics: r.metrics.map((m) => ({
      name: m.name,
      role: m.role,
      values: Object.fromEntries(m.arms.map((a) => [a.arm, a.value])),
      comparisons: m.comparisons.map((c) => ({
        arm: c.arm,
        difference: c.difference,
        interval: c.interval ? [c.interval.lower, c.interval.upper] : null,
        relative: c.relative,
        pValue: c.pValue,
        adjustedPValue: c.adjustedPValue,
        chanceToWin: c.chanceToWin,
        outcome: c.outcome,
      })),
    })),
    reasons: r.reasons,
  };
}

/** Versions of arms beyond stable and canary (a third arm): run only while the experiment lasts. */
function extraVersions(e: ExperimentSpec): string[] {
  return [
    ...new Set(
      (e.arms ?? []).map((a) => a.version).filter((v) => v !== "stable" && v !== "canary"),
    ),
  ];
}

function dropExtras(s: ServiceStatus, e: ExperimentSpec): void {
  if (!s.replicas) return;
  const keep = Object.entries(s.replicas).filter(([v]) => !extraVersions(e).includes(v));
  s.replicas = keep.length > 0 ? Object.fromEntries(keep) : null;
}

export const experiment: StepKind<ExperimentSpec> = {
  key: "experiment",
  describe: (e) =>
    `experiment${e.name ? ` ${e.name}` : ""} (${e.method}; ${e.metrics.map((m) => m.name).join(", ")})`,
  clear(status) {
    status.experiment = null;
  },
  run(ctx, i, e) {
    const s = ctx.status;
    const stable = s.stableVersion as string;
    const canary = s.canaryVersion as string;
    // 1. Start: arms into the status (-> route table), the split into the weights.
    let x = s.experiment;
    if (!x || x.rollout !== s.rolloutNumber || x.stepIndex !== i) {
      // 0. Further arms' versions start first; the experiment starts once they are all ready.
      const extras = extraVersions(e).filter((v) => v !== stable && v !== canary);
      if (extras.length > 0) {
        const n = replicasOf(ctx.spec);
        s.replicas = { ...(s.replicas ?? {}), ...Object.fromEntries(extras.map((v) => [v, n])) };
        const waiting = extras.filter((v) => (ctx.input.readiness[v]?.ready ?? 0) < n);
        const failed = extras.filter((v) => (ctx.input.readiness[v]?.failed ?? 0) > 0);
        if (failed.length > 0) {
          ctx.rollBack(`arm version ${failed.join(", ")} failed to start`, { versions: failed });
          return "wait";
        }
        if (waiting.length > 0) {
          ctx.setPhase(
            "Progressing",
            `${ctx.label(i)}: waiting for the experiment's arm versions: ${waiting.map((v) => `${v} ${ctx.input.readiness[v]?.ready ?? 0}/${n}`).join(", ")} ready`,
          );
          return "wait";
        }
      }
      const name = experimentName(e, ctx.name, canary);
      const arms = resolveArms(e, stable, canary);
      const { salt, ...key } = e.assignment;
      x = {
        name,
        rollout: s.rolloutNumber,
        stepIndex: i,
        startedAt: ctx.now,
        arms,
        key,
        salt: salt ?? name,
        ...(e.force ? { force: e.force } : {}),
        verdict: "running",
      };
      s.experiment = x;
      const from = s.canaryWeight;
      s.canaryWeight = roundWeight(canaryShare(arms, canary));
      ctx.emit(
        "ExperimentStarted",
        `experiment ${name} started (${ctx.label(i)}): ${arms.map((a) => `${a.name}=${a.version} ${a.weight}%`).join(", ")}, ${e.method}, alpha ${e.alpha}, up to ${formatDuration(durationMs(e.maxDuration))}`,
        { step: i, experiment: name, arms, method: e.method, fromWeight: from },
      );
    }
    const deadline = x.startedAt + durationMs(e.maxDuration);
    ctx.wakeAt(deadline);

    // 2. Analyze what the controller read for this experiment (nothing yet: running).
    const data = ctx.input.experimentData;
    const r =
      data && data.experiment === x.name
        ? analyzeExperiment(x.name, e, x.arms, data, x.arms.find((a) => a.version === stable)?.name)
        : null;
    // A win waiting for a person stays a win (a confidence sequence may cover 0 again later by
    // chance), unless the candidate has since lost: losses always act.
    const held = e.decision === "manual" && x.verdict === "win" && r?.verdict !== "lose";
    const verdict = held ? "win" : (r?.verdict ?? "running");
    // A decision names the units it was taken on: the live results table goes on counting,
    // and without them its figures read as contradicting the decision (#18 item 10).
    const units = r ? ` (on ${r.arms.map((a) => `${a.name}=${a.units}`).join(", ")} units)` : "";
    const why =
      held && x.summary
        ? x.summary
        : r
          ? `${r.reasons.join("; ")}${r.verdict === "win" || r.verdict === "lose" ? units : ""}`
          : "no data read yet";
    x.verdict = verdict;
    x.summary = why;
    const expired = ctx.now >= deadline;
    const where = `experiment ${x.name} (${ctx.label(i)})`;

    // 3. Decide.
    if (verdict === "lose") {
      ctx.emit("ExperimentConcluded", `${where}: ${canary} loses: ${why}`, numbers(r!));
      ctx.rollBack(`${where}: ${canary} loses: ${why}`, { experiment: x.name, verdict });
      return "wait";
    }
    if (verdict === "win" && !held && r?.verdict === "win") {
      // Several treatment arms: the candidate ships only if one of its arms is better; another
      // arm winning keeps stable, and says which version to roll out instead.
      const better = new Set(
        r.metrics
          .filter((m) => m.role === "goal")
          .flatMap((m) => m.comparisons.filter((c) => c.outcome === "better").map((c) => c.arm)),
      );
      const candidateWins = x.arms.some((a) => a.version === canary && better.has(a.name));
      if (!candidateWins) {
        const others = x.arms.filter((a) => better.has(a.name));
        const list = others.map((a) => `${a.name} (${a.version})`).join(", ");
        const message = `${where}: arm ${list} wins, not ${canary}: ${why}; keeping ${stable} (set spec.version to ${others[0]?.version ?? "the winner"} to roll it out)`;
        ctx.emit("ExperimentConcluded", message, numbers(r));
        ctx.rollBack(message, { experiment: x.name, verdict: "otherArmWins", winners: others });
        return "wait";
      }
    }
    if (verdict === "win") {
      if (e.decision === "manual") {
        ctx.setPhase(
          "Paused",
          `${where}: ${canary} wins (${why}); run \`turnout promote\` to ship it or \`turnout abort\``,
        );
        return "wait";
      }
      ctx.emit("ExperimentConcluded", `${where}: ${canary} wins: ${why}`, numbers(r!));
      s.experiment = null;
      dropExtras(s, e);
      return "next";
    }
    if (verdict === "inconclusive" || expired) {
      const what =
        verdict === "srm"
          ? `sample ratio mismatch until the maximum duration, no decision possible (${why})`
          : verdict === "inconclusive"
            ? `inconclusive at the planned horizon (${why})`
            : `inconclusive after ${formatDuration(durationMs(e.maxDuration))} (${why})`;
      const message = `${where}: ${what}; keeping ${stable}`;
      ctx.emit("ExperimentConcluded", message, r ? numbers(r) : { experiment: x.name, verdict });
      ctx.rollBack(message, { experiment: x.name, verdict: "inconclusive" });
      return "wait";
    }
    const left = formatDuration(Math.max(0, deadline - ctx.now));
    ctx.setPhase(
      "Progressing",
      verdict === "srm"
        ? `${where}: decisions blocked: ${why}`
        : `${where} running (${left} left at most): ${why}`,
    );
    return "wait";
  },
};
