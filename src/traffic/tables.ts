/**
 * Route tables as the router role hands them to providers: sorted by the provider that carries
 * them, and checked against what a provider carries. Pure.
 */
import type { RouteTable } from "../core/model.js";
import {
  FEATURE_TEXT,
  type RouteFeature,
  TRAFFIC_PROVIDER_KINDS,
  type TrafficProviderKind,
  tableFeatures,
  trafficKindOf,
} from "../core/traffic.js";
import { TurnoutError } from "../errors.js";

/**
 * The tables each provider kind carries (`RouteTable.traffic`; absent, the built-in router),
 * in their order. Every kind is present, with an empty list when it carries nothing, because
 * a provider's `apply` takes its complete set: an empty one stops what it served.
 *
 * @example
 * const by = partitionByProvider(await store.listRouteTables());
 * await builtin.apply(by.builtin);
 * await haproxy.apply(by.haproxy);
 */
export function partitionByProvider(
  tables: readonly RouteTable[],
): Record<TrafficProviderKind, RouteTable[]> {
  const out = Object.fromEntries(TRAFFIC_PROVIDER_KINDS.map((k) => [k, []])) as unknown as Record<
    TrafficProviderKind,
    RouteTable[]
  >;
  for (const t of tables) out[trafficKindOf(t.traffic)].push(t);
  return out;
}

/** The features `table` uses that `features` lacks, in `ROUTE_FEATURES` order. */
export function missingFeatures(
  table: RouteTable,
  features: ReadonlySet<RouteFeature>,
): RouteFeature[] {
  return tableFeatures(table).filter((f) => !features.has(f));
}

/**
 * The error a provider answers a table with when it cannot carry all of it (null: it can).
 * `provider` reads in a sentence: "the haproxy provider".
 */
export function unsupportedTableError(
  table: RouteTable,
  provider: string,
  features: ReadonlySet<RouteFeature>,
): TurnoutError | null {
  const missing = missingFeatures(table, features);
  if (missing.length === 0) return null;
  const texts = missing.map((f) => FEATURE_TEXT[f]);
  const what =
    texts.length === 1 ? texts[0] : `${texts.slice(0, -1).join(", ")} and ${texts.at(-1)}`;
  return new TurnoutError(
    "TURNOUT_ERR_TRAFFIC_UNSUPPORTED",
    `the route table of ${table.service} (revision ${table.revision}) needs ${what}, which ${provider} does not carry; it keeps serving the table it had`,
    { service: table.service, revision: table.revision, features: missing },
  );
}
