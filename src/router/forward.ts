/**
 * What the proxy checks of a request and sends upstream in its stead: the request target, the
 * HTTP version, and the header list for the upstream (`forwardHeaders`: hop-by-hop headers
 * removed, `x-forwarded-*`, `Forwarded` and `x-request-id` set, framing checked). Shared by
 * plain requests (proxy.ts) and upgrades (upgrade.ts).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { ErrorCode } from "../errors.js";

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus `proxy-connection`, which some clients still send. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Longest client-supplied request id that is propagated as is; longer ones are replaced. */
export const MAX_REQUEST_ID_LENGTH = 200;

/** What `forwardHeaders` learns about a request besides the headers. */
export interface ForwardState {
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
export function forwardHeaders(
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

export function refuse(st: ForwardState, status: number, message: string): void {
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

/** HTTP/0.9 (llhttp parses `GET /`) and HTTP/2+ in an HTTP/1 framing are not proxied. */
export function versionProblem(
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

/** The origin-form path of a request target, or null when it is not usable. */
export function requestTarget(url: string | undefined): string | null {
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

export function incomingRequestId(req: IncomingMessage): string | undefined {
  const id = req.headers["x-request-id"];
  const first = Array.isArray(id) ? id[0] : id;
  return first !== undefined && first.length > 0 && first.length <= MAX_REQUEST_ID_LENGTH
    ? first
    : undefined;
}

/** Lower-cased option tokens of a Connection header (names of more hop-by-hop headers). */
export function connectionTokens(value: string | string[]): string[] {
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
