/**
 * The lab's report: the brief's columns beside the measured ones, a verdict per strategy on
 * whether the measurement agrees with the brief and why (with the numbers), the JSON form and
 * the full per-scenario table. Pure: strings in, strings out.
 *
 * The measured levels, from the medians (stated in `--explain` and docs/strategies.md):
 *   risk, from the worst share of users that got a bad version among the failures a strategy
 *   can detect (errors, latency, crash): Very low < 0.5% <= Low < 5% <= Medium < 25% <= High;
 *   wrong answers with a 200 are reported apart (only a comparison of answers can see them);
 *   rollback: "No impact on users" when no user got a bad version in any bad scenario; else
 *   "Very easy" when it is automatic (no person after the detection), users are off the bad
 *   version within 1 s of the detection and the version they are back on needs nothing started
 *   (restore 0 s); "Easy" when instances have to start again within 10 s; "Medium" otherwise
 *   (a person must act, or users stay on the bad version after the detection, or a slow
 *   restore).
 */

import { plural } from "../core/plural.js";
import {
  BAD_SCENARIOS,
  BRIEF,
  type BriefRow,
  type ScenarioName,
  type StrategyName,
  TRAFFIC,
} from "./config.js";
import type { LabReport, LabRow } from "./lab.js";

export type RiskLevel = "Very low" | "Low" | "Medium" | "High";
export type RollbackLevel = "No impact on users" | "Very easy" | "Easy" | "Medium";

export const RISK_BOUNDS = { veryLow: 0.005, low: 0.05, medium: 0.25 } as const;

export interface Assessment {
  strategy: StrategyName;
  brief: BriefRow;
  risk: RiskLevel | null;
  rollback: RollbackLevel | null;
  riskAgrees: boolean | null;
  rollbackAgrees: boolean | null;
  /** Why, with the numbers, one sentence each. */
  reasons: string[];
}

/** How each strategy exposes users: the mechanism the numbers come from (not a result). */
const MECHANISM: Record<StrategyName, string> = {
  blueGreen:
    "the switch sends every user to green at once, and after it there is no blue traffic to compare with: only the post-promotion analysis's absolute bounds can catch a bad green",
  canary:
    "a growing share of users (10%, 25%, 50%) gets the new version, judged against the stable version over the same window by the background analysis",
  rolling:
    "each batch of new instances takes its share of the traffic as soon as it is ready (Kubernetes' 25% surge and unavailability: 2 of 5 ready instances in the first batch); a check gates every batch but the last",
  shadow:
    "users only ever get the stable version's answers; the gate judges the mirrored copies, and sees only what it compares (status, the label, latency)",
  abTest:
    "half the users are in B (sticky) from the start; the error and latency guardrails are analysed at every tick, the goal decides the win",
  blueGreenFlags:
    "the new code ships dark behind the switch, then the feature reaches 10% and 50% of users by the flag, with a check of flag on against flag off in between; a failure turns the flag off",
};

const share = (users: number | null) => (users === null ? null : users / TRAFFIC.users);
const pct = (x: number | null) =>
  x === null
    ? "-"
    : x === 0
      ? "0%"
      : x < 0.01
        ? `${(x * 100).toFixed(2)}%`
        : `${(x * 100).toFixed(1)}%`;
const secs = (x: number | null) => (x === null ? "never" : `${x} s`);

function row(r: LabReport, s: StrategyName, sc: ScenarioName): LabRow | undefined {
  return r.results.find((x) => x.strategy === s && x.scenario === sc);
}

export function riskLevel(x: number): RiskLevel {
  if (x < RISK_BOUNDS.veryLow) return "Very low";
  if (x < RISK_BOUNDS.low) return "Low";
  if (x < RISK_BOUNDS.medium) return "Medium";
  return "High";
}

/** The measured levels of every strategy in the report, and where they agree with the brief. */
export function assess(r: LabReport): Assessment[] {
  const strategies = [...new Set(r.results.map((x) => x.strategy))];
  return strategies.map((s) => assessOne(r, s));
}

