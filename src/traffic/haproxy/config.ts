/**
 * A route table as HAProxy configuration: pure, so every line Turnout makes HAProxy run is
 * checked by unit tests, and the provider only writes files and talks to the runtime API.
 *
 * The shape (one HAProxy per service, see managed.ts):
 * - A frontend named after the service on its listener, and `<service>:preview` on the preview port when
 *   the table has one. The frontend picks the version exactly as the built-in router does
 *   (src/router/proxy.ts, exposures.ts `selectArm`, then select.ts), in the same order, and
 *   sends the request to the version's backend (`selection`):
 *   0. experiment: a forced arm (`force` header or query naming an arm in `arms.map`), else the
 *      unit's arm: HAProxy's bucket of the unit key with the experiment's salt (hash.ts,
 *      `haproxy-xxh32-v1`: native converters, no Lua), looked up in `experiment.map` (the arms'
 *      bucket ranges), its version in `arms.map`; such a request logs its arm (`txn.xa`) and
 *      unit, which the provider turns into first exposures;
 *   1. override: `x-turnout-version` looked up in `override.map` (the versions with instances
 *      when the table allows the override, else empty);
 *   2. match rules: the Lua action `turnout_match` (turnout.lua) over `rules.map`;
 *   3. sticky: the key's bucket is `floor(xxh32(key, <seed of the salt>) × 10^6 / 2^32)` (hash.ts:
 *      HAProxy's own scheme, versioned apart from the router's murmur3, because a bucket
 *      computed in Lua per request cost HAProxy about 15 % of its requests/s); `sticky.map`
 *      holds the router's bucket ranges (canary first, as its `CompiledSticky`) written in hash
 *      space, so the config runs one converter (`xxh32`) and one `map_int` per request;
 *      proportions are exact and weights change live;
 *   4. split: the n-th request without a sticky key gets bucket (n × 618033) mod 10^6, a Weyl
 *      sequence: consecutive requests spread evenly over the buckets, so over any run of
 *      requests each version gets its share to within a few requests (exact like the router's
 *      smooth weighted round-robin, not binomial like a random draw); `split.map` maps the
 *      ranges, rescaled over the versions that have instances.
 * - One backend per *slot*, `slot0`..`slotN-1`: a version takes a free slot when it appears, so
 *   a new version needs no reload (only new servers in a slot). Servers are the version's
 *   endpoints, named `<version>:<address>`: the answer's `x-turnout-version` header and the
 *   log's version are read from the server's name, not from a variable or a map.
 * - Logging: each request's line (LOG_FIELDS) goes to a ring buffer that HAProxy forwards to
 *   Turnout's intake over TCP (intake.ts): batched, and lines lost are seen by their numbers.
 *
 * Everything that changes during a rollout (weights, instances, rules, the override, the
 * preview's version, the experiment's arms and weights, the revision) lives in maps and servers, changed live over the runtime API;
 * what is left in the text (listeners, the sticky source and salt, the policy, the number of
 * slots) is structural: `structuralConfig` differs exactly when a reload is needed.
 */
import type { RouteTable } from "../../core/model.js";
import { PREVIEW_SUFFIX } from "../../core/routes.js";
import { BUCKETS, type BucketRange, type ServerPlan, type ServicePlan } from "./plan.js";

// The plan (route table -> versions, servers, ranges, rules) is plan.ts's; callers keep
// importing it from here.
export * from "./plan.js";

/** Multiplier of the split's Weyl sequence: close to 10^6 / φ and coprime with 10^6. */
export const WEYL_MULTIPLIER = 618_033;

/** The request header a client may send to ask for a version (select.ts VERSION_OVERRIDE_HEADER). */
const OVERRIDE_HEADER = "x-turnout-version";

/** Attributes of an issued sticky cookie (table.ts ISSUED_COOKIE_ATTRIBUTES). */
const COOKIE_ATTRIBUTES = "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax";

