/**
 * `turnout lab --explain`: what the lab runs and how to read its numbers. Generated from the
 * configuration the lab actually runs (steps compiled by the real strategy compilers), so it
 * cannot drift from it.
 */

import type { AnalysisTemplateSpec, JudgeSpec } from "../core/model.js";
import { plural } from "../core/plural.js";
import { describeStep } from "../core/rollout.js";
import { compileStrategy } from "../core/strategies/index.js";
import {
  BRIEF,
  SCENARIO_BEHAVIOUR,
  SCENARIOS,
  STRATEGIES,
  STRATEGY_SPECS,
  type StrategyName,
  serviceSpec,
  TEMPLATES,
  TRAFFIC,
} from "./config.js";
import { RISK_BOUNDS } from "./report.js";

function judge(j: JudgeSpec): string {
  if ("threshold" in j)
    return `threshold${j.threshold.max !== undefined ? ` max ${j.threshold.max}` : ""}${j.threshold.min !== undefined ? ` min ${j.threshold.min}` : ""}`;
  if ("relative" in j)
    return `relative ${j.relative.mode}${j.relative.maxIncrease !== undefined ? ` max +${j.relative.maxIncrease}` : ""}`;
  if ("sequential" in j)
    return `sequential (mSPRT) max +${j.sequential.maxIncrease}, alpha ${j.sequential.alpha}`;
  return `Mann-Whitney max +${j.mannWhitney.maxRelativeIncrease * 100}%, alpha ${j.mannWhitney.alpha}`;
}

function template(name: string, t: AnalysisTemplateSpec): string[] {
  return [
    `  ${name}:`,
    ...t.metrics.map((m) => {
      const src =
        "builtin" in m.source
          ? typeof m.source.builtin === "string"
            ? m.source.builtin
            : `${m.source.builtin.metric} of flag ${m.source.builtin.flag} on vs off`
          : Object.keys(m.source)[0];
      return `    - ${m.name}: ${src}, ${judge(m.judge)}, every ${m.interval ?? "30s"}${m.count !== undefined ? `, ${plural(m.count, "look")}` : ", until the rollout ends"}${m.minSamples !== undefined ? `, min ${plural(m.minSamples, "sample")}` : ""}`;
    }),
  ];
}

function strategyLines(s: StrategyName): string[] {
  const c = compileStrategy(serviceSpec(s, "v2"));
  const spec = STRATEGY_SPECS[s];
  const lines = [`  ${s} (${BRIEF[s].label}):`];
  for (const [i, step] of c.steps.entries()) lines.push(`    ${i + 1}. ${describeStep(step)}`);
  if (c.background)
    lines.push(
      `    background analysis: ${c.background.templates.join(", ")} from step ${c.background.startingStep + 1}`,
    );
  if (spec.shadow) {
    const g = spec.shadow.gate;
    lines.push(
      `    gate: ${g.minSamples} compared pairs and ${g.duration}, mismatch <= ${(g.maxMismatchRate ?? 0) * 100}%, agreement >= ${(g.minAgreement ?? 0) * 100}% on $.label, latency p50 <= +${(g.maxLatencyIncrease ?? 0) * 100}%`,
    );
  }
  if (spec.abTest) {
    const a = spec.abTest;
    lines.push(
      `    arms A (stable) ${100 - a.split}% / B ${a.split}% by x-user-id; ${a.metrics.map((m) => `${m.name} (${m.role})`).join(", ")}; ${a.method}, alpha ${a.alpha}, min ${plural(a.minSamples, "unit")} per arm, at most ${a.maxDuration}, decision ${a.decision}`,
    );
  }
  if (c.scaleDownDelaySeconds)
    lines.push(`    the old version stays warm ${c.scaleDownDelaySeconds} s after the switch`);
  lines.push(
    `    after a failure the new version keeps running ${c.abortScaleDownDelaySeconds} s without traffic`,
  );
  return lines;
}

