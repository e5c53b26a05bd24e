/** `setHeaderRoute: {match}`: matching requests go to the canary; without `match`, removed. */
import type { HeaderRouteStep, MatchRule } from "../model.js";
import type { StepKind } from "./types.js";

/** "header x-beta=1, path /beta" for people. */
export function describeMatch(m: Omit<MatchRule, "to">): string {
  const value = (v: { equals: string } | { regex: string } | { exists: boolean }) =>
    "equals" in v
      ? `=${v.equals}`
      : "regex" in v
        ? `~/${v.regex}/`
        : v.exists
          ? " present"
          : " absent";
  const parts: string[] = [];
  if (m.header) parts.push(`header ${m.header.name}${value(m.header)}`);
  if (m.cookie) parts.push(`cookie ${m.cookie.name}${value(m.cookie)}`);
  if (m.pathPrefix) parts.push(`path ${m.pathPrefix}`);
  return parts.join(", ");
}

export const setHeaderRoute: StepKind<HeaderRouteStep> = {
  key: "setHeaderRoute",
  describe: (h) =>
    h.match ? `setHeaderRoute ${describeMatch(h.match)}` : "setHeaderRoute (remove)",
  clear(status) {
    status.headerRoute = null;
  },
  run(ctx, i, h) {
    const s = ctx.status;
    const match = h.match ?? null;
    s.headerRoute = match;
    ctx.emit(
      "HeaderRouteSet",
      match
        ? `requests with ${describeMatch(match)} go to ${s.canaryVersion} (${ctx.label(i)})`
        : `header route removed (${ctx.label(i)})`,
      { step: i, match },
    );
    return "next";
  },
};