export type HaproxyProtocol = "http" | "h2c" | "grpc";

// ---------------------------------------------------------------------------------------
// Slots
// ---------------------------------------------------------------------------------------

/** Which version each backend slot serves (null: free). */
export type SlotLayout = readonly (string | null)[];

/** Slots a fresh layout has: stable, canary, a previous version draining, one spare. */
export const MIN_SLOTS = 4;

/**
 * Gives every version in `needed` a slot, keeping the slots of versions that already have one.
 * A version leaves its slot only when it is not in `needed` (the provider keeps draining
 * versions there until their servers are gone). When the slots run out the layout grows, which
 * is a structural change (reload).
 */
export function assignSlots(previous: SlotLayout, needed: readonly string[]): (string | null)[] {
  const keep = new Set(needed);
  const slots: (string | null)[] = previous.map((v) => (v !== null && keep.has(v) ? v : null));
  while (slots.length < MIN_SLOTS) slots.push(null);
  for (const v of needed) {
    if (slots.includes(v)) continue;
    const free = slots.indexOf(null);
    if (free >= 0) slots[free] = v;
    else slots.push(v, null);
  }
  return slots;
}

export function slotName(i: number): string {
  return `slot${i}`;
}

// ---------------------------------------------------------------------------------------
// Config text
// ---------------------------------------------------------------------------------------

/** Where the files and sockets of one service's HAProxy live, and how it logs. */
export interface RenderOptions {
  /** Directory of the config, the maps and turnout.lua (absolute). */
  dir: string;
  /** Directory of the runtime API socket (absolute; short enough for a unix socket path). */
  socketDir: string;
  /** Where the ring buffer forwards request logs (intake.ts). */
  intake: { host: string; port: number };
  protocol: HaproxyProtocol;
  /** HAProxy threads (default 1). */
  threads?: number;
  /** Ring buffer size in bytes (default 4 MiB). */
  ringBytes?: number;
}

/** The fields of a request log line, in order (intake.ts parses them). */
export const LOG_FIELDS = [
  "format", // LOG_FORMAT_TAG
  "endMs", // epoch ms when the line was written (the response's last byte)
  "pid",
  "thread",
  "seq", // the line's number: per process, or per thread with more than one (see logFormat)
  "frontend", // the service, or the service + ":preview" (frontendName)
  "slot", // %b: the version's slot, or turnout_none / the frontend when no version took it
  "status",
  "latencyUs", // from the request's headers to the log line, µs
  "serverMs", // %Tr: server response time, -1 when there was none
  "termination", // %ts: two characters, "--" for a normal end
  "server", // server name or "<NOSRV>"
  "key", // the sticky key, hex, "-" when none
  "grpcStatus", // the grpc-status response header, "-" when absent
  "arm", // the experiment arm the request exposed, "-" when none (forced or no experiment)
  "unit", // the experiment unit, hex, "-" when none
] as const;

export const LOG_FORMAT_TAG = "T2";

/**
 * The log line (LOG_FIELDS). Fields that cannot have a value in this config are a literal "-"
 * rather than a variable looked up per request (the experiment's arm and unit without an
 * experiment, grpc-status for HTTP): each lookup and conversion costs on every request.
 *
 * `seq` numbers the lines so that the intake sees every line lost between HAProxy and Turnout
 * (a ring buffer full while Turnout does not read: HAProxy 2.6 overwrites the oldest lines
 * without counting them). With one thread it is counted as the line is written (a process
 * variable incremented inside the log format): one variable update per line and no rule per
 * request, and the numbers reach the intake in order. With more threads the lines of two
 * threads interleave and a shared variable would race, so each thread numbers its requests
 * (`perThreadCounters`).
 */
