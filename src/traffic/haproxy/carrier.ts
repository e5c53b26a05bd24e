/**
 * What the provider (provider.ts) asks of each mode that carries a service's table into HAProxy
 * (managed.ts, attach.ts), and what both modes share: which features they carry and the refusal
 * of the rest, and host names resolved to the addresses HAProxy's servers take.
 */
import { lookup } from "node:dns/promises";
import type { HaproxyTrafficSpec, RouteTable } from "../../core/model.js";
import { type RouteFeature, TRAFFIC_MODES } from "../../core/traffic.js";
import { unsupportedTableError } from "../tables.js";
import type { RuntimeApi } from "./runtime-api.js";
import type { SupervisorStatus } from "./supervisor.js";

/** What a managed HAProxy carries: core/traffic.ts's table, which apply checks too. */
export const HAPROXY_MANAGED_FEATURES: ReadonlySet<RouteFeature> = TRAFFIC_MODES.haproxy.features;
/** What an attached HAProxy's backend carries: weights only. */
export const HAPROXY_ATTACH_FEATURES: ReadonlySet<RouteFeature> =
  TRAFFIC_MODES.haproxyAttach.features;

/** The features a table's `traffic.haproxy` allows (attach mode when it names a runtime API). */
export function haproxyFeatures(spec: HaproxyTrafficSpec | undefined): ReadonlySet<RouteFeature> {
  return spec?.runtimeApi !== undefined ? HAPROXY_ATTACH_FEATURES : HAPROXY_MANAGED_FEATURES;
}

/** A managed service's state, for `status`. */
export interface HaproxyServiceStatus {
  service: string;
  mode: "managed" | "attach";
  revision: number | null;
  /** Managed: the process. */
  process?: SupervisorStatus;
  /** Servers drained and waiting for their connections to end. */
  draining: number;
}

/** One service's table carried into HAProxy, in one mode. */
export interface Carrier {
  readonly mode: "managed" | "attach";
  /** The spec it was made for: another spec needs another carrier. */
  readonly specKey: string;
  readonly api: RuntimeApi;
  apply(table: RouteTable): Promise<void>;
  reap(): Promise<void>;
  stop(): Promise<void>;
  status(): Omit<HaproxyServiceStatus, "service" | "revision">;
  /** The version a slot serves now (managed mode's layout); null when it has none. */
  slotVersion?(slot: string): string | null;
}

/**
 * Refuses a table that uses a feature the mode does not carry, naming it and the provider, with
 * the error every provider uses for it (TURNOUT_ERR_TRAFFIC_UNSUPPORTED, src/traffic/tables.ts).
 */
export function refuseUnsupported(table: RouteTable, spec: HaproxyTrafficSpec): void {
  const mode = spec.runtimeApi !== undefined ? "attach mode (runtimeApi)" : "managed mode";
  const err = unsupportedTableError(
    table,
    `the haproxy provider in ${mode}`,
    haproxyFeatures(spec),
  );
  if (err) throw err;
}

/** Host names of a table's endpoints resolved to addresses (HAProxy servers take addresses). */
export async function resolver(table: RouteTable): Promise<(host: string) => string | undefined> {
  const hosts = new Set<string>();
  for (const b of table.backends) {
    for (const e of b.endpoints) {
      try {
        const h = new URL(e).hostname;
        if (!/^[\d.]+$/.test(h) && !h.startsWith("[")) hosts.add(h);
      } catch {}
    }
  }
  const out = new Map<string, string>();
  await Promise.all(
    [...hosts].map(async (h) => {
      try {
        // One address per server: IPv4 first, as upstreams most often listen on 127.0.0.1
        // while "localhost" may resolve to ::1 first.
        const all = await lookup(h, { all: true });
        const pick = all.find((a) => a.family === 4) ?? all[0];
        if (pick !== undefined) out.set(h, pick.address);
      } catch {}
    }),
  );
  return (h) => out.get(h);
}
