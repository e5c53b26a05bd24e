/**
 * The proxy core: one request in, one version picked, one of its instances picked, one
 * upstream request out, both bodies streamed. Everything here runs once per request, so it
 * avoids closures, promises and intermediate streams: the per-request state is one
 * `ProxyExchange` object whose prototype methods are undici's dispatch handler, and listeners
 * are module-level functions that find their exchange through a symbol.
 *
 * Why `pool.dispatch` and not `pool.request` / `stream.pipeline`: dispatch is undici's lowest
 * public layer; the others are built on it and add a body `Readable`, promise plumbing and
 * `finished()` listeners per request. A proxy only needs to copy chunks from the upstream
 * socket into the client's response with backpressure, which `onResponseData` + `pause()` /
 * `resume()` does directly. (`stream.pipeline()` per request measured 2.4× the CPU of a
 * plain `.pipe()` on Node 20.)
 *
 * Order of work for a request (each step may end it with a JSON error):
 *   1. check the request target, Host and framing, and the body size (400/413; no version is
 *      charged for a bad request);
 *   2. pick the version: the `select` hooks of the table's features first (an experiment's
 *      arms), then `selectBackend` (override, match rules, sticky ranges, the split; it reads
 *      the sticky key once for every later step); then an instance of it (`pickInstance`:
 *      least outstanding requests or round robin, skipping ejected and unhealthy instances);
 *   3. the `request` hooks of the table's features (edge flags add a header and pick a
 *      labelled series; a mirror returns a tap that observes the rest of the exchange);
 *   4. dispatch; on a connect error an idempotent, bodyless request is retried on another
 *      instance; every attempt's outcome feeds passive ejection, except running out of file
 *      descriptors (503, counted, the upstream not blamed);
 *   5. relay the response (hop-by-hop headers removed; its head counted, `counters.respond`:
 *      a version that answers nothing shows before its requests end), tell the observers, and
 *      record the outcome once (`counters.recordSince`: one clock read serves the latency and the
 *      1-second bucket). A client that leaves before the response head is recorded at once
 *      (`recordAbandonedSince`: 499, the time it waited), so that a version that hangs shows as
 *      failing even when every client gives up before the upstream timeout.
 * The features are compiled into the table (features.ts, types.ts); a table without them costs
 * two length checks and one null check per event. Around this core: forward.ts (request checks,
 * upstream headers), proxy-errors.ts (error answers, failure classes), guards.ts (what Node
 * would answer by itself), upgrade.ts (WebSocket and other upgrades: steps 1-2, then the two
 * sockets spliced).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import type { ErrorCode } from "../errors.js";
import {
  connectionTokens,
  type ForwardState,
  forwardHeaders,
  HOP_BY_HOP,
  incomingRequestId,
  requestTarget,
  versionProblem,
} from "./forward.js";
import { awaitingContinue, kExchange } from "./guards.js";
import { type Endpoint, pickInstance } from "./pools.js";
import {
  isConnectError,
  isIdempotent,
  isOutOfDescriptors,
  isTimeout,
  sendError,
  warnOutOfDescriptors,
} from "./proxy-errors.js";
import { selectBackend } from "./select.js";
import type { CompiledTable } from "./table.js";
import type {
  CompiledBackend,
  ExchangeObserver,
  ExchangeView,
  ProxyContext,
  SeriesRecorder,
  UpstreamHeaders,
} from "./types.js";

export { installProtocolGuards, onClientError } from "./guards.js";
export { sendError } from "./proxy-errors.js";
export type { ProxyContext } from "./types.js";
export { handleUpgrade } from "./upgrade.js";

type TrackedResponse = ServerResponse & { [kExchange]?: ProxyExchange };
type TrackedRequest = IncomingMessage & { [kExchange]?: ProxyExchange };

/** Thrown into undici to abort an upstream request whose client went away. */
class ClientAbortError extends Error {
  override readonly name = "ClientAbortError";
  readonly code = "TURNOUT_CLIENT_ABORTED";
}

/** Thrown into undici to abort an upstream request whose chunked body crossed the size limit. */
class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
  readonly code = "TURNOUT_BODY_TOO_LARGE";
}

/**
 * Handles one request with the table it arrived under. Never throws: every failure becomes a
 * JSON error response (or, once the response has started, a closed connection).
 */
