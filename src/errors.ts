/**
 * The one error table. Every error Turnout reports has a stable code, an HTTP status and a
 * documented meaning and fix (docs/reference/errors.md, generated from this table by
 * `npm run docs:reference`; a test fails when the two drift). API error bodies are
 * `{ error: { code, message, path?, details? } }`.
 */

export const ERRORS = {
  TURNOUT_ERR_RESOURCE_PARSE: {
    status: 400,
    summary: "A YAML or JSON document could not be parsed.",
    fix: "Fix the syntax at the line and column the message gives; `turnout validate -f FILE` checks files offline.",
  },
  TURNOUT_ERR_RESOURCE_INVALID: {
    status: 400,
    summary:
      "One or more resources failed validation; `details.errors` lists every problem with its file, document and field path.",
    fix: "Fix every field listed (each message says what is allowed, and suggests the nearest name for a typo); `turnout validate -f FILE` shows them all offline, with file, line and column.",
  },
  TURNOUT_ERR_API_BAD_REQUEST: {
    status: 400,
    summary: "The request body or a parameter is malformed.",
    fix: "Fix the field or parameter that `path` names; the message says what it must be.",
  },
  TURNOUT_ERR_API_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    summary: "The request body's content type is not JSON or YAML.",
    fix: "Send `Content-Type: application/json` or `application/yaml` (`application/x-yaml`, `text/yaml` and `text/plain` are read as YAML too).",
  },
  TURNOUT_ERR_API_PAYLOAD_TOO_LARGE: {
    status: 413,
    summary: "The request body is larger than the API accepts.",
    fix: "Send less at once: split the resources over several applies.",
  },
  TURNOUT_ERR_API_NOT_FOUND: {
    status: 404,
    summary: "No such API route.",
    fix: "Check the method and the path against the HTTP API reference (docs/reference/http-api.md).",
  },
  TURNOUT_ERR_API_HEADERS_TOO_LARGE: {
    status: 431,
    summary: "The request headers are larger than the API accepts (16 KiB, as the router).",
    fix: "Send fewer or smaller headers (large cookies are the usual cause).",
  },
  TURNOUT_ERR_API_CLIENT_TIMEOUT: {
    status: 408,
    summary:
      "The client did not send its request headers within 10 s (the router's default `requestHeadersSeconds`), or the whole request, body included, within 30 s.",
    fix: "Send the request at once (the API's bodies are small); look for a slow link or a proxy that holds requests back.",
  },
  TURNOUT_ERR_API_EXPECTATION_FAILED: {
    status: 417,
    summary: "The request's `Expect` header asks for something other than `100-continue`.",
    fix: "Drop the `Expect` header, or send `Expect: 100-continue`.",
  },
  TURNOUT_ERR_INPUT_TOO_DEEP: {
    status: 400,
    summary:
      "A YAML or JSON text nests deeper than Turnout accepts (64 levels); the message names the line and column (and, for JSON, the path) where the limit was passed. Checked before parsing.",
    fix: "Flatten the document where the message points: no resource nests that deep, so a generated file may hold a loop.",
  },
  TURNOUT_ERR_INPUT_TOO_LARGE: {
    status: 400,
    summary:
      "A YAML or JSON text (or a file given to the CLI) passes a size limit: bytes (4 MiB), keys of one mapping (1,000), values (100,000) or characters of one string (128 KiB); `details.limit` says which. Checked before parsing.",
    fix: "Split the file, or shorten what `details.limit` names; the limits are fixed, to protect the server.",
  },
  TURNOUT_ERR_INPUT_TOO_MANY_ALIASES: {
    status: 400,
    summary:
      "A YAML text uses more aliases (`*name`) than Turnout accepts (100), or their expansion would be larger: the shape of an alias bomb.",
    fix: "Write the repeated parts out, or use fewer anchors and aliases.",
  },
  TURNOUT_ERR_AUTH_UNAUTHORIZED: {
    status: 401,
    summary: "The bearer token is missing or wrong.",
    fix: "Send `Authorization: Bearer <token>` with the token in `<dataDir>/token` (or the fleet's `--token-file`); the CLI reads the data dir's token itself, or takes `--token` (env `TURNOUT_TOKEN`).",
  },
  TURNOUT_ERR_AUTH_CSRF: {
    status: 403,
    summary:
      "A change made with a dashboard session lacks the session's `x-turnout-csrf` header or comes from another site.",
    fix: "Make changes from the dashboard page itself (it sends the header), or use the bearer token from scripts.",
  },
  TURNOUT_ERR_AUTH_RATE_LIMITED: {
    status: 429,
    summary: "Too many failed dashboard sign-ins from this address in the last minute.",
    fix: "Wait the `Retry-After` seconds, then sign in with the right token or a fresh link from `turnout dashboard`.",
  },
  TURNOUT_ERR_SERVICE_NOT_FOUND: {
    status: 404,
    summary: "No Service of that name has been applied.",
    fix: "Check the name with `turnout get services`, or apply the Service first.",
  },
  TURNOUT_ERR_VERSION_NOT_FOUND: {
    status: 404,
    summary:
      "The service has no version of that name: none in its spec or status, and no instance logs of one.",
    fix: "Pick one of the known versions the message lists (`turnout status SERVICE` shows the versions running).",
  },
  TURNOUT_ERR_RESOURCE_NOT_FOUND: {
    status: 404,
    summary: "No resource of that kind and name has been applied.",
    fix: "Check the name with `turnout get KIND`, or apply the resource first.",
  },
  TURNOUT_ERR_RESOURCE_IN_USE: {
    status: 409,
    summary:
      "The resource cannot be deleted while others refer to it (a Service's analysis steps name the AnalysisTemplate, a Service's `spec.flags` or setFlag steps name the Flag, a Flag's rules name the Segment); nothing was deleted.",
    fix: "Remove the references the message lists (apply those resources without them), then delete again.",
  },
  TURNOUT_ERR_ROLLOUT_CONFLICT: {
    status: 409,
    summary:
      "The command does not apply to the service's current state (e.g. promote with no rollout in progress).",
    fix: "Look at the service's state with `turnout status SERVICE`: the message says why the command does not apply now.",
  },
  TURNOUT_ERR_COMMAND_TIMEOUT: {
    status: 504,
    summary:
      "The controller did not take up the command in time; it stays queued and will still be applied.",
    fix: "Make sure a controller runs (`turnout up`, or a process with the `controller` role on this store): it applies the command when it next ticks.",
  },
  TURNOUT_ERR_STORE_UNAVAILABLE: {
    status: 503,
    summary: "The store could not be read or written.",
    fix: "Check the store: the data dir's disk and permissions (SQLite), or that PostgreSQL is up and reachable; then retry. The controller retries at its next tick by itself.",
  },
  TURNOUT_ERR_STORE_FENCED: {
    status: 409,
    summary:
      "A controller commit carried a writer epoch that is no longer current (another controller took over): nothing written, that one stops.",
    fix: "Run one process with the `controller` role per store: the newer controller carries on, the fenced one stays stopped until its process restarts (which fences the other in turn).",
  },
  TURNOUT_ERR_STORE_CONFLICT: {
    status: 409,
    summary:
      "A controller commit was based on a service status that changed meanwhile (a deleted Flag's rollout overrides removed, the Service deleted and applied again): nothing written.",
    fix: "Nothing to do: the controller decides again from the stored status at its next tick.",
  },
  TURNOUT_ERR_STORE_SCHEMA_NEWER: {
    status: 503,
    summary:
      "The store's schema was written by a newer Turnout (it has migrations this binary does not know): run that version or newer; nothing was changed.",
    fix: "Run the Turnout version that migrated the store, or a newer one.",
  },
  TURNOUT_ERR_STORE_URL_INVALID: {
    status: 400,
    summary:
      "The `--store` URL is malformed: it must look like `postgres://USER@HOST:PORT/DB` (or `postgresql://`).",
    fix: "Write the `--store` URL as `postgres://USER:PASSWORD@HOST:PORT/DB` (exit code 2, nothing started).",
  },
  TURNOUT_ERR_STORE_AUTH_FAILED: {
    status: 503,
    summary:
      "PostgreSQL refused the store's credentials (wrong user or password, or no access to the database): fix the `--store` URL or the server's pg_hba.conf.",
    fix: "Fix the user or password in `--store`, or give that user access in PostgreSQL (`pg_hba.conf`, `GRANT`).",
  },
  TURNOUT_ERR_DATA_DIR_LOCKED: {
    status: 409,
    summary:
      "Another `turnout up` runs on the same data dir (the message names its pid and URL); nothing was touched.",
    fix: "Use the Turnout that runs (the CLI finds it through the data dir), stop it first, or give this one another `--data-dir`.",
  },
  TURNOUT_ERR_DATA_DIR_READ_ONLY: {
    status: 503,
    summary:
      "The data dir cannot be written (read-only file system, no permission); choose a writable `--data-dir`.",
    fix: "Choose a writable `--data-dir` (env `TURNOUT_DATA_DIR`), or fix the directory's permissions.",
  },
  TURNOUT_ERR_TLS_CONFIG: {
    status: 400,
    summary:
      "A TLS certificate or key (`--tls-cert`, `--tls-key`) or a CA file (`--ca`, `TURNOUT_CA`) could not be read or used.",
    fix: "Check that the files exist, are readable and hold PEM, and that the key belongs to the certificate.",
  },
  TURNOUT_ERR_ROUTER_BAD_REQUEST: {
    status: 400,
    summary:
      "The router rejected a malformed request (bad framing such as a request smuggling attempt, a bad target or Host) before proxying it.",
    fix: "Fix the client: the router does not forward such a request, and the message names what is wrong with it.",
  },
  TURNOUT_ERR_ROUTER_HEADERS_TOO_LARGE: {
    status: 431,
    summary: "The request headers are larger than the router accepts.",
    fix: "Send fewer or smaller headers (16 KiB at most, cookies included).",
  },
  TURNOUT_ERR_ROUTER_BODY_TOO_LARGE: {
    status: 413,
    summary: "The request body is larger than the service's `trafficPolicy.maxRequestBodyBytes`.",
    fix: "Send a smaller body, or raise the service's `spec.trafficPolicy.maxRequestBodyBytes`.",
  },
  TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT: {
    status: 408,
    summary:
      "The client did not send its request headers within `trafficPolicy.timeouts.requestHeadersSeconds`, or the whole request, body included, within 300 s.",
    fix: "Send the request head at once, or raise `spec.trafficPolicy.timeouts.requestHeadersSeconds`; a body must arrive within 300 s (split a larger upload, or send it faster).",
  },
  TURNOUT_ERR_ROUTER_HTTP_VERSION: {
    status: 505,
    summary:
      "The request is not HTTP/1.x (the router's listeners speak HTTP/1.0 and HTTP/1.1); HTTP/0.9 requests get `TURNOUT_ERR_ROUTER_BAD_REQUEST`.",
    fix: "Send HTTP/1.1 to the router; for HTTP/2 or gRPC upstreams use `spec.traffic.haproxy` with `protocol: h2c` or `grpc`.",
  },
  TURNOUT_ERR_ROUTER_METHOD_NOT_ALLOWED: {
    status: 405,
    summary: "CONNECT: the router is a reverse proxy, not a tunnel.",
    fix: "Send the request itself to the service's address: the router does not open tunnels.",
  },
  TURNOUT_ERR_ROUTER_EXPECTATION_FAILED: {
    status: 417,
    summary: "The request's `Expect` header asks for something other than `100-continue`.",
    fix: "Drop the `Expect` header, or send `Expect: 100-continue`.",
  },
  TURNOUT_ERR_ROUTER_OUT_OF_FILE_DESCRIPTORS: {
    status: 503,
    summary:
      "The router ran out of file descriptors (EMFILE/ENFILE) connecting to an upstream; the upstream is not ejected for it. Counted in `turnout_router_fd_exhausted_total`.",
    fix: "Raise the open-file limit of `turnout up` (`ulimit -n`, or `LimitNOFILE=` in a systemd unit).",
  },
  TURNOUT_ERR_ROUTER_NO_BACKEND: {
    status: 503,
    summary: "The router has no ready instance for the chosen version.",
    fix: "See why the version has no ready instance: `turnout status SERVICE` (instances and their health) and `turnout logs SERVICE`.",
  },
  TURNOUT_ERR_ROUTER_UPSTREAM: {
    status: 502,
    summary: "The upstream instance failed or closed the connection.",
    fix: "Look at the instance with `turnout logs SERVICE VERSION`; outlier detection ejects an instance that keeps failing (`spec.trafficPolicy.outlierDetection`).",
  },
  TURNOUT_ERR_ROUTER_TIMEOUT: {
    status: 504,
    summary: "The upstream instance did not answer in time.",
    fix: "Make the instance answer sooner, or raise `spec.trafficPolicy.timeouts.upstreamSeconds`.",
  },
  TURNOUT_ERR_HAPROXY_NOT_FOUND: {
    status: 503,
    summary:
      "The HAProxy binary (`spec.traffic.haproxy.binary`, or `haproxy` on PATH) is missing or does not run; the service keeps its last working data plane.",
    fix: "Install HAProxy 2.6 or later with Lua, or point `spec.traffic.haproxy.binary` at it.",
  },
  TURNOUT_ERR_HAPROXY_TOO_OLD: {
    status: 503,
    summary:
      "The HAProxy binary is older than 2.6 or lacks Lua; the message names the version found and the one needed.",
    fix: "Install HAProxy 2.6 or later, built with Lua (`haproxy -vv` shows both).",
  },
  TURNOUT_ERR_HAPROXY_START_FAILED: {
    status: 503,
    summary:
      "HAProxy refused the configuration Turnout generated or exited while starting or reloading; the message holds its alert lines and the old process (if any) keeps serving.",
    fix: "Fix what HAProxy's alert lines in the message name; `turnout status SERVICE` shows the data plane's state.",
  },
  TURNOUT_ERR_HAPROXY_PORT_IN_USE: {
    status: 409,
    summary:
      "HAProxy cannot listen on the service's port (or preview port): something else already does.",
    fix: "Free the port, or change the service's `spec.listen.port` (or its preview port).",
  },
  TURNOUT_ERR_HAPROXY_RUNTIME_API: {
    status: 502,
    summary:
      "HAProxy's runtime API socket does not answer, or refused a command; the message names the socket and the command.",
    fix: "Check that the attached HAProxy runs and that `spec.traffic.haproxy.runtimeApi` is its `stats socket ... level admin`, writable by Turnout.",
  },
  TURNOUT_ERR_HAPROXY_BACKEND_NOT_FOUND: {
    status: 400,
    summary:
      "The backend named by `spec.traffic.haproxy.backend` does not exist in the attached HAProxy, or its balancing algorithm cannot take servers at run time.",
    fix: "Name in `spec.traffic.haproxy.backend` a backend the attached HAProxy has (the message lists them), with a balancing algorithm that takes servers at run time, such as `roundrobin` or `leastconn`.",
  },
  TURNOUT_ERR_HAPROXY_UNSUPPORTED: {
    status: 400,
    summary:
      "The route table asks for something the haproxy provider cannot do beyond the route-table features checked at apply (`TURNOUT_ERR_TRAFFIC_UNSUPPORTED`): a name its config cannot hold, an unknown hash version, a preview table with no service; the message names it.",
    fix: "Carry that service with the built-in router (remove `spec.traffic`), or drop the feature the message names.",
  },
  TURNOUT_ERR_TRAFFIC_UNSUPPORTED: {
    status: 400,
    summary:
      "A Service needs a route-table feature that its data plane (`spec.traffic`) does not carry; the message names the feature, the spec path that asks for it and the provider. Nothing was stored; a provider given such a table refuses it and keeps serving the one it had.",
    fix: "Carry the service with a data plane that has the feature (the built-in router has them all: remove `spec.traffic`), or drop the feature.",
  },
  TURNOUT_ERR_TRAFFIC_LISTEN: {
    status: 409,
    summary:
      "A traffic provider cannot listen on a service's port (or preview port); the message gives the reason (e.g. EADDRINUSE). The built-in router keeps the table and retries at each poll.",
    fix: "Free the port (the message says why it is taken), or change `spec.listen.port`; the router retries by itself.",
  },
  TURNOUT_ERR_CLI_NO_SERVER: {
    status: 503,
    summary:
      "The CLI found no running Turnout where it looked, or could not reach it; the message says where it looked and why.",
    fix: "Start one with `turnout up`, or point the CLI at one: `--data-dir DIR` (env `TURNOUT_DATA_DIR`), or `--server URL` with `--token T`.",
  },
  TURNOUT_ERR_EVENTS_INVALID: {
    status: 400,
    summary:
      "An outcome-event batch was rejected as a whole; `details.errors` lists every bad event with its index and field path (nothing was stored).",
    fix: "Fix the events that `details.errors` lists (by index and field) and send the batch again.",
  },
  TURNOUT_ERR_EVENTS_IDEMPOTENCY_CONFLICT: {
    status: 422,
    summary:
      "An outcome event reuses the idempotency key of a stored event with a different payload (unit, metric, value or timestamp); the batch was rejected as a whole and `details.conflicts` lists the keys.",
    fix: "A retry must send the same payload under the same key; a new event needs a new key (`turnout events post` makes one unless given `--key`).",
  },
  TURNOUT_ERR_EXPERIMENT_NOT_FOUND: {
    status: 404,
    summary: "No A/B experiment of that name has run.",
    fix: "Check the name with `turnout experiment list`: an experiment exists once its step has started.",
  },
  TURNOUT_ERR_CLI_USAGE: {
    status: 400,
    summary: "The command line is wrong (exit code 2).",
    fix: "Fix the command line as the message says; `turnout COMMAND --help` lists the arguments and options.",
  },
  TURNOUT_ERR_INTERNAL_BUG: {
    status: 500,
    summary: "A bug: Turnout failed in a way it did not expect.",
    fix: "Report it with the message and the server's log (or the CLI's output with `TURNOUT_DEBUG=1`); retrying may work.",
  },
} as const satisfies Record<string, { status: number; summary: string; fix: string }>;

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
