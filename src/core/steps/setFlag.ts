/**
 * `setFlag: {flag, percentage?|variant?|enabled?}`: changes a Flag as a step of a rollout
 * (blue-green with feature flags: switch, then raise the feature 1 -> 10 -> 50 -> 100 with
 * analysis between). Done at once.
 *
 * The step never rewrites the user's Flag resource: it records the change in the service's
 * status (`status.flags[flag]`, the controller being the only writer of status), and the flag
 * snapshot (`src/flags/snapshot.ts`) lays it over the resource, the latest of it and a
 * person's override winning. When the rollout is rolled back (a failed analysis, an abort),
 * `clear` turns every flag this rollout touched off, at the time of the rollback, with why.
 */
import type { FlagStepOverride } from "../flags/types.js";
import type { ServiceStatus, SetFlagStep } from "../model.js";
import type { StepKind } from "./types.js";

function describe(b: SetFlagStep): string {
  const parts: string[] = [];
  if (b.enabled !== undefined) parts.push(b.enabled ? "on" : "off");
  if (b.variant !== undefined) parts.push(`variant ${b.variant}`);
  if (b.percentage !== undefined) parts.push(`${b.percentage}%`);
  return `setFlag ${b.flag} ${parts.join(" ")}`.trim();
}

export const setFlag: StepKind<SetFlagStep> = {
  key: "setFlag",
  describe,
  run(ctx, i, body) {
    const s = ctx.status;
    const flags = { ...(s.flags ?? {}) };
    const entry: FlagStepOverride = {
      at: ctx.now,
      rollout: s.rolloutNumber,
      step: i,
      reason: `rollout ${s.rolloutNumber} ${ctx.label(i)}: ${describe(body)}`,
    };
    if (body.enabled !== undefined) entry.state = body.enabled ? "ENABLED" : "DISABLED";
    // A step that raises the percentage also means "on": a flag killed earlier comes back.
    else if (body.percentage !== undefined || body.variant !== undefined) entry.state = "ENABLED";
    if (body.percentage !== undefined) entry.percentage = body.percentage;
    if (body.variant !== undefined) entry.variant = body.variant;
    flags[body.flag] = entry;
    s.flags = flags;
    ctx.emit("FlagChanged", `flag ${body.flag}: ${describe(body)} (${ctx.label(i)})`, {
      flag: body.flag,
      step: i,
      ...(entry.state !== undefined ? { state: entry.state } : {}),
      ...(body.percentage !== undefined ? { percentage: body.percentage } : {}),
      ...(body.variant !== undefined ? { variant: body.variant } : {}),
    });
    return "next";
  },
  clear(status: ServiceStatus) {
    // Called whenever a rollout ends or restarts. Only a rollback (phase already Degraded,
    // an aborted version) of the rollout that set the flags turns them off; a completed
    // rollout leaves them where its last step put them.
    if (status.flags === undefined) return;
    if (status.phase !== "Degraded" || status.abortedVersion === null) return;
    let changed = false;
    const flags: Record<string, FlagStepOverride> = {};
    for (const [key, e] of Object.entries(status.flags)) {
      if (e.rollout === status.rolloutNumber && e.state !== "DISABLED") {
        changed = true;
        flags[key] = {
          ...e,
          state: "DISABLED",
          at: status.lastTransitionAt,
          reason: `turned off: ${status.message}`,
        };
      } else flags[key] = e;
    }
    if (changed) status.flags = flags;
  },
};
