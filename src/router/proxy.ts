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
 *   2. pick the version (`selectBackend`, the one pick site) and an instance of it
 *      (`pickInstance`: least outstanding requests or round robin, skipping ejected and
 *      unhealthy instances);
 *   3. dispatch; on a connect error an idempotent, bodyless request is retried on another
 *      instance; every attempt's outcome feeds passive ejection;
 *   4. relay the response (hop-by-hop headers removed) and record the outcome once
 *      (`counters.recordSince`: one clock read serves the latency and the 1-second bucket).
 * WebSocket (and other) upgrades take the same steps 1-2 in `handleUpgrade`, then splice the
 * two sockets.
 */
import { randomUUID } from "node:crypto";
import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Dispatcher } from "undici";
import type { ErrorCode } from "../errors.js";
import { recordResponseHeaders, selectArm } from "./exposures.js";
import type { EdgeFlags } from "./flags-edge.js";
import type { OutlierDetector } from "./health.js";
import type { MirrorTap } from "./mirror.js";
import { type Endpoint, pickInstance } from "./pools.js";
import type { RouterLogger } from "./router.js";
import { type SelectOutput, selectBackend } from "./select.js";
import type { CompiledBackend, CompiledTable } from "./table.js";

/** Shared by every request of one router; never allocated per request. */
export interface ProxyContext {
  readonly logger: RouterLogger;
  /** Passive ejection: told about every attempt's outcome. */
  readonly outliers: OutlierDetector;
  /** Edge flag evaluation (flags-edge.ts), or null. */
  readonly edge?: EdgeFlags | null;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus `proxy-connection`, which some clients still send. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Longest client-supplied request id that is propagated as is; longer ones are replaced. */
const MAX_REQUEST_ID_LENGTH = 200;

const kExchange = Symbol("turnout.exchange");
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

    // 2. The version, then one of its instances.
    // An A/B experiment assigns units to arms first (exposures.ts); the rest fall through.
    const xp = table.experiment;
    const backend = (xp !== null ? selectArm(xp, req, ex) : null) ?? selectBackend(table, req, ex);
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
    // Flags evaluated at the edge go upstream in a header and label the measurements: the
    // exchange records into the labelled series of the same version (flags-edge.ts).
    const edge = ctx.edge;
    ex.backend = edge?.has(table.service)
      ? edge.apply(table, backend, req, ex.headers, ex)
      : backend;
    ex.backend.counters.requests++;
    // A mirror copies a share of requests to a shadow version (mirror.ts); one check otherwise.
    if (table.mirror !== null)
      ex.tap = table.mirror.tap(req, target, ex.headers, ex.hasBody, ex.requestId, startedAt);

