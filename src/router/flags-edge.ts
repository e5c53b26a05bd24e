/**
 * Edge evaluation of feature flags: for a service whose route table names flags
 * (`spec.flags`), the router evaluates them for every request with the same pure core as OFREP
 * and the provider, the targeting key being the request's sticky key (header, cookie or query,
 * as `spec.stickiness` says; a cookie the router has just issued counts). It then
 *
 * 1. passes the results upstream in `x-turnout-flags: key=variant;key2=variant2` (a client's
 *    own `x-turnout-flags` is removed: it must not choose what the upstream believes), and
 * 2. records the request's measurements in the series labelled with those variants
 *    (`flag.<key>=<variant>`, see `canonicalLabels` in core/measurements.ts), so that analysis can compare
 *    the feature on against off within one version. Readers that ignore labels sum across
 *    them, so version totals do not change.
 *
 * A request without the sticky key that a percentage rollout buckets by gets the flag's default
 * variant (header and label). A flag that cannot be evaluated otherwise (an unknown flag) is
 * left out of the header and labelled `_error`. Upgrades (WebSocket) are not evaluated.
 *
 * The configuration is compiled with the table (`table.flags`, null without flags) and swaps
 * with it. Per request: the sticky key the selection already read, one evaluation per flag (no
 * allocation for most flags, see core/flags/evaluate.ts), a short string for the header and the
 * label key, and the recorder's lookup of the labelled series.
 */
import { evaluate, type FlagSet } from "../core/flags/evaluate.js";
import { mergeLabels } from "../core/measurements.js";
import type { RouteTable } from "../core/model.js";
import { cookieValue, headerValue, queryValue } from "./request.js";
import type {
  ExchangeObserver,
  ExchangeView,
  SeriesRecorder,
  StickyKeySpec,
  TableCore,
  TableFeature,
} from "./types.js";

export { mergeLabels } from "../core/measurements.js";

/** Where the current flags come from (a `FlagSnapshotCache` fits). */
export interface EdgeFlagSource {
  readonly current: { readonly flags: FlagSet };
}

/** Where labelled series come from (the router's `MeasurementRecorder`). */
export interface LabelledSeries {
  series(service: string, version: string, labels: string): SeriesRecorder;
}

export const FLAGS_HEADER = "x-turnout-flags";

/**
 * The router's edge flag evaluation: the flag source and the recorder whose labelled series
 * requests are recorded into. Each table compiles its own configuration (`compile`), which
 * swaps with the table.
 */
export class EdgeFlags {
  readonly source: EdgeFlagSource;
  recorder: LabelledSeries | null = null;

  constructor(source: EdgeFlagSource) {
    this.source = source;
  }

  /** The router's recorder, into whose labelled series requests are recorded. */
  bindRecorder(r: LabelledSeries): void {
    this.recorder = r;
  }

  /** A table's edge flags; null when it names none. */
  compile(t: RouteTable): CompiledEdgeFlags | null {
    const keys = [...new Set(t.flags ?? [])].sort();
    if (keys.length === 0) return null;
    const s = t.stickiness;
    const sticky: StickyKeySpec | null =
      s === undefined
        ? null
        : "header" in s
          ? { source: "header", name: s.header.toLowerCase(), cookiePrefix: "" }
          : "cookie" in s
            ? { source: "cookie", name: s.cookie, cookiePrefix: `${s.cookie}=` }
            : { source: "query", name: s.query, cookiePrefix: "" };
    return new CompiledEdgeFlags(
      this,
      t.service,
      keys,
      keys.map((k) => `${encodeURIComponent(`flag.${k}`)}=`),
      sticky,
    );
  }
}

/** A table's edge flags (the compiled table's `flags`), with the `request` hook. */
export class CompiledEdgeFlags {
  constructor(
    readonly edge: EdgeFlags,
    readonly service: string,
    /** Flag keys, sorted (label order is canonical). */
    readonly keys: readonly string[],
    /** `flag.<key>=`, URL-encoded, per key. */
    readonly labelPrefixes: readonly string[],
    readonly sticky: StickyKeySpec | null,
  ) {}

  /**
   * Evaluates the flags for one request: appends the header to `ex.headers` (the flat list sent
   * upstream) and points `ex.counters` at the labelled series of the same version.
   */
  request(ex: ExchangeView): ExchangeObserver | null {
    const key = this.#stickyKey(ex);
    const ctx = key === undefined ? {} : { targetingKey: key };
    const flags = this.edge.source.current.flags;
    let header = "";
    let labels = "";
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i]!;
      const r = evaluate(flags, k, ctx);
      let variant = r.errorCode === undefined && r.variant !== undefined ? r.variant : undefined;
      // No sticky key to bucket by: the upstream gets the flag's default variant, as a client
      // SDK falls back to its default (a missing entry left upstreams guessing, #18 item 12).
      if (r.errorCode === "TARGETING_KEY_MISSING" || r.errorCode === "INVALID_CONTEXT")
        variant = flags.get(k)?.fallthrough.variant;
      if (variant !== undefined) header += `${header === "" ? "" : ";"}${k}=${variant}`;
      labels += `${labels === "" ? "" : "&"}${this.labelPrefixes[i]}${variant === undefined ? "_error" : encodeURIComponent(variant)}`;
    }
    const headers = ex.headers;
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (headers[i]!.toLowerCase() === FLAGS_HEADER) headers.splice(i, 2);
    }
    headers.push(FLAGS_HEADER, header);
    const recorder = this.edge.recorder;
    if (recorder === null) return null;
    // Another feature may already have labelled the series (an experiment's arm): keep its
    // labels and add the flags', in canonical order.
    const base = ex.counters.labels;
    if (base !== "") labels = mergeLabels(base, labels);
    ex.counters = recorder.series(this.service, ex.backend.version, labels);
    return null;
  }

  /** The selection's sticky key when it read one (with a cookie it just issued); else read now. */
  #stickyKey(ex: ExchangeView): string | undefined {
    if (ex.stickyKnown === true) return ex.stickyKey;
    const s = this.sticky;
    if (s === null) return undefined;
    const raw = ex.req.rawHeaders;
    let v: string | undefined;
    if (s.source === "header") v = headerValue(raw, s.name);
    else if (s.source === "query") v = queryValue(ex.req.url, s.name);
    else {
      v = cookieValue(raw, s.name);
      const issued = ex.setCookie;
      if ((v === undefined || v === "") && issued !== null && issued.startsWith(s.cookiePrefix)) {
        // The router issued the cookie with this request: its value is the key.
        const end = issued.indexOf(";");
        v = issued.slice(s.cookiePrefix.length, end === -1 ? undefined : end);
      }
    }
    return v === undefined || v === "" ? undefined : v;
  }
}

/**
 * The edge flag feature (features.ts): its environment is the router's `EdgeFlags`; without
 * one, tables evaluate no flags.
 */
export const edgeFlagsFeature: TableFeature<EdgeFlags, CompiledEdgeFlags> = {
  compile: (raw: RouteTable, _core: TableCore, edge) => edge?.compile(raw) ?? null,
};
