/**
 * Shadow reports in the CLI: the short block `turnout status` shows while (and after) a
 * service mirrors traffic, and `turnout shadow <service>` with the whole report: mismatch
 * rate by field, noise, sample diffs, agreement, regression error, drift, latency, drops.
 */
import { type Command, Option } from "commander";
import { stringify as toYaml } from "yaml";
import { plural } from "../core/plural.js";
import type { ShadowReport } from "../core/shadow/aggregate.js";
import type { ShadowStatus } from "../core/shadow/types.js";
import type { Client } from "./client.js";
import { bold, cyan, dim, green, red, yellow } from "./color.js";

/** The body of `GET /api/v1/services/:name/shadow` (api/shadow.ts). */
export interface ShadowView {
  service: string;
  active: ShadowStatus | null;
  report: {
    id: string;
    version: string;
    routers: number;
    updatedAt: number;
    report: ShadowReport;
  } | null;
  phases: { id: string; version: string; updatedAt: number }[];
  router: { sent: number; inFlight: number; queued: number; drops: Record<string, number> } | null;
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined ? "-" : `${(x * 100).toFixed(1)}%`;
const ms = (x: number) => `${x.toFixed(1)} ms`;
const pad = " ".repeat(13);

function drops(d: Record<string, number>): string {
  const parts = Object.entries(d)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  return parts.length === 0 ? "none" : parts.join(", ");
}

/** The block in `turnout status`: one to five lines; none without a mirror or a report. */
export function formatShadowLines(v: ShadowView | null | undefined): string[] {
  if (!v || (!v.active && !v.report)) return [];
  const lines: string[] = [];
  const a = v.active;
  const head = a
    ? `${cyan(a.kind === "shadow" ? "mirroring" : "mirror route")} ${a.mirror.percent}% to ${a.version}${a.noise ? dim(" (+ noise copy to stable)") : ""}`
    : dim(`last phase ${v.report!.id}`);
  lines.push(`${"Shadow:".padEnd(13)}${head}`);
  const r = v.report?.report;
  if (!r || (a && v.report!.id !== a.id)) {
    lines.push(`${pad}${dim("no pairs compared yet")}`);
    return lines;
  }
  const mm = r.mismatchRate ?? 0;
  lines.push(
    `${pad}${plural(r.samples, "pair", "pairs", (n) => n.toLocaleString("en-US"))}, mismatch ${(mm > 0.05 ? red : mm > 0 ? yellow : green)(pct(r.mismatchRate))}, agreement ${pct(r.agreement)}${r.noise && r.noise.fields.length > 0 ? dim(`, noise: ${r.noise.fields.join(", ")}`) : ""}`,
  );
  const top = r.byField.filter((f) => !f.noise).slice(0, 3);
  if (top.length > 0)
    lines.push(
      `${pad}${dim("differs:")} ${top.map((f) => `${f.field} ${pct(f.rate)}`).join(", ")}`,
    );
  if (r.latency)
    lines.push(
      `${pad}${dim("latency p50")} ${ms(r.latency.primaryP50Ms)} -> ${ms(r.latency.shadowP50Ms)} (${r.latency.increase >= 0 ? "+" : ""}${pct(r.latency.increase)})${dim(`, errors ${r.shadowErrors}, drops ${drops(r.drops)}`)}`,
    );
  return lines;
}

/** The whole report, for `turnout shadow`. */
export function formatShadow(v: ShadowView): string {
  const lines = formatShadowLines(v);
  if (lines.length === 0) return `${bold(v.service)}: no shadow phase has reported yet`;
  const r = v.report?.report;
  if (!r) return lines.join("\n");
  const out = [...lines];
  const row = (k: string, val: string) => out.push(`${`${k}:`.padEnd(13)}${val}`);
  row("Phase", `${v.report!.id} (${v.report!.version}; ${plural(v.report!.routers, "router")})`);
  if (r.classification) {
    row(
      "Agreement",
      `${pct(r.classification.agreement)} of ${r.classification.compared} labelled pairs${
        r.classification.disagreements.length > 0
          ? `; ${r.classification.disagreements.map((d) => `${d.from} -> ${d.to} ${d.count}`).join(", ")}`
          : ""
      }`,
    );
  }
  if (r.regression)
    row(
      "Regression",
      `MAE ${r.regression.mae?.toPrecision(4)}, max ${r.regression.maxAbsError.toPrecision(4)} (${plural(r.regression.compared, "pair")})`,
    );
  if (r.drift)
    row(
      "Drift",
      `PSI ${r.drift.psi === null ? "-" : r.drift.psi.toFixed(4)}${r.drift.ks ? `, KS D ${r.drift.ks.statistic.toFixed(3)} (p ${r.drift.ks.pValue.toPrecision(3)})` : ""} over ${plural(r.drift.samples, "prediction")}`,
    );
  if (r.byField.length > 0) {
    out.push("Fields:");
    for (const f of r.byField.slice(0, 15))
      out.push(
        `  ${f.field.padEnd(40)} ${pct(f.rate).padStart(7)}  ${f.mismatches}${f.noise ? dim(`  noise (stable vs stable ${pct(f.noiseRate)})`) : ""}`,
      );
  }
  if (r.sampleDiffs.length > 0) {
    out.push("Sample diffs:");
    for (const s of r.sampleDiffs.slice(0, 5)) {
      out.push(`  ${s.method} ${s.target} ${dim(s.requestId)}`);
      for (const d of s.diffs) out.push(`    ${d.path}: ${d.primary} -> ${d.shadow}`);
    }
  }
  row("Copies", `${r.sent} sent, ${r.shadowErrors} shadow errors, drops: ${drops(r.drops)}`);
  return out.join("\n");
}

export function registerShadowCommands(program: Command, client: (cmd: Command) => Client): void {
  program
    .command("shadow")
    .description(
      "a service's shadow report: mismatches by field, noise, samples, agreement, drift, latency",
    )
    .argument("<service>")
    .option("--phase <id>", "a phase other than the current or last one")
    .addOption(
      new Option("-o, --output <format>", "text, json or yaml")
        .choices(["text", "json", "yaml"])
        .default("text"),
    )
    .action(async (service: string, opts: { phase?: string; output: string }, cmd: Command) => {
      const q = opts.phase ? `?phase=${encodeURIComponent(opts.phase)}` : "";
      const v = await client(cmd).call<ShadowView>(
        "GET",
        `/api/v1/services/${encodeURIComponent(service)}/shadow${q}`,
      );
      if (opts.output === "json") process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
      else if (opts.output === "yaml") process.stdout.write(toYaml(v));
      else process.stdout.write(`${formatShadow(v)}\n`);
    });
}