    // 3. Dispatch; the exchange streams the rest. A client waiting for 100 Continue gets it
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
// Request headers for the upstream
// ---------------------------------------------------------------------------------------

/** What `forwardHeaders` learns about a request besides the headers. */
interface ForwardState {
  requestId: string;
  /** The request announces a body. */
  hasBody: boolean;
  /** The body is chunked and must be counted against the size limit as it streams. */
  countBody: boolean;
  /** Non-zero when the request must be refused: 400 or 413. */
  rejectStatus: number;
  rejectMessage: string;
}

/**
 * The request headers for the upstream as a flat [name, value, ...] list (undici takes it as
 * is): hop-by-hop headers removed, `host` left to undici (the upstream's own host, so upstreams
 * behind virtual hosting work; the client's goes into `x-forwarded-host` and `Forwarded`),
 * `x-forwarded-for` and `Forwarded` appended to, `x-forwarded-proto` and `x-request-id` set.
 * For an upgrade, `connection: upgrade` and the `upgrade` header are kept.
 *
 * It also checks what Node's strict parser (llhttp) lets through but a proxy must not forward:
 * more than one Host, no Host on HTTP/1.1, a transfer coding other than `chunked` (its body
 * would reach the upstream decoded of its chunks but still labelled nowhere), Transfer-Encoding
 * on HTTP/1.0, and a Content-Length over the body limit. llhttp itself already refuses
 * Content-Length with Transfer-Encoding, duplicate lengths, obs-fold and malformed chunking;
 * `insecureHTTPParser` stays off.
 */
function forwardHeaders(
  req: IncomingMessage,
  st: ForwardState,
  maxBodyBytes: number,
  upgrade: boolean,
): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let connection: string | undefined;
  let host: string | undefined;
  let hosts = 0;
  let forwardedFor: string | undefined;
  let forwarded: string | undefined;
  let requestId: string | undefined;
  let length: string | undefined;
  let upgradeTo: string | undefined;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    switch (name.toLowerCase()) {
      case "connection":
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
      case "upgrade":
        upgradeTo = value;
        continue;
      case "keep-alive":
      case "proxy-connection":
      case "te":
      case "trailer":
      // Node has already answered `100-continue`, and undici refuses the header.
      case "expect":
      // Set by the router below: a client must not choose what the upstream believes.
      case "x-forwarded-proto":
      case "x-forwarded-host":
        continue;
      case "host":
        hosts++;
        host ??= value;
        continue;
      case "x-forwarded-for":
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case "forwarded":
        forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
        continue;
      case "x-request-id":
        requestId ??= value;
        continue;
      case "transfer-encoding":
        // Node has decoded the chunks; undici re-encodes a body of unknown length itself.
        if (value.trim().toLowerCase() !== "chunked") {
          refuse(st, 400, `transfer coding ${JSON.stringify(value)} is not supported`);
        }
        chunked = true;
        continue;
      case "content-length":
        // llhttp refuses differing lengths; identical repeats are dropped here, as undici
        // would refuse them.
        if (length !== undefined) continue;
        length = value;
        if (Number(value) > maxBodyBytes) {
          refuse(st, 413, `the request body (${value} bytes) is over the limit of ${maxBodyBytes}`);
        }
        break;
    }
    out.push(name, value);
  }
  if (hosts > 1) refuse(st, 400, "the request has more than one Host header");
  else if (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1)
    refuse(st, 400, "an HTTP/1.1 request must have a Host header");
  if (chunked && req.httpVersionMajor === 1 && req.httpVersionMinor === 0)
    refuse(st, 400, "Transfer-Encoding is not allowed in an HTTP/1.0 request");
  if (connection !== undefined && connection !== "keep-alive" && connection !== "close") {
    removeHeaders(out, connectionOptions(connection));
  }
  // With both, the length is not the length of the decoded body (RFC 9112 §6.3).
  if (chunked && length !== undefined) removeHeaders(out, ["content-length"]);
  st.hasBody = chunked || (length !== undefined && length !== "0");
  st.countBody = chunked;

  const client = req.socket.remoteAddress;
  if (forwardedFor !== undefined) {
    out.push("x-forwarded-for", client === undefined ? forwardedFor : `${forwardedFor}, ${client}`);
  } else if (client !== undefined) {
    out.push("x-forwarded-for", client);
  }
  // The router's listeners speak plain HTTP; a TLS-terminating proxy in front of it is to be
  // trusted explicitly by a later option, not by believing the client.
  out.push("x-forwarded-proto", "http");
  let element = client === undefined ? "for=unknown" : `for=${forwardedNode(client)}`;
  if (host !== undefined) {
    out.push("x-forwarded-host", host);
    element += `;host=${tokenOrQuoted(host)}`;
  }
  element += ";proto=http";
  out.push("forwarded", forwarded === undefined ? element : `${forwarded}, ${element}`);
  st.requestId =
    requestId !== undefined && requestId.length > 0 && requestId.length <= MAX_REQUEST_ID_LENGTH
      ? requestId
      : randomUUID();
  out.push("x-request-id", st.requestId);
  if (upgrade && upgradeTo !== undefined) out.push("connection", "upgrade", "upgrade", upgradeTo);
  return out;
}

function refuse(st: ForwardState, status: number, message: string): void {
  // The first problem found is the one reported.
  if (st.rejectStatus !== 0) return;
  st.rejectStatus = status;
  st.rejectMessage = message;
}

/** RFC 7239 node: IPv6 addresses in brackets and quotes, IPv4 as is. */
function forwardedNode(address: string): string {
  return address.includes(":") ? `"[${address}]"` : address;
}

/** An RFC 7239 value: a token as is, anything else as a quoted string. */
function tokenOrQuoted(v: string): string {
  for (let i = 0; i < v.length; i++) {
    if (!isTchar(v.charCodeAt(i))) return `"${v.replace(/["\\]/g, "\\$&")}"`;
  }
  return v;
}

