/**
 * `turnout flags get|set|enable|disable|reset|history` and `turnout get flags`: the flag admin
 * API (`src/api/flags.ts`) from the command line. `disable` is the kill switch: it returns once
 * OFREP and the routers evaluate the flag as off.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { stringify as toYaml } from "yaml";
import type { FlagCondition, FlagSpec, SegmentSpec } from "../core/flags/types.js";
import { TurnoutError } from "../errors.js";
import { positiveInt } from "./arg-parsers.js";
import type { Client } from "./client.js";
import { bold, dim, green, red, table } from "./format.js";

type Output = "text" | "json" | "yaml";

interface FlagListItem {
  name: string;
  generation: number;
  type: string;
  state: "ENABLED" | "DISABLED";
  defaultVariant: string;
  variants: string[];
  rollout: { variant: string; percentage: number } | null;
  rules: number;
  override: { override: Record<string, unknown>; actor: string; reason: string | null } | null;
}

interface FlagView {
  name: string;
  generation: number;
  effective: FlagSpec;
  override: { override: Record<string, unknown>; actor: string; reason: string | null } | null;
  message?: string;
}

interface HistoryEntry {
  time: number;
  actor: string;
  action: string;
  message: string;
}

function print(data: unknown, output: Output, human: () => string): void {
  if (output === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (output === "yaml") process.stdout.write(toYaml(data));
  else process.stdout.write(`${human()}\n`);
}

const outputOption = () =>
  new Option("-o, --output <format>", "text, json or yaml")
    .choices(["text", "json", "yaml"])
    .default("text");

function state(s: string): string {
  // The resource's own words: "on" read like the variant of that name.
  return s === "ENABLED" ? green("ENABLED") : red("DISABLED (every context gets the default)");
}

function describeFlag(v: FlagView): string {
  const e = v.effective;
  const lines = [
    `${bold(v.name)}  ${dim(`${e.type}, generation ${v.generation}`)}`,
    `state:    ${state(e.state)}`,
    `default:  ${e.defaultVariant} = ${JSON.stringify(e.variants[e.defaultVariant])}`,
    `variants: ${Object.entries(e.variants)
      .map(([k, val]) => `${k}=${JSON.stringify(val)}`)
      .join(", ")}`,
  ];
  if (e.rollout) lines.push(`rollout:  ${e.rollout.percentage}% get ${e.rollout.variant}`);
  if (e.rules?.length)
    lines.push(`rules:    ${e.rules.map((r, i) => r.name ?? `rule ${i + 1}`).join(", ")}`);
  if (v.override)
    lines.push(
      `override: ${JSON.stringify(v.override.override)} by ${v.override.actor}${v.override.reason ? ` (${v.override.reason})` : ""}`,
    );
  return lines.join("\n");
}

/** `turnout get flags [NAME]` (called from main.ts's `get`). */
export async function getFlags(c: Client, name: string | undefined, output: Output): Promise<void> {
  if (name !== undefined) {
    const v = await c.call<FlagView>("GET", `/api/v1/flags/${encodeURIComponent(name)}`);
    print(v, output, () => describeFlag(v));
    return;
  }
  const res = await c.call<{ flags: FlagListItem[] }>("GET", "/api/v1/flags");
  print(res, output, () =>
    res.flags.length === 0
      ? dim("no flags")
      : table([
          ["NAME", "TYPE", "STATE", "DEFAULT", "ROLLOUT", "RULES", "OVERRIDE"],
          ...res.flags.map((f) => [
            f.name,
            f.type,
            f.state,
            f.defaultVariant,
            f.rollout ? `${f.rollout.percentage}% ${f.rollout.variant}` : "-",
            String(f.rules),
            f.override ? JSON.stringify(f.override.override) : "-",
          ]),
        ]),
  );
}

interface SegmentItem {
  name: string;
  generation: number;
  spec: SegmentSpec;
  usedBy: string[];
}

function condition(c: FlagCondition): string {
  const v = c.values !== undefined ? JSON.stringify(c.values) : JSON.stringify(c.value ?? null);
  return `${c.attribute} ${c.op} ${v}`;
}