function assessOne(r: LabReport, s: StrategyName): Assessment {
  const brief = BRIEF[s];
  const reasons: string[] = [MECHANISM[s]];
  const detectable = (["errors", "latency", "crash"] as const).flatMap((sc) => {
    const x = row(r, s, sc);
    return x ? [x] : [];
  });
  const bad = BAD_SCENARIOS.flatMap((sc) => {
    const x = row(r, s, sc);
    return x ? [x] : [];
  });
  // 1. Risk.
  let risk: RiskLevel | null = null;
  if (detectable.length > 0) {
    const worst = detectable.reduce((a, b) => (b.usersExposed > a.usersExposed ? b : a));
    risk = riskLevel(share(worst.usersExposed)!);
    reasons.push(
      worst.usersExposed === 0
        ? `no user got a bad version in ${detectable.map((x) => x.scenario).join(", ")}`
        : `worst of ${detectable.map((x) => x.scenario).join(", ")}: ${worst.scenario}, ${plural(worst.usersExposed, "user")} (${pct(share(worst.usersExposed))}) got the bad version before it was detected at ${secs(worst.detectSeconds)}`,
    );
  }
  const wrong = row(r, s, "wrongPredictions");
  if (wrong) {
    reasons.push(
      wrong.detectSeconds !== null
        ? `wrong answers with a 200: caught at ${secs(wrong.detectSeconds)}, ${plural(wrong.usersExposed, "user")} exposed`
        : `wrong answers with a 200: never caught (nothing it measures changes): ${plural(wrong.usersExposed, "user")} (${pct(share(wrong.usersExposed))}) got wrong answers within ${TRAFFIC.horizonSeconds} s, ${plural(wrong.wrongAnswers, "wrong answer")}`,
    );
  }
  // 2. Rollback.
  let rollback: RollbackLevel | null = null;
  if (bad.length > 0) {
    const detected = bad.filter((x) => x.detectSeconds !== null);
    const info = detected.map((x) => {
      const rb = r.rollback.find((y) => y.strategy === s && y.scenario === x.scenario);
      const lag =
        x.recoverSeconds === null || x.recoverSeconds === 0
          ? 0
          : Math.max(0, x.recoverSeconds - (x.detectSeconds ?? 0));
      return {
        scenario: x.scenario,
        lag,
        manual: rb?.manualAfterDetect ?? 0,
        restore: rb?.restoreSeconds ?? 0,
      };
    });
    const maxOf = (k: "lag" | "manual" | "restore") => info.reduce((m, x) => Math.max(m, x[k]), 0);
    const lag = maxOf("lag");
    const manual = maxOf("manual");
    const restore = maxOf("restore");
    if (bad.every((x) => x.usersExposed === 0)) rollback = "No impact on users";
    else if (manual > 0 || lag > 1 || restore > 10) rollback = "Medium";
    else if (restore > 0) rollback = "Easy";
    else rollback = "Very easy";
    if (detected.length > 0) {
      reasons.push(
        `rollback: ${manual > 0 ? `${plural(manual, "action")} by a person` : "automatic"}, users off the bad version ${lag <= 1 ? "within 1 s of" : `${lag} s after`} the detection, ${restore === 0 ? "nothing to restart (the version users go back to never lost capacity)" : `${restore} s until the old version has all its instances ready again`}`,
      );
    }
  }
  // 3. The good release: what the safety costs.
  const good = row(r, s, "good");
  if (good) {
    reasons.push(
      `good release: 100% after ${secs(good.totalSeconds)}, ${plural(good.manualActions, "manual action")}, ${good.extraInstanceSeconds} extra instance-seconds${good.detectSeconds !== null ? `; a false alarm at ${secs(good.detectSeconds)}` : ""}`,
    );
  }
  return {
    strategy: s,
    brief,
    risk,
    rollback,
    riskAgrees: risk === null ? null : risk === brief.risk,
    rollbackAgrees: rollback === null ? null : rollback === brief.rollback,
    reasons,
  };
}

// ---------------------------------------------------------------------------------------
// Text

/** Left-aligned columns, no colours (the same text goes into docs/strategies.md). */
export function textTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

/** A Markdown table. */
export function markdownTable(rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, "\\|");
  const [head, ...body] = rows;
  return [
    `| ${head!.map(esc).join(" | ")} |`,
    `|${head!.map(() => "---").join("|")}|`,
    ...body.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}

const agree = (a: boolean | null) => (a === null ? "" : a ? "agrees" : "DIFFERS");

/**
 * What the summary table's columns mean, printed with it wherever it stands alone (the demo's
 * close, `turnout lab`): "brief" means nothing to someone who never read Turnout's design brief.
 */
export const SUMMARY_LEGEND =
  "expected: how each strategy is usually rated for risk and ease of rollback (the comparison Turnout's design started from); measured: what happened to the simulated users here; DIFFERS: the two disagree.";

