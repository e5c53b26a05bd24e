/**
 * The capability check of apply and validate: a Service whose spec needs a route-table
 * feature its data plane (`spec.traffic`) does not carry is refused before anything is stored,
 * never accepted and then silently served without it. The decision is the pure
 * `trafficProblems` (src/core/traffic.ts); this turns it into field errors with their own code.
 */
import type { Resource } from "../core/model.js";
import { trafficProblems } from "../core/traffic.js";
import { type FieldError, TurnoutError } from "../errors.js";

/** One error per feature a Service needs and its provider lacks (schema-valid resources only). */
export function checkTraffic(resources: readonly Resource[]): FieldError[] {
  const errors: FieldError[] = [];
  for (const r of resources) {
    if (r.kind !== "Service") continue;
    for (const p of trafficProblems(r.spec)) {
      errors.push({
        resource: `Service/${r.metadata.name}`,
        path: p.path,
        message: p.reason,
        code: "TURNOUT_ERR_TRAFFIC_UNSUPPORTED",
      });
    }
  }
  return errors;
}

/**
 * The API's answer when the only problems are unsupported features: its own code (400) and the
 * first problem as the message ("Service/x: spec.strategy.shadow needs mirrored traffic, ...").
 * Null when any other problem is present: those are reported together as invalid resources.
 */
export function trafficUnsupportedError(errors: readonly FieldError[]): TurnoutError | null {
  const first = errors[0];
  if (first === undefined || errors.some((e) => e.code !== "TURNOUT_ERR_TRAFFIC_UNSUPPORTED"))
    return null;
  return new TurnoutError(
    "TURNOUT_ERR_TRAFFIC_UNSUPPORTED",
    `${first.resource ? `${first.resource}: ` : ""}${first.path} ${first.message}`,
    { path: first.path, errors: [...errors] },
  );
}