function logFormat(plan: ServicePlan, opts: RenderOptions, threads: number): string {
  const grpc = opts.protocol === "grpc" ? "%[var(txn.gs)]" : "-";
  const x = plan.experiment !== null;
  return [
    LOG_FORMAT_TAG,
    "%[date(0,ms)]",
    "%pid",
    threads === 1 ? "0" : "%[thread]",
    threads === 1 ? "%[var(proc.s0),add(1),set-var(proc.s0)]" : "%[var(txn.sq)]",
    "%f",
    "%b",
    "%ST",
    "%[date(0,us),sub(txn.t0)]",
    "%Tr",
    "%ts",
    "%s",
    "%[var(txn.tk),hex]",
    grpc,
    x ? "%[var(txn.xa)]" : "-",
    x ? "%[var(txn.eu),hex]" : "-",
  ].join(" ");
}

/** HAProxy config quoting for a value that cannot contain spaces: safe names only. */
function q(s: string): string {
  if (!/^[A-Za-z0-9._:/@[\]-]+$/.test(s)) {
    throw new RangeError(`cannot put ${JSON.stringify(s)} in an HAProxy config`);
  }
  return s;
}

function secs(n: number): string {
  // HAProxy takes integers with units; milliseconds keep fractions of a second.
  return Number.isInteger(n) ? `${n}s` : `${Math.round(n * 1000)}ms`;
}

/** The arguments of a server line, shared by the config and by `add server`. */
export function serverArgs(
  plan: ServicePlan,
  opts: Pick<RenderOptions, "protocol">,
  s: ServerPlan,
): string {
  const args = [s.address];
  const hc = plan.policy.healthCheck;
  if (hc) {
    args.push(
      "check",
      "inter",
      secs(hc.intervalSeconds),
      "rise",
      String(hc.healthyThreshold),
      "fall",
      String(hc.unhealthyThreshold),
    );
    const od = plan.policy.outlierDetection;
    // Passive ejection needs checks in HAProxy: the errors seen mark the server down, and the
    // health check brings it back.
    args.push(
      "observe",
      "layer7",
      "error-limit",
      String(od.consecutiveFailures),
      "on-error",
      "mark-down",
    );
  }
  if (opts.protocol !== "http") args.push("proto", "h2");
  return args.join(" ");
}

export interface RenderInput {
  plan: ServicePlan;
  slots: SlotLayout;
  /** Servers per slot to write (default: the plan's servers of the slot's version). */
  servers?: ReadonlyMap<number, readonly ServerPlan[]>;
}

/** The haproxy.cfg of a service. */
export function renderConfig(input: RenderInput, opts: RenderOptions): string {
  return render(input, opts, true);
}

/**
 * The config without its servers: when this text changes between two plans, HAProxy must
 * reload; otherwise the runtime API carries the change.
 */
export function structuralConfig(input: RenderInput, opts: RenderOptions): string {
  return render(input, opts, false);
}

