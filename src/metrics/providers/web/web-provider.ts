/**
 * Web: an HTTP GET or POST (undici) whose 2xx answer holds the value.
 *
 * - With `jsonPath` (subset in `json-path.ts`): the body is JSON and the path picks the value.
 * - Without: the body is a bare number (`0.25`, or JSON `0.25` / `"0.25"`), or `true`/`false`.
 * - The value may be a number, a numeric string ("0.25": some APIs quote numbers to keep
 *   precision), or a boolean (true = 1, false = 0, so a check endpoint can be judged with
 *   `threshold: {min: 1}`). `null` is "no data". NaN, infinities and anything else are errors.
 * - Non-2xx (redirects are not followed) is an error with the status and the start of the body.
 *
 * Credentials in the URL (`https://user:pass@host/...`) are sent as basic auth. Messages and
 * `raw` name the URL without credentials or query string, which may hold a key; headers are
 * never recorded.
 */
import { type Dispatcher, request } from "undici";
import {
  invalid,
  type Measurement,
  type MeasureRequest,
  type MetricProvider,
  providerKind,
  type WebSourceSpec,
} from "../provider.js";
import {
  basicAuthFromUrl,
  boundRaw,
  deadline,
  describeError,
  failed,
  formatSeconds,
  head,
  measured,
  parseNumberText,
  readBounded,
} from "../support.js";
import { resolveSource, templateVars } from "../template.js";
import { formatJsonPath, kindOf, parseJsonPath, selectJsonPath } from "./json-path.js";

export interface WebProviderOptions {
  dispatcher?: Dispatcher;
  /** Default 1 MiB. */
  maxResponseBytes?: number;
  /** When the source gives none. Default 10. */
  defaultTimeoutSeconds?: number;
}

export class WebProvider implements MetricProvider {
  readonly kind = "web" as const;
  private readonly maxResponseBytes: number;
  private readonly defaultTimeoutSeconds: number;

  constructor(private readonly opts: WebProviderOptions = {}) {
    this.maxResponseBytes = opts.maxResponseBytes ?? 1024 * 1024;
    this.defaultTimeoutSeconds = opts.defaultTimeoutSeconds ?? 10;
  }

