/**
 * One table's mirror (the compiled table's `mirror`): which requests are copied. Method, then
 * the match (header, cookie, path prefix; the same semantics as select.ts), then exact
 * sampling in steps of 0.01% (each request adds percent × 100 to the service's accumulator and
 * every 10,000 makes a copy), then the limits. A copied request gets a `MirrorTap`
 * (mirror-tap.ts); the others cost these checks only.
 */
import type { IncomingMessage } from "node:http";
import type { UserRegex } from "../core/regex.js";
import type { CompiledCompare } from "../core/shadow/compare.js";
import type { RouteMirror } from "../core/shadow/types.js";
import {
  type MirrorHost,
  type MirrorState,
  MirrorTap,
  type ShadowEndpoint,
  type TapSource,
} from "./mirror-tap.js";
import { cookieValue, headerValue, pathHasPrefix } from "./request.js";
import type { ExchangeView } from "./types.js";

/** The marker header on every copy, so a shadow can tell copies from user requests. */
export const SHADOW_HEADER = "x-turnout-shadow";

/** Sampling is exact in steps of 0.01%: each request adds percent × 100 to an accumulator. */
const SAMPLE_FULL = 10_000;

/** A compiled condition of the mirror's match (the same semantics as select.ts). */
export interface MirrorCondition {
  name: string;
  equals: string | null;
  regex: UserRegex | null;
  exists: boolean | null;
}

/** One table's mirror: the sampling and matching decision per request. */
export class CompiledMirror implements TapSource {
  readonly #full: number;
  readonly stripHeaders: ReadonlySet<string>;
  readonly methods: ReadonlySet<string>;
  #cursor = 0;
  #noiseCursor = 0;

  constructor(
    readonly mirrors: MirrorHost,
    readonly state: MirrorState,
    readonly spec: RouteMirror,
    readonly endpoints: readonly ShadowEndpoint[],
    readonly noise: readonly ShadowEndpoint[],
    readonly compare: CompiledCompare,
    readonly headerConditions: readonly MirrorCondition[],
    readonly cookieCondition: MirrorCondition | null,
    readonly pathPrefix: string | null,
  ) {
    this.#full = Math.round(spec.percent * 100);
    this.stripHeaders = new Set(spec.stripHeaders);
    this.methods = new Set(spec.methods);
  }

  /**
   * The feature's `request` hook: decides whether this request is copied; if so, returns the
   * tap that captures it (the exchange's observer). Called by the proxy after the version was
   * picked and before the primary is dispatched.
   */
  request(ex: ExchangeView): MirrorTap | null {
    return this.tap(ex.req, ex.target, ex.headers, ex.hasBody, ex.requestId, ex.startedAt);
  }

  tap(
    req: IncomingMessage,
    target: string,
    headers: readonly string[],
    hasBody: boolean,
    requestId: string,
    startedAt: number,
  ): MirrorTap | null {
    // 1. Method, then match, then the exact sampling (cheapest first).
    const method = req.method ?? "GET";
    if (!this.methods.has(method)) return null;
    if (!this.#matches(req)) return null;
    const st = this.state;
    st.acc += this.#full;
    if (st.acc < SAMPLE_FULL) return null;
    st.acc -= SAMPLE_FULL;
    st.mirrored++;
    // 2. Every shadow is failing (the breaker ejected them, mirror.ts): no copy until one is
    //    back (then the next copies probe it).
    if (!this.#anyAvailable()) {
      st.drop("shadow_unavailable");
      return null;
    }
    // 3. A body announced over the limit is not mirrored at all.
    const limits = this.spec.limits;
    if (hasBody) {
      const length = Number(req.headers["content-length"]);
      if (Number.isFinite(length) && length > limits.maxBodyBytes) {
        st.drop("body_too_large");
        return null;
      }
    }
    // 4. The queue is full now: do not even capture.
    if (st.inFlight >= limits.maxConcurrency && st.queue.length >= limits.maxQueue) {
      st.drop("queue_full");
      return null;
    }
    const copyHeaders: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const lower = name.toLowerCase();
      if (this.stripHeaders.has(lower) || lower === SHADOW_HEADER) continue;
      copyHeaders.push(name, headers[i + 1]!);
    }
    copyHeaders.push(SHADOW_HEADER, "1");
    const tap = new MirrorTap(this, method, target, copyHeaders, hasBody, requestId, startedAt);
    if (!hasBody) this.mirrors.enqueue(tap);
    return tap;
  }

  #matches(req: IncomingMessage): boolean {
    if (this.pathPrefix !== null && !pathHasPrefix(req.url, this.pathPrefix)) return false;
    const raw = req.rawHeaders;
    for (const c of this.headerConditions) if (!holds(c, headerValue(raw, c.name))) return false;
    if (
      this.cookieCondition !== null &&
      !holds(this.cookieCondition, cookieValue(raw, this.cookieCondition.name))
    )
      return false;
    return true;
  }

  /** The next shadow endpoint the breaker has not ejected (any, when all are). */
  nextEndpoint(): ShadowEndpoint {
    const eps = this.endpoints;
    for (let k = 0; k < eps.length; k++) {
      const e = eps[this.#cursor % eps.length]!;
      this.#cursor++;
      if (e.available) return e;
    }
    return eps[this.#cursor++ % eps.length]!;
  }

  #anyAvailable(): boolean {
    const eps = this.endpoints;
    for (let i = 0; i < eps.length; i++) if (eps[i]!.available) return true;
    return false;
  }

  nextNoiseEndpoint(): ShadowEndpoint | null {
    if (this.noise.length === 0) return null;
    const e = this.noise[this.#noiseCursor % this.noise.length]!;
    this.#noiseCursor++;
    return e;
  }
}

function holds(c: MirrorCondition, value: string | undefined): boolean {
  if (c.exists !== null) return (value !== undefined) === c.exists;
  if (value === undefined) return false;
  if (c.equals !== null) return value === c.equals;
  return c.regex?.test(value) === true;
}