function render(input: RenderInput, opts: RenderOptions, withServers: boolean): string {
  const { plan, slots } = input;
  const p = plan.policy;
  const threads = opts.threads ?? 1;
  const dir = q(opts.dir);
  const map = (name: string) => `${dir}/${name}`;
  const t = p.timeouts;
  const L: string[] = [];
  L.push(
    `# Generated by Turnout for service ${plan.service}. Turnout rewrites this file: do not edit it.`,
    ...hashNote(plan),
    "global",
    `  nbthread ${threads}`,
    `  stats socket ${q(opts.socketDir)}/admin.sock mode 600 level admin expose-fd listeners`,
    "  stats timeout 30s",
    // Without SO_REUSEPORT a port another process holds is an error at start, not a port two
    // processes share (another service's HAProxy would otherwise take half its connections).
    // Reloads do not need it: the new worker takes the listening sockets over (expose-fd).
    "  noreuseport",
    // Old workers after a reload finish their requests, up to a bound.
    `  hard-stop-after ${Math.max(30, Math.ceil(t.upstreamSeconds * 2))}s`,
    `  setenv TURNOUT_HAPROXY_DIR ${dir}`,
    `  lua-load ${map("turnout.lua")}`,
    "  log ring@turnout local0 info",
  );
  // Counters (logFormat, perThreadCounters, splitBucket).
  for (let i = 0; i < threads; i++) L.push(`  set-var proc.s${i} int(0)`);
  if (threads === 1) L.push("  set-var proc.n0 int(0)");
  L.push(
    "",
    "ring turnout",
    "  description turnout-request-log",
    "  format raw",
    "  maxlen 1024",
    `  size ${opts.ringBytes ?? 4 * 1024 * 1024}`,
    "  timeout connect 2s",
    "  timeout server 30s",
    `  server intake ${q(opts.intake.host)}:${opts.intake.port}`,
    "",
    "defaults",
    "  mode http",
    "  log global",
    "  option dontlognull",
    // On a reload the old worker answers each idle keep-alive connection's next request with
    // "connection: close" instead of closing it under a client that may be sending (a reset).
    "  option idle-close-on-response",
    // No `option abortonclose`: HAProxy 2.6 cannot tell a client that half-closes after its
    // request (shutdown(SHUT_WR), as `connection: close` clients may) from one that left, and
    // would answer it 400. So a client that leaves while its version hangs is seen at the
    // upstream timeout (`policy.timeouts.upstreamSeconds`), logged 504 `sH`: a 5xx that the
    // error rate counts. The built-in router sees the abort at once (`abandoned`).
    "  timeout connect 5s",
    `  timeout client ${secs(Math.max(t.idleSeconds, t.requestHeadersSeconds, t.upstreamSeconds))}`,
    `  timeout server ${secs(t.upstreamSeconds)}`,
    `  timeout http-request ${secs(t.requestHeadersSeconds)}`,
    `  timeout http-keep-alive ${secs(t.idleSeconds)}`,
    "  timeout tunnel 1h",
    "  timeout queue 5s",
    `  retries ${p.retries.attempts}`,
    "  option redispatch 1",
    "  retry-on conn-failure",
    "",
  );
  L.push(...frontendHead("main", plan.listen, plan, opts, threads));
  L.push(...experimentSelection(plan, map));
  L.push(...selection(plan, map, threads));
  L.push(...responseCapture(opts));
  if (plan.experiment?.source === "cookie") {
    L.push(
      `  http-response add-header set-cookie "${plan.experiment.keyName}=%[var(txn.eu)]${COOKIE_ATTRIBUTES}" if { var(txn.ec) -m found }`,
    );
  }
  if (plan.sticky?.source === "cookie") {
    L.push(
      `  http-response add-header set-cookie "${plan.sticky.name}=%[var(txn.tk)]${COOKIE_ATTRIBUTES}" if { var(txn.sc) -m found }`,
    );
  }
  L.push("");
  if (plan.preview) {
    L.push(...frontendHead("preview", plan.preview, plan, opts, threads));
    L.push(
      `  use_backend %[str(v),map(${map("preview.map")}),map(${map("backends.map")})]`,
      "  default_backend turnout_none",
    );
    L.push(...responseCapture(opts));
    L.push("");
  }
  L.push(
    "backend turnout_none",
    // Never evaluated: it makes HAProxy load meta.map, so the runtime API can set and read it.
    `  http-request set-var(txn.rev) str(revision),map(${map("meta.map")}) if FALSE`,
    `  http-request return status 503 content-type application/json string '{"error":{"code":"TURNOUT_ERR_ROUTER_NO_BACKEND","message":"no instance of any version can take this request"}}'`,
    "",
  );
  slots.forEach((version, i) => {
    L.push(`backend ${slotName(i)}`);
    L.push(`  balance ${p.loadBalancing === "roundRobin" ? "roundrobin" : "leastconn"}`);
    // Every answer names the version that gave it, as the built-in router's do. Here rather
    // than in the frontends: only requests a version took reach a slot, so no condition is
    // evaluated per request, and the header is set once for the main and preview listeners.
    // The version is the server's name up to its ":" (`planService` names servers
    // `<version>:<address>`): no variable, no map, and a slot changes version with no reload.
    L.push("  http-response set-header x-turnout-version %[srv_name,field(1,:)]");
    const hc = p.healthCheck;
    if (hc) {
      L.push(`  option httpchk GET ${q(hc.path)}`, "  http-check expect status 200-399");
      L.push(`  timeout check ${secs(hc.timeoutSeconds)}`);
    }
    if (withServers && version !== null) {
      const servers =
        input.servers?.get(i) ?? plan.versions.find((v) => v.version === version)?.servers ?? [];
      for (const s of servers) L.push(`  server ${s.name} ${serverArgs(plan, opts, s)}`);
    }
    L.push("");
  });
  return L.join("\n");
}