function isTchar(c: number): boolean {
  // RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~"
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5f ||
    c === 0x7e ||
    c === 0x21 ||
    (c >= 0x23 && c <= 0x27) ||
    c === 0x2a ||
    c === 0x2b ||
    c === 0x5e ||
    c === 0x60 ||
    c === 0x7c
  );
}

/** RFC 9110 idempotent methods: the ones a retry may send twice. */
function isIdempotent(method: string): boolean {
  switch (method) {
    case "GET":
    case "HEAD":
    case "OPTIONS":
    case "PUT":
    case "DELETE":
    case "TRACE":
      return true;
    default:
      return false;
  }
}

/**
 * Errors that happen before the upstream could have acted on the request: the connection was
 * refused, could not be made in time, or was reset or closed before any response byte (a
 * keep-alive connection the upstream closed as the request went out).
 */
function isConnectError(code: string | undefined): boolean {
  switch (code) {
    case "ECONNREFUSED":
    case "ECONNRESET":
    case "EPIPE":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "UND_ERR_SOCKET":
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_CLOSED":
      return true;
    default:
      return false;
  }
}

let lastDescriptorWarning = Number.NEGATIVE_INFINITY;

/** One warning per burst (a minute), since every request of the burst fails the same way. */
function warnOutOfDescriptors(logger: RouterLogger, code: string): void {
  const now = performance.now();
  if (now - lastDescriptorWarning < 60_000) return;
  lastDescriptorWarning = now;
  logger.warn(
    { code },
    "router: out of file descriptors connecting to an upstream; answering 503 and not ejecting the upstream; raise ulimit -n",
  );
}

function isTimeout(code: string | undefined): boolean {
  return (
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "ETIMEDOUT"
  );
}

// ---------------------------------------------------------------------------------------
// One proxied request
// ---------------------------------------------------------------------------------------

/**
 * The state of one proxied request and undici's handler for its upstream half (reused for a
 * retry). Methods live on the prototype so that a request allocates this object, its header
 * arrays and little else.
 */
class ProxyExchange implements Dispatcher.DispatchHandler, ForwardState {
  requestId = "";
  hasBody = false;
  countBody = false;
  rejectStatus = 0;
  rejectMessage = "";
  headers: string[] = EMPTY;
  backend: CompiledBackend = NO_BACKEND;
  /** A sticky cookie issued by `selectBackend`, sent with the response head. */
  setCookie: string | null = null;
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
  /** Captures the answer for the mirror's comparison (mirror.ts); null unless mirrored. */
  tap: MirrorTap | null = null;
  /** The experiment unit this request exposes (exposures.ts), for response-header metrics. */
  experimentUnit: string | null = null;

