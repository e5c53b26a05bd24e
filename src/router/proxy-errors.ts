/**
 * The router's own answers (JSON error bodies, on a response or straight on a socket) and how
 * it classifies an upstream's failures (connect errors that may be retried, timeouts, running
 * out of file descriptors).
 */
import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { ErrorCode } from "../errors.js";
import type { RouterLogger } from "./types.js";

/** RFC 9110 idempotent methods: the ones a retry may send twice. */
export function isIdempotent(method: string): boolean {
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
export function isConnectError(code: string | undefined): boolean {
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

/**
 * Running out of file descriptors (the process's `ulimit -n`, or the system's) while connecting
 * to an upstream: the router's own fault, not the upstream's, so it is answered 503
 * (`TURNOUT_ERR_ROUTER_OUT_OF_FILE_DESCRIPTORS`), counted (`turnout_router_fd_exhausted_total`)
 * and never counted towards the upstream's ejection.
 */
export function isOutOfDescriptors(code: string | undefined): boolean {
  return code === "EMFILE" || code === "ENFILE";
}

let lastDescriptorWarning = Number.NEGATIVE_INFINITY;

/** One warning per burst (a minute), since every request of the burst fails the same way. */
export function warnOutOfDescriptors(logger: RouterLogger, code: string): void {
  const now = performance.now();
  if (now - lastDescriptorWarning < 60_000) return;
  lastDescriptorWarning = now;
  logger.warn(
    { code },
    "router: out of file descriptors connecting to an upstream; answering 503 and not ejecting the upstream; raise ulimit -n",
  );
}

export function isTimeout(code: string | undefined): boolean {
  return (
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "ETIMEDOUT"
  );
}

/** Writes a JSON error straight to a socket (upgrades and parse errors have no response object). */
export function writeRawError(
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

/** A listener that swallows socket errors (the socket's close does the cleanup). */
export function ignore(): void {}
