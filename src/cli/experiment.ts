/**
 * `turnout experiment results NAME`, `turnout experiment plan ...` and `turnout get
 * experiments`: the A/B experiments API (`src/api/experiments.ts`) from the command line, and
 * the power / sample-size planner (pure, no server needed).
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { stringify as toYaml } from "yaml";
import type { ExperimentResults } from "../core/experiment/analyze.js";
import { plural } from "../core/plural.js";
import {
  asymptoticCsHalfWidth,
  normalCdf,
  normalQuantile,
  type SampleSizeResult,
  sampleSizeTwoMeans,
  sampleSizeTwoProportions,
  sequentialRho,
} from "../core/stats/index.js";
import type { Client } from "./client.js";
import { bold, dim, green, red, table } from "./format.js";

type Output = "text" | "json" | "yaml";

function print(data: unknown, output: Output, human: () => string): void {
  if (output === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (output === "yaml") process.stdout.write(toYaml(data));
  else process.stdout.write(`${human()}\n`);
}

const outputOption = () =>
  new Option("-o, --output <format>", "text, json or yaml")
    .choices(["text", "json", "yaml"])
    .default("text");

type Results = ExperimentResults & {
  state: { status: string; summary?: string; endedAt?: number };
  service: string;
  startedAt: number;
  readAt?: number;
  live?: boolean;
  decidedAt?: number;
};

interface ListItem {
  name: string;
  service: string;
  method: string;
  arms: { name: string; version: string; weight: number; units: number }[];
  state: { status: string; summary?: string };
  startedAt: number;
}

function num(x: number | null, digits = 4): string {
  if (x === null || !Number.isFinite(x)) return "n/a";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

/** How a number shows: "pts" for differences of rates (percentage points), "%" for relative. */
type Unit = "pts" | "%" | "";

function fmt(x: number, unit: Unit): string {
  if (unit === "") return num(x);
  return `${(x * 100).toFixed(2)}${unit === "pts" ? " pts" : "%"}`;
}

function signed(x: number | null, unit: Unit): string {
  if (x === null || !Number.isFinite(x)) return "n/a";
  const v = fmt(x, unit);
  return x > 0 ? `+${v}` : v;
}

function interval(i: { lower: number; upper: number } | null, unit: Unit): string {
  if (!i) return "";
  return `[${fmt(i.lower, unit)}, ${fmt(i.upper, unit)}]`;
}

function stamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/**
 * The controller's decision, when there is one, with its own snapshot: it was taken on the
 * figures of its time, and a live table goes on counting the events that kept arriving, so the
 * two can differ (#18 item 10: they did, with nothing saying why).
 */
function decisionLine(r: Results): string[] {
  if (!r.state.summary || r.state.status === "running") return [];
  const at = r.state.endedAt ?? r.decidedAt;
  const when = at !== undefined ? ` at ${stamp(at)}` : "";
  const lines = [`decision: ${r.state.status}${when}: ${r.state.summary}`];
  if (r.live !== false)
    lines.push(
      dim(
        "          (the decision's snapshot; events kept arriving since, so the live figures above can differ)",
      ),
    );
  return lines;
}

