/**
 * A route table resolved for HAProxy (pure): the versions and their servers, the bucket ranges
 * of the sticky map and of the split, the match rules in turnout.lua's encoding, the
 * experiment's arms, and what HAProxy cannot carry. config.ts turns a plan into the config
 * text and the map files; its module comment describes the shape.
 */
import {
  DEFAULT_TRAFFIC_POLICY,
  type RouteTable,
  type TrafficPolicySpec,
} from "../../core/model.js";
import { haproxyHashScheme } from "./hash.js";

/** Buckets of the sticky hash and of the split (core/hashing.ts BUCKET_SCALE). */
export const BUCKETS = 1_000_000;
/** Percent × this is an integer (the router's WEIGHT_SCALE): a weight of w% owns w × 10^4 buckets. */
const WEIGHT_SCALE = 10_000;
/** Names the config carries without quoting (header, cookie, query parameter names). */
const SAFE_NAME = /^[A-Za-z0-9._-]+$/;

/** One server of a version: an endpoint of the route table. */
export interface ServerPlan {
  /** Server name in its backend, from the address (stable for the same endpoint). */
  name: string;
  /** `ip:port` (IPv6 in brackets). */
  address: string;
  /** The endpoint URL it came from. */
  url: string;
}

export interface VersionPlan {
  version: string;
  servers: ServerPlan[];
}

/** Buckets [from, to] (inclusive) go to `version`. */
export interface BucketRange {
  from: number;
  to: number;
  version: string;
}

/** What one service's HAProxy should do: the route table resolved for HAProxy. */
export interface ServicePlan {
  service: string;
  revision: number;
  listen: { host: string; port: number };
  preview: { host: string; port: number; version: string } | null;
  sticky: {
    source: "header" | "cookie" | "query";
    name: string;
    /** HAProxy's hash scheme (hash.ts), e.g. "haproxy-xxh32-v1". */
    scheme: string;
    /** The converters from the key to its bucket, the salt in them. */
    hash: string;
    /** The converter from the key to its 32-bit hash (what the config runs per request). */
    keyHash: string;
    /** `stickyRanges` in hash space: what `sticky.map` holds (hash.ts `hashRange`). */
    hashRanges: BucketRange[];
  } | null;
  versionOverride: boolean;
  policy: TrafficPolicySpec;
  /** Versions with at least one server, in table order. */
  versions: VersionPlan[];
  stickyRanges: BucketRange[];
  splitRanges: BucketRange[];
  /** The match rules in `rules.map`'s encoding ("" for none). */
  rules: string;
  /**
   * Whether the config evaluates match rules at all (the table's `mayMatch`, or rules now): a
   * service that never routes by rules pays nothing for them per request.
   */
  matchHook: boolean;
  /** The A/B experiment (exposures.ts's rules): arms by bucket of the unit key. */
  experiment: {
    name: string;
    source: "header" | "cookie" | "query";
    keyName: string;
    /** HAProxy's hash scheme and the converters from the unit to its bucket (as `sticky`). */
    scheme: string;
    hash: string;
    forceHeader: string | null;
    forceQuery: string | null;
    /** Bucket ranges -> arm name. */
    ranges: { from: number; to: number; arm: string }[];
    /** Arm name -> version, for the arms whose version has servers. */
    arms: { arm: string; version: string }[];
  } | null;
  /** What the table asks for that HAProxy cannot do: apply refuses the table. */
  refusals: string[];
  /** What was skipped, as the router reports it (bad endpoint, a rule without a condition). */
  problems: string[];
}

export interface PlanOptions {
  /** Resolved addresses of host names (the provider resolves them before planning). */
  resolve?: (host: string) => string | undefined;
}

