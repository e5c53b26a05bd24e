/**
 * The one error table. Every error Turnout reports has a stable code, an HTTP status and a
 * documented meaning (docs/errors.md; a test fails when the two drift). API error bodies are
 * `{ error: { code, message, path?, details? } }`.
 */

export const ERRORS = {
  TURNOUT_ERR_RESOURCE_PARSE: {
    status: 400,
    summary: "A YAML or JSON document could not be parsed.",
  },
  TURNOUT_ERR_RESOURCE_INVALID: {
    status: 400,
    summary:
      "One or more resources failed validation; `details.errors` lists every problem with its file, document and field path.",
  },
  TURNOUT_ERR_API_BAD_REQUEST: {
    status: 400,
    summary: "The request body or a parameter is malformed.",
  },
  TURNOUT_ERR_API_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    summary: "The request body's content type is not JSON or YAML.",
  },
  TURNOUT_ERR_API_PAYLOAD_TOO_LARGE: {
    status: 413,
    summary: "The request body is larger than the API accepts.",
  },
  TURNOUT_ERR_API_NOT_FOUND: { status: 404, summary: "No such API route." },
  TURNOUT_ERR_API_HEADERS_TOO_LARGE: {
    status: 431,
    summary: "The request headers are larger than the API accepts (16 KiB, as the router).",
  },
  TURNOUT_ERR_API_CLIENT_TIMEOUT: {
    status: 408,
    summary:
      "The client did not send its request headers within the API's header timeout (the router's default `requestHeadersSeconds`, 10 s).",
  },
  TURNOUT_ERR_API_EXPECTATION_FAILED: {
    status: 417,
    summary: "The request's `Expect` header asks for something other than `100-continue`.",
  },
  TURNOUT_ERR_INPUT_TOO_DEEP: {
    status: 400,
    summary:
      "A YAML or JSON text nests deeper than Turnout accepts (64 levels); the message names the line and column (and, for JSON, the path) where the limit was passed. Checked before parsing.",
  },
  TURNOUT_ERR_INPUT_TOO_LARGE: {
    status: 400,
    summary:
      "A YAML or JSON text (or a file given to the CLI) passes a size limit: bytes (4 MiB), keys of one mapping (1,000), values (100,000) or characters of one string (128 KiB); `details.limit` says which. Checked before parsing.",
  },
  TURNOUT_ERR_INPUT_TOO_MANY_ALIASES: {
    status: 400,
    summary:
      "A YAML text uses more aliases (`*name`) than Turnout accepts (100), or their expansion would be larger: the shape of an alias bomb.",
  },
  TURNOUT_ERR_AUTH_UNAUTHORIZED: { status: 401, summary: "The bearer token is missing or wrong." },
  TURNOUT_ERR_AUTH_CSRF: {
    status: 403,
    summary:
      "A change made with a dashboard session lacks the session's x-turnout-csrf header or comes from another site.",
  },
  TURNOUT_ERR_AUTH_RATE_LIMITED: {
    status: 429,
    summary:
      "Too many failed dashboard sign-ins from this address in the last minute; wait for Retry-After.",
  },
  TURNOUT_ERR_SERVICE_NOT_FOUND: {
    status: 404,
    summary: "No Service of that name has been applied.",
  },
  TURNOUT_ERR_RESOURCE_NOT_FOUND: {
    status: 404,
    summary: "No resource of that kind and name has been applied.",
  },
  TURNOUT_ERR_ROLLOUT_CONFLICT: {
    status: 409,
    summary:
      "The command does not apply to the service's current state (e.g. promote with no rollout in progress).",
  },
  TURNOUT_ERR_COMMAND_TIMEOUT: {
    status: 504,
    summary:
      "The controller did not take up the command in time; it stays queued and will still be applied.",
  },
  TURNOUT_ERR_STORE_UNAVAILABLE: {
    status: 503,
    summary: "The store could not be read or written.",
  },
  TURNOUT_ERR_STORE_FENCED: {
    status: 409,
    summary:
      "A controller commit carried a writer epoch that is no longer current (another controller took over): nothing written, that one stops.",
  },
  TURNOUT_ERR_STORE_SCHEMA_NEWER: {
    status: 503,
    summary:
      "The store's schema was written by a newer Turnout (it has migrations this binary does not know): run that version or newer; nothing was changed.",
  },
  TURNOUT_ERR_STORE_URL_INVALID: {
    status: 400,
    summary:
      "The `--store` URL is malformed: it must look like `postgres://USER@HOST:PORT/DB` (or `postgresql://`).",
  },
  TURNOUT_ERR_STORE_AUTH_FAILED: {
    status: 503,
    summary:
      "PostgreSQL refused the store's credentials (wrong user or password, or no access to the database): fix the `--store` URL or the server's pg_hba.conf.",
  },
  TURNOUT_ERR_DATA_DIR_LOCKED: {
    status: 409,
    summary:
      "Another `turnout up` runs on the same data dir (the message names its pid and URL); nothing was touched.",
  },
  TURNOUT_ERR_DATA_DIR_READ_ONLY: {
    status: 503,
    summary:
      "The data dir cannot be written (read-only file system, no permission); choose a writable `--data-dir`.",
  },
  TURNOUT_ERR_TLS_CONFIG: {
    status: 400,
    summary:
      "A TLS certificate or key (`--tls-cert`, `--tls-key`) or a CA file (`--ca`, `TURNOUT_CA`) could not be read or used.",
  },
  TURNOUT_ERR_ROUTER_BAD_REQUEST: {
    status: 400,
    summary:
      "The router rejected a malformed request (bad framing such as a request smuggling attempt, a bad target or Host) before proxying it.",
  },
  TURNOUT_ERR_ROUTER_HEADERS_TOO_LARGE: {
    status: 431,
    summary: "The request headers are larger than the router accepts.",
  },
  TURNOUT_ERR_ROUTER_BODY_TOO_LARGE: {
    status: 413,
    summary: "The request body is larger than the service's `trafficPolicy.maxRequestBodyBytes`.",
  },
  TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT: {
    status: 408,
    summary:
      "The client did not send its request headers within `trafficPolicy.timeouts.requestHeadersSeconds`.",
  },
  TURNOUT_ERR_ROUTER_HTTP_VERSION: {
    status: 505,
    summary: "The request is not HTTP/1.x (the router's listeners speak HTTP/1.0 and HTTP/1.1).",
  },
  TURNOUT_ERR_ROUTER_METHOD_NOT_ALLOWED: {
    status: 405,
    summary: "CONNECT: the router is a reverse proxy, not a tunnel.",
  },
  TURNOUT_ERR_ROUTER_EXPECTATION_FAILED: {
    status: 417,
    summary: "The request's `Expect` header asks for something other than `100-continue`.",
  },
  TURNOUT_ERR_ROUTER_OUT_OF_FILE_DESCRIPTORS: {
    status: 503,
    summary:
      "The router ran out of file descriptors (EMFILE/ENFILE) connecting to an upstream; the upstream is not blamed. Raise `ulimit -n`.",
  },
  TURNOUT_ERR_ROUTER_NO_BACKEND: {
    status: 503,
    summary: "The router has no ready instance for the chosen version.",
  },
  TURNOUT_ERR_ROUTER_UPSTREAM: {
    status: 502,
    summary: "The upstream instance failed or closed the connection.",
  },
  TURNOUT_ERR_ROUTER_TIMEOUT: {
    status: 504,
    summary: "The upstream instance did not answer in time.",
  },
  TURNOUT_ERR_HAPROXY_NOT_FOUND: {
    status: 503,
    summary:
      "The HAProxy binary (`spec.traffic.haproxy.binary`, or `haproxy` on PATH) is missing or does not run; the service keeps its last working data plane.",
  },
  TURNOUT_ERR_HAPROXY_TOO_OLD: {
    status: 503,
    summary:
      "The HAProxy binary is older than 2.6 or lacks Lua; the message names the version found and the one needed.",
  },
  TURNOUT_ERR_HAPROXY_START_FAILED: {
    status: 503,
    summary:
      "HAProxy refused the configuration Turnout generated or exited while starting or reloading; the message holds its alert lines and the old process (if any) keeps serving.",
  },
  TURNOUT_ERR_HAPROXY_PORT_IN_USE: {
    status: 409,
    summary:
      "HAProxy cannot listen on the service's port (or preview port): something else already does.",
  },
  TURNOUT_ERR_HAPROXY_RUNTIME_API: {
    status: 502,
    summary:
      "HAProxy's runtime API socket does not answer, or refused a command; the message names the socket and the command.",
  },
  TURNOUT_ERR_HAPROXY_BACKEND_NOT_FOUND: {
    status: 400,
    summary:
      "The backend named by `spec.traffic.haproxy.backend` does not exist in the attached HAProxy, or its balancing algorithm cannot take servers at run time.",
  },
  TURNOUT_ERR_HAPROXY_UNSUPPORTED: {
    status: 400,
    summary:
      "The route table asks for something the haproxy provider cannot do beyond the route-table features checked at apply (TURNOUT_ERR_TRAFFIC_UNSUPPORTED): a name its config cannot hold, an unknown hash version, a preview table with no service; the message names it.",
  },
  TURNOUT_ERR_TRAFFIC_UNSUPPORTED: {
    status: 400,
    summary:
      "A Service needs a route-table feature that its data plane (`spec.traffic`) does not carry; the message names the feature, the spec path that asks for it and the provider. Nothing was stored; a provider given such a table refuses it and keeps serving the one it had.",
  },
  TURNOUT_ERR_TRAFFIC_LISTEN: {
    status: 409,
    summary:
      "A traffic provider cannot listen on a service's port (or preview port); the message gives the reason (e.g. EADDRINUSE). The built-in router keeps the table and retries at each poll.",
  },
  TURNOUT_ERR_CLI_NO_SERVER: {
    status: 503,
    summary:
      "The CLI found no running Turnout server (start one with `turnout up`, or pass --server).",
  },
  TURNOUT_ERR_EVENTS_INVALID: {
    status: 400,
    summary:
      "An outcome-event batch was rejected as a whole; `details.errors` lists every bad event with its index and field path (nothing was stored).",
  },
  TURNOUT_ERR_EVENTS_IDEMPOTENCY_CONFLICT: {
    status: 422,
    summary:
      "An outcome event reuses the idempotency key of a stored event with a different payload (unit, metric, value or timestamp); the batch was rejected as a whole and `details.conflicts` lists the keys.",
  },
  TURNOUT_ERR_EXPERIMENT_NOT_FOUND: {
    status: 404,
    summary: "No A/B experiment of that name has run.",
  },
  TURNOUT_ERR_CLI_USAGE: { status: 400, summary: "The command line is wrong (exit code 2)." },
  TURNOUT_ERR_INTERNAL_BUG: {
    status: 500,
    summary: "A bug: Turnout failed in a way it did not expect.",
  },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** A problem with one field of one resource. */
