/**
 * Requests sent, none answered: the rule for a candidate that takes requests and answers none
 * (it hangs), which no judge can see. A judge reads the requests that ended, and a request to a
 * version that hangs ends only when its client gives up (counted as abandoned) or when the data
 * plane's upstream timeout answers 504 for it. Clients that wait longer than a step's pause see
 * nothing end during the step: to a judge that is "no data", which must not pass (a timed pause
 * holds on it, `holdForData` in `../rollout/analysis.ts`) but must not hold for ever either
 * when the candidate is the cause. The data plane knows better: the built-in router counts a
 * request when it picks the version for it and a response when its head comes
 * (`CandidateTraffic`), so "37 sent, 0 answered" is visible long before anything ends.
 *
 * Pure. Applied to every observation before its judge, when the source says what the data plane
 * sent (the builtin metrics over the built-in router); without that (HAProxy for now, Prometheus,
 * web, command sources) the judge alone decides and "no data" holds:
 * 1. A response head came, or a request ended, in the window: no opinion; the judge decides.
 * 2. No request was sent to the candidate: inconclusive, reason "noTraffic", provisional. A quiet
 *    service is not a failing one; a timed pause holds on it and says so, and a person promotes
 *    or waits for traffic.
 * 3. Requests were sent and nothing came back:
 *    - FAIL, reason "noResponse", once the first of them has gone unanswered for the metric's
 *      `noResponseMs` as far as this reading can tell: the window's end, less
 *      NO_RESPONSE_MARGIN_MS for answers not yet flushed to the store, less the end of the
 *      second in which the first request was sent (its start is only known to the second);
 *    - before that, inconclusive, reason "noResponse", provisional; the run does not count it
 *      as a measurement and looks again by the time the bound is reached at the latest
 *      (`noResponseDeadline`), so it ends in an answer or in a failure, never in a wait.
 *
 * The bound defaults to the service's upstream timeout (`trafficPolicy.timeouts.upstreamSeconds`,
 * 30 s): the service's own statement of how long a version may take to send a response head,
 * after which the built-in router answers 504 for it. The rule waits for a head, not for a last
 * byte, so a long streamed answer (a model's tokens) is not taken for a hang. A metric sets a
 * shorter bound with `noResponseTimeout` to catch a hanging version sooner than the 504s would.
 */
import { formatDuration } from "../duration.js";
import type { JudgeSpec } from "../model.js";
import { plural } from "../plural.js";
import { inconclusive, verdict } from "./judges/explain.js";
import type { Base, Verdict } from "./judges/types.js";
import { judgeKind } from "./judges.js";
import type { CandidateTraffic } from "./observation.js";

/** The bound when neither the metric nor the service sets one: the router's upstream timeout. */
export const DEFAULT_NO_RESPONSE_MS = 30_000;

/**
 * How far behind the window's end the data read may be: routers flush each second to the store
 * about a second after it ends (`src/router/stats.ts`), so an answer of the last two seconds or
 * so may not be there yet. Waiting this much longer than the bound before failing means that a
 * first request answered within the bound is never failed for an answer not yet flushed.
 */
export const NO_RESPONSE_MARGIN_MS = 3_000;

export interface NoResponseContext {
  /** The metric's name: the subject of the explanation. */
  metric: string;
  minSamples: number;
  /** How long the first request may go unanswered before the candidate fails, ms. */
  noResponseMs: number;
  /** The window measured. */
  window: { fromMs: number; toMs: number };
}

/**
 * The rule's verdict (see the module comment), or undefined when it has no opinion: the source
 * does not say what was sent, or something came back.
 *
 * @example
 * noResponseVerdict({ sequential: { maxIncrease: 0.01, alpha: 0.05 } },
 *   { version: "v2", started: 37, responded: 0, ended: 0, firstStartedAt: T },
 *   { metric: "errors", minSamples: 100, noResponseMs: 30_000,
 *     window: { fromMs: T, toMs: T + 34_000 } })
 * // fail: "errors: v2: 37 requests sent, none answered within 30s of the first (noResponseTimeout 30s)"
 */
export function noResponseVerdict(
  spec: JudgeSpec,
  t: CandidateTraffic | undefined,
  ctx: NoResponseContext,
): Verdict | undefined {
  if (t === undefined || t.responded > 0 || t.ended > 0) return undefined;
  const base: Base = {
    kind: judgeKind(spec),
    inputs: {
      judge: spec,
      minSamples: ctx.minSamples,
      traffic: { ...t, noResponseMs: ctx.noResponseMs },
    },
  };
  // 2. Nothing was sent: a quiet service.
  if (t.started === 0 || t.firstStartedAt === null) {
    const span = formatDuration(Math.max(0, ctx.window.toMs - ctx.window.fromMs));
    return inconclusive(
      base,
      "noTraffic",
      `${ctx.metric}: no request was sent to ${t.version} in the window (${span}): nothing to judge yet`,
      true,
    );
  }
  // 3. Sent, and nothing came back: a failure once the first has waited out the bound.
  const sent = `${t.version}: ${plural(t.started, "request")} sent`;
  const bound = formatDuration(ctx.noResponseMs);
  const silent = silentMs(t.firstStartedAt, ctx.window.toMs);
  if (silent >= ctx.noResponseMs) {
    return verdict(
      base,
      "fail",
      `${ctx.metric}: ${sent}, none answered within ${formatDuration(silent)} of the first (noResponseTimeout ${bound})`,
      "noResponse",
    );
  }
  const ago = formatDuration(Math.max(0, ctx.window.toMs - t.firstStartedAt));
  return inconclusive(
    base,
    "noResponse",
    `${ctx.metric}: ${sent}, none answered yet (the first about ${ago} ago; it fails when ${bound} pass without an answer: noResponseTimeout)`,
    true,
  );
}

/**
 * How long the first request of the window is known to have gone unanswered at a reading of
 * the window up to `toMs`: from the end of the second it was sent in (the latest it can have
 * been sent) to the newest answer the reading can be sure to include.
 */
export function silentMs(firstStartedAt: number, toMs: number): number {
  return toMs - NO_RESPONSE_MARGIN_MS - (firstStartedAt + 1000);
}

/**
 * When a reading would fail the candidate if nothing comes back by then (clock ms): where a run
 * looks again after a "noResponse" inconclusive, so the failure comes at the bound, not at the
 * next interval.
 */
export function noResponseDeadline(firstStartedAt: number, noResponseMs: number): number {
  return firstStartedAt + 1000 + NO_RESPONSE_MARGIN_MS + noResponseMs;
}
