/** Human-readable output for the CLI. `-o json` bypasses all of this. */

import type { RunState } from "../core/analysis/run.js";
import { durationMs, formatDuration } from "../core/duration.js";
import type {
  CanaryStep,
  RouteTable,
  ServiceResource,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import { plural } from "../core/plural.js";
import { describeStep } from "../core/rollout.js";
import { bold, cyan, dim, green, red, yellow } from "./color.js";
import { formatShadowLines, type ShadowView } from "./shadow.js";

export interface VersionTraffic {
  version: string;
  /** Flag variants of the series ("flag.explanations=on"), when it has any. */
  labels?: string;
  requests: number;
  status: Record<string, number>;
  upstreamErrors: number;
  /** Requests whose client left before the version answered (absent from older servers). */
  abandoned?: number;
  latencyMsSum: number;
  latencyMsMax?: number;
}

export interface StatusView {
  service: string;
  generation: number;
  desiredVersion: string;
  steps: CanaryStep[];
  status: ServiceStatus | null;
  routeTable: RouteTable | null;
  traffic?: VersionTraffic[];
  listener?: { host: string; port: number; error?: string } | null;
  /** The runtime's instances (process runtime: restarts and last exit too). */
  instances?: {
    id: string;
    state: string;
    message?: string;
    restarts?: number;
    lastExit?: string;
  }[];
  /** The shadow phase: the mirror in force and its report (api/shadow.ts). */
  shadow?: ShadowView | null;
  /** The data plane when it is not the built-in router (`spec.traffic`). */
  dataPlane?: {
    provider: string;
    mode?: string;
    process?: {
      running?: boolean;
      restarts?: number;
      reloads?: number;
      lastError?: string | null;
    } | null;
    draining?: number;
    intake?: { lines: number; lost: number; unparsable: number; delayed?: number };
    refused?: string | null;
  } | null;
  /** The controller lease (several controllers on a shared store): who leads, since when. */
  controller?: {
    leader: string | null;
    epoch: number;
    since: number;
    renewedAt: number | null;
    leaseMs: number | null;
  } | null;
  now: number;
}

// The colours live in a leaf module so that `shadow.ts` (which this file imports) can use them
// without importing this file back; re-exported for the commands that import them from here.
export { bold, cyan, dim, green, red, yellow } from "./color.js";

export function phaseColor(phase: string): string {
  switch (phase) {
    case "Healthy":
    case "Completed":
      return green(phase);
    case "Degraded":
      return red(phase);
    case "Paused":
      return yellow(phase);
    default:
      return cyan(phase);
  }
}

function verdictColor(outcome: string): string {
  if (outcome === "pass") return green(outcome);
  if (outcome === "fail" || outcome === "error") return red(outcome);
  return yellow(outcome);
}

export function formatStatus(v: StatusView): string {
  const s = v.status;
  const lines: string[] = [];
  // An empty label continues the row above (no stray ":" in the label column).
  const row = (k: string, val: string) => lines.push(`${(k ? `${k}:` : "").padEnd(13)}${val}`);
  row("Service", bold(v.service));
  if (!s) {
    row("Phase", dim("not reconciled yet (is the controller running?)"));
    return lines.join("\n");
  }
  // Degraded by the data plane: for how long, and the rollout's own phase, which comes back
  // once the route table is served.
  const held = s.dataPlane?.serving === false ? s.dataPlane : null;
  const heldFor = held ? dim(` (for ${formatDuration(Math.max(0, v.now - held.since))})`) : "";
  row("Phase", `${phaseColor(s.phase)}  ${s.message}${heldFor}`);
  if (held && s.canaryVersion)
    row("Rollout", `${phaseColor(held.underlying.phase)}  ${held.underlying.message}`);
  const weights = new Map((v.routeTable?.backends ?? []).map((b) => [b.version, b]));
  const w = (ver: string | null) => {
    if (!ver) return "";
    const b = weights.get(ver);
    return b ? `${b.weight}%  ${dim(plural(b.endpoints.length, "ready endpoint"))}` : "0%";
  };
  row("Stable", `${s.stableVersion ?? "-"}  ${w(s.stableVersion)}`);
  if (s.canaryVersion) row("Canary", `${s.canaryVersion}  ${w(s.canaryVersion)}`);
  if (s.abortedVersion) row("Aborted", red(s.abortedVersion));
  if (s.rolling && s.canaryVersion) {
    const r = s.rolling;
    row(
      "Rolling",
      `${s.canaryVersion} ${r.available} available / ${r.newReplicas} wanted, ${s.stableVersion} ${r.oldReplicas} wanted`,
    );
  }
  if (s.preview && s.canaryVersion) row("Preview", `${s.canaryVersion} on port ${s.preview.port}`);
  const warm = s.previousStableVersions[0];
  if (warm && s.previousScaleDownAt && s.previousScaleDownAt > v.now) {
    row(
      "Warm",
      `${warm} ${dim(`(kept running ${formatDuration(s.previousScaleDownAt - v.now)} more for an instant undo)`)}`,
    );
  }
  if (v.desiredVersion !== s.canaryVersion && v.desiredVersion !== s.stableVersion) {
    row(
      "Desired",
      `${v.desiredVersion}${s.abortedVersion === v.desiredVersion ? dim("  (aborted; `turnout retry` to try again)") : ""}`,
    );
  }
  if (s.canaryVersion && v.steps.length > 0) {
    const idx = s.stepIndex ?? 0;
    v.steps.forEach((step, i) => {
      let mark = "  ";
      let text = describeStep(step);
      if (i < idx) mark = green("✓ ");
      else if (i === idx) {
        mark = cyan("▶ ");
        const forData = s.heldForData?.step === i ? s.heldForData : null;
        if (forData && !s.pausedByUser) {
          // Its time is up; it waits for the analysis to see something of the candidate.
          text += dim(
            `  (held ${formatDuration(Math.max(0, v.now - forData.since))}: no analysis data yet)`,
          );
        } else if (
          "pause" in step &&
          step.pause.duration !== undefined &&
          s.stepStartedAt !== null
        ) {
          // Held by a person: the pause's clock stopped when they paused (core/rollout.ts).
          const held = s.pausedByUser && s.pausedAt != null;
          const at = held ? (s.pausedAt as number) : v.now;
          const left = Math.max(0, s.stepStartedAt + durationMs(step.pause.duration) - at);
          if (!s.pausedByUser || held)
            text += dim(`  (${formatDuration(left)} left${held ? " once resumed" : ""})`);
        }
      }
      lines.push(`${i === 0 ? "Steps:".padEnd(13) : " ".repeat(13)}${mark}${text}`);
    });
  }
  const runs: [string, RunState | null | undefined][] = [
    ["step", s.analysis?.step?.run],
    ["background", s.analysis?.background],
  ];
  for (const [label, run] of runs) {
    if (!run) continue;
    lines.push(`${"Analysis:".padEnd(13)}${label} ${phaseColor(run.phase)}  ${dim(run.message)}`);
    for (const m of run.metrics) {
      const last = m.verdicts.at(-1);
      const c = m.counters;
      const tally = dim(
        `(${c.successful} pass, ${c.failed} fail, ${c.inconclusive + c.provisional} inconclusive, ${c.error} error)`,
      );
      lines.push(
        `${" ".repeat(13)}${m.dryRun ? dim("[dry run] ") : ""}${bold(m.name)} ${m.phase} ${tally}${
          last
            ? `\n${" ".repeat(15)}${verdictColor(last.verdict.outcome)} ${last.verdict.explanation}`
            : ""
        }`,
      );
    }
  }
  lines.push(...formatShadowLines(v.shadow));
  // The router's totals run since it started, for every version it ever served: only the
  // versions of the current table (versions long gone read as live traffic), and the window
  // said (#18 item 9).
  const current = v.routeTable ? new Set(v.routeTable.backends.map((b) => b.version)) : null;
  const shown = (v.traffic ?? []).filter((t) => current === null || current.has(t.version));
  if (shown.length > 0) {
    const parts = shown.map((t) => {
      // Abandoned requests are errors, as the builtin error_rate counts them: a version that
      // hangs fails the users who give up on it.
      const abandoned = t.abandoned ?? 0;
      const errors = (t.status["5xx"] ?? 0) + t.upstreamErrors + abandoned;
      const mean = t.requests > 0 ? t.latencyMsSum / t.requests : 0;
      const series = t.labels
        ? `${t.version} [${t.labels.split("&").map(decodeURIComponent).join(", ")}]`
        : t.version;
      const ofWhich = abandoned > 0 ? ` (${abandoned.toLocaleString("en-US")} abandoned)` : "";
      return `${series} ${t.requests.toLocaleString("en-US")} req, ${plural(errors, "error", "errors", (n) => n.toLocaleString("en-US"))}${ofWhich}, mean ${mean.toFixed(1)} ms`;
    });
    row("Traffic", `${parts.join(dim("  |  "))}  ${dim("(totals since the router started)")}`);
  }
  for (const [n, i] of (v.instances ?? []).entries()) {
    const state =
      i.state === "ready" ? green(i.state) : i.state === "failed" ? red(i.state) : i.state;
    const restarts = i.restarts ? `  restarts ${i.restarts}` : "";
    const why = i.message ?? (i.restarts && i.lastExit ? `last exit: ${i.lastExit}` : "");
    lines.push(
      `${n === 0 ? "Instances:".padEnd(13) : " ".repeat(13)}${i.id} ${state}${restarts}${why ? `  ${dim(why)}` : ""}`,
    );
  }
  if (v.listener) {
    const at = `http://${v.listener.host}:${v.listener.port}`;
    row("Listening", v.listener.error ? red(`${at}: ${v.listener.error}`) : at);
  }
  if (v.dataPlane) {
    const d = v.dataPlane;
    const parts = [`${d.provider}${d.mode ? ` (${d.mode})` : ""}`];
    if (d.process) {
      parts.push(d.process.running === false ? red("not running") : "running");
      if (d.process.restarts) parts.push(plural(d.process.restarts, "restart"));
      if (d.process.reloads) parts.push(plural(d.process.reloads, "reload"));
    }
    if (d.draining) parts.push(`${plural(d.draining, "server")} draining`);
    if (d.intake) {
      const lost = `${d.intake.lost} log lines lost of ${d.intake.lines + d.intake.lost}`;
      parts.push(d.intake.lost > 0 ? yellow(lost) : dim(lost));
      // Lines that came after their second was first stored (the second is written again).
      if (d.intake.delayed) parts.push(yellow(`${d.intake.delayed} arrived late`));
    }
    row("Data plane", parts.join(dim(", ")));
    if (d.refused) row("", red(`refused: ${d.refused}`));
    if (d.process?.lastError) row("", dim(`last error: ${d.process.lastError}`));
  }
  // Only with a lease (a fleet): one controller by the data dir's lock needs no line.
  const c = v.controller;
  if (c && c.leaseMs !== null) {
    const since = new Date(c.since)
      .toISOString()
      .replace("T", " ")
      .replace(/\.\d+Z$/, "Z");
    row(
      "Controller",
      c.leader === null
        ? yellow(`nobody leads (the last leader released the lease, epoch ${c.epoch})`)
        : `${c.leader} ${dim(`leads since ${since} (${formatDuration(Math.max(0, v.now - c.since))}), epoch ${c.epoch}`)}`,
    );
  }
  row("Generation", `${v.generation} (observed ${s.observedGeneration})`);
  if (s.previousStableVersions.length > 0) row("Previous", s.previousStableVersions.join(", "));
  return lines.join("\n");
}

export function formatServices(
  items: {
    name: string;
    generation: number;
    resource: ServiceResource;
    status: ServiceStatus | null;
  }[],
): string {
  const header = ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "DESIRED", "LISTEN", "MESSAGE"];
  const rows = items.map((i) => [
    i.name,
    i.status?.phase ?? "-",
    i.status?.stableVersion ?? "-",
    i.status?.canaryVersion ?? "-",
    i.status?.canaryVersion ? `${i.status.canaryWeight}%` : "-",
    i.resource.spec.version,
    `${i.resource.spec.listen.host}:${i.resource.spec.listen.port}`,
    // A table row is one line: the whole message is in `status NAME` and `-o json`.
    truncateText(i.status?.message ?? "", MESSAGE_COLUMN),
  ]);
  return table([header, ...rows]);
}

