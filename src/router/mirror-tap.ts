/**
 * The mirror's copies (see mirror.ts for the whole): a service's mirror state (its phase's
 * aggregate, sampling accumulator, queue and counters), and one mirrored request (`MirrorTap`):
 * it captures the primary's answer as the proxy relays it (it is the exchange's observer),
 * buffers the request body, sends the copy (and the noise copy) and compares when all are in.
 */
import type { IncomingMessage } from "node:http";
import type { Dispatcher, Pool } from "undici";
import type { ShadowAggregate } from "../core/shadow/aggregate.js";
import { type CompiledCompare, comparePair } from "../core/shadow/compare.js";
import type { CapturedResponse, RouteMirror } from "../core/shadow/types.js";
import type { HealthTarget } from "./health.js";
import type { ExchangeObserver, UpstreamHeaders } from "./types.js";

/** Why a copy was not made, not answered, or not compared. */
export type DropReason =
  | "queue_full"
  | "body_too_large"
  | "shadow_timeout"
  | "shadow_error"
  | "primary_failed"
  | "compare_backlog"
  | "shadow_unavailable";

/**
 * One shadow instance: its pool, and the health state by which the mirror's breaker (the
 * router's `OutlierDetector`, health.ts) stops copying to it while it fails. Shared by every
 * table that mirrors to its URL, so a table swap keeps what was learnt.
 */
export interface ShadowEndpoint extends HealthTarget {
  readonly pool: Pool;
  readonly pathPrefix: string;
}

/** What the mirrors (mirror.ts) do for a tap: queue it, compare it, learn from its copy. */
export interface MirrorHost {
  /** Queues a tap whose copy is ready to go (its request body, if any, complete). */
  enqueue(tap: MirrorTap): void;
  /** A pair whose answers are all in: compare it soon, off the request path. */
  finished(tap: MirrorTap): void;
  /** A copy's outcome on its shadow endpoint, for the breaker. */
  copyOutcome(ep: ShadowEndpoint, peers: readonly ShadowEndpoint[], ok: boolean): void;
}

/** What a tap reads of its table's mirror (mirror-sample.ts `CompiledMirror`). */
export interface TapSource {
  readonly mirrors: MirrorHost;
  readonly state: MirrorState;
  readonly spec: RouteMirror;
  readonly endpoints: readonly ShadowEndpoint[];
  readonly compare: CompiledCompare;
  nextEndpoint(): ShadowEndpoint;
  nextNoiseEndpoint(): ShadowEndpoint | null;
}

/** Per service: the phase's aggregate, the sampling state, the queue. Outlives tables. */
export class MirrorState {
  id = "";
  version = "";
  agg: ShadowAggregate;
  dirty = false;
  acc = 0;
  /** False once the service's table has no mirror: queued copies are then not sent. */
  active = true;
  inFlight = 0;
  readonly queue: MirrorTap[] = [];
  pumpScheduled = false;
  mirrored = 0;
  sent = 0;
  compared = 0;
  readonly drops: Partial<Record<DropReason, number>> = {};

  constructor(
    readonly service: string,
    agg: ShadowAggregate,
  ) {
    this.agg = agg;
  }

  drop(reason: DropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    // Copies that were never made or never compared; the shadow's own failures are pairs.
    if (
      reason !== "shadow_timeout" &&
      reason !== "shadow_error" &&
      reason !== "shadow_unavailable"
    ) {
      this.agg.drop(reason);
      this.dirty = true;
    }
  }
}

/** Sends queued copies while the service has concurrency left. */
export function pump(st: MirrorState): void {
  st.pumpScheduled = false;
  if (!st.active) {
    st.queue.length = 0;
    return;
  }
  while (st.queue.length > 0) {
    const tap = st.queue[0]!;
    if (st.inFlight >= tap.mirror.spec.limits.maxConcurrency) return;
    st.queue.shift();
    tap.send();
  }
}

/** One answer being captured (the primary's, a shadow copy's, or the noise copy's). */
class Capture {
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  chunks: Buffer[] = [];
  bytes = 0;
  truncated = false;
  latencyMs = -1;
  /** 0 pending, 1 done, 2 failed. */
  outcome = 0;
  error = "";