/** The results table people read: one row per metric and arm. */
export function formatResults(r: Results): string {
  const units = r.arms.map((a) => `${a.name}=${a.version}: ${plural(a.units, "unit")}`).join(", ");
  const head = [
    `${bold(r.name)}  ${dim(`service ${r.service}, ${r.method}, alpha ${r.alpha}${r.method !== "bayesian" ? `, ${r.correction} across goals` : ""}`)}`,
    `arms:     ${units}`,
    `SRM:      ${r.srm.mismatch ? red(`MISMATCH p=${num(r.srm.pValue)} < ${r.srm.threshold}: decisions blocked`) : green(`ok (chi-square p=${num(r.srm.pValue)})`)}`,
    `verdict:  ${r.verdict} ${dim(`(this table's figures${r.readAt !== undefined ? `, read at ${stamp(r.readAt)}` : ""}${r.live === false ? ", when the experiment ended" : r.live ? ", live" : ""})`)}`,
    ...decisionLine(r),
  ];
  const bayes = r.method === "bayesian";
  const rows: string[][] = [
    [
      "metric",
      "role",
      "arm",
      "n",
      "value",
      "abs lift",
      "interval",
      "rel lift",
      "interval",
      bayes ? "chance to win" : "p-value",
      "",
    ],
  ];
  for (const m of r.metrics) {
    const binom = m.kind === "binomial";
    for (const a of m.arms) {
      const c = m.comparisons.find((x) => x.arm === a.arm);
      const isControl = a.arm === r.control;
      rows.push([
        m.name,
        m.role,
        a.arm,
        String(a.n),
        a.value === null ? "n/a" : binom ? `${(a.value * 100).toFixed(2)}%` : num(a.value),
        isControl ? "(control)" : c ? signed(c.difference, binom ? "pts" : "") : (m.note ?? ""),
        c ? interval(c.interval, binom ? "pts" : "") : "",
        c ? signed(c.relative, "%") : "",
        c ? interval(c.relativeInterval, "%") : "",
        c
          ? bayes
            ? `${((c.chanceToWin ?? 0) * 100).toFixed(1)}%`
            : `${num(c.pValue)}${c.adjustedPValue !== null && c.adjustedPValue !== c.pValue ? ` (adj ${num(c.adjustedPValue)})` : ""}`
          : "",
        c && c.outcome !== "none" ? c.outcome : "",
      ]);
    }
  }
  return [...head, "", table(rows), "", ...r.reasons.map((x) => `- ${x}`)].join("\n");
}

/** `turnout get experiments [NAME]`. */
export async function getExperiments(
  c: Client,
  name: string | undefined,
  output: Output,
): Promise<void> {
  const res = await c.call<{ items: ListItem[] }>("GET", "/api/v1/experiments");
  const items = name ? res.items.filter((i) => i.name === name) : res.items;
  print(name ? items[0] : { items }, output, () =>
    items.length === 0
      ? dim("no experiments")
      : table([
          ["NAME", "SERVICE", "METHOD", "ARMS", "STATE"],
          ...items.map((i) => [
            i.name,
            i.service,
            i.method,
            i.arms.map((a) => `${a.name}=${a.version} (${a.units})`).join(" "),
            i.state.status,
          ]),
        ]),
  );
}

/** Sequential plan: units per arm for the confidence sequence to exclude 0 with this power at n. */
export function sequentialSampleSize(
  fixed: SampleSizeResult,
  sdPerUnit: number,
  tuning: number,
): number {
  // Solve P(estimate − halfWidth(n) > 0) = power at n per arm (equal arms), by bisection.
  const rho = sequentialRho(fixed.alpha, tuning);
  const ok = (n: number) => {
    const se = sdPerUnit * Math.sqrt(2 / n);
    const hw = asymptoticCsHalfWidth(se * Math.sqrt(2 * n), 2 * n, rho, fixed.alpha);
    return normalCdf((Math.abs(fixed.effect) - hw) / se) >= fixed.power;
  };
  let lo = 2;
  let hi = Math.max(4, fixed.control);
  while (!ok(hi)) hi *= 2;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

const float = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got ${v}`);
  return n;
};

export function registerExperimentCommands(
  program: Command,
  client: (cmd: Command) => Client,
): void {
  const exp = program.command("experiment").description("A/B experiments: results and planning");

  exp
    .command("results")
    .description("lifts, intervals, p-values or chance to win, and the SRM check of an experiment")
    .argument("<name>", "the experiment's name (see `turnout get experiments`)")
    .addOption(outputOption())
    .action(async (name: string, opts: { output: Output }, cmd: Command) => {
      const r = await client(cmd).call<Results>(
        "GET",
        `/api/v1/experiments/${encodeURIComponent(name)}/results`,
      );
      print(r, opts.output, () => formatResults(r));
    });

  exp
    .command("list")
    .description("every experiment with its arms, units and state (as `get experiments`)")
    .addOption(outputOption())
    .action(async (opts: { output: Output }, cmd: Command) => {
      await getExperiments(client(cmd), undefined, opts.output);
    });

  exp
    .command("plan")
    .description(
      "units per arm to detect an effect: --baseline RATE for conversions, or --sd SD for means",
    )
    .option("--baseline <rate>", "control conversion rate, e.g. 0.05", float("--baseline"))
    .option("--sd <sd>", "standard deviation of the per-unit value (mean metrics)", float("--sd"))
    .option("--mean <mean>", "control mean (for a relative --mde with --sd)", float("--mean"))
    .requiredOption(
      "--mde <effect>",
      "minimum detectable effect (relative unless --absolute)",
      float("--mde"),
    )
    .option("--absolute", "the mde is absolute (points or units), not relative")
    .option("--alpha <a>", "significance level", float("--alpha"), 0.05)
    .option("--power <p>", "power", float("--power"), 0.8)
    .option("--split <percent>", "percent of units in B", float("--split"), 50)
    .option("--tuning <n>", "N* of the sequential confidence sequence", float("--tuning"), 5000)
    .option(
      "--daily-units <n>",
      "units per day entering the experiment (for a duration)",
      float("--daily-units"),
    )
    .addOption(outputOption())
    .action(
      (opts: {
        baseline?: number;
        sd?: number;
        mean?: number;
        mde: number;
        absolute?: boolean;
        alpha: number;
        power: number;
        split: number;
        tuning: number;
        dailyUnits?: number;
        output: Output;
      }) => {
        if ((opts.baseline === undefined) === (opts.sd === undefined))
          throw new InvalidArgumentError(
            "give exactly one of --baseline (conversion) or --sd (mean)",
          );
        if (!(opts.split > 0 && opts.split < 100))
          throw new InvalidArgumentError(`--split must be between 0 and 100, got ${opts.split}`);
        const common = {
          mde: opts.mde,
          alpha: opts.alpha,
          power: opts.power,
          ratio: opts.split / (100 - opts.split),
          mdeType: opts.absolute ? ("absolute" as const) : ("relative" as const),
        };
        const fixed =
          opts.baseline !== undefined
            ? sampleSizeTwoProportions({ ...common, baseline: opts.baseline })
            : sampleSizeTwoMeans({
                ...common,
                sd: opts.sd!,
                ...(opts.mean !== undefined ? { baselineMean: opts.mean } : {}),
              });
        const sd =
          opts.baseline !== undefined
            ? Math.sqrt(opts.baseline * (1 - opts.baseline))
            : (opts.sd as number);
        const sequential = sequentialSampleSize(fixed, sd, opts.tuning);
        const total = fixed.control + fixed.treatment;
        const days = opts.dailyUnits ? total / opts.dailyUnits : null;
        const out = {
          fixedHorizon: { control: fixed.control, treatment: fixed.treatment, total },
          sequential: { perArm: sequential, total: 2 * sequential, evenSplitOnly: true },
          effect: fixed.effect,
          alpha: fixed.alpha,
          power: fixed.power,
          zAlpha: fixed.zAlpha,
          zBeta: fixed.zBeta,
          ...(days !== null ? { days } : {}),
        };
        print(out, opts.output, () =>
          [
            `${bold("fixed horizon")} (z-test, one look): ${fixed.control} units in A + ${fixed.treatment} in B = ${total}${days !== null ? ` (${days.toFixed(1)} days at ${opts.dailyUnits}/day)` : ""}`,
            `${bold("sequential")} (confidence sequence, N*=${opts.tuning}, look any time): about ${sequential} units per arm (${2 * sequential}) for ${opts.power * 100}% power at that size (even split); it may stop earlier when the effect is larger`,
            dim(
              `effect planned for: ${opts.baseline !== undefined ? `${(fixed.effect * 100).toFixed(3)} points` : num(fixed.effect)} (alpha ${fixed.alpha} two-sided, z ${num(normalQuantile(1 - fixed.alpha / 2))})`,
            ),
          ].join("\n"),
        );
      },
    );
}