/** Resolves a route table into a plan. Never throws: what cannot be done is in `refusals`. */
export function planService(table: RouteTable, opts: PlanOptions = {}): ServicePlan {
  const refusals: string[] = [];
  const problems: string[] = [];
  if (table.mirror) refusals.push("mirror (shadow traffic) is not carried by the haproxy provider");
  if (table.flags && table.flags.length > 0)
    refusals.push("edge flags (spec.flags) are not evaluated by the haproxy provider");

  const versions: VersionPlan[] = [];
  const withServers = new Set<string>();
  for (const b of table.backends) {
    if (versions.some((v) => v.version === b.version)) continue;
    const servers: ServerPlan[] = [];
    for (const url of b.endpoints) {
      const s = serverOf(url, opts);
      if (typeof s === "string") {
        problems.push(`version ${b.version}: endpoint ${JSON.stringify(url)} skipped: ${s}`);
        continue;
      }
      // The version leads the name (`serverVersion` reads it back): HAProxy's names allow ":",
      // version names do not have one.
      const name = `${b.version}:${s.name}`;
      if (!servers.some((x) => x.name === name)) servers.push({ ...s, name });
    }
    if (servers.length === 0) continue;
    versions.push({ version: b.version, servers });
    withServers.add(b.version);
  }

  // Sticky ranges: every weighted backend in table order; one without servers keeps its range
  // but has no entry, so its keys follow the split until it has instances again.
  const stickyRanges: BucketRange[] = [];
  let end = 0;
  for (const b of table.backends) {
    const size = bucketsOf(b.weight);
    if (size === 0) continue;
    const from = end;
    end += size;
    if (withServers.has(b.version)) {
      stickyRanges.push({ from, to: Math.min(end, BUCKETS) - 1, version: b.version });
    }
  }
  if (table.stickiness && end !== BUCKETS) {
    problems.push(
      `sticky ranges cover ${end / WEIGHT_SCALE}% of the buckets, not 100%; keys outside them are spread over the versions with instances by the split's shares`,
    );
  }
  const splitRanges = splitOf(table, withServers);

  let sticky: ServicePlan["sticky"] = null;
  const st = table.stickiness;
  if (st) {
    const scheme = haproxyHashScheme(table.hashVersion);
    const source = "header" in st ? "header" : "cookie" in st ? "cookie" : "query";
    const name = "header" in st ? st.header : "cookie" in st ? st.cookie : st.query;
    if (scheme === undefined) {
      problems.push(
        `stickiness off: the haproxy provider has no sticky hash for hash version ${table.hashVersion}`,
      );
    } else if (!SAFE_NAME.test(name)) {
      refusals.push(
        `stickiness ${source} ${JSON.stringify(name)}: the haproxy provider carries names of A-Z, a-z, 0-9, ".", "_" and "-" only`,
      );
    } else {
      sticky = {
        source,
        name,
        scheme: scheme.name,
        hash: scheme.converters(st.salt),
        keyHash: scheme.hashConverter(st.salt),
        hashRanges: fillHoles(
          stickyRanges.map((r) => {
            const [from, to] = scheme.hashRange(r.from, r.to);
            return { from, to, version: r.version };
          }),
          splitRanges,
        ),
      };
    }
  }

  const rules = encodeRules(table, withServers, problems);

  const experiment = experimentOf(table, withServers, refusals);

  let preview: ServicePlan["preview"] = null;
  if (table.preview) {
    preview = { ...table.preview.listen, version: table.preview.version };
    if (!withServers.has(table.preview.version)) {
      problems.push(`preview version ${table.preview.version} has no instance yet`);
    }
  }
  return {
    service: table.service,
    revision: table.revision,
    listen: { host: table.listen.host, port: table.listen.port },
    preview,
    sticky,
    versionOverride: table.versionOverride === true,
    policy: table.policy ?? DEFAULT_TRAFFIC_POLICY,
    versions,
    stickyRanges,
    splitRanges,
    rules,
    matchHook: table.mayMatch === true || rules !== "",
    experiment,
    refusals,
    problems,
  };
}