/** The expected columns (the brief's) beside the measured levels, one row per strategy. */
export function summaryRows(r: LabReport): string[][] {
  const rows: string[][] = [
    [
      "Strategy",
      "Key feature",
      "Risk: expected",
      "measured",
      "",
      "Rollback: expected",
      "measured",
      "",
    ],
  ];
  for (const a of assess(r)) {
    rows.push([
      a.brief.label,
      a.brief.keyFeature,
      a.brief.risk,
      a.risk ?? "-",
      agree(a.riskAgrees),
      a.brief.rollback,
      a.rollback ?? "-",
      agree(a.rollbackAgrees),
    ]);
  }
  return rows;
}

/** Every metric, median (p90), per strategy × scenario. */
export function metricRows(r: LabReport): string[][] {
  const rows: string[][] = [
    [
      "Strategy",
      "Scenario",
      "Users exposed",
      "Failed req",
      "Wrong answers",
      "Detect s",
      "Recover s",
      "Extra inst·s",
      "Manual",
      "Total s",
    ],
  ];
  const f = (m: number | null, p: number | null) =>
    m === p ? (m === null ? "-" : String(m)) : `${m ?? "-"} (${p ?? "-"})`;
  for (const x of r.results) {
    const p = r.p90.find((y) => y.strategy === x.strategy && y.scenario === x.scenario)!;
    rows.push([
      BRIEF[x.strategy].label,
      x.scenario,
      f(x.usersExposed, p.usersExposed),
      f(x.failedRequests, p.failedRequests),
      f(x.wrongAnswers, p.wrongAnswers),
      f(x.detectSeconds, p.detectSeconds),
      f(x.recoverSeconds, p.recoverSeconds),
      f(x.extraInstanceSeconds, p.extraInstanceSeconds),
      f(x.manualActions, p.manualActions),
      f(x.totalSeconds, p.totalSeconds),
    ]);
  }
  return rows;
}

/** The verdicts, one paragraph per strategy. */
export function verdictLines(r: LabReport): string[] {
  return assess(r).map((a) => {
    const parts: string[] = [];
    if (a.risk !== null)
      parts.push(
        `risk ${a.brief.risk} (expected) vs ${a.risk} (measured): ${a.riskAgrees ? "agrees" : "differs"}`,
      );
    if (a.rollback !== null)
      parts.push(
        `rollback ${a.brief.rollback} (expected) vs ${a.rollback} (measured): ${a.rollbackAgrees ? "agrees" : "differs"}`,
      );
    // Without a bad-release scenario there is no risk or rollback to compare: only the why.
    const compared = parts.length > 0 ? `${parts.join("; ")}. ` : "";
    return `${a.brief.label}: ${compared}Why: ${a.reasons.join("; ")}.`;
  });
}

/** The whole report as text (`turnout lab`). */
export function formatReport(r: LabReport): string {
  const scenarios = [...new Set(r.results.map((x) => x.scenario))];
  return [
    `Strategy lab: ${plural(r.seeds, "seed")} from ${r.seed}, scenarios ${scenarios.join(", ")}; ${TRAFFIC.rps} requests/s from ${TRAFFIC.users} users (\`turnout lab --explain\` for the model)`,
    "",
    textTable(summaryRows(r)),
    "",
    wrap(`${SUMMARY_LEGEND} Why, strategy by strategy:`, 100),
    "",
    ...verdictLines(r).flatMap((l) => [wrap(l, 100), ""]),
    "Medians over the seeds (90th percentile in parentheses); times in seconds since the rollout began:",
    "",
    textTable(metricRows(r)),
  ].join("\n");
}

/** `s` in lines of at most `width` characters, the later ones indented by two spaces. */
export function wrap(s: string, width: number): string {
  const words = s.split(" ");
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    if (line.length > 0 && line.length + 1 + w.length > width) {
      lines.push(line);
      line = `  ${w}`;
    } else line = line.length > 0 ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join("\n");
}

/** `-o json`: the medians, exactly the documented keys, plus the 90th percentiles. */
export function toJson(r: LabReport): {
  seeds: number;
  seed: number;
  results: LabRow[];
  p90: LabRow[];
} {
  const pick = (x: LabRow): LabRow => ({
    strategy: x.strategy,
    scenario: x.scenario,
    usersExposed: x.usersExposed,
    failedRequests: x.failedRequests,
    wrongAnswers: x.wrongAnswers,
    detectSeconds: x.detectSeconds,
    recoverSeconds: x.recoverSeconds,
    extraInstanceSeconds: x.extraInstanceSeconds,
    manualActions: x.manualActions,
    totalSeconds: x.totalSeconds,
  });
  return { seeds: r.seeds, seed: r.seed, results: r.results.map(pick), p90: r.p90.map(pick) };
}