  constructor(readonly max: number) {}

  data(chunk: Buffer): void {
    if (this.truncated) return;
    if (this.bytes + chunk.length > this.max) {
      this.truncated = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  toResponse(): CapturedResponse {
    return {
      status: this.status,
      headers: this.headers,
      body: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes),
      truncated: this.truncated,
      latencyMs: this.latencyMs,
    };
  }
}

/**
 * One mirrored request: captures the primary's answer (fed by the proxy), the request body
 * (for requests with one), sends the copy (and the noise copy), and compares when all are in.
 */
export class MirrorTap implements ExchangeObserver {
  readonly state: MirrorState;
  readonly primary: Capture;
  shadow: Capture | null = null;
  noise: Capture | null = null;
  bodyChunks: Buffer[] | null = null;
  bodyBytes = 0;
  /** The copy will not be sent or compared (queue full, body too large). */
  dropped = false;
  #watching = false;
  /** Copies of this tap still in flight (0..2). */
  #pending = 0;
  #sentAt = 0;
  /** The shadow endpoint the copy went to (its outcome feeds the breaker). */
  #shadowEp: ShadowEndpoint | null = null;

  constructor(
    readonly mirror: TapSource,
    readonly method: string,
    readonly target: string,
    readonly headers: string[],
    readonly hasBody: boolean,
    readonly requestId: string,
    readonly startedAt: number,
  ) {
    this.state = mirror.state;
    this.primary = new Capture(mirror.spec.limits.maxCompareBytes);
  }

  // --- fed by the proxy (an `ExchangeObserver`) ---------------------------------------------

  requestStart(req: IncomingMessage): void {
    this.watchBody(req);
  }

  responseStart(status: number, headers: UpstreamHeaders): void {
    this.primaryHead(status, headers);
  }

  responseData(chunk: Buffer): void {
    this.primaryData(chunk);
  }

  responseEnd(): void {
    this.primaryEnd();
  }

  clientClose(): void {
    this.primaryClosed();
  }

  /** Buffers the request body as undici reads it (attached in the same tick, so no chunk is missed). */
  watchBody(req: IncomingMessage): void {
    if (this.#watching || !this.hasBody) return;
    this.#watching = true;
    this.bodyChunks = [];
    const max = this.mirror.spec.limits.maxBodyBytes;
    req.on("data", (chunk: Buffer) => {
      if (this.bodyChunks === null) return;
      this.bodyBytes += chunk.length;
      if (this.bodyBytes > max) {
        this.bodyChunks = null;
        this.dropped = true;
        this.state.drop("body_too_large");
        return;
      }
      this.bodyChunks.push(chunk);
    });
    req.on("end", () => {
      if (this.bodyChunks !== null && !this.dropped) this.mirror.mirrors.enqueue(this);
    });
  }

  primaryHead(status: number, headers: UpstreamHeaders): void {
    this.primary.status = status;
    this.primary.headers = headers;
  }

  primaryData(chunk: Buffer): void {
    this.primary.data(chunk);
  }

  primaryEnd(): void {
    if (this.primary.outcome !== 0) return;
    // Ended without a response head (a header Node refused): nothing to compare.
    this.primary.outcome = this.primary.status === 0 ? 2 : 1;
    this.primary.latencyMs = performance.now() - this.startedAt;
    this.#maybeFinish();
  }

  /** The client's response closed: if the primary did not end well, the pair is not compared. */
  primaryClosed(): void {
    if (this.primary.outcome !== 0) return;
    this.primary.outcome = 2;
    this.#maybeFinish();
  }

  // --- the copies ----------------------------------------------------------------------------

  send(): void {
    const st = this.state;
    const limits = this.mirror.spec.limits;
    const body =
      this.bodyChunks === null
        ? null
        : this.bodyChunks.length === 1
          ? this.bodyChunks[0]!
          : Buffer.concat(this.bodyChunks);
    this.bodyChunks = null;
    st.inFlight++;
    st.sent++;
    st.agg.sent();
    st.dirty = true;
    this.#sentAt = performance.now();
    // Both captures exist before either dispatch, which may fail synchronously.
    const timeoutMs = limits.timeoutSeconds * 1000;
    const noiseEp = this.mirror.nextNoiseEndpoint();
    this.shadow = new Capture(limits.maxCompareBytes);
    if (noiseEp !== null) this.noise = new Capture(limits.maxCompareBytes);
    this.#pending = noiseEp !== null ? 2 : 1;
    this.#shadowEp = this.mirror.nextEndpoint();
    this.#dispatch(this.#shadowEp, this.shadow, body, timeoutMs);
    if (noiseEp !== null) this.#dispatch(noiseEp, this.noise!, body, timeoutMs);
  }

  #dispatch(ep: ShadowEndpoint, cap: Capture, body: Buffer | null, timeoutMs: number): void {
    const handler = new CopyHandler(this, cap);
    try {
      ep.pool.dispatch(
        {
          path: ep.pathPrefix === "" ? this.target : ep.pathPrefix + this.target,
          method: this.method,
          headers: this.headers,
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        },
        handler,
      );
    } catch (err) {
      handler.onResponseError(undefined, err as Error);
    }
  }

