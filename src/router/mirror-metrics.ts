/**
 * The mirror's counters in Prometheus text (`/metrics`): copies made and compared, and copies
 * dropped by reason, per service. Counters since the service's mirror state appeared in this
 * router (they restart with the process, as Prometheus counters may).
 */
import { Counter, type Registry } from "prom-client";
import type { Mirrors } from "./mirror.js";

/** The mirror's metric families, in the order `/metrics` prints them (after the process metrics). */
export const MIRROR_METRIC_NAMES = [
  "turnout_mirror_copies_total",
  "turnout_mirror_pairs_compared_total",
  "turnout_mirror_drops_total",
] as const;

/** Adds the mirror's counters to `registry` and returns it. */
export function withMirrorMetrics(
  registry: Registry,
  mirrors: Pick<Mirrors, "allStats">,
): Registry {
  new Counter({
    name: "turnout_mirror_copies_total",
    help: "Requests the router copied to a shadow version (sent), by service and shadow version.",
    labelNames: ["service", "version"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of mirrors.allStats())
        this.inc({ service: s.service, version: s.version }, s.sent);
    },
  });
  new Counter({
    name: "turnout_mirror_pairs_compared_total",
    help: "(primary, shadow) answer pairs the router compared, by service and shadow version.",
    labelNames: ["service", "version"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of mirrors.allStats())
        this.inc({ service: s.service, version: s.version }, s.compared);
    },
  });
  new Counter({
    name: "turnout_mirror_drops_total",
    help: "Copies not made, not answered or not compared, by service and reason (queue_full, body_too_large, shadow_timeout, shadow_error, primary_failed, compare_backlog, shadow_unavailable).",
    labelNames: ["service", "reason"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of mirrors.allStats())
        for (const [reason, n] of Object.entries(s.drops))
          this.inc({ service: s.service, reason }, n ?? 0);
    },
  });
  return registry;
}