export function handleRequest(
  ctx: ProxyContext,
  table: CompiledTable,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const startedAt = performance.now();
  try {
    // 1. Version, target, Host, framing and size, before a version is chosen, so that bad
    //    requests are not counted against one.
    const version = versionProblem(req);
    if (version !== null) {
      sendError(res, version.status, version.code, version.message, randomUUID(), undefined, true);
      return;
    }
    const target = requestTarget(req.url);
    if (target === null) {
      sendError(
        res,
        400,
        "TURNOUT_ERR_ROUTER_BAD_REQUEST",
        `request target ${JSON.stringify(req.url)} is not a path`,
        incomingRequestId(req) ?? randomUUID(),
        undefined,
        true,
      );
      return;
    }
    const ex = new ProxyExchange(ctx, table, req, res, target, startedAt);
    ex.headers = forwardHeaders(req, ex, table.policy.maxRequestBodyBytes, false);
    if (ex.rejectStatus !== 0) {
      ex.reject();
      return;
    }

    // 2. The version, then one of its instances. Features with a `select` hook go first (an
    //    A/B experiment assigns units to arms, exposures.ts); the rest fall through to the
    //    table's own selection, which reads the sticky key once for every later step.
    let backend: CompiledBackend | null = null;
    const selectors = table.selectors;
    for (let i = 0; i < selectors.length && backend === null; i++)
      backend = selectors[i]!.select(req, ex);
    backend ??= selectBackend(table, req, ex);
    const endpoint =
      backend === null
        ? null
        : pickInstance(backend, table.policy.loadBalancing === "leastRequest", null);
    if (backend === null || endpoint === null) {
      sendError(
        res,
        503,
        "TURNOUT_ERR_ROUTER_NO_BACKEND",
        backend === null
          ? `service ${table.service} has no version with traffic and a ready instance`
          : `version ${backend.version} of service ${table.service} has no ready instance`,
        ex.requestId,
        backend?.version,
      );
      return;
    }
    ex.backend = backend;
    ex.counters = backend.counters;
    // 3. Features with a `request` hook (features.ts): edge flags add their header and record
    //    into a labelled series of the version; a mirror copies a share of requests and
    //    observes the rest of the exchange. A table without them costs one length check.
    const interceptors = table.interceptors;
    for (let i = 0; i < interceptors.length; i++) {
      const o = interceptors[i]!.request(ex);
      if (o !== null) ex.observe(o);
    }
    ex.counters.start(startedAt);

    // 4. Dispatch; the exchange streams the rest. A client waiting for 100 Continue gets it
    //    only now, once nothing above refused the request (see installProtocolGuards).
    if (awaitingContinue.has(req)) res.writeContinue();
    (res as TrackedResponse)[kExchange] = ex;
    res.on("close", onResponseClose);
    ex.send(endpoint);
  } catch (err) {
    // A bug, not a bad request (those are answered above); keep serving.
    ctx.logger.error({ err, service: table.service }, "router: request handling failed");
    if (!res.headersSent) {
      sendError(
        res,
        500,
        "TURNOUT_ERR_INTERNAL_BUG",
        "the router failed to handle the request",
        randomUUID(),
      );
    } else {
      res.destroy();
    }
  }
}

// ---------------------------------------------------------------------------------------
// One proxied request
// ---------------------------------------------------------------------------------------

/**
 * The state of one proxied request and undici's handler for its upstream half (reused for a
 * retry). Methods live on the prototype so that a request allocates this object, its header
 * arrays and little else.
 */
class ProxyExchange implements Dispatcher.DispatchHandler, ForwardState, ExchangeView {
  requestId = "";
  hasBody = false;
  countBody = false;
  rejectStatus = 0;
  rejectMessage = "";
  headers: string[] = EMPTY;
  backend: CompiledBackend = NO_BACKEND;
  /** The series this request is recorded into: the backend's, or a labelled one (edge flags). */
  counters: SeriesRecorder = NO_COUNTERS;
  /** A cookie issued by the selection or an experiment, sent with the response head. */
  setCookie: string | null = null;
  /** The sticky key, once the selection read it (request facts, see types.ts). */
  stickyKey: string | undefined = undefined;
  stickyKnown = false;
  /** The instance of the current attempt. */
  endpoint: Endpoint | null = null;
  /** The current attempt counts in `endpoint.outstanding`. */
  attemptOpen = false;
  retries = 0;
  /** Request body bytes seen so far (chunked bodies only). */
  bodyBytes = 0;
  statusCode = 0;
  /** Set once the exchange has ended (response ended, failed, or aborted). */
  done = false;
  /** The client closed its connection before the response ended. */
  clientGone = false;
  upstreamError = false;
  controller: Dispatcher.DispatchController | null = null;
  drainListener: (() => void) | null = null;
  /**
   * What features observe of the rest of the exchange (a mirror's tap, an experiment's header
   * events): null for most requests, one observer or, rarely, a list.
   */
  observer: ExchangeObserver | null = null;
  /** The experiment unit this request exposes (exposures.ts). */
  experimentUnit: string | null = null;

