/**
 * `turnout events post`: outcome events for A/B experiments from the command line, through
 * `POST /api/v1/events` (the route an application calls). One event from options, or a batch
 * from a JSON file (`{"events": [...]}` or a bare array; `-f -` reads stdin).
 *
 *   turnout events post --unit user-42 --metric purchase --value 19.99
 *   turnout events post -f events.json
 *
 * Without `--key`, the event gets a fresh idempotency key, so posting the same command twice
 * counts twice; give `--key` when a retry must not.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import { plural } from "../core/plural.js";
import { MAX_EVENTS_PER_REQUEST as MAX_BATCH } from "../defaults.js";
import { TurnoutError } from "../errors.js";
import { INPUT_LIMITS, parseJsonBounded } from "../resources/input-limits.js";
import type { Client } from "./client.js";
import { dim, green, yellow } from "./color.js";

interface PostOptions {
  file?: string;
  unit?: string;
  metric?: string;
  value?: number;
  key?: string;
  timestamp?: string;
  output: "text" | "json";
}

interface EventsAnswer {
  received: number;
  accepted: number;
  duplicates: number;
  unknownMetrics?: { metric: string; events: number; didYouMean?: string }[];
  warning?: string;
}

/** Files hold many requests' worth of events: bigger than one request, as deep as any input. */
const FILE_LIMITS = {
  ...INPUT_LIMITS,
  maxBytes: 512 * 1024 * 1024,
  maxNodes: 50_000_000,
};

const finite = (v: string) => {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("not a number");
  return n;
};

export function registerEventsCommands(program: Command, client: (cmd: Command) => Client): void {
  const events = program.command("events").description("outcome events for A/B experiments");
  events
    .command("post")
    .description(
      "post outcome events: one from --unit and --metric, or a batch from a JSON file (-f)",
    )
    .option("-f, --file <file>", 'a JSON file: {"events": [...]} or an array ("-" for stdin)')
    .option("--unit <id>", "who the event is about: the experiment's assignment key (a user id)")
    .option("--metric <name>", "the event's name, as an experiment's metric reads it")
    .option("--value <n>", "the event's value (absent: a count of 1)", finite)
    .option(
      "--key <key>",
      "idempotency key (default: a fresh one, so a repeat counts again); a retry sends the same key and --timestamp",
    )
    .option("--timestamp <time>", "when it happened: ISO 8601 or epoch ms (default: now)")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (opts: PostOptions, cmd: Command) => {
      const list = opts.file !== undefined ? await fromFile(opts.file) : [one(opts)];
      const res = await postInBatches(client(cmd), list);
      if (opts.output === "json") {
        process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${green(`${res.accepted} accepted`)}${res.duplicates > 0 ? `, ${res.duplicates} already recorded (same idempotency key)` : ""} ${dim(`of ${res.received}`)}\n`,
      );
      for (const u of res.unknownMetrics ?? []) {
        process.stderr.write(
          `${yellow("warning")}: no experiment reads metric ${JSON.stringify(u.metric)} (${plural(u.events, "event")}; stored, but counted in no result)${u.didYouMean ? `; did you mean ${JSON.stringify(u.didYouMean)}?` : ""}\n`,
        );
      }
    });
}

/**
 * The API takes at most MAX_BATCH events a request: a bigger file goes in batches, in order,
 * and the answers add up. A batch that fails stops the rest and says how far it got; the
 * events' idempotency keys make posting the whole file again safe.
 */
async function postInBatches(c: Client, list: unknown[]): Promise<EventsAnswer> {
  const total: EventsAnswer = { received: 0, accepted: 0, duplicates: 0 };
  const unknown = new Map<string, { metric: string; events: number; didYouMean?: string }>();
  for (let from = 0; from < Math.max(1, list.length); from += MAX_BATCH) {
    const batch = list.slice(from, from + MAX_BATCH);
    let res: EventsAnswer;
    try {
      res = await c.call<EventsAnswer>("POST", "/api/v1/events", { events: batch });
    } catch (err) {
      if (from > 0 && err instanceof Error)
        err.message = `${err.message} (events ${from + 1} to ${from + batch.length} of ${list.length}; the ${from} before were posted: posting the file again is safe, their idempotency keys make repeats count once)`;
      throw err;
    }
    total.received += res.received;
    total.accepted += res.accepted;
    total.duplicates += res.duplicates;
    for (const u of res.unknownMetrics ?? []) {
      const seen = unknown.get(u.metric);
      if (seen) seen.events += u.events;
      else unknown.set(u.metric, { ...u });
    }
  }
  if (unknown.size > 0) total.unknownMetrics = [...unknown.values()];
  return total;
}

function usage(message: string): TurnoutError {
  return new TurnoutError("TURNOUT_ERR_CLI_USAGE", message);
}

function one(opts: PostOptions): Record<string, unknown> {
  if (opts.unit === undefined || opts.metric === undefined)
    throw usage(
      "events post needs --unit and --metric (one event), or -f FILE (a batch); see turnout events post --help",
    );
  let timestamp = Date.now();
  if (opts.timestamp !== undefined) {
    const t = /^\d+$/.test(opts.timestamp) ? Number(opts.timestamp) : Date.parse(opts.timestamp);
    if (!Number.isFinite(t))
      throw usage(`--timestamp: not ISO 8601 or epoch ms: ${JSON.stringify(opts.timestamp)}`);
    timestamp = t;
  }
  return {
    idempotencyKey: opts.key ?? `cli-${randomUUID()}`,
    unit: opts.unit,
    metric: opts.metric,
    ...(opts.value !== undefined ? { value: opts.value } : {}),
    timestamp,
  };
}

async function fromFile(file: string): Promise<unknown[]> {
  let text: string;
  try {
    text = file === "-" ? await readStdin() : await readFile(file, "utf8");
  } catch (err) {
    // A usage error with its code, like every other, not node's bare ENOENT line.
    throw usage(`cannot read --file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    // Depth and size are bounded before parsing (as everywhere user input is parsed), with
    // room for files far bigger than one request: they are posted in batches.
    parsed = parseJsonBounded(text, FILE_LIMITS, file);
  } catch (err) {
    if (err instanceof TurnoutError) throw err;
    throw usage(`${file}: not JSON (${(err as Error).message})`);
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { events?: unknown } | null)?.events;
  if (!Array.isArray(list)) throw usage(`${file}: expected {"events": [...]} or an array`);
  return list;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
