/**
 * The types the router's files share: the compiled table's core, the per-request facts, and
 * the feature seam (`TableFeature`, its hooks and observers). One module, imported by the
 * others and importing none of them but pools.ts (a leaf), so that `src/router/` has no import
 * cycle (`imports.test.ts` checks it).
 *
 * A data-plane feature (an A/B experiment, edge flags, a mirror...) is a `TableFeature`: it
 * compiles a route table into a readonly field of the compiled table (null when the table does
 * not use it) and may add hooks around the one proxy core, in the manner of undici's
 * interceptors (CONVENTIONS 7 and 14):
 *   - `select`: picks the version before the table's own selection (null falls through);
 *   - `request`: once the version is picked, before the upstream request goes out: may add
 *     upstream headers, record into another series of the same version, and return an
 *     `ExchangeObserver` that sees the rest of the exchange (its body, response head, chunks,
 *     end).
 * The features are listed once, in `features.ts`; a new one is its own file and one line there.
 */
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { RouteTable, TrafficPolicySpec } from "../core/model.js";
import type { UserRegex } from "../core/regex.js";
import type { OutlierDetector } from "./health.js";
import type { Endpoint } from "./pools.js";

/** The logging methods the router uses; a pino logger fits. */
export type RouterLogger = Pick<Logger, "debug" | "info" | "warn" | "error">;

/**
 * Weights are percentages with up to four decimals (0.0001%); scaled by this factor they are
 * exact integers, so the split has no rounding drift and SWRR's arithmetic stays integral.
 */
export const WEIGHT_SCALE = 10_000;

/** Attributes of a cookie the router issues: a year, every path, not readable by scripts. */
export const ISSUED_COOKIE_ATTRIBUTES = "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax";

/** An upstream instance, shared by every table that names its URL (see pools.ts). */
export type CompiledEndpoint = Endpoint;

/**
 * Where the proxy records one request of one series (stats.ts `SeriesCounters`): `start` when
 * the version is picked, `respond` when the version's response head comes, then once when the
 * request ends: `recordSince`, or `recordAbandonedSince` when the client left before the
 * version's response head came.
 */
export interface SeriesRecorder {
  readonly version: string;
  /** Canonical extra labels of the series; "" for none. */
  readonly labels: string;
  /** Requests routed to the series (what `start` counted). */
  requests: number;
  /** A request sent to the version, which arrived at `startedAt` (a `performance.now()` reading). */
  start(startedAt: number): void;
  /** The version's response head came. */
  respond(): void;
  recordSince(statusCode: number, startedAt: number, upstreamError: boolean): void;
  recordAbandonedSince(startedAt: number): void;
  /** Requests answered 503 because the router ran out of file descriptors (not in the store). */
  fdExhausted: number;
}

export interface CompiledBackend {
  readonly version: string;
  /** Percent × WEIGHT_SCALE. */
  readonly weight: number;
  /** SWRR's running "current weight"; mutated by `pickBackend`. */
  current: number;
  readonly endpoints: readonly CompiledEndpoint[];
  /** Index of the next endpoint (round robin); mutated by `pickEndpoint`. */
  cursor: number;
  /** The version's unlabelled series. */
  readonly counters: SeriesRecorder;
}

/** How a condition compares a value: `CONDITION_EQUALS`, `CONDITION_REGEX` or `CONDITION_EXISTS`. */
export type ConditionKind = 0 | 1 | 2;
export const CONDITION_EQUALS = 0;
export const CONDITION_REGEX = 1;
export const CONDITION_EXISTS = 2;

/** One header or cookie condition of a match rule. */
export interface CompiledCondition {
  /** Header names lower-cased (they are case-insensitive); cookie names as written. */
  readonly name: string;
  readonly kind: ConditionKind;
  readonly equals: string;
  /** Linear-time (RE2), see core/regex.ts. */
  readonly regex: UserRegex | null;
  /** For `CONDITION_EXISTS`: true means present, false means absent. */
  readonly exists: boolean;
}

export interface CompiledMatch {
  readonly header: CompiledCondition | null;
  readonly cookie: CompiledCondition | null;
  /** A path prefix matched on whole segments ("/beta" matches "/beta" and "/beta/x", not "/betamax"). */
  readonly pathPrefix: string | null;
  /** The version the rule pins requests to; it has at least one endpoint. */
  readonly backend: CompiledBackend;
}

/** Where a request's sticky key is read: a header, a cookie or a query parameter. */
export interface StickyKeySpec {
  readonly source: "header" | "cookie" | "query";
  /** Header name lower-cased; cookie and query parameter names as written. */
  readonly name: string;
  /** `name=`, to which an issued cookie appends its id and `ISSUED_COOKIE_ATTRIBUTES`. */
  readonly cookiePrefix: string;
}