/** The text of `--explain` (also the model section of docs/strategies.md). */
export function explainLab(): string {
  const t = TRAFFIC;
  return [
    "What the lab runs",
    "",
    "Each run is one rollout from v1 to v2 of a model service with 4 instances, decided by Turnout's",
    "own code: `reconcile` with its step kinds, the analysis runs and judges, the builtin metric",
    "provider, the A/B experiment analysis and the shadow gate, exactly as the controller runs them,",
    "against a simulated runtime and simulated users, second by second with an injected clock",
    "(src/lab/run.ts). Every figure is measured in those runs; none is assumed.",
    "",
    "Traffic (the same for every strategy: same seed, same requests):",
    `  ${t.rps} requests/s, each from one of ${t.users} users (ids u0..u${t.users - 1}) drawn uniformly;`,
    "  the router's sticky murmur3 bucket of the user id decides the version (canary first),",
    "  the experiment's own bucket its arm, the flag's bucket its percentage rollout.",
    `  stable version: ${t.baseErrorRate * 100}% 5xx, log-normal latency (median ${t.latencyMedianMs} ms, sigma ${t.latencySigma}: p99 ~160 ms),`,
    `  a successful answer converts (the A/B goal event) ${t.conversionRate * 100}% of the time.`,
    "  Each request's draws (error, latency, answer, conversion) do not depend on the version that",
    "  serves it, so what the stable version would have answered is known for every request.",
    `  Instances are ready ${t.startupSeconds} s after they start; the controller ticks every second.`,
    "",
    "Scenarios (what v2 does; v1 is always the stable version above):",
    ...SCENARIOS.map((s) => `  ${s}: ${SCENARIO_BEHAVIOUR[s].summary}`),
    "  blueGreenFlags ships the same code with the change behind the flag new-model: the bad",
    "  behaviour is seen only by users for whom the flag is on; `crash` hits every strategy alike.",
    "",
    "Strategies, as the lab configures them (the same for every scenario):",
    ...STRATEGIES.flatMap(strategyLines),
    "",
    "Analysis templates:",
    ...Object.entries(TEMPLATES).flatMap(([n, tt]) => template(n, tt)),
    "",
    "The person: when a rollout waits for one (blue-green's promotion, an inconclusive analysis),",
    `the lab's person promotes it ${t.operatorDelaySeconds} s later, whatever the scenario: they see what Turnout`,
    "shows, nothing more. Each such command is one manual action; automatic rollbacks count 0.",
    "",
    "The figures, per run (times in seconds since the rollout began, i.e. v2 was asked for):",
    "  usersExposed: distinct users who got at least one answer from the bad version (for",
    "    blueGreenFlags: from v2 with the flag on); on `good`, users who got the new version.",
    `    A bad version that is never removed is watched for ${t.horizonSeconds} s from the start.`,
    "  failedRequests: 5xx answers users got that the stable version would have answered.",
    "  wrongAnswers: answers users got that differ from the stable version's answer.",
    "  detectSeconds: the first failing verdict, failed analysis, failed gate, lost experiment,",
    "    failed start or killed flag; null when never detected (on `good`: a false alarm).",
    "  recoverSeconds: the end of the last second in which a user got the bad version; 0 when",
    "    no user ever got it (shadow: users only get the stable answers; a crash caught before",
    "    any traffic); null when it was never removed.",
    "  extraInstanceSeconds: instance-seconds above the steady state's 4, until the rollout has",
    "    settled (warm blue, preview, surge, a candidate kept after a failure).",
    "  manualActions: commands the person had to send.",
    "  totalSeconds: when the rollout completed with the new version serving 100% (the feature",
    "    on for blueGreenFlags); null when it never did.",
    "Each table cell is the median over the seeds (nearest rank), with the 90th percentile in",
    "parentheses; null ranks above every number, so a median is null when most runs were null.",
    "",
    "Measured levels (from the medians):",
    `  risk: the worst share of users exposed among errors, latency and crash: Very low < ${RISK_BOUNDS.veryLow * 100}%,`,
    `    Low < ${RISK_BOUNDS.low * 100}%, Medium < ${RISK_BOUNDS.medium * 100}%, else High. Wrong answers with a 200 are reported`,
    "    apart: only a comparison of answers can see them.",
    "  rollback: No impact on users (no user got a bad version in any bad scenario); Very easy",
    "    (automatic, users off the bad version within 1 s of the detection, nothing to restart);",
    "    Easy (the same, but instances must start again, within 10 s); Medium otherwise.",
    "",
    "Not modelled: load (a reduced capacity causes no errors here), preview traffic before a",
    "blue-green switch, bad behaviour that only shows after the lab's horizon, people who abort.",
  ].join("\n");
}