  constructor(
    readonly ctx: ProxyContext,
    readonly table: CompiledTable,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly target: string,
    readonly startedAt: number,
  ) {}

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
    if (this.tap !== null) this.tap.watchBody(this.req);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
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
    if (this.experimentUnit !== null) {
      const xp = this.table.experiment;
      if (xp !== null && xp.responseHeaders.length > 0)
        recordResponseHeaders(xp, this.experimentUnit, headers, this.requestId);
    }
    if (this.tap !== null) this.tap.primaryHead(statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.tap !== null && this.statusCode !== 0) this.tap.primaryData(chunk);
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
    if (this.tap !== null) this.tap.primaryEnd();
    this.backend.counters.recordSince(this.statusCode, this.startedAt, this.upstreamError);
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
      this.backend.counters.recordSince(413, this.startedAt, false);
      return;
    }
    // (Not `req.socket`: undici detaches it from a request body it gives up on, so that
    // destroying the body does not destroy the client's connection.)
    const clientSocket = this.res.socket;
    if (this.clientGone || this.res.destroyed || clientSocket === null || clientSocket.destroyed) {
      // The client left (or its request body broke off): nobody to answer, nothing to count
      // against the upstream.
      this.done = true;
      this.clientGone = true;
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
    if (code === "EMFILE" || code === "ENFILE") {
      // Turnout's own descriptors ran out: the upstream is not to blame, so no ejection.
      warnOutOfDescriptors(this.ctx.logger, code);
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
      this.backend.counters.recordSince(this.statusCode, this.startedAt, true);
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
    this.backend.counters.recordSince(status, this.startedAt, this.upstreamError);
  }

  onClientClose(): void {
    if (this.tap !== null) this.tap.primaryClosed();
    if (this.done || this.res.writableFinished) return;
    this.clientGone = true;
    // Stop the upstream work nobody will read; before `onRequestStart` there is no controller
    // yet and the abort happens there.
    this.controller?.abort(new ClientAbortError("client closed the connection"));
  }

  /** The request body broke off with a framing error: stop, and say so if still possible. */
  onClientBodyError(message: string): void {
    if (this.done) return;
    this.done = true;
    // From here the upstream's failure (its request is aborted) is not news to anyone.
    this.clientGone = true;
    this.controller?.abort(new ClientAbortError(message));
    if (this.res.headersSent) this.res.destroy();
    else
      sendError(
        this.res,
        400,
        "TURNOUT_ERR_ROUTER_BAD_REQUEST",
        message,
        this.requestId,
        this.backend.version,
        true,
      );
    this.backend.counters.recordSince(400, this.startedAt, false);
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
/** Placeholder until a version is picked, so that the field never changes type. */
const NO_BACKEND = null as unknown as CompiledBackend;

/** A 'close' listener shared by all responses; finds its exchange on the response itself. */
function onResponseClose(this: TrackedResponse): void {
  this[kExchange]?.onClientClose();
}

/** A 'data' listener shared by all chunked request bodies. */
function onRequestData(this: TrackedRequest, chunk: Buffer): void {
  this[kExchange]?.onBodyChunk(chunk.length);
}

// ---------------------------------------------------------------------------------------
// Upgrades (WebSocket)
// ---------------------------------------------------------------------------------------

/**
 * Passes an upgrade (WebSocket) through: the version and instance are chosen as for any
 * request, the handshake goes to the instance over a connection of its own, and once the
 * instance answers 101 the two sockets are spliced. An instance that declines gets its answer
 * relayed. Counted as one request of the version (status 101, or what the instance answered).
 * The listener keeps track of upgraded sockets
 * itself (to cut them when it closes).
 */
export function handleUpgrade(
  ctx: ProxyContext,
  table: CompiledTable,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const startedAt = performance.now();
  socket.on("error", ignore);
  try {
    const version = versionProblem(req);
    if (version !== null) {
      writeRawError(socket, version.status, version.code, version.message, "");
      return;
    }
    const target = requestTarget(req.url);
    const st: ForwardState = {
      requestId: "",
      hasBody: false,
      countBody: false,
      rejectStatus: 0,
      rejectMessage: "",
    };
    if (target === null) refuse(st, 400, `request target ${JSON.stringify(req.url)} is not a path`);
    const headers = forwardHeaders(req, st, table.policy.maxRequestBodyBytes, true);
    if (st.rejectStatus === 0 && st.hasBody)
      refuse(st, 400, "an upgrade request with a body is not supported");
    if (st.rejectStatus !== 0) {
      const code: ErrorCode =
        st.rejectStatus === 413
          ? "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE"
          : "TURNOUT_ERR_ROUTER_BAD_REQUEST";
      writeRawError(socket, st.rejectStatus, code, st.rejectMessage, st.requestId);
      return;
    }
    // Upgrades have no response object: a sticky cookie issued for one goes into the head
    // that `responseHead` writes (101 or the instance's refusal).
    const selection: SelectOutput = { setCookie: null };
    const backend = selectBackend(table, req, selection);
    const endpoint =
      backend === null
        ? null
        : pickInstance(backend, table.policy.loadBalancing === "leastRequest", null);
    if (backend === null || endpoint === null) {
      writeRawError(
        socket,
        503,
        "TURNOUT_ERR_ROUTER_NO_BACKEND",
        `service ${table.service} has no version with traffic and a ready instance`,
        st.requestId,
      );
      return;
    }
    backend.counters.requests++;
    new UpgradeTunnel(
      ctx,
      table,
      backend,
      endpoint,
      socket,
      head,
      st.requestId,
      selection.setCookie,
      startedAt,
    ).open(req.method ?? "GET", endpoint.pathPrefix + target!, headers);
  } catch (err) {
    ctx.logger.error({ err, service: table.service }, "router: upgrade handling failed");
    socket.destroy();
  }
}

/** One upgraded connection: the handshake with the instance, then two spliced sockets. */
class UpgradeTunnel {
  upstream: ClientRequest | null = null;
  upSocket: Duplex | null = null;
  /** The instance answered (101 or otherwise). */
  answered = false;
  closed = false;

  constructor(
    readonly ctx: ProxyContext,
    readonly table: CompiledTable,
    readonly backend: CompiledBackend,
    readonly endpoint: Endpoint,
    readonly socket: Duplex,
    readonly head: Buffer,
    readonly requestId: string,
    readonly setCookie: string | null,
    readonly startedAt: number,
  ) {}

  open(method: string, path: string, flat: string[]): void {
    const headers: Record<string, string | string[]> = {};
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!;
      const value = flat[i + 1]!;
      const prev = headers[name];
      headers[name] =
        prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
    const u = new URL(this.endpoint.origin);
    const https = u.protocol === "https:";
    const upstream = (https ? httpsRequest : httpRequest)({
      host: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port === "" ? (https ? 443 : 80) : Number(u.port),
      method,
      path,
      headers,
      // Its own connection: once upgraded it belongs to this tunnel.
      agent: false,
    });
    this.upstream = upstream;
    this.endpoint.outstanding++;
    upstream.setTimeout(this.table.policy.timeouts.upstreamSeconds * 1000, () => {
      upstream.destroy(
        Object.assign(new Error("upstream handshake timed out"), { code: "ETIMEDOUT" }),
      );
    });
    upstream.on("upgrade", (res, upSocket, upHead) => this.onUpgrade(res, upSocket, upHead));
    upstream.on("response", (res) => this.onDeclined(res));
    upstream.on("error", (err) => this.onError(err));
    this.socket.on("close", () => this.close());
    upstream.end();
  }

  onUpgrade(res: IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    this.answered = true;
    this.upSocket = upSocket;
    upSocket.on("error", ignore);
    (upSocket as Duplex & { setTimeout?(ms: number): void }).setTimeout?.(0);
    if (this.closed) {
      upSocket.destroy();
      return;
    }
    this.noteSuccess();
    const status = res.statusCode ?? 101;
    this.socket.write(
      responseHead(res, this.backend.version, this.requestId, this.setCookie, true),
    );
    if (upHead.length > 0) this.socket.write(upHead);
    if (this.head.length > 0) upSocket.write(this.head);
    upSocket.pipe(this.socket);
    this.socket.pipe(upSocket);
    upSocket.on("close", () => this.close());
    this.backend.counters.recordSince(status, this.startedAt, false);
  }

  /** The instance answered without upgrading: relay its answer and close. */
  onDeclined(res: IncomingMessage): void {
    this.answered = true;
    const status = res.statusCode ?? 502;
    if (status >= 500) this.noteFailure();
    else this.noteSuccess();
    this.socket.write(
      responseHead(res, this.backend.version, this.requestId, this.setCookie, false),
    );
    res.pipe(this.socket);
    res.on("error", () => this.socket.destroy());
    this.backend.counters.recordSince(status, this.startedAt, status >= 500);
  }

  onError(err: Error & { code?: string }): void {
    if (this.answered || this.closed) {
      this.close();
      return;
    }
    this.answered = true;
    this.noteFailure();
    const timeout = isTimeout(err.code);
    const status = timeout ? 504 : 502;
    writeRawError(
      this.socket,
      status,
      timeout ? "TURNOUT_ERR_ROUTER_TIMEOUT" : "TURNOUT_ERR_ROUTER_UPSTREAM",
      `version ${this.backend.version} ${timeout ? "did not answer in time" : "failed"} (${err.code ?? err.message})`,
      this.requestId,
      this.backend.version,
    );
    this.backend.counters.recordSince(status, this.startedAt, true);
    this.close();
  }

  noteSuccess(): void {
    this.endpoint.consecutiveFailures = 0;
  }

  noteFailure(): void {
    this.ctx.outliers.failure(
      this.endpoint,
      this.backend.endpoints,
      this.table.policy.outlierDetection,
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.endpoint.outstanding--;
    if (!this.answered) this.upstream?.destroy();
    this.upSocket?.destroy();
    // Whatever was written still goes out; then the connection closes.
    (this.socket as Socket).destroySoon();
  }
}

function ignore(): void {}

/** The status line and headers of an instance's answer to an upgrade, for the client socket. */
function responseHead(
  res: IncomingMessage,
  version: string,
  requestId: string,
  setCookie: string | null,
  upgraded: boolean,
): string {
  let s = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ""}\r\n`;
  const raw = res.rawHeaders;
  let sawRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === "x-turnout-version") continue;
    if (upgraded) {
      if (name !== "connection" && name !== "upgrade" && HOP_BY_HOP.has(name)) continue;
    } else if (HOP_BY_HOP.has(name) || name === "content-length") {
      continue;
    }
    if (name === "x-request-id") sawRequestId = true;
    s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  s += `x-turnout-version: ${version}\r\n`;
  if (!sawRequestId) s += `x-request-id: ${requestId}\r\n`;
  if (setCookie !== null) s += `set-cookie: ${setCookie}\r\n`;
  // A declined upgrade's body is relayed as it comes and ends with the connection.
  if (!upgraded) s += "connection: close\r\n";
  return `${s}\r\n`;
}

/** Writes a JSON error straight to a socket (upgrades and parse errors have no response object). */
function writeRawError(
  socket: Duplex,
  status: number,
  code: ErrorCode,
  message: string,
  requestId: string,
  version?: string,
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n` +
      "content-type: application/json; charset=utf-8\r\n" +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      (requestId !== "" ? `x-request-id: ${requestId}\r\n` : "") +
      (version !== undefined ? `x-turnout-version: ${version}\r\n` : "") +
      `connection: close\r\n\r\n${body}`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

// ---------------------------------------------------------------------------------------
// What Node's HTTP server answers by itself, answered the router's way
// ---------------------------------------------------------------------------------------

/** Requests whose client waits for 100 Continue, which the router has not sent yet. */
const awaitingContinue = new WeakSet<IncomingMessage>();

/**
 * Takes over what Node's server would do on its own, with no JSON body or the wrong order:
 *
 * - `Expect: 100-continue`: Node sends 100 at once, so a client over the body limit sends
 *   the body it announced before it learns of the 413. The request goes to `request` without
 *   the 100; `handleRequest` sends it once nothing refused the request, and a refusal (413,
 *   400, 503) is the client's only answer.
 * - any other `Expect` (HTTP/1.1): Node sends an empty 417; this one is JSON.
 * - CONNECT: without a listener Node closes the connection without a word; the router is no
 *   tunnel, so 405 JSON.
 *
 * Called once per listener (router.ts), after its `request` listener.
 */
export function installProtocolGuards(server: Server): void {
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    server.emit("request", req, res);
  });
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    sendError(
      res,
      417,
      "TURNOUT_ERR_ROUTER_EXPECTATION_FAILED",
      `the router does not support Expect: ${JSON.stringify(String(req.headers.expect).slice(0, 100))}; only 100-continue`,
      incomingRequestId(req) ?? randomUUID(),
      undefined,
      true,
    );
  });
  server.on("connect", (req: IncomingMessage, socket: Duplex) => {
    socket.on("error", ignore);
    writeRawError(
      socket,
      405,
      "TURNOUT_ERR_ROUTER_METHOD_NOT_ALLOWED",
      "CONNECT is not supported: the router is a reverse proxy, not a tunnel",
      incomingRequestId(req) ?? "",
    );
  });
}