/** Which hash puts keys in buckets here, for whoever reads the config (hash.ts). */
function hashNote(plan: ServicePlan): string[] {
  const scheme = plan.sticky?.scheme ?? plan.experiment?.scheme;
  return scheme === undefined
    ? []
    : [
        `# Sticky and A/B buckets: ${scheme} (HAProxy's own; the built-in router's murmur3 puts a key in another bucket).`,
      ];
}

/**
 * Frontends are named after the series their measurements go to: the service, and the service
 * + ":preview" for the preview listener (kept apart from the service's analysis, as the
 * router's preview tables are). The log line carries the name (`%f`).
 */
export function frontendName(service: string, which: "main" | "preview"): string {
  return which === "main" ? service : `${service}${PREVIEW_SUFFIX}`;
}

function frontendHead(
  name: "main" | "preview",
  listen: { host: string; port: number },
  plan: ServicePlan,
  opts: RenderOptions,
  threads: number,
): string[] {
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  const L = [
    `frontend ${frontendName(plan.service, name)}`,
    `  bind ${q(host)}:${listen.port}`,
    `  log-format "${logFormat(plan, opts, threads)}"`,
    "  http-request set-var(txn.t0) date(0,us)",
    // The body's advertised length (Content-Length, or what a chunked body has sent so far):
    // HAProxy's own count, no header lookup. A body that grows past the limit later in chunks is
    // the upstream's to bound, as behind any HAProxy.
    `  http-request deny deny_status 413 if { req.body_size gt ${plan.policy.maxRequestBodyBytes} }`,
  ];
  if (threads > 1) L.push(...perThreadCounters(threads));
  return L;
}

/** With several threads, a request number per thread (the log's `seq` and the split's input). */
function perThreadCounters(threads: number): string[] {
  const L: string[] = [];
  for (let i = 0; i < threads; i++) {
    L.push(`  http-request set-var(proc.s${i}) var(proc.s${i}),add(1) if { thread ${i} }`);
    L.push(`  http-request set-var(txn.sq) var(proc.s${i}) if { thread ${i} }`);
  }
  return L;
}

/**
 * gRPC's status: in the headers of a trailers-only answer (how servers report an error before
 * any message); an OK answer carries it in trailers, which HAProxy 2.6 cannot read, so an absent
 * status counts as OK (intake.ts).
 */
function responseCapture(opts: RenderOptions): string[] {
  return opts.protocol === "grpc"
    ? ["  http-response set-var(txn.gs) res.hdr(grpc-status) if { res.hdr(grpc-status) -m found }"]
    : [];
}

/**
 * The experiment's arm, before everything else (as the router's `selectArm`): a forced arm is
 * served and not exposed; a unit's arm by its bucket is served and exposed (`txn.xa`, logged)
 * when the arm's version has servers; otherwise the request falls through.
 */
