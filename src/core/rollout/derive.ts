/**
 * What a status puts in force: the traffic split, the versions the runtime runs, and when a
 * kept-warm version is due to stop. Pure functions of the status (and `now`).
 */
import type { ServiceSpec, ServiceStatus } from "../model.js";
import { replicasOf } from "../replicas.js";
import { roundWeight } from "../steps/setWeight.js";
import type { VersionWeight } from "./types.js";
import { earliest } from "./work.js";

/** When an aborted candidate is due to stop, if that is still ahead. */
export function scaleDownAt(s: ServiceStatus, now: number): number | null {
  const due = (at: number | null | undefined) => (at != null && at > now ? at : null);
  return earliest(due(s.abortScaleDownAt), due(s.previousScaleDownAt));
}

export function weightsOf(s: ServiceStatus): VersionWeight[] {
  const stable = s.stableVersion;
  if (stable === null) return [];
  if (s.canaryVersion === null || s.canaryVersion === stable)
    return [{ version: stable, weight: 100 }];
  const c = roundWeight(s.canaryWeight);
  return [
    { version: stable, weight: roundWeight(100 - c) },
    { version: s.canaryVersion, weight: c },
  ];
}

/** Stable always runs; the canary runs during its rollout. Aborted and replaced versions stop. */
export function targetsOf(
  s: ServiceStatus,
  spec: ServiceSpec,
  now: number,
): { version: string; replicas: number }[] {
  const replicas = replicasOf(spec);
  // A step may run a version at another size (a rolling update's batches, a smaller preview).
  const of = (v: string) => s.replicas?.[v] ?? replicas;
  const out: { version: string; replicas: number }[] = [];
  const listed = (v: string) => out.some((t) => t.version === v);
  if (s.stableVersion !== null)
    out.push({ version: s.stableVersion, replicas: of(s.stableVersion) });
  if (s.canaryVersion !== null && !listed(s.canaryVersion)) {
    out.push({ version: s.canaryVersion, replicas: of(s.canaryVersion) });
  }
  // Versions a step runs besides these (an experiment's further arms).
  for (const [v, n] of Object.entries(s.replicas ?? {})) {
    if (!listed(v)) out.push({ version: v, replicas: n });
  }
  // An aborted candidate stays up (without traffic) for a while, so people can look at it.
  const keep = s.abortedVersion;
  if (keep !== null && !listed(keep) && (s.abortScaleDownAt ?? 0) > now) {
    out.push({ version: keep, replicas });
  }
  // Blue-green: the previous stable version stays warm for scaleDownDelaySeconds.
  const previous = s.previousStableVersions[0];
  if (previous !== undefined && !listed(previous) && (s.previousScaleDownAt ?? 0) > now) {
    out.push({ version: previous, replicas });
  }
  return out;
}