/** HTTP/0.9 (llhttp parses `GET /`) and HTTP/2+ in an HTTP/1 framing are not proxied. */
function versionProblem(
  req: IncomingMessage,
): { status: number; code: ErrorCode; message: string } | null {
  if (req.httpVersionMajor === 1) return null;
  if (req.httpVersionMajor === 0) {
    return {
      status: 400,
      code: "TURNOUT_ERR_ROUTER_BAD_REQUEST",
      message: `HTTP/${req.httpVersion} requests are not supported; send HTTP/1.1`,
    };
  }
  return {
    status: 505,
    code: "TURNOUT_ERR_ROUTER_HTTP_VERSION",
    message: `HTTP/${req.httpVersion} is not supported on this listener; send HTTP/1.1`,
  };
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/** The origin-form path of a request target, or null when it is not usable. */
function requestTarget(url: string | undefined): string | null {
  if (url === undefined || url.length === 0) return "/";
  if (url.charCodeAt(0) === 47 /* "/" */) return url;
  // Absolute form ("GET http://host/x HTTP/1.1"), which HTTP/1.1 servers must accept.
  if (!url.startsWith("http://") && !url.startsWith("https://")) return null;
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return null;
  }
}

function incomingRequestId(req: IncomingMessage): string | undefined {
  const id = req.headers["x-request-id"];
  const first = Array.isArray(id) ? id[0] : id;
  return first !== undefined && first.length > 0 && first.length <= MAX_REQUEST_ID_LENGTH
    ? first
    : undefined;
}

