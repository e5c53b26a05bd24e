#!/usr/bin/env node
/**
 * `turnout`: the command line. Exit codes: 0 success, 1 failure, 2 usage error.
 * Client commands take --server with --token (or TURNOUT_SERVER/TURNOUT_TOKEN), or else the
 * live server recorded in the data dir with its token; never a mix (see client.ts).
 */
import { networkInterfaces } from "node:os";
import { Argument, Command, CommanderError, Option } from "commander";
import { stringify as toYaml } from "yaml";
import { parseDuration } from "../core/duration.js";
import type { ServiceResource, ServiceStatus, TurnoutEvent } from "../core/model.js";
import { plural } from "../core/plural.js";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from "../defaults.js";
import { type FieldError, formatFieldError, TurnoutError } from "../errors.js";
import { getNotifiers } from "../notify/cli.js";
import { packageVersion } from "../version.js";
import { positiveInt, positiveSeconds } from "./arg-parsers.js";
import { ApiError, Client } from "./client.js";
import { registerDashboardCommand } from "./dashboard.js";
import { registerEventsCommands } from "./events.js";
import { getExperiments, registerExperimentCommands } from "./experiment.js";
import { getFlags, getSegments, registerFlagsCommands } from "./flags.js";
import { getRouters } from "./fleet.js";
import {
  dim,
  formatHistory,
  formatServices,
  formatStatus,
  green,
  red,
  type StatusView,
  watchLine,
  yellow,
} from "./format.js";
import { labCommand } from "./lab.js";
import { logsVersionArgv, registerLogsCommand } from "./logs.js";
import { registerShadowCommands } from "./shadow.js";

type Output = "text" | "json" | "yaml";

interface GlobalOpts {
  server?: string;
  token?: string;
  dataDir?: string;
  ca?: string;
}

const program = new Command();
program
  .name("turnout")
  .description("Release new versions of services and ML models safely.")
  .version(packageVersion(), "-V, --version")
  .option(
    "--server <url>",
    "Turnout API URL, used with --token (env TURNOUT_SERVER; default: the live server recorded in the data dir)",
  )
  .option(
    "--token <token>",
    "admin bearer token (env TURNOUT_TOKEN; default: the data dir's token, sent only to the data dir's own server)",
  )
  .option("--ca <file>", "CA certificate (PEM) to trust for an https server (env TURNOUT_CA)")
  .option(
    "--data-dir <dir>",
    `data directory (env TURNOUT_DATA_DIR; default ./${DEFAULT_DATA_DIR})`,
  )
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

const outputOption = () =>
  new Option("-o, --output <format>", "output format")
    .choices(["text", "json", "yaml"])
    .default("text");

function client(cmd: Command): Client {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  return new Client({
    ...(g.server ? { server: g.server } : {}),
    ...(g.token ? { token: g.token } : {}),
    ...(g.dataDir ? { dataDir: g.dataDir } : {}),
    ...(g.ca ? { ca: g.ca } : {}),
  });
}