  /** A copy ended (answered or failed). */
  copyDone(cap: Capture): void {
    if (cap.outcome === 1) cap.latencyMs = performance.now() - this.#sentAt;
    if (cap === this.shadow && this.#shadowEp !== null)
      this.mirror.mirrors.copyOutcome(this.#shadowEp, this.mirror.endpoints, cap.outcome === 1);
    this.#pending--;
    if (this.#pending > 0) return;
    const st = this.state;
    st.inFlight--;
    if (st.queue.length > 0 && !st.pumpScheduled) {
      st.pumpScheduled = true;
      setImmediate(pump, st);
    }
    this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.primary.outcome === 0 || this.shadow === null || this.#pending > 0) return;
    if (this.primary.outcome === 2) {
      if (!this.dropped) this.state.drop("primary_failed");
      this.dropped = true;
      return;
    }
    this.mirror.mirrors.finished(this);
  }

  /** Compares the pair into the phase's aggregate (called from the compare batch). */
  compare(): void {
    const st = this.state;
    // The phase changed while this pair was in flight: it belongs to none.
    if (st.id !== this.mirror.spec.id) return;
    const shadow = this.shadow!;
    const meta = { requestId: this.requestId, method: this.method, target: this.target };
    st.compared++;
    st.dirty = true;
    if (shadow.outcome === 2) {
      st.agg.addShadowError(this.primary.status, shadow.error, meta);
      return;
    }
    const primary = this.primary.toResponse();
    const c = this.mirror.compare;
    st.agg.addPair(comparePair(c, primary, shadow.toResponse()), meta);
    if (this.noise !== null && this.noise.outcome === 1) {
      st.agg.addNoise(comparePair(c, primary, this.noise.toResponse()).diffs);
    }
  }
}

/** undici's handler for one copy: keeps the head and up to `max` bytes of the body. */
class CopyHandler implements Dispatcher.DispatchHandler {
  #done = false;

  constructor(
    readonly tap: MirrorTap,
    readonly cap: Capture,
  ) {}

  onRequestStart(): void {}

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return;
    this.cap.status = statusCode;
    this.cap.headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.cap.data(chunk);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.cap.outcome = 1;
    this.tap.copyDone(this.cap);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.#done) return;
    this.#done = true;
    const code = (err as { code?: string }).code;
    this.cap.outcome = 2;
    this.cap.error = code ?? err.message;
    if (this.cap === this.tap.shadow) {
      const timeout =
        code === "UND_ERR_HEADERS_TIMEOUT" ||
        code === "UND_ERR_BODY_TIMEOUT" ||
        code === "UND_ERR_CONNECT_TIMEOUT";
      this.tap.state.drop(timeout ? "shadow_timeout" : "shadow_error");
    }
    this.tap.copyDone(this.cap);
  }
}