/** Lower-cased option tokens of a Connection header (names of more hop-by-hop headers). */
function connectionTokens(value: string | string[]): string[] {
  const joined = typeof value === "string" ? value : value.join(",");
  return joined
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

/** The header names a request's Connection header adds to the hop-by-hop ones. */
function connectionOptions(connection: string): string[] {
  return connectionTokens(connection).filter(
    (t) => t !== "close" && t !== "keep-alive" && t !== "upgrade",
  );
}

/** Removes, in place, the named headers from a flat list (rare path: allocation is fine). */
function removeHeaders(headers: string[], lowerCaseNames: string[]): void {
  if (lowerCaseNames.length === 0) return;
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    if (lowerCaseNames.includes(headers[r]!.toLowerCase())) continue;
    headers[w++] = headers[r]!;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
}

/**
 * Sends `{"error":{"code","message"}}` with the given status. `close` ends the connection after
 * the answer (for requests whose body is left unread, or whose framing is suspect).
 */
export function sendError(
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  requestId: string,
  version?: string,
  close = false,
): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify({ error: { code, message } });
  const headers: string[] = [
    "content-type",
    "application/json; charset=utf-8",
    "content-length",
    String(Buffer.byteLength(body)),
    "x-request-id",
    requestId,
  ];
  if (version !== undefined) headers.push("x-turnout-version", version);
  if (close) res.shouldKeepAlive = false;
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Answers requests that Node's HTTP parser rejected (request smuggling attempts such as
 * Content-Length with Transfer-Encoding, obs-fold, bad chunking; oversized headers; a client
 * too slow to send its headers) with a JSON error, and closes the connection.
 */
