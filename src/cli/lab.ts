/**
 * `turnout lab`: the strategy lab (src/lab/): every strategy against every release scenario
 * over many seeds, the usual ratings of the strategies (the brief's table) beside the measured ones. `--live` repeats a few
 * runs through a real `turnout up` (src/lab/live.ts).
 */
import { writeFileSync } from "node:fs";
import { Command, Option } from "commander";
import { TurnoutError } from "../errors.js";
import { SCENARIOS, type ScenarioName, STRATEGIES, type StrategyName } from "../lab/config.js";
import { explainLab } from "../lab/explain.js";
import { type LabReport, runLab } from "../lab/lab.js";
import { formatLive, liveJson, runLive } from "../lab/live.js";
import { defaultWorkers, workerPool } from "../lab/pool.js";
import { formatReport, toJson } from "../lab/report.js";
import { labSvg } from "../lab/svg.js";
import { closest } from "../resources/schema/index.js";

export const DEFAULT_SEEDS = 200;
export const DEFAULT_SEED = 1;
/** `--live`: each seed is a real rollout per strategy × scenario (about 3 minutes a seed). */
export const DEFAULT_LIVE_SEEDS = 1;

interface LabOpts {
  seeds?: string;
  live?: boolean;
  seed: string;
  strategies?: string[];
  scenarios?: string[];
  output: "table" | "json";
  svg?: string;
  explain?: boolean;
  workers?: string;
}

function usage(message: string): TurnoutError {
  return new TurnoutError("TURNOUT_ERR_CLI_USAGE", message);
}

function whole(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) {
    throw usage(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** `a,b c` -> [a, b, c], each checked against `known`, with a suggestion for a typo. */
function names<T extends string>(
  flag: string,
  given: string[] | undefined,
  known: readonly T[],
): T[] {
  if (given === undefined) return [...known];
  const out: T[] = [];
  for (const g of given.flatMap((x) => x.split(",")).filter((x) => x !== "")) {
    if (!(known as readonly string[]).includes(g)) {
      const near = closest(g, known);
      throw usage(
        `--${flag}: unknown ${flag.replace(/ies$/, "y").replace(/s$/, "")} ${JSON.stringify(g)}${near ? ` (did you mean ${near}?)` : ""}; known: ${known.join(", ")}`,
      );
    }
    if (!out.includes(g as T)) out.push(g as T);
  }
  if (out.length === 0) throw usage(`--${flag} names nothing`);
  return out;
}

/** The progress line, on stderr and only on a terminal. */
function progress(): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const t0 = Date.now();
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 200) return;
    last = now;
    const s = ((now - t0) / 1000).toFixed(1);
    process.stderr.write(
      `\r\x1b[2Klab: ${done}/${total} runs (${Math.floor((100 * done) / total)}%), ${s} s${done === total ? "\n" : ""}`,
    );
  };
}

export function labCommand(): Command {
  return new Command("lab")
    .description(
      "measure the six strategies against five release scenarios in simulation, and set each one's risk and ease of rollback beside how it is usually rated",
    )
    .option(
      "--seeds <n>",
      `seeds per strategy and scenario (default ${DEFAULT_SEEDS}; with --live ${DEFAULT_LIVE_SEEDS})`,
    )
    .option("--seed <s>", "the first seed", String(DEFAULT_SEED))
    .option("--strategies <names...>", `some of: ${STRATEGIES.join(", ")}`)
    .option("--scenarios <names...>", `some of: ${SCENARIOS.join(", ")}`)
    .addOption(
      new Option("-o, --output <format>", "table or json")
        .choices(["table", "json"])
        .default("table"),
    )
    .option("--svg <file>", "also draw risk against recovery time into this SVG file")
    .option(
      "--explain",
      "print what the lab runs (traffic, steps, templates, assumptions) and exit",
    )
    .option("--workers <n>", "worker processes (default: the machine's cores)")
    .option(
      "--live",
      "run the scenarios through a real Turnout, the router and the example model's processes, 10 times faster, beside the simulated figures",
    )
    .action(async (opts: LabOpts) => {
      if (opts.explain) {
        process.stdout.write(`${explainLab()}\n`);
        return;
      }
      const seeds = whole(
        "seeds",
        opts.seeds ?? String(opts.live ? DEFAULT_LIVE_SEEDS : DEFAULT_SEEDS),
        1,
      );
      const seed = whole("seed", opts.seed, 0);
      const strategies = names<StrategyName>("strategies", opts.strategies, STRATEGIES);
      const scenarios = names<ScenarioName>("scenarios", opts.scenarios, SCENARIOS);
      if (opts.live && opts.svg) {
        throw usage("--svg draws the simulated lab; it does not go with --live");
      }
      if (opts.live) {
        const tty = process.stderr.isTTY;
        const report = await runLive({
          seeds,
          seed,
          strategies,
          scenarios,
          ...(tty ? { onRun: (line: string) => process.stderr.write(`${line}\n`) } : {}),
        });
        if (opts.output === "json")
          process.stdout.write(`${JSON.stringify(liveJson(report), null, 2)}\n`);
        else process.stdout.write(`${formatLive(report)}\n`);
        return;
      }
      const workers =
        opts.workers === undefined ? defaultWorkers() : whole("workers", opts.workers, 1);
      const runs = seeds * strategies.length * scenarios.length;
      const onProgress = progress();
      const report: LabReport = await runLab({
        seeds,
        seed,
        strategies,
        scenarios,
        // Small labs run here: a worker's start-up would cost more than it saves.
        ...(workers > 1 && runs >= 60 ? { execute: workerPool(workers) } : {}),
        ...(onProgress ? { onProgress } : {}),
      });
      if (opts.svg) writeFileSync(opts.svg, labSvg(report));
      if (opts.output === "json")
        process.stdout.write(`${JSON.stringify(toJson(report), null, 2)}\n`);
      else process.stdout.write(`${formatReport(report)}\n`);
    });
}
