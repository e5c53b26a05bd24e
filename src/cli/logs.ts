/**
 * `turnout logs SERVICE [VERSION] [--instance N] [--tail N] [--follow]`: the output of a
 * service's process-runtime instances, through `GET /api/v1/services/:name/logs` (so it works
 * against a remote Turnout as well). `--follow` polls with each instance's byte offset; an
 * instance that appears meanwhile (a new version, a restart on a new index) is followed from
 * its first line. Ctrl-C ends it.
 *
 * The version is an argument, or `--version V`: commander reads program options anywhere on the
 * command line, so `--version` after `logs` would print Turnout's version; `logsVersionArgv`
 * rewrites it to the command's own `--only-version` before commander sees it.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import type { Client } from "./client.js";
import { dim } from "./format.js";

interface LogsAnswer {
  service: string;
  logs: { version: string; instance: number; offset: number; lines: string[] }[];
}

interface LogsOptions {
  version?: string;
  onlyVersion?: string;
  instance?: number;
  tail: number;
  follow?: boolean;
  output: "text" | "json";
  prefix?: boolean;
}

const FOLLOW_POLL_MS = 500;

export function registerLogsCommand(program: Command, client: (cmd: Command) => Client): void {
  program
    .command("logs")
    .description("show the output (stdout and stderr) of a service's instances (process runtime)")
    .argument("<service>")
    .argument("[version]", "only this version's instances")
    .option("--version <version>", "only this version's instances (as the argument)")
    .option("--instance <n>", "only the instance with this index", nonNegative)
    .option("--tail <n>", "lines per instance to show first", nonNegative, 100)
    .option("-f, --follow", "keep printing new lines until Ctrl-C")
    .option("-o, --output <format>", "text, or json (one object per answer)", "text")
    .addOption(new Option("--only-version <version>").hideHelp())
    .action(async (service: string, version: string | undefined, o: LogsOptions, cmd: Command) => {
      const v = version ?? o.onlyVersion;
      const { onlyVersion: _, ...rest } = o;
      const opts = { ...rest, ...(v !== undefined ? { version: v } : {}) };
      const c = client(cmd);
      const base = `/api/v1/services/${encodeURIComponent(service)}/logs`;
      const query = (extra: Record<string, string | number | undefined>) => {
        const q = new URLSearchParams();
        for (const [k, v] of Object.entries({
          version: opts.version,
          instance: opts.instance,
          ...extra,
        }))
          if (v !== undefined) q.set(k, String(v));
        return `${base}?${q}`;
      };
      const first = await c.call<LogsAnswer>("GET", query({ tail: opts.tail }));
      // A prefix only when lines of several instances mix.
      const many = () =>
        first.logs.length > 1 || Boolean(opts.follow && opts.instance === undefined);
      const show = (a: LogsAnswer["logs"]) => {
        if (opts.output === "json") {
          if (a.length > 0) process.stdout.write(`${JSON.stringify({ service, logs: a })}\n`);
          return;
        }
        for (const l of a) {
          const p = many() ? dim(`[${l.version}/${l.instance}] `) : "";
          for (const line of l.lines) process.stdout.write(`${p}${line}\n`);
        }
      };
      show(first.logs);
      if (!opts.follow) return;

      const key = (l: { version: string; instance: number }) => `${l.version}/${l.instance}`;
      const offsets = new Map(first.logs.map((l) => [key(l), l.offset]));
      for (;;) {
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        const known = await c.call<LogsAnswer>("GET", query({ tail: 0 }));
        const fresh: LogsAnswer["logs"] = [];
        for (const l of known.logs) {
          const from = offsets.get(key(l)) ?? 0;
          if (l.offset === from) continue;
          const next = await c.call<LogsAnswer>(
            "GET",
            `${base}?${new URLSearchParams({ version: l.version, instance: String(l.instance), from: String(from) })}`,
          );
          for (const n of next.logs) {
            offsets.set(key(n), n.offset);
            if (n.lines.length > 0) fresh.push(n);
          }
        }
        show(fresh);
      }
    });
}

function nonNegative(v: string): number {
  if (!/^\d{1,9}$/.test(v))
    throw new InvalidArgumentError(`must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * `turnout logs SERVICE --version V` as the issue and users write it: commander would take
 * `--version` for the program's own flag, so after `logs` it becomes `--only-version`.
 */
export function logsVersionArgv(argv: string[]): string[] {
  // The subcommand is the first word that is not a program option or its value.
  const takesValue = new Set(["--server", "--token", "--data-dir"]);
  let i = 2;
  while (i < argv.length && (argv[i] as string).startsWith("-"))
    i += takesValue.has(argv[i] as string) ? 2 : 1;
  if (argv[i] !== "logs") return argv;
  return argv.map((a, j) => {
    if (j <= i) return a;
    if (a === "--version") return "--only-version";
    if (a.startsWith("--version=")) return `--only-version=${a.slice("--version=".length)}`;
    return a;
  });
}
