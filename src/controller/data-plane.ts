/**
 * What the router registry says of each service's data plane, for the pure core
 * (`ReconcileInput.dataPlane`, `core/rollout/data-plane.ts`): a service is not served while a
 * live router (heartbeat within `liveMs`) lists it in `notServing`. Only explicit reports count:
 * a router that has not reported a service yet (a table just written) is no evidence either
 * way, and a router gone silent stops counting once it is no longer live.
 */
import type { RouterReport } from "../store/store.js";

export interface DataPlaneReport {
  serving: false;
  /** Each router's reason, with its id ("cannot listen on ...: ... (router host:pid)"). */
  reason: string;
}

/** The services some live router cannot serve, with why; a service absent is served. */
export function dataPlanesOf(
  routers: readonly RouterReport[],
  now: number,
  liveMs: number,
): Map<string, DataPlaneReport> {
  // service -> reason -> the routers that give it
  const by = new Map<string, Map<string, string[]>>();
  for (const r of routers) {
    if (now - r.heartbeatAt >= liveMs) continue;
    for (const [service, e] of Object.entries(r.notServing ?? {})) {
      const reasons = by.get(service) ?? new Map<string, string[]>();
      reasons.set(e.reason, [...(reasons.get(e.reason) ?? []), r.id]);
      by.set(service, reasons);
    }
  }
  const out = new Map<string, DataPlaneReport>();
  for (const [service, reasons] of by) {
    const parts = [...reasons].map(
      ([reason, ids]) => `${reason} (router${ids.length > 1 ? "s" : ""} ${ids.join(", ")})`,
    );
    out.set(service, { serving: false, reason: parts.join("; ") });
  }
  return out;
}