export interface CompiledSticky extends StickyKeySpec {
  readonly salt: string;
  readonly hashVersion: number;
  /** The bucket function of `hashVersion` (core/hashing.ts), resolved once. */
  readonly bucket: (salt: string, key: string) => number;
  /**
   * Consecutive bucket ranges in table order (canary first): `owners[i]` owns
   * [ends[i - 1] ?? 0, ends[i]). Each range is weight × WEIGHT_SCALE buckets wide, so a 100%
   * table covers all 1,000,000 exactly. An owner is null when its version cannot take traffic
   * now (no endpoints): its keys fall back to the split until it can, then come back.
   */
  readonly ends: readonly number[];
  readonly owners: readonly (CompiledBackend | null)[];
}

export interface CompiledSelection {
  /** Honour the client's `x-turnout-version` header. */
  readonly versionOverride: boolean;
  /** In table order; only rules whose version has endpoints and whose conditions compiled. */
  readonly matches: readonly CompiledMatch[];
  readonly sticky: CompiledSticky | null;
}

/** What every compiled table has, whatever features it uses (see table.ts). */
export interface TableCore {
  readonly service: string;
  readonly revision: number;
  readonly listen: { readonly host: string; readonly port: number };
  /** Backends that can take traffic: weight > 0 and at least one endpoint. */
  readonly backends: readonly CompiledBackend[];
  /** Sum of the weights of `backends`. */
  readonly totalWeight: number;
  /** Origins of all endpoints, so that unused pools can be closed. */
  readonly origins: ReadonlySet<string>;
  /** Balancing, health, retries, timeouts and limits (defaults filled in). */
  readonly policy: TrafficPolicySpec;
  /**
   * Every version that a match rule or the override header may pick, by name: those with at
   * least one endpoint, including weight 0 (previews) when the table has rules or the override.
   */
  readonly byVersion: ReadonlyMap<string, CompiledBackend>;
  /** Override, match rules and sticky ranges (see select.ts); null when the split alone decides. */
  readonly selection: CompiledSelection | null;
}

/** What selection reads of a request: `IncomingMessage` fits. */
export type SelectableRequest = Pick<IncomingMessage, "rawHeaders" | "url">;

/**
 * Facts about one request that several steps need, computed once: the sticky key (read by the
 * selection, reused by edge flags) and the cookie the router issues with the response.
 */
export interface RequestFacts {
  /** A `Set-Cookie` value for the response (a newly issued sticky or unit cookie), or null. */
  setCookie: string | null;
  /** The request's sticky key, once `stickyKnown`; undefined when it has none. */
  stickyKey?: string | undefined;
  /** True once `stickyKey` was read for this request (by the selection). */
  stickyKnown?: boolean;
  /** The experiment unit this request exposes (exposures.ts), or null. */
  experimentUnit: string | null;
}

/** Response headers as undici reports them. */
export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** What a feature's `request` hook sees of one exchange (the proxy's `ProxyExchange`). */
export interface ExchangeView extends RequestFacts {
  readonly req: IncomingMessage;
  /** The origin-form path sent upstream (without the endpoint's prefix). */
  readonly target: string;
  readonly requestId: string;
  /** The request announces a body. */
  readonly hasBody: boolean;
  /** `performance.now()` at arrival. */
  readonly startedAt: number;
  /** The flat [name, value, ...] list sent upstream; a hook may add to it. */
  readonly headers: string[];
  /** The version picked. */
  readonly backend: CompiledBackend;
  /** The series the request is recorded into: the backend's, or a labelled one of its version. */
  counters: SeriesRecorder;
}

/** Sees the rest of one exchange; returned by a feature's `request` hook. */
export interface ExchangeObserver {
  /** undici starts reading the request body (in the same tick: every chunk is seen). */
  requestStart(req: IncomingMessage): void;
  /** The response head was relayed to the client. */
  responseStart(status: number, headers: UpstreamHeaders): void;
  /** A chunk of the relayed response body. */
  responseData(chunk: Buffer): void;
  /** The response ended. */
  responseEnd(): void;
  /** The client's response closed (after the end, or cut short). */
  clientClose(): void;
}

/** The hooks a compiled feature may add around the proxy core (see the module comment). */
export interface FeatureHooks {
  select?(req: SelectableRequest, facts: RequestFacts): CompiledBackend | null;
  request?(ex: ExchangeView): ExchangeObserver | null;
}

/**
 * A data-plane feature: compiles a route table into its field of the compiled table (null when
 * the table does not use it). `Env` is what the router hands it (its buffers, pools, sources);
 * a table compiled without one gets what the feature does without (see each feature).
 */
export interface TableFeature<Env, Compiled extends FeatureHooks> {
  compile(
    raw: RouteTable,
    core: TableCore,
    env: Env | undefined,
    problems: string[],
  ): Compiled | null;
}

/** Shared by every request of one router; never allocated per request. */
export interface ProxyContext {
  readonly logger: RouterLogger;
  /** Passive ejection: told about every attempt's outcome. */
  readonly outliers: OutlierDetector;
}