  constructor(
    readonly ctx: ProxyContext,
    readonly table: CompiledTable,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly target: string,
    readonly startedAt: number,
  ) {}

  /** Adds a feature's observer of this exchange. */
  observe(o: ExchangeObserver): void {
    const cur = this.observer;
    this.observer =
      cur === null ? o : cur instanceof Observers ? cur.add(o) : new Observers(cur, o);
  }

  /** Answers a request refused by `forwardHeaders`, and closes the connection. */
  reject(): void {
    const code: ErrorCode =
      this.rejectStatus === 413
        ? "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE"
        : "TURNOUT_ERR_ROUTER_BAD_REQUEST";
    sendError(
      this.res,
      this.rejectStatus,
      code,
      this.rejectMessage,
      this.requestId,
      undefined,
      true,
    );
  }

  /** Starts an attempt on `endpoint`. */
  send(endpoint: Endpoint): void {
    this.endpoint = endpoint;
    this.controller = null;
    endpoint.outstanding++;
    this.attemptOpen = true;
    endpoint.pool.dispatch(
      {
        path: endpoint.pathPrefix === "" ? this.target : endpoint.pathPrefix + this.target,
        method: this.req.method ?? "GET",
        headers: this.headers,
        // Only requests that announce a body get one: handing undici a stream for a GET would
        // make it send `transfer-encoding: chunked` with an empty body.
        body: this.hasBody ? this.req : null,
        headersTimeout: this.table.policy.timeouts.upstreamSeconds * 1000,
      },
      this,
    );
  }

