/**
 * Edge evaluation of feature flags: for a service whose route table names flags
 * (`spec.flags`), the router evaluates them for every request with the same pure core as OFREP
 * and the provider, the targeting key being the request's sticky key (header, cookie or query,
 * as `spec.stickiness` says; a cookie the router has just issued counts). It then
 *
 * 1. passes the results upstream in `x-turnout-flags: key=variant;key2=variant2` (a client's
 *    own `x-turnout-flags` is removed: it must not choose what the upstream believes), and
 * 2. records the request's measurements in the series labelled with those variants
 *    (`flag.<key>=<variant>`, see `canonicalLabels` in stats.ts), so that analysis can compare
 *    the feature on against off within one version. Readers that ignore labels sum across
 *    them, so version totals do not change.
 *
 * A flag that cannot be evaluated (no sticky key for a percentage rollout, an unknown flag) is
 * left out of the header and labelled `_error`. Upgrades (WebSocket) are not evaluated.
 *
 * Per request: one map lookup, one evaluation per flag (no allocation for most flags, see
 * core/flags/evaluate.ts), a short string for the header and the label key.
 */
import type { IncomingMessage } from "node:http";
import { evaluate, type FlagSet } from "../core/flags/evaluate.js";
import type { RouteTable } from "../core/model.js";
import { cookieValue, headerValue, queryValue, type SelectOutput } from "./select.js";
import type { MeasurementRecorder } from "./stats.js";
import type { CompiledBackend, CompiledTable } from "./table.js";

/** Where the current flags come from (a `FlagSnapshotCache` fits). */
export interface EdgeFlagSource {
  readonly current: { readonly flags: FlagSet };
}

export const FLAGS_HEADER = "x-turnout-flags";

interface EdgeConfig {
  /** Flag keys, sorted (label order is canonical). */
  keys: string[];
  /** `flag.<key>=`, URL-encoded, per key. */
  labelPrefixes: string[];
  sticky: { source: "header" | "cookie" | "query"; name: string } | null;
}

export class EdgeFlags {
  readonly #source: EdgeFlagSource;
  readonly #configs = new Map<string, EdgeConfig>();
  #recorder: MeasurementRecorder | null = null;

  constructor(source: EdgeFlagSource) {
    this.#source = source;
  }

  /** The router's recorder, into whose labelled series requests are recorded. */
  bindRecorder(r: MeasurementRecorder): void {
    this.#recorder = r;
  }

  /** Takes a service's table as the router applies it (a table without flags turns them off). */
  configure(t: RouteTable): void {
    const keys = [...new Set(t.flags ?? [])].sort();
    if (keys.length === 0) {
      this.#configs.delete(t.service);
      return;
    }
    const s = t.stickiness;
    const sticky =
      s === undefined
        ? null
        : "header" in s
          ? { source: "header" as const, name: s.header.toLowerCase() }
          : "cookie" in s
            ? { source: "cookie" as const, name: s.cookie }
            : { source: "query" as const, name: s.query };
    this.#configs.set(t.service, {
      keys,
      labelPrefixes: keys.map((k) => `${encodeURIComponent(`flag.${k}`)}=`),
      sticky,
    });
  }

  forget(service: string): void {
    this.#configs.delete(service);
  }

  /** Whether the service has edge flags (the proxy's fast check). */
  has(service: string): boolean {
    return this.#configs.has(service);
  }

  /**
   * Evaluates the service's flags for one request: appends the header to `headers` (the flat
   * list sent upstream) and returns the backend to record into (the same version, counters of
   * the labelled series). Returns `backend` unchanged when the service has no edge flags.
   */
  apply(
    table: CompiledTable,
    backend: CompiledBackend,
    req: IncomingMessage,
    headers: string[],
    sel: SelectOutput,
  ): CompiledBackend {
    const cfg = this.#configs.get(table.service);
    if (cfg === undefined) return backend;
    const key = stickyKey(cfg, req, sel);
    const ctx = key === undefined ? {} : { targetingKey: key };
    const flags = this.#source.current.flags;
    let header = "";
    let labels = "";
    for (let i = 0; i < cfg.keys.length; i++) {
      const k = cfg.keys[i]!;
      const r = evaluate(flags, k, ctx);
      const variant = r.errorCode === undefined && r.variant !== undefined ? r.variant : undefined;
      if (variant !== undefined) header += `${header === "" ? "" : ";"}${k}=${variant}`;
      labels += `${labels === "" ? "" : "&"}${cfg.labelPrefixes[i]}${variant === undefined ? "_error" : encodeURIComponent(variant)}`;
    }
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (headers[i]!.toLowerCase() === FLAGS_HEADER) headers.splice(i, 2);
    }
    headers.push(FLAGS_HEADER, header);
    if (this.#recorder === null) return backend;
    // Another feature may already have labelled the series (an experiment's arm): keep its
    // labels and add the flags', in canonical order.
    const base = backend.counters.labels;
    if (base !== "") labels = mergeLabels(base, labels);
    return { ...backend, counters: this.#recorder.series(table.service, backend.version, labels) };
  }
}

/** Two canonical label strings as one, sorted by name (see `canonicalLabels` in stats.ts). */
export function mergeLabels(a: string, b: string): string {
  const name = (pair: string) => pair.slice(0, pair.indexOf("="));
  return [...a.split("&"), ...b.split("&")]
    .sort((x, y) => (name(x) < name(y) ? -1 : name(x) > name(y) ? 1 : 0))
    .join("&");
}

function stickyKey(cfg: EdgeConfig, req: IncomingMessage, sel: SelectOutput): string | undefined {
  const s = cfg.sticky;
  if (s === null) return undefined;
  let v: string | undefined;
  if (s.source === "header") v = headerValue(req.rawHeaders, s.name);
  else if (s.source === "query") v = queryValue(req.url, s.name);
  else {
    v = cookieValue(req.rawHeaders, s.name);
    if ((v === undefined || v === "") && sel.setCookie !== null) {
      // The router issued the cookie with this request: its value is the key.
      const eq = sel.setCookie.indexOf("=");
      const end = sel.setCookie.indexOf(";");
      v = sel.setCookie.slice(eq + 1, end === -1 ? undefined : end);
    }
  }
  return v === undefined || v === "" ? undefined : v;
}
