/**
 * The proxy core: one request in, one version picked, one upstream request out, both bodies
 * streamed. Everything here runs once per request, so it avoids closures, promises and
 * intermediate streams: the per-request state is one `ProxyExchange` object whose prototype
 * methods are undici's dispatch handler.
 *
 * Why `pool.dispatch` and not `pool.request` / `stream.pipeline`: dispatch is undici's lowest
 * public layer; the others are built on it and add a body `Readable`, promise plumbing and
 * `finished()` listeners per request. A proxy only needs to copy chunks from the upstream
 * socket into the client's response with backpressure, which `onResponseData` + `pause()` /
 * `resume()` does directly. (`stream.pipeline()` per request measured 2.4× the CPU of a
 * plain `.pipe()` on Node 20.) Later data-plane features (mirror, retries, sticky routing)
 * are meant to wrap this core as small `dispatch => dispatch` interceptors, as undici's own
 * `lib/interceptor/*` do, rather than grow it.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Dispatcher } from "undici";
import type { ErrorCode } from "../errors.js";
import type { RouterLogger } from "./router.js";
import type { CompiledBackend, CompiledEndpoint, CompiledTable } from "./table.js";
import { pickBackend, pickEndpoint } from "./table.js";

/** Shared by every request of one router; never allocated per request. */
export interface ProxyContext {
  readonly logger: RouterLogger;
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

/** Thrown into undici to abort an upstream request whose client went away. */
class ClientAbortError extends Error {
  override readonly name = "ClientAbortError";
  readonly code = "TURNOUT_CLIENT_ABORTED";
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
    // 1. Check the request target before choosing a version, so malformed requests are not
    //    counted against one.
    const target = requestTarget(req.url);
    if (target === null) {
      sendError(
        res,
        400,
        "TURNOUT_ERR_ROUTER_BAD_REQUEST",
        `request target ${JSON.stringify(req.url)} is not a path`,
        incomingRequestId(req) ?? randomUUID(),
      );
      return;
    }

    // 2. Pick the version (SWRR), then one of its endpoints (round robin).
    const backend = pickBackend(table);
    const endpoint = backend === null ? null : pickEndpoint(backend);
    if (backend === null || endpoint === null) {
      sendError(
        res,
        503,
        "TURNOUT_ERR_ROUTER_NO_BACKEND",
        backend === null
          ? `service ${table.service} has no version with traffic and a ready instance`
          : `version ${backend.version} of service ${table.service} has no ready instance`,
        incomingRequestId(req) ?? randomUUID(),
        backend?.version,
      );
      return;
    }
    backend.counters.requests++;

    // 3. Rewrite the request for the upstream and dispatch it; the exchange streams the rest.
    const ex = new ProxyExchange(ctx, req, res, backend, endpoint, startedAt);
    const headers = ex.upstreamHeaders();
    (res as TrackedResponse)[kExchange] = ex;
    res.on("close", onResponseClose);
    endpoint.pool.dispatch(
      {
        path: endpoint.pathPrefix === "" ? target : endpoint.pathPrefix + target,
        method: req.method ?? "GET",
        headers,
        // Only requests that announce a body get one: handing undici a stream for a GET would
        // make it send `transfer-encoding: chunked` with an empty body.
        body: ex.hasBody ? req : null,
      },
      ex,
    );
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

/**
 * The state of one proxied request and undici's handler for its upstream half. Methods live on
 * the prototype so that a request allocates this object, its header array and little else.
 */
class ProxyExchange implements Dispatcher.DispatchHandler {
  requestId = "";
  /** Whether the request announces a body (set by `upstreamHeaders`). */
  hasBody = false;
  statusCode = 0;
  /** Set once the exchange has ended (response ended, failed, or aborted). */
  done = false;
  /** The client closed its connection before the response ended. */
  clientGone = false;
  controller: Dispatcher.DispatchController | null = null;
  drainListener: (() => void) | null = null;

  constructor(
    readonly ctx: ProxyContext,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly backend: CompiledBackend,
    readonly endpoint: CompiledEndpoint,
    readonly startedAt: number,
  ) {}

  /**
   * The request headers for the upstream as a flat [name, value, ...] list (undici takes it
   * as is): hop-by-hop headers removed, `host` left to undici (the upstream's own host, so
   * upstreams behind virtual hosting work; the client's goes into `x-forwarded-host`),
   * `x-forwarded-*` and `x-request-id` set. Sets `this.requestId`.
   */
  upstreamHeaders(): string[] {
    const raw = this.req.rawHeaders;
    const out: string[] = [];
    let connection: string | undefined;
    let host: string | undefined;
    let forwardedFor: string | undefined;
    let requestId: string | undefined;
    let length: string | undefined;
    let chunked = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      switch (name.toLowerCase()) {
        case "connection":
          connection = connection === undefined ? value : `${connection},${value}`;
          continue;
        case "keep-alive":
        case "proxy-connection":
        case "te":
        case "trailer":
        case "upgrade":
        // Node has already answered `100-continue`, and undici refuses the header.
        case "expect":
        case "x-forwarded-proto":
        case "x-forwarded-host":
          continue;
        case "host":
          host ??= value;
          continue;
        case "x-forwarded-for":
          forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
          continue;
        case "x-request-id":
          requestId ??= value;
          continue;
        case "transfer-encoding":
          // Node has decoded the chunks; undici re-encodes a body of unknown length itself.
          chunked = true;
          continue;
        case "content-length":
          // Node accepts repeated identical lengths; undici rejects duplicates.
          if (length !== undefined) continue;
          length = value;
          break;
      }
      out.push(name, value);
    }
    if (connection !== undefined && connection !== "keep-alive" && connection !== "close") {
      removeHeaders(out, connectionOptions(connection));
    }
    // With both, the length is not the length of the decoded body (RFC 9112 §6.3).
    if (chunked && length !== undefined) removeHeaders(out, ["content-length"]);
    this.hasBody = chunked || (length !== undefined && length !== "0");