/** `turnout get segments [NAME]`: conditions, included/excluded keys, the flags using each. */
export async function getSegments(
  c: Client,
  name: string | undefined,
  output: Output,
): Promise<void> {
  const res = await c.call<{ segments: SegmentItem[] }>("GET", "/api/v1/segments");
  const items = name ? res.segments.filter((s) => s.name === name) : res.segments;
  if (name && items.length === 0)
    throw new TurnoutError("TURNOUT_ERR_RESOURCE_NOT_FOUND", `no Segment named ${name}`, {
      path: "name",
    });
  print(name ? items[0] : { segments: items }, output, () =>
    items.length === 0
      ? dim("no segments")
      : table([
          ["NAME", "CONDITIONS", "INCLUDED", "EXCLUDED", "USED BY"],
          ...items.map((s) => [
            s.name,
            (s.spec.conditions ?? []).map(condition).join(" and ") || "-",
            String(s.spec.included?.length ?? 0),
            String(s.spec.excluded?.length ?? 0),
            s.usedBy.join(", ") || "-",
          ]),
        ]),
  );
}

function percentage(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 100)
    throw new InvalidArgumentError("must be a number 0..100");
  return n;
}

export function registerFlagsCommands(program: Command, client: (cmd: Command) => Client): void {
  const flags = program
    .command("flags")
    .description("feature flags: show, roll out, kill switch, history");

  flags
    .command("get")
    .description("list flags, or show one with its effective state")
    .argument("[flag]")
    .addOption(outputOption())
    .action(async (name: string | undefined, opts: { output: Output }, cmd: Command) => {
      await getFlags(client(cmd), name, opts.output);
    });

  const change = (
    action: "enable" | "disable" | "set" | "reset",
    description: string,
    extra?: (c: Command) => Command,
  ) => {
    let c = flags
      .command(action)
      .description(description)
      .argument("<flag>")
      .option("--reason <text>", "why; recorded in the flag's history")
      .addOption(outputOption());
    if (extra) c = extra(c);
    c.action(
      async (
        name: string,
        opts: { reason?: string; output: Output; percentage?: number; variant?: string },
        cmd: Command,
      ) => {
        if (action === "set" && opts.percentage === undefined && opts.variant === undefined)
          throw new TurnoutError(
            "TURNOUT_ERR_CLI_USAGE",
            "flags set needs --percentage P and/or --variant V (e.g. turnout flags set FLAG --percentage 10)",
          );
        const body: Record<string, unknown> = {};
        if (opts.reason) body.reason = opts.reason;
        if (opts.percentage !== undefined) body.percentage = opts.percentage;
        if (opts.variant !== undefined) body.variant = opts.variant;
        const v = await client(cmd).call<FlagView>(
          "POST",
          `/api/v1/flags/${encodeURIComponent(name)}/${action}`,
          body,
        );
        print(
          v,
          opts.output,
          () => `${green(action)}: ${v.message ?? "done"}\n\n${describeFlag(v)}`,
        );
      },
    );
  };
  change("enable", "turn a flag on (undoes the kill switch and a rollout's kill)");
  change("disable", "kill switch: everyone gets the default variant, at once (OFREP and routers)");
  change("set", "set the rollout percentage and/or the variant served", (c) =>
    c
      .option("--percentage <p>", "percent of contexts on the rollout variant (0..100)", percentage)
      .option("--variant <v>", "with --percentage: the variant rolled out; alone: served to all"),
  );
  change("reset", "remove a person's override: the resource and rollouts decide again");

  flags
    .command("history")
    .description("every change of a flag: resource generations, people, rollouts")
    .argument("<flag>")
    .option("--limit <n>", "at most this many entries (the most recent)", positiveInt)
    .addOption(outputOption())
    .action(async (name: string, opts: { output: Output; limit?: number }, cmd: Command) => {
      const q = opts.limit ? `?limit=${opts.limit}` : "";
      const res = await client(cmd).call<{ name: string; history: HistoryEntry[] }>(
        "GET",
        `/api/v1/flags/${encodeURIComponent(name)}/history${q}`,
      );
      print(res, opts.output, () =>
        res.history.length === 0
          ? dim("no history")
          : // The same columns and timestamps as `turnout history`.
            table([
              ["TIME", "CHANGE", "BY", "WHAT"],
              ...res.history.map((h) => [
                new Date(h.time).toISOString().replace("T", " ").slice(0, 19),
                h.action,
                h.actor,
                h.message,
              ]),
            ]),
      );
    });
}