/** The experiment's plan: arms' bucket ranges as exposures.ts's `attachExperiment` computes them. */
function experimentOf(
  table: RouteTable,
  withServers: ReadonlySet<string>,
  refusals: string[],
): ServicePlan["experiment"] {
  const x = table.experiment;
  if (x === undefined) return null;
  const scheme = haproxyHashScheme(table.hashVersion);
  const source = "header" in x.key ? "header" : "cookie" in x.key ? "cookie" : "query";
  const keyName =
    "header" in x.key ? x.key.header.toLowerCase() : "cookie" in x.key ? x.key.cookie : x.key.query;
  const names = [keyName, x.force?.header ?? "", x.force?.query ?? ""].filter((n) => n !== "");
  if (scheme === undefined) {
    refusals.push(
      `experiment ${x.name}: the haproxy provider has no sticky hash for hash version ${table.hashVersion}`,
    );
    return null;
  }
  if (names.some((n) => !SAFE_NAME.test(n)) || x.arms.some((a) => !SAFE_NAME.test(a.name))) {
    refusals.push(
      `experiment ${x.name}: the haproxy provider carries key, force and arm names of A-Z, a-z, 0-9, ".", "_" and "-" only`,
    );
    return null;
  }
  if ((x.responseHeaders?.length ?? 0) > 0) {
    refusals.push(
      `experiment ${x.name}: responseHeaders (events from response headers) are not recorded by the haproxy provider`,
    );
    return null;
  }
  const total = x.arms.reduce((s, a) => s + a.weight, 0);
  const ranges: { from: number; to: number; arm: string }[] = [];
  let acc = 0;
  let from = 0;
  x.arms.forEach((a, i) => {
    acc += a.weight;
    const end = i === x.arms.length - 1 ? BUCKETS : Math.round((acc / total) * BUCKETS);
    if (end > from) ranges.push({ from, to: end - 1, arm: a.name });
    from = Math.max(from, end);
  });
  return {
    name: x.name,
    source,
    keyName,
    scheme: scheme.name,
    hash: scheme.converters(x.salt),
    forceHeader: x.force?.header?.toLowerCase() ?? null,
    forceQuery: x.force?.query ?? null,
    ranges,
    arms: x.arms
      .filter((a) => withServers.has(a.version))
      .map((a) => ({ arm: a.name, version: a.version })),
  };
}

/** Size of the 32-bit hash space the sticky map is written in. */
const HASH_SPACE = 2 ** 32;

/**
 * The sticky ranges (hash space) with their holes filled: the range of a version that has no
 * server yet (or buckets the weights leave out) is divided among the versions that have one, in
 * the split's shares. The router sends such keys to its split, request by request; here they
 * must name a backend from the map (`selection`), and dividing the hole keeps them sticky while
 * it lasts, with the same proportions. Empty when no version has a server.
 */
function fillHoles(ranges: readonly BucketRange[], split: readonly BucketRange[]): BucketRange[] {
  if (split.length === 0) return [];
  const out: BucketRange[] = [];
  const fill = (from: number, to: number) => {
    const n = to - from + 1;
    let start = from;
    split.forEach((r, i) => {
      // n × 10^6 < 2^53: exact.
      const end = i === split.length - 1 ? to + 1 : from + Math.floor((n * (r.to + 1)) / BUCKETS);
      if (end > start) out.push({ from: start, to: end - 1, version: r.version });
      start = Math.max(start, end);
    });
  };
  let next = 0;
  for (const r of [...ranges].sort((a, b) => a.from - b.from)) {
    if (r.from > next) fill(next, r.from - 1);
    out.push(r);
    next = r.to + 1;
  }
  if (next < HASH_SPACE) fill(next, HASH_SPACE - 1);
  return out;
}

function bucketsOf(weight: number): number {
  return Number.isFinite(weight) && weight > 0 ? Math.round(weight * WEIGHT_SCALE) : 0;
}