function experimentSelection(plan: ServicePlan, map: (name: string) => string): string[] {
  const x = plan.experiment;
  if (x === null) return [];
  const unset = "!{ var(txn.tv) -m found }";
  const L: string[] = [];
  if (x.forceHeader !== null) {
    L.push(
      `  http-request set-var(txn.tv) req.fhdr(${x.forceHeader},1),map(${map("arms.map")}) if { req.fhdr_cnt(${x.forceHeader}) gt 0 }`,
    );
  }
  if (x.forceQuery !== null) {
    L.push(
      `  http-request set-var(txn.tv) url_param(${x.forceQuery}),url_dec(1),map(${map("arms.map")}) if ${unset} { url_param(${x.forceQuery}) -m found }`,
    );
  }
  if (x.source === "header") {
    L.push(
      `  http-request set-var(txn.eu) req.fhdr(${x.keyName},1) if ${unset} { req.fhdr(${x.keyName},1) -m len gt 0 }`,
    );
  } else if (x.source === "cookie") {
    L.push(
      `  http-request set-var(txn.eu) req.cook(${x.keyName}) if ${unset} { req.cook(${x.keyName}) -m len gt 0 }`,
      `  http-request set-var(txn.ec) int(1) if ${unset} !{ var(txn.eu) -m found }`,
      `  http-request set-var(txn.eu) uuid if ${unset} !{ var(txn.eu) -m found }`,
    );
  } else {
    L.push(
      `  http-request set-var(txn.eu) url_param(${x.keyName}),url_dec(1) if ${unset} { url_param(${x.keyName}) -m found }`,
    );
  }
  L.push(
    `  http-request set-var(txn.ea) var(txn.eu),${x.hash},map_int(${map("experiment.map")}) if { var(txn.eu) -m len gt 0 }`,
    `  http-request set-var(txn.tv) var(txn.ea),map(${map("arms.map")}) if { var(txn.ea) -m found }`,
    "  http-request set-var(txn.xa) var(txn.ea) if { var(txn.ea) -m found } { var(txn.tv) -m found }",
  );
  return L;
}

/**
 * The main frontend's version selection (steps 1-4 of the module comment). The experiment, the
 * override and the match rules set `txn.tv` in http-request rules; then `use_backend` rules,
 * the first that applies wins: the version in `txn.tv`, else the sticky key's, else the split's.
 * The sticky and split rules name the version's slot straight from their map, with no variable
 * or second lookup in between: a dynamic `use_backend` whose name matches no backend ends the switching
 * rules at `default_backend` (HAProxy 2.6), so every map they read covers all of its key space
 * whenever some version has a server (`sticky.map` fills the ranges of versions without one,
 * see `fillHoles`), and only an empty map, with no version to serve, leads to turnout_none.
 */
function selection(plan: ServicePlan, map: (name: string) => string, threads: number): string[] {
  const L: string[] = [];
  const unset = "!{ var(txn.tv) -m found }";
  const st = plan.sticky;
  if (st) {
    if (st.source === "header") {
      // Unconditional: an empty value is set as "" and hashed by nothing (the sticky rule
      // checks its length), one header lookup instead of two.
      L.push(`  http-request set-var(txn.tk) req.fhdr(${st.name},1)`);
    } else if (st.source === "cookie") {
      L.push(
        `  http-request set-var(txn.tk) req.cook(${st.name}) if { req.cook(${st.name}) -m len gt 0 }`,
        "  http-request set-var(txn.sc) int(1) if !{ var(txn.tk) -m found }",
        "  http-request set-var(txn.tk) uuid if !{ var(txn.tk) -m found }",
      );
    } else {
      L.push(
        `  http-request set-var(txn.tk) url_param(${st.name}),url_dec(1) if { url_param(${st.name}) -m found }`,
      );
    }
  }
  // The override only where the table allows it (`versionOverride` is the spec's, fixed for a
  // rollout's life): a header lookup per request saved everywhere else.
  if (plan.versionOverride) {
    L.push(
      `  http-request set-var(txn.tv) req.fhdr(${OVERRIDE_HEADER},1),map(${map("override.map")}) if { req.fhdr_cnt(${OVERRIDE_HEADER}) gt 0 }`,
    );
  }
  // Wherever the service may route by rules (`matchHook`), though rules come and go: a
  // setHeaderRoute step changes them live (rules.map), never by a reload. Without rules it
  // costs one lookup in a map with no entry, and no Lua; a service that never routes by rules
  // has neither. Nothing before it can have set the version unless the override or an
  // experiment is there.
  const mayBeSet = plan.versionOverride || plan.experiment !== null;
  if (plan.matchHook) {
    L.push(
      `  http-request lua.turnout_match if ${mayBeSet ? `${unset} ` : ""}{ str(r),map(${map("rules.map")}) -m found }`,
    );
  }
  if (plan.matchHook || mayBeSet) {
    L.push(`  use_backend %[var(txn.tv),map(${map("backends.map")})] if { var(txn.tv) -m found }`);
  }
  if (st) {
    L.push(
      `  use_backend %[var(txn.tk),${st.keyHash},map_int(${map("sticky.map")})] if { var(txn.tk) -m len gt 0 }`,
    );
  }
  L.push(
    `  use_backend %[${splitBucket(threads)},map_int(${map("split.map")})]`,
    "  default_backend turnout_none",
  );
  return L;
}