export interface FieldError {
  /** File the resource came from, when it came from a file. */
  file?: string;
  /** 0-based index of the YAML document (or JSON array element) in the file. */
  document?: number;
  /** Kind and name of the resource, when known. */
  resource?: string;
  /** Dotted field path, e.g. `spec.strategy.canary.steps[2].setWeight`. */
  path: string;
  message: string;
  /** 1-based position in the file, when known. */
  line?: number;
  column?: number;
  /** The error code when the problem has its own (an input limit), else the caller's. */
  code?: ErrorCode;
}

export class TurnoutError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: { path?: string; errors?: FieldError[]; [k: string]: unknown } = {},
  ) {
    super(message);
    this.name = "TurnoutError";
    this.status = ERRORS[code].status;
  }

  toJSON(): { error: { code: ErrorCode; message: string; path?: string; details?: unknown } } {
    const { path, ...rest } = this.details;
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(path !== undefined ? { path } : {}),
        ...(Object.keys(rest).length > 0 ? { details: rest } : {}),
      },
    };
  }
}

/** "file.yaml (document 2) spec.listen.port: must be 1..65535, got 0" */
export function formatFieldError(e: FieldError): string {
  const where: string[] = [];
  if (e.file) where.push(e.line ? `${e.file}:${e.line}:${e.column ?? 1}` : e.file);
  if (e.document !== undefined) where.push(`document ${e.document + 1}`);
  if (e.resource) where.push(e.resource);
  const prefix = where.length > 0 ? `${where.join(" ")}: ` : "";
  return `${prefix}${e.path ? `${e.path}: ` : ""}${e.message}`;
}
