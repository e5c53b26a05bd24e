/**
 * Small helpers the providers share: bounded `raw`, bounded response bodies, strict number
 * parsing, and a deadline that tells a caller's abort from the source's timeout.
 */
import {
  type FailedMeasurement,
  type MeasurementErrorKind,
  RAW_LIMIT_CHARS,
  type ValueMeasurement,
} from "./provider.js";

export function failed(
  errorKind: MeasurementErrorKind,
  error: string,
  raw: unknown = null,
  limit = RAW_LIMIT_CHARS,
): FailedMeasurement {
  return { error, errorKind, raw: boundRaw(raw, limit) };
}

/** `raw` is bounded here, so no provider can forget to. */
export function measured(m: ValueMeasurement, limit = RAW_LIMIT_CHARS): ValueMeasurement {
  return { ...m, raw: boundRaw(m.raw, limit) };
}

/**
 * `value` as is when its JSON fits in `limit` characters; otherwise
 * `{ truncated: true, chars, head }` whose JSON fits, `head` being the start of the JSON text.
 * Values that JSON cannot represent (undefined, functions, cycles) become their `String()`.
 */
export function boundRaw(value: unknown, limit = RAW_LIMIT_CHARS): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined; // a cycle or a BigInt
  }
  if (text === undefined) {
    value = String(value);
    text = JSON.stringify(value);
  }
  if (text.length <= limit) return value;
  // The head is escaped again inside the envelope, so shrink until the whole fits.
  const chars = text.length;
  let n = Math.max(0, limit - 80);
  for (;;) {
    const out = { truncated: true, chars, head: text.slice(0, n) };
    if (JSON.stringify(out).length <= limit || n === 0) return out;
    n = Math.floor(n * 0.8);
  }
}

/** The last `max` characters of `text`, marked when cut. */
export function tail(text: string, max: number): string {
  return text.length <= max ? text : `...${text.slice(text.length - max)}`;
}

/** The first `max` characters of `text`, marked when cut. */
export function head(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}

/**
 * Reads a body up to `maxBytes`; beyond it stops reading and destroys the stream (so no more is
 * downloaded) and reports the overflow.
 */
export async function readBounded(
  body: AsyncIterable<Uint8Array> & { destroy?(err?: Error): unknown },
  maxBytes: number,
): Promise<{ text: string } | { tooLarge: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      body.destroy?.();
      return { tooLarge: size };
    }
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return { text: Buffer.concat(chunks).toString("utf8") };
}

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(?:nan|inf|infinity)$/i;

/**
 * Strict number text: decimal or exponent notation, nothing else ("0x10", "1_000", "" and
 * "12ms" are not numbers). NaN and infinities are recognised so they can be reported as such.
 */
export function parseNumberText(text: string): { value: number } | { nonFinite: string } | null {
  const s = text.trim();
  if (DECIMAL.test(s)) {
    const value = Number(s);
    return Number.isFinite(value) ? { value } : { nonFinite: s };
  }
  if (NON_FINITE.test(s)) return { nonFinite: s };
  return null;
}

/**
 * A signal that fires on the caller's abort or after `timeoutMs`, and `why()` saying which
 * (the caller's abort wins when both happened). `dispose()` clears the timer.
 */
export function deadline(
  signal: AbortSignal,
  timeoutMs: number,
): {
  signal: AbortSignal;
  why(): "aborted" | "timeout" | undefined;
  dispose(): void;
} {
  const ctl = new AbortController();
  let timedOut = false;
  const onAbort = () => ctl.abort(signal.reason);
  if (signal.aborted) ctl.abort(signal.reason);
  else signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  return {
    signal: ctl.signal,
    why: () => (signal.aborted ? "aborted" : timedOut ? "timeout" : undefined),
    dispose: () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    },
  };
}

/** "1.5 s" / "250 ms" for messages. */
export function formatSeconds(seconds: number): string {
  return seconds >= 1 ? `${seconds} s` : `${Math.round(seconds * 1000)} ms`;
}

/** One line out of an error, with its code when it has one (ECONNREFUSED...). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const cause = (err as { cause?: unknown }).cause;
    const msg = err.message || err.name;
    const withCode = typeof code === "string" && !msg.includes(code) ? `${msg} (${code})` : msg;
    return cause instanceof Error && !withCode.includes(cause.message)
      ? `${withCode}: ${cause.message}`
      : withCode;
  }
  return String(err);
}

/**
 * undici silently drops credentials in a URL (`http://user:pass@host`), which would turn into a
 * puzzling 401; so they are taken out of the URL and sent as HTTP basic auth instead.
 */
export function basicAuthFromUrl(url: URL): string | undefined {
  if (url.username === "" && url.password === "") return undefined;
  const creds = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  url.username = "";
  url.password = "";
  return `Basic ${Buffer.from(creds).toString("base64")}`;
}