export function onClientError(err: Error & { code?: string }, socket: Duplex): void {
  const s = socket as Duplex & { _httpMessage?: ServerResponse | null };
  if (err.code === "ECONNRESET" || !s.writable) {
    s.destroy();
    return;
  }
  // A response to an earlier request on this connection is still under way (the bad request
  // was pipelined behind it): answering now would hand the client our error as the answer to
  // that request. Let it finish first; the connection ends with the error either way.
  const inFlight = s._httpMessage as TrackedResponse | null | undefined;
  if (inFlight != null) {
    // The error is in the body of the request being proxied (e.g. a bad chunk): it cannot be
    // forwarded further.
    const ex = inFlight[kExchange];
    if (ex !== undefined && !ex.req.complete) {
      ex.onClientBodyError(`malformed request body (${err.code ?? err.message})`);
      return;
    }
    // Its response closes the connection anyway (the router refused the request itself).
    if (!inFlight.shouldKeepAlive) return;
    if (!inFlight.writableFinished) {
      inFlight.once("finish", () => answerClientError(err, s));
      inFlight.once("close", () => {
        if (!inFlight.writableFinished) s.destroy();
      });
      return;
    }
  }
  answerClientError(err, s);
}

function answerClientError(err: Error & { code?: string }, s: Duplex): void {
  if (!s.writable) {
    s.destroy();
    return;
  }
  if (err.code === "HPE_HEADER_OVERFLOW") {
    writeRawError(
      s,
      431,
      "TURNOUT_ERR_ROUTER_HEADERS_TOO_LARGE",
      "the request headers are larger than the router accepts",
      "",
    );
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    writeRawError(
      s,
      408,
      "TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT",
      "the client did not send its request in time",
      "",
    );
  } else {
    writeRawError(
      s,
      400,
      "TURNOUT_ERR_ROUTER_BAD_REQUEST",
      `malformed HTTP request (${err.code ?? err.message})`,
      "",
    );
  }
}