  /** Ends the current attempt's share of `outstanding` (once per attempt). */
  closeAttempt(): void {
    if (!this.attemptOpen) return;
    this.attemptOpen = false;
    this.endpoint!.outstanding--;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client left while the request waited for a pooled connection.
    if (this.clientGone) {
      controller.abort(new ClientAbortError("client closed the connection"));
      return;
    }
    // undici starts reading the body right after this, in the same tick, so a listener added
    // now sees every chunk it sees, and no stream is put in between.
    if (this.countBody) {
      (this.req as TrackedRequest)[kExchange] = this;
      this.req.on("data", onRequestData);
    }
    if (this.observer !== null) this.observer.requestStart(this.req);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: UpstreamHeaders,
    statusMessage?: string,
  ): void {
    // 1xx informational responses are not relayed; the final response follows.
    if (statusCode < 200 || this.done || this.clientGone) return;
    const ep = this.endpoint!;
    if (statusCode >= 500) {
      this.ctx.outliers.failure(ep, this.backend.endpoints, this.table.policy.outlierDetection);
    } else if (ep.consecutiveFailures !== 0) {
      ep.consecutiveFailures = 0;
    }
    const out: string[] = [];
    const connection = headers.connection;
    const listed =
      connection === undefined || connection === "keep-alive" || connection === "close"
        ? null
        : connectionTokens(connection);
    let sawRequestId = false;
    for (const name in headers) {
      // An upstream's own x-turnout-version (a router in front of a router) is replaced.
      if (HOP_BY_HOP.has(name) || listed?.includes(name) || name === "x-turnout-version") continue;
      const value = headers[name];
      if (value === undefined) continue;
      if (typeof value === "string") {
        out.push(name, value);
      } else {
        for (let i = 0; i < value.length; i++) out.push(name, value[i]!);
      }
      if (name === "x-request-id") sawRequestId = true;
    }
    out.push("x-turnout-version", this.backend.version);
    if (!sawRequestId) out.push("x-request-id", this.requestId);
    if (this.setCookie !== null) out.push("set-cookie", this.setCookie);
    try {
      if (statusMessage) this.res.writeHead(statusCode, statusMessage, out);
      else this.res.writeHead(statusCode, out);
    } catch (err) {
      // Node refuses some header values or reason phrases that upstream parsers let through.
      controller.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.statusCode = statusCode;
    this.counters.respond();
    if (this.observer !== null) this.observer.responseStart(statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.observer !== null && this.statusCode !== 0) this.observer.responseData(chunk);
    if (this.statusCode === 0 || this.res.write(chunk)) return;
    // The client reads slower than the upstream sends: stop reading the upstream socket until
    // the client's buffer drains, so memory stays bounded whatever the body size.
    controller.pause();
    if (this.drainListener === null) this.drainListener = () => this.controller?.resume();
    this.res.once("drain", this.drainListener);
  }

  onResponseEnd(): void {
    this.closeAttempt();
    if (this.done) return;
    this.done = true;
    this.res.end();
    if (this.observer !== null) this.observer.responseEnd();
    this.counters.recordSince(this.statusCode, this.startedAt, this.upstreamError);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    this.closeAttempt();
    if (this.done) return;
    if (err instanceof BodyTooLargeError) {
      this.done = true;
      if (this.res.headersSent) {
        this.res.destroy();
      } else {
        sendError(
          this.res,
          413,
          "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE",
          `the request body is over the limit of ${this.table.policy.maxRequestBodyBytes} bytes`,
          this.requestId,
          this.backend.version,
          true,
        );
      }
      this.counters.recordSince(413, this.startedAt, false);
      return;
    }
    // (Not `req.socket`: undici detaches it from a request body it gives up on, so that
    // destroying the body does not destroy the client's connection.)
    const clientSocket = this.res.socket;
    if (this.clientGone || this.res.destroyed || clientSocket === null || clientSocket.destroyed) {
      // The client left: nobody to answer, nothing to count against the upstream. Before the
      // response head it gave up waiting for the version, which is counted (here when the
      // socket went before its 'close' event reached `onClientClose`); after it, the body broke
      // off mid-way, which is not the version's doing.
      this.done = true;
      this.clientGone = true;
      if (this.statusCode === 0) this.counters.recordAbandonedSince(this.startedAt);
      return;
    }
    const code = (err as { code?: string }).code;
    if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") {
      // undici refused the request itself (e.g. a path it cannot send): the client's fault.
      this.fail(
        400,
        "TURNOUT_ERR_ROUTER_BAD_REQUEST",
        `the request cannot be forwarded: ${err.message}`,
      );
      return;
    }
    if (isOutOfDescriptors(code)) {
      // Turnout's own descriptors ran out: the upstream is not to blame, so no ejection.
      warnOutOfDescriptors(this.ctx.logger, code!);
      this.counters.fdExhausted++;
      this.fail(
        503,
        "TURNOUT_ERR_ROUTER_OUT_OF_FILE_DESCRIPTORS",
        `the router ran out of file descriptors (${code}) connecting to version ${this.backend.version}; raise ulimit -n`,
      );
      return;
    }
    const ep = this.endpoint!;
    const policy = this.table.policy;
    // A 5xx whose body broke off was counted when its headers came.
    if (this.statusCode < 500)
      this.ctx.outliers.failure(ep, this.backend.endpoints, policy.outlierDetection);
    this.ctx.logger.debug(
      { err, version: this.backend.version, endpoint: ep.url, requestId: this.requestId },
      "router: upstream request failed",
    );

    // Retry: only before any response byte, only what the upstream cannot have acted on (a
    // connect error), only idempotent methods, and only without a body (a streamed body
    // cannot be sent twice). Another instance when there is one; the same one otherwise (a
    // keep-alive connection closed under the request is worth a second try).
    if (
      this.statusCode === 0 &&
      this.retries < policy.retries.attempts &&
      !this.hasBody &&
      isConnectError(code) &&
      isIdempotent(this.req.method ?? "GET")
    ) {
      const next =
        pickInstance(this.backend, policy.loadBalancing === "leastRequest", ep) ??
        (code === "ECONNREFUSED" ? null : ep);
      if (next !== null) {
        this.retries++;
        this.send(next);
        return;
      }
    }

    this.upstreamError = true;
    if (this.res.headersSent) {
      // Too late for a status: cut the connection so the client cannot take a truncated body
      // for a complete one.
      this.done = true;
      this.res.destroy();
      this.counters.recordSince(this.statusCode, this.startedAt, true);
      return;
    }
    const why = code ?? err.message;
    if (isTimeout(code)) {
      this.fail(
        504,
        "TURNOUT_ERR_ROUTER_TIMEOUT",
        `version ${this.backend.version} did not answer in time (${why})`,
      );
    } else {
      this.fail(
        502,
        "TURNOUT_ERR_ROUTER_UPSTREAM",
        `version ${this.backend.version} failed (${why})`,
      );
    }
  }