/** The split over the weighted versions that have servers, rescaled to all the buckets. */
function splitOf(table: RouteTable, withServers: ReadonlySet<string>): BucketRange[] {
  const sized: { version: string; size: number }[] = [];
  let total = 0;
  for (const b of table.backends) {
    const size = bucketsOf(b.weight);
    if (size === 0 || !withServers.has(b.version)) continue;
    if (sized.some((s) => s.version === b.version)) continue;
    sized.push({ version: b.version, size });
    total += size;
  }
  const out: BucketRange[] = [];
  let cum = 0;
  let from = 0;
  for (const s of sized) {
    cum += s.size;
    const to = Math.round((cum * BUCKETS) / total);
    if (to > from) out.push({ from, to: to - 1, version: s.version });
    from = to;
  }
  return out;
}

/** The version a managed server serves, from its name (`<version>:<address>`); null for others. */
export function serverVersion(name: string): string | null {
  const i = name.indexOf(":");
  return i > 0 ? name.slice(0, i) : null;
}

/** `http://127.0.0.1:9001` -> a server; a string says why the endpoint cannot be one. */
export function serverOf(url: string, opts: PlanOptions = {}): ServerPlan | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "not a URL";
  }
  if (u.protocol !== "http:")
    return `the haproxy provider reaches http:// upstreams only, not ${u.protocol}//`;
  if (u.search !== "" || u.hash !== "") return "a base URL has no query or fragment";
  if (u.pathname !== "/" && u.pathname !== "") return "the haproxy provider takes no path prefix";
  const port = u.port === "" ? 80 : Number(u.port);
  let host = u.hostname;
  const bracketed = host.startsWith("[");
  if (bracketed) host = host.slice(1, -1);
  if (!isIp(host)) {
    const ip = opts.resolve?.(host);
    if (ip === undefined) return `host ${host} is not resolved`;
    host = ip;
  }
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const name = `e_${address.replace(/[^A-Za-z0-9.]/g, "_")}`;
  return { name, address, url };
}

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || /^[0-9a-fA-F:]+$/.test(host);
}

/** Percent-encoding that leaves no ",", ";", "%" or space in a field. */
function enc(s: string | undefined): string {
  return s === undefined ? "" : encodeURIComponent(s);
}

function conditionFields(
  c: { name: string; equals?: string; regex?: string; exists?: boolean } | undefined,
): [string, string, string] {
  if (c === undefined) return ["", "", ""];
  if (typeof c.equals === "string") return ["e", enc(c.name), enc(c.equals)];
  if (typeof c.regex === "string") return ["r", enc(c.name), enc(c.regex)];
  return [c.exists === false ? "x0" : "x1", enc(c.name), ""];
}

/**
 * The match rules in turnout.lua's encoding: rules joined by ";", each
 * "version,pathPrefix,hkind,hname,hvalue,ckind,cname,cvalue" percent-encoded. Rules whose
 * version has no server are left out (they fall through, as in the router).
 */
export function encodeRules(
  table: Pick<RouteTable, "matches">,
  withServers: ReadonlySet<string>,
  problems: string[] = [],
): string {
  const out: string[] = [];
  (table.matches ?? []).forEach((m, i) => {
    const what = `match rule ${i + 1} (to ${m.version})`;
    if (!withServers.has(m.version)) return;
    if (m.pathPrefix !== undefined && !m.pathPrefix.startsWith("/")) {
      problems.push(
        `${what}: pathPrefix ${JSON.stringify(m.pathPrefix)} does not start with "/"; rule skipped`,
      );
      return;
    }
    if (!m.header && !m.cookie && m.pathPrefix === undefined) {
      problems.push(`${what}: no condition; rule skipped`);
      return;
    }
    out.push(
      [
        enc(m.version),
        enc(m.pathPrefix),
        ...conditionFields(m.header),
        ...conditionFields(m.cookie),
      ].join(","),
    );
  });
  return out.join(";");
}