/**
 * The split's bucket of a request without a sticky key: (n × 618033) mod 10^6 for the n-th
 * such request, a Weyl sequence (module comment, step 4). With one thread, n is counted inside
 * the expression, so only requests that reach the split pay for it; with more, the thread's
 * request number (perThreadCounters).
 */
function splitBucket(threads: number): string {
  const n = threads === 1 ? "var(proc.n0),add(1),set-var(proc.n0)" : "var(txn.sq)";
  return `${n},mul(${WEYL_MULTIPLIER}),mod(${BUCKETS})`;
}

// ---------------------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------------------

/** The map files of a plan, by file name: key and value per line, as HAProxy loads them. */
export type MapFiles = Record<MapName, string[]>;
export const MAP_NAMES = [
  "backends.map",
  "override.map",
  "rules.map",
  "sticky.map",
  "split.map",
  "preview.map",
  "arms.map",
  "experiment.map",
  "meta.map",
] as const;
export type MapName = (typeof MAP_NAMES)[number];

/** Each map's entries as `key value` lines. */
export function renderMaps(plan: ServicePlan, slots: SlotLayout): MapFiles {
  const backends: string[] = [];
  slots.forEach((v, i) => {
    if (v !== null && plan.versions.some((x) => x.version === v))
      backends.push(`${v} ${slotName(i)}`);
  });
  // The hot path's maps name the slot itself (`selection`); a version has one while it has
  // servers (the provider gives every planned version a slot).
  const slotOf = (version: string) => {
    const i = slots.indexOf(version);
    return i < 0 ? "-" : slotName(i);
  };
  const slotRanges = (rs: BucketRange[]) => rs.map((r) => `${r.from}:${r.to} ${slotOf(r.version)}`);
  return {
    "backends.map": backends,
    "override.map": plan.versionOverride
      ? plan.versions.map((v) => `${v.version} ${v.version}`)
      : [],
    "rules.map": plan.rules === "" ? [] : [`r ${plan.rules}`],
    "sticky.map": plan.sticky ? slotRanges(plan.sticky.hashRanges) : [],
    "split.map": slotRanges(plan.splitRanges),
    "preview.map": plan.preview ? [`v ${plan.preview.version}`] : [],
    "arms.map": plan.experiment ? plan.experiment.arms.map((a) => `${a.arm} ${a.version}`) : [],
    "experiment.map": plan.experiment
      ? plan.experiment.ranges.map((r) => `${r.from}:${r.to} ${r.arm}`)
      : [],
    "meta.map": [`revision ${plan.revision}`, `service ${plan.service}`],
  };
}

/** A map file's text. */
export function mapText(lines: readonly string[]): string {
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** Whether a table is the extra table of a preview listener (`expandPreviews`). */
export function isPreviewTable(table: Pick<RouteTable, "service">): boolean {
  return table.service.endsWith(PREVIEW_SUFFIX);
}