  /** Answers with a router error (before any upstream response was relayed). */
  fail(status: number, code: ErrorCode, message: string): void {
    this.done = true;
    // A request body left half-read on the connection cannot be followed by another request.
    const close = this.hasBody && !this.req.complete;
    sendError(this.res, status, code, message, this.requestId, this.backend.version, close);
    this.counters.recordSince(status, this.startedAt, this.upstreamError);
  }

  onClientClose(): void {
    if (this.observer !== null) this.observer.clientClose();
    if (this.done || this.res.writableFinished) return;
    this.clientGone = true;
    if (this.statusCode === 0) {
      // The client gave up waiting for the version's answer (a client timeout shorter than the
      // upstream's, or a user who left). Recorded now, not when undici reports the abort: a
      // request still queued for a pooled connection reports it only once one is free, and
      // the latency is the time the client waited.
      this.done = true;
      this.counters.recordAbandonedSince(this.startedAt);
    }
    // Stop the upstream work nobody will read; before `onRequestStart` there is no controller
    // yet and the abort happens there.
    this.controller?.abort(new ClientAbortError("client closed the connection"));
  }

  /** The request body broke off with a framing error: stop, and say so if still possible. */
  onClientBodyError(message: string, timeout = false): void {
    if (this.done) return;
    this.done = true;
    // From here the upstream's failure (its request is aborted) is not news to anyone.
    this.clientGone = true;
    this.controller?.abort(new ClientAbortError(message));
    const status = timeout ? 408 : 400;
    if (this.res.headersSent) this.res.destroy();
    else
      sendError(
        this.res,
        status,
        timeout ? "TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT" : "TURNOUT_ERR_ROUTER_BAD_REQUEST",
        message,
        this.requestId,
        this.backend.version,
        true,
      );
    this.counters.recordSince(status, this.startedAt, false);
  }

  /** Counts a chunk of a chunked request body; aborts the upstream request over the limit. */
  onBodyChunk(length: number): void {
    this.bodyBytes += length;
    if (this.bodyBytes <= this.table.policy.maxRequestBodyBytes || this.done) return;
    this.req.off("data", onRequestData);
    this.controller?.abort(new BodyTooLargeError("request body over the limit"));
  }
}

const EMPTY: string[] = [];
/** Placeholders until a version is picked, so that the fields never change type. */
const NO_BACKEND = null as unknown as CompiledBackend;
const NO_COUNTERS = null as unknown as SeriesRecorder;

/** Several observers of one exchange (a mirrored request of an experiment), in hook order. */
class Observers implements ExchangeObserver {
  readonly list: ExchangeObserver[];

  constructor(a: ExchangeObserver, b: ExchangeObserver) {
    this.list = [a, b];
  }

  add(o: ExchangeObserver): this {
    this.list.push(o);
    return this;
  }

  requestStart(req: IncomingMessage): void {
    for (const o of this.list) o.requestStart(req);
  }

  responseStart(status: number, headers: UpstreamHeaders): void {
    for (const o of this.list) o.responseStart(status, headers);
  }

  responseData(chunk: Buffer): void {
    for (const o of this.list) o.responseData(chunk);
  }

  responseEnd(): void {
    for (const o of this.list) o.responseEnd();
  }

  clientClose(): void {
    for (const o of this.list) o.clientClose();
  }
}

/** A 'close' listener shared by all responses; finds its exchange on the response itself. */
function onResponseClose(this: TrackedResponse): void {
  this[kExchange]?.onClientClose();
}

/** A 'data' listener shared by all chunked request bodies. */
function onRequestData(this: TrackedRequest, chunk: Buffer): void {
  this[kExchange]?.onBodyChunk(chunk.length);
}