  async measure(req: MeasureRequest, signal: AbortSignal): Promise<Measurement> {
    // 1. Check and render the source; a wrong source throws.
    if (providerKind(req.source) !== "web") {
      throw invalid("source", `the web provider cannot measure ${Object.keys(req.source)}`);
    }
    const spec = resolveSource(req.source as { web: WebSourceSpec }, templateVars(req)).web;
    const method = spec.method ?? "GET";
    if (method !== "GET" && method !== "POST") {
      throw invalid("source.web.method", `must be GET or POST, got ${JSON.stringify(method)}`);
    }
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      throw invalid("source.web.url", `must be an http(s) URL, got ${JSON.stringify(spec.url)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw invalid("source.web.url", `must be an http(s) URL, got ${JSON.stringify(spec.url)}`);
    }
    let path: ReturnType<typeof parseJsonPath> | undefined;
    if (spec.jsonPath !== undefined) {
      try {
        path = parseJsonPath(spec.jsonPath);
      } catch (err) {
        throw invalid("source.web.jsonPath", (err as Error).message);
      }
    }
    const timeoutSeconds = spec.timeoutSeconds ?? this.defaultTimeoutSeconds;
    if (!(timeoutSeconds > 0)) {
      throw invalid("source.web.timeoutSeconds", `must be > 0, got ${timeoutSeconds}`);
    }
    const headers: Record<string, string> = { ...spec.headers };
    const authorization = basicAuthFromUrl(url);
    if (authorization !== undefined) {
      if (Object.keys(headers).some((h) => h.toLowerCase() === "authorization")) {
        throw invalid(
          "source.web.url",
          "has credentials and the headers set authorization too; keep one",
        );
      }
      headers.authorization = authorization;
    }
    if (
      spec.body !== undefined &&
      !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")
    ) {
      headers["content-type"] = "application/json";
    }
    const shown = `${url.origin}${url.pathname}`;
    const where = `${method} ${shown}`;
    const rawBase = { method, url: shown };

    // 2. Ask, within the timeout.
    if (signal.aborted) return failed("aborted", `${where}: aborted before sending`, rawBase);
    const dl = deadline(signal, timeoutSeconds * 1000);
    let status: number;
    let text: string;
    try {
      const res = await request(url, {
        method,
        headers,
        ...(spec.body !== undefined ? { body: spec.body } : {}),
        signal: dl.signal,
        ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
      });
      status = res.statusCode;
      const body = await readBounded(res.body, this.maxResponseBytes);
      if ("tooLarge" in body) {
        return failed(
          "failed",
          `${where}: response larger than ${this.maxResponseBytes} bytes (HTTP ${status})`,
          { ...rawBase, status },
        );
      }
      text = body.text;
    } catch (err) {
      const why = dl.why();
      if (why === "aborted") return failed("aborted", `${where}: aborted`, rawBase);
      if (why === "timeout") {
        return failed("timeout", `${where}: no answer within ${formatSeconds(timeoutSeconds)}`, {
          ...rawBase,
        });
      }
      return failed("failed", `${where}: ${describeError(err)}`, rawBase);
    } finally {
      dl.dispose();
    }

    // 3. Only 2xx carries a value.
    if (status < 200 || status > 299) {
      return failed(
        "failed",
        `${where}: HTTP ${status}${status >= 300 && status < 400 ? " (redirects are not followed)" : ""}: ${head(text.trim(), 200)}`,
        { ...rawBase, status, body: head(text, 1000) },
      );
    }

    // 4. Find the value.
    if (path === undefined) {
      const bare = parseNumberText(text);
      if (bare !== null && "value" in bare) {
        return measured({ value: bare.value, raw: { ...rawBase, status, body: head(text, 200) } });
      }
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        return failed(
          "failed",
          `${where}: the body is not a number (set jsonPath to pick a value from JSON): ${head(text.trim(), 100) || "empty body"}`,
          { ...rawBase, status, body: head(text, 1000) },
        );
      }
      return toMeasurement(doc, "the body", where, {
        ...rawBase,
        status,
        body: boundRaw(doc, 2000),
      });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return failed(
        "failed",
        `${where}: the body is not JSON (${(err as Error).message}): ${head(text.trim(), 100)}`,
        { ...rawBase, status, body: head(text, 1000) },
      );
    }
    const raw = { ...rawBase, status, jsonPath: spec.jsonPath, body: boundRaw(doc, 2000) };
    const sel = selectJsonPath(doc, path);
    if ("missing" in sel) {
      return failed("failed", `${where}: jsonPath ${spec.jsonPath}: ${sel.missing}`, raw);
    }
    return toMeasurement(sel.found, formatJsonPath(path), where, raw);
  }
}

function toMeasurement(v: unknown, what: string, where: string, raw: unknown): Measurement {
  if (typeof v === "number") {
    // JSON.parse never yields NaN or an infinity, but 1e999 overflows to Infinity.
    if (!Number.isFinite(v)) return failed("failed", `${where}: ${what} is not finite`, raw);
    return measured({ value: v, raw });
  }
  if (typeof v === "boolean") return measured({ value: v ? 1 : 0, raw });
  if (v === null) return failed("noData", `no data: ${where}: ${what} is null`, raw);
  if (typeof v === "string") {
    const n = parseNumberText(v);
    if (n !== null && "value" in n) return measured({ value: n.value, raw });
    if (n !== null) return failed("failed", `${where}: ${what} is ${n.nonFinite}`, raw);
    return failed(
      "failed",
      `${where}: ${what} is the string ${JSON.stringify(head(v, 60))}, not a number`,
      raw,
    );
  }
  return failed("failed", `${where}: ${what} is ${kindOf(v)}, not a number or boolean`, raw);
}