function print(data: unknown, output: Output, human: () => string): void {
  if (output === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (output === "yaml") process.stdout.write(toYaml(data));
  else process.stdout.write(`${human()}\n`);
}

// ---- up ---------------------------------------------------------------------------------

program
  .command("up")
  .description(
    "start Turnout: API on 127.0.0.1:4040, routers on the ports services name, controller; data in ./.turnout",
  )
  .option("--port <n>", "API port (env TURNOUT_PORT; 0 picks a free one)", parsePort)
  .option(
    "--host <host>",
    "API host (0.0.0.0 or :: listens on every interface: then use --tls-cert/--tls-key)",
    DEFAULT_HOST,
  )
  .option(
    "--tls-cert <file>",
    "serve the API over HTTPS with this certificate (PEM; with --tls-key)",
  )
  .option("--tls-key <file>", "the private key (PEM) of --tls-cert")
  .option(
    "--store <url>",
    "the store: postgres://USER@HOST:PORT/DB, shared by a fleet (default: SQLite in the data dir)",
  )
  .option(
    "--roles <list>",
    "what this process runs: api,controller,router (default all three; fewer need --store postgres://...)",
  )
  .option(
    "--router-address <addr>",
    "bind the services' listeners on this address instead of their spec's host (several routers on one machine)",
  )
  .option(
    "--metrics-address <host:port>",
    "also serve /metrics and /healthz on this address, whatever the roles: how Prometheus scrapes a router without the API (e.g. 0.0.0.0:9464; port 0 picks a free one)",
  )
  .option(
    "--lease <duration>",
    "with --store: the controller lease; a standby controller leads at most about this long after the leader stops renewing (1s to 5m, default 5s)",
    parseLease,
  )
  .option(
    "--token-file <file>",
    "the fleet's admin token, for the api role (default: env TURNOUT_TOKEN, else the data dir's token)",
  )
  .option(
    "--flag-keys-file <file>",
    "the fleet's flag client keys, one a line, for the api role (default: the data dir's flag-keys)",
  )
  .addOption(
    new Option(
      "--log-format <format>",
      "log lines on stderr: human (default on a terminal) or json (pino's, default in a pipe)",
    ).choices(["human", "json"]),
  )
  .option("-q, --quiet", "log warnings and errors only (TURNOUT_LOG_LEVEL, when set, wins)")
  .action(
    async (
      opts: {
        port?: number;
        host: string;
        tlsCert?: string;
        tlsKey?: string;
        store?: string;
        roles?: string;
        routerAddress?: string;
        metricsAddress?: string;
        lease?: number;
        tokenFile?: string;
        flagKeysFile?: string;
        logFormat?: "human" | "json";
        quiet?: boolean;
      },
      cmd: Command,
    ) => {
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
        throw new TurnoutError(
          "TURNOUT_ERR_CLI_USAGE",
          "--tls-cert and --tls-key go together: give both, or neither",
        );
      const { startFleetMember, parseRoles } = await import("../server.js");
      const { fleetToken, checkStoreUrl, parseMetricsAddress } = await import("./fleet.js");
      const { createUpLogger } = await import("./log-format.js");
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const envPort =
        process.env.TURNOUT_PORT !== undefined ? parsePort(process.env.TURNOUT_PORT) : undefined;
      // Everything given is checked before anything starts or is written (exit 2).
      if (opts.store !== undefined) checkStoreUrl(opts.store);
      const roles = parseRoles(opts.roles, opts.store);
      const metricsAddress =
        opts.metricsAddress !== undefined ? parseMetricsAddress(opts.metricsAddress) : undefined;
      if (opts.lease !== undefined && opts.store === undefined)
        throw new TurnoutError(
          "TURNOUT_ERR_CLI_USAGE",
          "--lease needs --store postgres://...: with the default SQLite store one controller runs, held by the data dir's lock, and there is no lease",
        );
      const logger = createUpLogger({ format: opts.logFormat, quiet: opts.quiet });
      // Only the API checks the admin token and serves OFREP to flag clients.
      const hasApi = roles.includes("api");
      for (const [flag, given] of [
        ["--token-file", opts.tokenFile],
        ["--flag-keys-file", opts.flagKeysFile],
      ] as const)
        if (!hasApi && given !== undefined)
          logger.warn(
            { roles },
            `${flag} is not used: only the api role checks the admin token and serves flag clients, and this process runs ${roles.join(",")}`,
          );
      const token = hasApi ? fleetToken(opts.tokenFile) : undefined;
      const t = await startFleetMember({
        ...(g.dataDir ? { dataDir: g.dataDir } : {}),
        host: opts.host,
        port: opts.port ?? envPort ?? DEFAULT_PORT,
        logger,
        ...(opts.tlsCert && opts.tlsKey
          ? { tls: { certFile: opts.tlsCert, keyFile: opts.tlsKey } }
          : {}),
        ...(opts.store !== undefined ? { storeUrl: opts.store } : {}),
        roles,
        ...(opts.routerAddress !== undefined ? { routerAddress: opts.routerAddress } : {}),
        ...(metricsAddress !== undefined ? { metricsAddress } : {}),
        ...(opts.lease !== undefined ? { leaseMs: opts.lease } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(opts.flagKeysFile !== undefined ? { flagKeysFile: opts.flagKeysFile } : {}),
      });
      // Handlers first: a signal sent as soon as the "listening" line is read must stop it.
      const stopped = waitForSignal(t.stop);
      const { listen } = t;
      // Not worded "listening on": that line names the API, and scripts wait for it (or for
      // "(no API)"), so this one comes first and cannot be taken for it.
      if (t.metricsUrl !== null)
        process.stdout.write(`Turnout /metrics and /healthz served at ${t.metricsUrl}\n`);
      if (listen === null) {
        process.stdout.write(
          `Turnout running roles ${roles.join(",")} (no API) on ${opts.store !== undefined ? "the shared store" : t.dataDir}\n`,
        );
      } else if (listen.allInterfaces) {
        const bound = listen.address.includes(":") ? `[${listen.address}]` : listen.address;
        const lan = networkUrls(listen.protocol, listen.port, listen.address === "0.0.0.0");
        process.stdout.write(
          `Turnout API listening on ${listen.protocol}://${bound}:${listen.port} (all interfaces): ${t.url} from this machine${lan.length > 0 ? `, ${lan.join(", ")} from the network` : ""}\n`,
        );
      } else {
        process.stdout.write(`Turnout API listening on ${t.url}\n`);
      }
      // The plain-HTTP-on-the-network warning is the server's log line (one, in either format).
      process.stdout.write(
        dim(
          `data in ${t.dataDir}${t.token !== null ? ` (token in ${t.dataDir}/token)` : ""}; Ctrl-C to stop\n`,
        ),
      );
      await stopped;
    },
  );

// ---- resources --------------------------------------------------------------------------

type FileOpts = { filename: string[]; recursive?: boolean; output: Output };

const FILENAME_HELP =
  "YAML or JSON: a file, a directory (its .yaml, .yml and .json files; subdirectories with -R), or - for stdin";
const RECURSIVE_HELP =
  "with -f DIR: read its subdirectories too (hidden ones and node_modules skipped)";

program
  .command("validate")
  .description(
    "check resource files offline (all errors at once, with file, document and field path)",
  )
  .requiredOption("-f, --filename <path...>", FILENAME_HELP)
  .option("-R, --recursive", RECURSIVE_HELP)
  .addOption(outputOption())
  .action(async (opts: FileOpts) => {
    const { resources, errors } = await loadAll(opts.filename, opts.recursive === true);
    if (opts.output !== "text") {
      print(
        { valid: errors.length === 0, resources: resources.map(ref), errors },
        opts.output,
        () => "",
      );
    } else if (errors.length === 0) {
      process.stdout.write(
        `${green("valid")}: ${resources.map((r) => `${r.kind}/${r.name}`).join(", ") || "no resources"}\n`,
      );
    } else {
      printFieldErrors(errors);
    }
    if (errors.length > 0) process.exitCode = 1;
  });

program
  .command("apply")
  .description(
    "create or update resources from files (validated first; nothing changes if any is invalid)",
  )
  .requiredOption("-f, --filename <path...>", FILENAME_HELP)
  .option("-R, --recursive", RECURSIVE_HELP)
  .addOption(outputOption())
  .action(async (opts: FileOpts, cmd: Command) => {
    const { errors, raw, place } = await loadAll(opts.filename, opts.recursive === true);
    if (errors.length > 0) {
      printFieldErrors(errors);
      process.exitCode = 1;
      return;
    }
    const res = await client(cmd)
      .call<{
        results: {
          kind: string;
          name: string;
          action: string;
          generation: number;
          /** What the apply will do to the rollout (a changed spec.version), from the API. */
          note?: string;
        }[];
      }>("POST", "/api/v1/apply", { resources: raw })
      .catch((err: unknown) => {
        // The API's errors (a missing template, a port a stored service holds) name resource
        // and field; the files say where that is, as `validate` shows its own.
        if (err instanceof ApiError && err.errors)
          throw new ApiError(err.status, err.code, err.message, err.path, place(err.errors));
        throw err;
      });
    print(res, opts.output, () =>
      res.results
        .map(
          (r) =>
            `${r.kind.toLowerCase()}/${r.name} ${r.action} ${dim(`(generation ${r.generation})`)}${
              r.note ? `\n  ${/set by `turnout undo`/.test(r.note) ? yellow(r.note) : r.note}` : ""
            }`,
        )
        .join("\n"),
    );
  });

program
  .command("get")
  .description(
    "list resources: services | analysistemplates | flags | segments | experiments | notifiers | routers",
  )
  .argument(
    "<kind>",
    "services, analysistemplates, flags, segments, experiments, notifiers or routers",
  )
  .argument("[name]", "one resource by name")
  .addOption(outputOption())
  .action(
    async (kind: string, name: string | undefined, opts: { output: Output }, cmd: Command) => {
      const c = client(cmd);
      const k = kind.toLowerCase();
      if (["service", "services", "svc"].includes(k)) {
        const res = await c.call<{
          items: {
            name: string;
            generation: number;
            resource: ServiceResource;
            status: ServiceStatus | null;
          }[];
        }>("GET", "/api/v1/services");
        const items = name ? res.items.filter((i) => i.name === name) : res.items;
        if (name && items.length === 0)
          throw new ApiError(
            404,
            "TURNOUT_ERR_SERVICE_NOT_FOUND",
            `no service named ${JSON.stringify(name)}`,
          );
        if (opts.output === "text")
          print(null, "text", () => (items.length ? formatServices(items) : dim("no services")));
        else print(name ? items[0] : { items }, opts.output, () => "");
        return;
      }
      if (["analysistemplate", "analysistemplates", "at"].includes(k)) {
        const res = await c.call<{
          items: {
            name: string;
            generation: number;
            resource: { spec: { metrics: { name: string }[] } };
          }[];
        }>("GET", "/api/v1/analysistemplates");
        const items = name ? res.items.filter((i) => i.name === name) : res.items;
        print(name ? items[0] : { items }, opts.output, () =>
          items.length
            ? items
                .map(
                  (i) =>
                    `${i.name}  ${dim(`metrics: ${i.resource.spec.metrics.map((m) => m.name).join(", ")}`)}`,
                )
                .join("\n")
            : dim("no analysis templates"),
        );
        return;
      }
      if (["flag", "flags"].includes(k)) return getFlags(c, name, opts.output);
      if (["segment", "segments", "seg"].includes(k)) return getSegments(c, name, opts.output);
      if (["experiment", "experiments", "exp"].includes(k))
        return getExperiments(c, name, opts.output);
      if (["notifier", "notifiers"].includes(k)) return getNotifiers(c, name, opts.output);
      if (["router", "routers"].includes(k)) return getRouters(c, name, opts.output);
      throw new TurnoutError(
        "TURNOUT_ERR_CLI_USAGE",
        `unknown kind ${JSON.stringify(kind)}; known: services, analysistemplates, flags, segments, experiments, notifiers, routers`,
      );
    },
  );

/** `turnout delete KIND NAME`: the kind as typed (singular, plural, short) -> its API path. */
const DELETE_KINDS: Record<string, { path: string; kind: string }> = {
  service: { path: "services", kind: "service" },
  services: { path: "services", kind: "service" },
  svc: { path: "services", kind: "service" },
  flag: { path: "flags", kind: "flag" },
  flags: { path: "flags", kind: "flag" },
  segment: { path: "segments", kind: "segment" },
  segments: { path: "segments", kind: "segment" },
  analysistemplate: { path: "analysistemplates", kind: "analysistemplate" },
  analysistemplates: { path: "analysistemplates", kind: "analysistemplate" },
  template: { path: "analysistemplates", kind: "analysistemplate" },
  notifier: { path: "notifiers", kind: "notifier" },
  notifiers: { path: "notifiers", kind: "notifier" },
};

program
  .command("delete")
  .description(
    "delete a resource: a service (its instances stop), or a flag, segment, analysis template or notifier no other resource refers to; history is kept",
  )
  .argument("<kind>", "service, flag, segment, analysistemplate or notifier")
  .argument("<name>", "the resource's name")
  .action(async (kind: string, name: string, _o: unknown, cmd: Command) => {
    const k = DELETE_KINDS[kind.toLowerCase()];
    if (k === undefined)
      throw new TurnoutError(
        "TURNOUT_ERR_CLI_USAGE",
        `cannot delete ${JSON.stringify(kind)}: the kinds are service, flag, segment, analysistemplate and notifier`,
      );
    await client(cmd).call("DELETE", `/api/v1/${k.path}/${encodeURIComponent(name)}`);
    process.stdout.write(`${k.kind}/${name} deleted\n`);
  });

// ---- status and history -----------------------------------------------------------------

program
  .command("status")
  .description("show a service's rollout: phase and why, weights, steps, live traffic")
  .argument("<service>")
  .addOption(outputOption())
  .option(
    "-w, --watch",
    "keep showing until the rollout ends (exit 0 when it completes, 1 when Degraded)",
  )
  .option(
    "--timeout <seconds>",
    "with --watch: give up after this many seconds (exit 1)",
    positiveSeconds,
  )
  .action(
    async (
      service: string,
      opts: { output: Output; watch?: boolean; timeout?: number },
      cmd: Command,
    ) => {
      const c = client(cmd);
      const path = `/api/v1/services/${encodeURIComponent(service)}/status`;
      if (!opts.watch) {
        const v = await c.call<StatusView>("GET", path);
        print(v, opts.output, () => formatStatus(v));
        return;
      }
      const deadline = opts.timeout ? Date.now() + opts.timeout * 1000 : Number.POSITIVE_INFINITY;
      let last = "";
      for (;;) {
        const v = await c.call<StatusView>("GET", path);
        if (opts.output === "text" && !process.stdout.isTTY) {
          // In a pipe, a line per change, not a block per second of traffic counters.
          const w = watchLine(v, new Date());
          if (w.key !== last) process.stdout.write(`${w.line}\n`);
          last = w.key;
        }
        const text = opts.output === "text" ? formatStatus(v) : JSON.stringify(v);
        if (text !== last && (opts.output !== "text" || process.stdout.isTTY)) {
          if (opts.output === "text" && process.stdout.isTTY) process.stdout.write("\x1b[2J\x1b[H");
          else if (last && opts.output === "text") process.stdout.write("\n");
          print(v, opts.output, () => formatStatus(v));
          last = text;
        }
        const phase = v.status?.phase;
        const settled =
          v.status && !v.status.canaryVersion && v.status.observedGeneration >= v.generation;
        if (settled && phase !== "Progressing" && phase !== "Paused") {
          if (phase === "Degraded") process.exitCode = 1;
          return;
        }
        if (Date.now() > deadline) {
          process.stderr.write(
            red(`timed out after ${opts.timeout}s; the rollout is still ${phase}\n`),
          );
          process.exitCode = 1;
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    },
  );

program
  .command("history")
  .description("a service's event history: what changed, who did it and why")
  .argument("<service>")
  .addOption(outputOption())
  .option("--limit <n>", "at most this many events (the most recent)", positiveInt)
  .action(async (service: string, opts: { output: Output; limit?: number }, cmd: Command) => {
    const res = await client(cmd).call<{ service: string; events: TurnoutEvent[] }>(
      "GET",
      `/api/v1/services/${encodeURIComponent(service)}/history`,
    );
    const events = opts.limit ? res.events.slice(-opts.limit) : res.events;
    print({ service, events }, opts.output, () => formatHistory(events));
  });

// ---- rollout commands -------------------------------------------------------------------

const actions: [string, string, boolean][] = [
  [
    "promote",
    "go to the next step (--full: skip every remaining step, 100% to the new version)",
    true,
  ],
  ["abort", "send all traffic back to the stable version at once (phase Degraded)", false],
  ["pause", "hold the rollout at its current step", false],
  ["resume", "continue a paused rollout", false],
  ["retry", "start an aborted rollout again from its first step", false],
  ["undo", "roll back to the previous stable version", false],
];
for (const [name, description, hasFull] of actions) {
  const c = program
    .command(name)
    .description(description)
    .argument("<service>")
    .option("--reason <text>", "why; recorded in the history")
    .addOption(outputOption());
  if (hasFull) c.option("--full", "skip all remaining steps");
  c.action(
    async (
      service: string,
      opts: { reason?: string; full?: boolean; output: Output },
      cmd: Command,
    ) => {
      const body: Record<string, unknown> = {};
      if (opts.reason) body.reason = opts.reason;
      if (opts.full) body.full = true;
      const res = await client(cmd).call<
        StatusView & { command?: { message: string }; undo?: { from: string; to: string } }
      >("POST", `/api/v1/services/${encodeURIComponent(service)}/${name}`, body);
      print(res, opts.output, () => {
        const head = res.undo
          ? `${green("undo")}: desired version ${res.undo.from} -> ${res.undo.to}`
          : `${green(name)}: ${res.command?.message ?? "done"}`;
        return `${head}\n\n${formatStatus(res)}`;
      });
    },
  );
}

registerLogsCommand(program, client);
registerFlagsCommands(program, client);
registerExperimentCommands(program, client);
registerShadowCommands(program, client);
registerDashboardCommand(program, client);
registerEventsCommands(program, client);

program.addCommand(labCommand());

program
  .command("completion")
  .description("print a shell completion script: source <(turnout completion bash)")
  .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"]))
  .action(async (shell: "bash" | "zsh" | "fish") => {
    const { completionScript } = await import("./completion.js");
    process.stdout.write(completionScript(shell, program));
  });

// ---- demo -------------------------------------------------------------------------------

program
  .command("demo")
  .description(
    "the six strategies end to end on an example model (canary with automatic rollback, rolling and blue-green under load, shadow, A/B test, blue-green with feature flags), the canary again on HAProxy when it is installed, and a quick strategy lab, in a temp data dir (--keep keeps it); exits 0 when all went as expected",
  )
  .option("--keep", "keep the demo's data dir instead of deleting it")
  .action(async (opts: { keep?: boolean }) => {
    const { runDemo } = await import("./demo.js");
    process.exitCode = await runDemo({ keep: opts.keep === true });
  });

// ---- plumbing ---------------------------------------------------------------------------

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `port must be an integer 0..65535, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** `--lease 5s`: a duration from 1 s to 5 min. */
function parseLease(v: string): number {
  const d = parseDuration(v);
  if ("error" in d)
    throw new TurnoutError("TURNOUT_ERR_CLI_USAGE", `--lease: ${d.error} (for example 5s)`);
  if (d.ms < 1_000 || d.ms > 300_000)
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `--lease must be from 1s to 5m, got ${JSON.stringify(v)}: a standby takes over about one lease after the leader stops renewing`,
    );
  return d.ms;
}

function ref(r: { kind: string; name: string }) {
  return { kind: r.kind, name: r.name };
}

async function loadAll(paths: string[], recursive: boolean) {
  const { loadPaths } = await import("../resources/load.js");
  // One set: clashes between files (same name, same port) still carry file and line.
  const { checkAnalysisRefs } = await import("../resources/refs.js");
  const r = await loadPaths(paths, { recursive, stdin: process.stdin });
  // Offline: templates may already be on the server, so only the files' own are checked.
  const refs = checkAnalysisRefs(r.resources, [], { requireKnownTemplates: false });
  const { checkTraffic } = await import("../resources/traffic.js");
  return {
    resources: r.resources.map((x) => ({ kind: x.kind, name: x.metadata.name })),
    errors: r.place([...r.errors, ...refs, ...checkTraffic(r.resources)]),
    raw: r.resources as unknown[],
    place: r.place,
  };
}

function printFieldErrors(errors: FieldError[]): void {
  process.stderr.write(`${red(plural(errors.length, "problem"))}:\n`);
  for (const e of errors) process.stderr.write(`  ${formatFieldError(e)}\n`);
}

/** The machine's non-loopback addresses as API URLs, IPv4 first. */
function networkUrls(protocol: string, port: number, ipv4Only: boolean): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || (ipv4Only && a.family !== "IPv4")) continue;
      out.push(`${protocol}://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${port}`);
    }
  }
  return out.sort((x, y) => Number(x.includes("[")) - Number(y.includes("["))).slice(0, 4);
}

function waitForSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write("forced exit\n");
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(dim(`\n${sig}: stopping (instances get their grace period)...\n`));
      void stop().then(resolve, (err: unknown) => {
        process.stderr.write(`error while stopping: ${String(err)}\n`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    if (
      err.code === "commander.helpDisplayed" ||
      err.code === "commander.version" ||
      err.code === "commander.help"
    )
      return 0;
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof ApiError) {
    // With the list below, the summary's "first: ..." would say the first problem twice. The
    // error's `path` is for API clients (e.g. "name", the URL's): the message names the thing.
    const message = err.errors ? err.message.replace(/; first: [\s\S]*$/, "") : err.message;
    process.stderr.write(
      `${red("error")}: ${message} ${dim(`[${err.code}]`)}${err.errors ? ":" : ""}\n`,
    );
    if (err.errors) for (const e of err.errors) process.stderr.write(`  ${formatFieldError(e)}\n`);
    return 1;
  }
  if (err instanceof TurnoutError) {
    process.stderr.write(`${red("error")}: ${err.message} ${dim(`[${err.code}]`)}\n`);
    return err.code === "TURNOUT_ERR_CLI_USAGE" || err.code === "TURNOUT_ERR_STORE_URL_INVALID"
      ? 2
      : 1;
  }
  const e = err as { code?: string; message?: string };
  if (e?.code === "EADDRINUSE") {
    // Not another Turnout on this data dir (its lock would have said so): another program, or
    // a Turnout on another data dir.
    process.stderr.write(
      `${red("error")}: ${e.message}: another program, or a Turnout on another data dir, holds that address; if it is the API's, pick another with --port (the metrics listener's: --metrics-address)\n`,
    );
    return 1;
  }
  process.stderr.write(`${red("error")}: ${e?.message ?? String(err)}\n`);
  if (process.env.TURNOUT_DEBUG) console.error(err);
  return 1;
}

export { program };

// Imported as `main.js?commands` (the CLI reference, docs/reference/cli.md, and its test), the
// module only builds the command tree; run as the `turnout` binary, it parses the command line.
if (!new URL(import.meta.url).searchParams.has("commands")) {
  try {
    await program.parseAsync(logsVersionArgv(process.argv));
  } catch (err) {
    process.exitCode = reportError(err);
  }
}