const MESSAGE_COLUMN = 80;

function truncateText(s: string, max: number): string {
  const line = s.replace(/\s+/g, " ");
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/**
 * `status --watch` without a terminal: one line per change of phase, step, weights or message
 * (the verdicts are in it), never for traffic counters alone. `key` tells changes apart.
 */
export function watchLine(v: StatusView, now: Date): { key: string; line: string } {
  const s = v.status;
  const weights = (v.routeTable?.backends ?? [])
    .filter((b) => b.weight > 0)
    .map((b) => `${b.version} ${Math.round(b.weight * 100) / 100}%`)
    .join(", ");
  const step =
    s?.canaryVersion && s.stepIndex !== null && v.steps.length > 0
      ? `step ${Math.min(s.stepIndex + 1, v.steps.length)}/${v.steps.length}`
      : "";
  const key = JSON.stringify([s?.phase, s?.stepIndex, s?.canaryVersion, weights, s?.message]);
  const time = now.toISOString().slice(11, 19);
  const parts = [time, v.service, s?.phase ?? "no status", step, weights ? `(${weights})` : ""];
  return {
    key,
    line: `${parts.filter((p) => p !== "").join(" ")}${s?.message ? `: ${s.message}` : ""}`,
  };
}

export function formatHistory(events: TurnoutEvent[]): string {
  if (events.length === 0) return dim("no events yet");
  const rows = events.map((e) => [
    new Date(e.time).toISOString().replace("T", " ").slice(0, 19),
    e.type,
    e.actor,
    e.message,
  ]);
  return table([["TIME", "EVENT", "BY", "WHAT"], ...rows]);
}

/** Left-aligned columns; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ");
      return ri === 0 ? bold(line) : line;
    })
    .join("\n");
}