    const client = this.req.socket.remoteAddress;
    if (forwardedFor !== undefined) {
      out.push(
        "x-forwarded-for",
        client === undefined ? forwardedFor : `${forwardedFor}, ${client}`,
      );
    } else if (client !== undefined) {
      out.push("x-forwarded-for", client);
    }
    // The router's listeners speak plain HTTP; a TLS-terminating proxy in front of it is
    // expected to be trusted explicitly by a later option, not by believing the client.
    out.push("x-forwarded-proto", "http");
    if (host !== undefined) out.push("x-forwarded-host", host);
    this.requestId =
      requestId !== undefined && requestId.length > 0 && requestId.length <= MAX_REQUEST_ID_LENGTH
        ? requestId
        : randomUUID();
    out.push("x-request-id", this.requestId);
    return out;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client left while the request waited for a pooled connection.
    if (this.clientGone) controller.abort(new ClientAbortError("client closed the connection"));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // 1xx informational responses are not relayed in v1; the final response follows.
    if (statusCode < 200 || this.done || this.clientGone) return;
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
    try {
      if (statusMessage) this.res.writeHead(statusCode, statusMessage, out);
      else this.res.writeHead(statusCode, out);
    } catch (err) {
      // Node refuses some header values or reason phrases that upstream parsers let through.
      controller.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.statusCode = statusCode;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.statusCode === 0 || this.res.write(chunk)) return;
    // The client reads slower than the upstream sends: stop reading the upstream socket until
    // the client's buffer drains, so memory stays bounded whatever the body size.
    controller.pause();
    if (this.drainListener === null) this.drainListener = () => this.controller?.resume();
    this.res.once("drain", this.drainListener);
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.done = true;
    this.res.end();
    this.backend.counters.recordResponse(this.statusCode, performance.now() - this.startedAt);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.done) return;
    if (this.clientGone || this.res.destroyed || this.req.socket.destroyed) {
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
    this.backend.counters.upstreamErrors++;
    this.ctx.logger.debug(
      {
        err,
        version: this.backend.version,
        endpoint: this.endpoint.url,
        requestId: this.requestId,
      },
      "router: upstream request failed",
    );
    if (this.res.headersSent) {
      // Too late for a status: cut the connection so the client cannot take a truncated body
      // for a complete one.
      this.done = true;
      this.res.destroy();
      this.backend.counters.recordResponse(this.statusCode, performance.now() - this.startedAt);
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
    if (this.requestId === "") this.requestId = randomUUID();
    sendError(this.res, status, code, message, this.requestId, this.backend.version);
    this.backend.counters.recordResponse(status, performance.now() - this.startedAt);
  }

  onClientClose(): void {
    if (this.done || this.res.writableFinished) return;
    this.clientGone = true;
    // Stop the upstream work nobody will read; before `onRequestStart` there is no controller
    // yet and the abort happens there.
    this.controller?.abort(new ClientAbortError("client closed the connection"));
  }
}

/** A 'close' listener shared by all responses; finds its exchange on the response itself. */
function onResponseClose(this: TrackedResponse): void {
  this[kExchange]?.onClientClose();
}

function isTimeout(code: string | undefined): boolean {
  return (
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "ETIMEDOUT"
  );
}

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
  return connectionTokens(connection).filter((t) => t !== "close" && t !== "keep-alive");
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

/** Sends `{"error":{"code","message"}}` with the given status. */
export function sendError(
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  requestId: string,
  version?: string,
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
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Answers requests that Node's HTTP parser rejected (malformed request line or headers, header
 * overflow, header timeout) with a JSON error, like Node's default handler but in Turnout's
 * error format. There is no router-specific "bad request" code in the error table yet, so the
 * API's is used.
 */
export function onClientError(err: Error & { code?: string }, socket: Duplex): void {
  const s = socket as Duplex & {
    _httpMessage?: { headersSent?: boolean } | null;
    bytesWritten?: number;
  };
  if (err.code === "ECONNRESET" || !s.writable || s._httpMessage?.headersSent) {
    s.destroy();
    return;
  }
  const [status, reason] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout"]
        : [400, "Bad Request"];
  const body = JSON.stringify({
    error: {
      code: "TURNOUT_ERR_ROUTER_BAD_REQUEST" satisfies ErrorCode,
      message: `malformed HTTP request (${err.code ?? err.message})`,
    },
  });
  s.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
