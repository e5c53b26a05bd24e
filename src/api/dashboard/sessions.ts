/**
 * Dashboard sign-in: browser sessions in a cookie, one-time sign-in codes, and the CSRF
 * defence of cookie-authenticated changes.
 *
 *   POST   /api/v1/sessions        {token} or {code}, optional {name}: sets the session cookie,
 *                                  answers {csrf, expiresAt, name}
 *   GET    /api/v1/sessions/current  the signed-in session's {csrf, expiresAt, name}
 *   DELETE /api/v1/sessions        signs out (revokes the session, clears the cookie)
 *   POST   /api/v1/sessions/codes  (admin) a code valid 60 s, single use: `turnout dashboard`
 *                                  prints `URL/#code=...`; the page exchanges it by POST and
 *                                  drops it from the address bar, so neither the token nor a
 *                                  live code stays in a URL or in history (fragments are never
 *                                  sent to a server nor in a Referer).
 *
 * The cookie is `v1.<payload>.<mac>`: the session id, the name given at sign-in (recorded as
 * the actor of what the session does), when it was issued and when it expires, signed with a
 * key derived from the admin token. So sessions survive a restart of `turnout up` (the page's
 * event stream reconnects without a new sign-in) and all die when the token is rotated; no
 * table is needed. Sign-out revokes the id in memory until its expiry, and clears the cookie.
 * Expiry: 12 h after the last request (the cookie is re-issued at most every 10 minutes), and
 * 7 days after sign-in whatever the activity.
 *
 * CSRF: the cookie is HttpOnly and SameSite=Strict (Secure over https), and a change made with
 * it (any method but GET/HEAD/OPTIONS) must also carry `x-turnout-csrf` equal to a MAC of the
 * session id (which only a page of this origin can read, from the sign-in answer or
 * /sessions/current; the API sends no CORS headers), and must not come from another origin
 * (Origin, Sec-Fetch-Site). A bearer token in the request wins over the cookie.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { TurnoutError } from "../../errors.js";

export const SESSION_COOKIE = "turnout_session";
export const CSRF_HEADER = "x-turnout-csrf";
export const SESSION_IDLE_MS = 12 * 3600_000;
export const SESSION_MAX_MS = 7 * 24 * 3600_000;
export const CODE_TTL_MS = 60_000;
const REISSUE_AFTER_MS = 10 * 60_000;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export interface Session {
  id: string;
  name: string;
  issuedAt: number;
  /** Sign-in time; the session ends SESSION_MAX_MS after it whatever the activity. */
  signedInAt: number;
  expiresAt: number;
}

export interface SessionOptions {
  token: string;
  /** Wall-clock ms (cookies expire in real time, whatever clock the controller runs on). */
  now?: () => number;
}

export class Sessions {
  readonly #key: Buffer;
  readonly #token: Buffer;
  readonly #now: () => number;
  /** Revoked session ids until their expiry. */
  readonly #revoked = new Map<string, number>();
  /** Live one-time codes and when they expire. */
  readonly #codes = new Map<string, number>();

  constructor(opts: SessionOptions) {
    this.#token = Buffer.from(opts.token);
    this.#key = createHmac("sha256", opts.token).update("turnout-dashboard-session-v1").digest();
    this.#now = opts.now ?? Date.now;
  }

  now(): number {
    return this.#now();
  }

  tokenMatches(given: string): boolean {
    const b = Buffer.from(given);
    return b.length === this.#token.length && timingSafeEqual(b, this.#token);
  }

  /** A new one-time sign-in code. */
  issueCode(): { code: string; expiresAt: number } {
    const now = this.#now();
    for (const [c, exp] of this.#codes) if (exp <= now) this.#codes.delete(c);
    const code = randomBytes(18).toString("base64url");
    const expiresAt = now + CODE_TTL_MS;
    this.#codes.set(code, expiresAt);
    return { code, expiresAt };
  }

  /** Uses a code up; false when it is unknown, used or expired. */
  redeemCode(code: string): boolean {
    const exp = this.#codes.get(code);
    if (exp === undefined) return false;
    this.#codes.delete(code);
    return exp > this.#now();
  }

  create(name: string): Session {
    const now = this.#now();
    return {
      id: randomBytes(16).toString("base64url"),
      name,
      issuedAt: now,
      signedInAt: now,
      expiresAt: Math.min(now + SESSION_IDLE_MS, now + SESSION_MAX_MS),
    };
  }

  /** The same session with its idle expiry pushed out, or null when it needs no re-issue. */
  refresh(s: Session): Session | null {
    const now = this.#now();
    if (now - s.issuedAt < REISSUE_AFTER_MS) return null;
    return {
      ...s,
      issuedAt: now,
      expiresAt: Math.min(now + SESSION_IDLE_MS, s.signedInAt + SESSION_MAX_MS),
    };
  }

  encode(s: Session): string {
    const payload = Buffer.from(
      JSON.stringify([s.id, s.name, s.issuedAt, s.signedInAt, s.expiresAt]),
    ).toString("base64url");
    return `v1.${payload}.${this.#mac(`session:${payload}`)}`;
  }

  /** The session a cookie value holds, or null when it is forged, expired or revoked. */
  decode(value: string): Session | null {
    const parts = value.split(".");
    if (parts.length !== 3 || parts[0] !== "v1") return null;
    const [, payload, mac] = parts as [string, string, string];
    const want = Buffer.from(this.#mac(`session:${payload}`));
    const got = Buffer.from(mac);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
    let fields: unknown;
    try {
      fields = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      return null;
    }
    if (!Array.isArray(fields) || fields.length !== 5) return null;
    const [id, name, issuedAt, signedInAt, expiresAt] = fields as unknown[];
    if (typeof id !== "string" || typeof name !== "string") return null;
    if (typeof issuedAt !== "number" || typeof signedInAt !== "number") return null;
    if (typeof expiresAt !== "number") return null;
    const now = this.#now();
    if (expiresAt <= now || now - signedInAt > SESSION_MAX_MS) return null;
    if (this.#revoked.has(id)) return null;
    return { id, name, issuedAt, signedInAt, expiresAt };
  }

  revoke(s: Session): void {
    const now = this.#now();
    for (const [id, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(id);
    this.#revoked.set(s.id, s.signedInAt + SESSION_MAX_MS);
  }

  csrfOf(s: Session): string {
    return this.#mac(`csrf:${s.id}`);
  }

  csrfMatches(s: Session, given: string): boolean {
    const want = Buffer.from(this.csrfOf(s));
    const got = Buffer.from(given);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  #mac(what: string): string {
    return createHmac("sha256", this.#key).update(what).digest("base64url");
  }
}

/** Failed sign-ins allowed per client address in `SIGN_IN_WINDOW_MS`, before 429. */
export const SIGN_IN_MAX_FAILURES = 10;
export const SIGN_IN_WINDOW_MS = 60_000;
/** Addresses remembered at most; the oldest is forgotten first (bounds memory under a flood). */
const SIGN_IN_ADDRESSES = 10_000;

/**
 * Throttles guessing at `POST /api/v1/sessions`: per client address, at most `max` failed
 * sign-ins in any `windowMs` (a sliding window of their times); past that, every attempt is
 * refused with 429 until the oldest failure leaves the window, without checking the token, so
 * a guesser learns nothing. A successful sign-in clears the address's failures.
 */
export class SignInLimiter {
  readonly #failures = new Map<string, number[]>();

  constructor(
    private readonly now: () => number,
    private readonly max = SIGN_IN_MAX_FAILURES,
    private readonly windowMs = SIGN_IN_WINDOW_MS,
  ) {}

  /** Milliseconds until `address` may try again, or 0 when it may now. */
  blockedFor(address: string): number {
    const times = this.#recent(address);
    if (times.length < this.max) return 0;
    return (times[times.length - this.max] as number) + this.windowMs - this.now();
  }

  failed(address: string): void {
    const times = this.#recent(address);
    times.push(this.now());
    // Re-inserted so that Map order is least recently failed first.
    this.#failures.delete(address);
    this.#failures.set(address, times.slice(-this.max));
    if (this.#failures.size > SIGN_IN_ADDRESSES) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
  }

  succeeded(address: string): void {
    this.#failures.delete(address);
  }

  #recent(address: string): number[] {
    const since = this.now() - this.windowMs;
    const times = (this.#failures.get(address) ?? []).filter((t) => t > since);
    if (times.length === 0) this.#failures.delete(address);
    return times;
  }
}

/** The value of one cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function isHttps(req: FastifyRequest): boolean {
  return req.protocol === "https";
}

function setCookie(reply: FastifyReply, req: FastifyRequest, value: string, maxAgeSec: number) {
  const attrs = [
    `${SESSION_COOKIE}=${value}`,
    "Path=/",
    "HttpOnly",
    "SameSite=Strict",
    `Max-Age=${Math.max(0, Math.floor(maxAgeSec))}`,
  ];
  if (isHttps(req)) attrs.push("Secure");
  reply.header("set-cookie", attrs.join("; "));
}

/** Refuses a change that did not come from a page of this origin. */
function checkSameOrigin(req: FastifyRequest): void {
  const site = req.headers["sec-fetch-site"];
  if (typeof site === "string" && site !== "same-origin" && site !== "none") {
    throw new TurnoutError(
      "TURNOUT_ERR_AUTH_CSRF",
      `refused: a ${site} request cannot change anything with the dashboard's session`,
    );
  }
  const origin = req.headers.origin;
  if (typeof origin === "string" && origin !== "null") {
    const own = `${isHttps(req) ? "https" : "http"}://${req.headers.host ?? ""}`;
    if (origin !== own) {
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_CSRF",
        `refused: origin ${origin} is not this server's (${own})`,
      );
    }
  } else if (origin === "null") {
    throw new TurnoutError("TURNOUT_ERR_AUTH_CSRF", "refused: opaque origin");
  }
}

const SESSION_KEY = Symbol("turnoutSession");
type WithSession = FastifyRequest & { [SESSION_KEY]?: Session };

/** The session the request was authenticated with (set by `authenticateSession`). */
export function sessionOf(req: FastifyRequest): Session | undefined {
  return (req as WithSession)[SESSION_KEY];
}

/**
 * Authenticates a request by its session cookie: true when it holds a live session (and, for a
 * change, the CSRF header and a same-origin request), false when it holds none (the bearer
 * check follows). A request with an Authorization header is left to the bearer check. A change
 * with a live session but no valid CSRF header is refused here (403), not passed on.
 */
export function authenticateSession(
  sessions: Sessions,
  req: FastifyRequest,
  reply: FastifyReply,
): boolean {
  if (req.headers.authorization !== undefined) return false;
  const raw = cookieValue(req.headers.cookie, SESSION_COOKIE);
  if (raw === undefined || raw === "") return false;
  const session = sessions.decode(raw);
  if (session === null) return false;
  if (!SAFE_METHODS.has(req.method)) {
    checkSameOrigin(req);
    const given = req.headers[CSRF_HEADER];
    if (typeof given !== "string" || !sessions.csrfMatches(session, given)) {
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_CSRF",
        `refused: a change made with the dashboard's session needs the ${CSRF_HEADER} header of that session`,
      );
    }
  }
  (req as WithSession)[SESSION_KEY] = session;
  // What a session does is recorded as done by the name it signed in with.
  req.headers["x-turnout-actor"] = `dashboard:${session.name}`;
  const next = sessions.refresh(session);
  if (next !== null)
    setCookie(reply, req, sessions.encode(next), (next.expiresAt - next.issuedAt) / 1000);
  return true;
}

function sessionBody(sessions: Sessions, s: Session) {
  return { name: s.name, expiresAt: s.expiresAt, csrf: sessions.csrfOf(s) };
}

const NAME_RE = /^[\w .@-]{1,64}$/;

export function registerSessionRoutes(
  app: FastifyInstance,
  sessions: Sessions,
  limiter: SignInLimiter = new SignInLimiter(() => sessions.now()),
): void {
  app.post("/api/v1/sessions", async (req, reply) => {
    checkSameOrigin(req);
    const wait = limiter.blockedFor(req.ip);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      reply.header("retry-after", String(seconds));
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_RATE_LIMITED",
        `too many failed sign-ins from ${req.ip}: try again in ${seconds} s`,
        { retryAfterSeconds: seconds },
      );
    }
    const body = req.body;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new TurnoutError(
        "TURNOUT_ERR_API_BAD_REQUEST",
        'the body must be a JSON object like {"token": "..."} or {"code": "..."}',
      );
    }
    const b = body as Record<string, unknown>;
    for (const k of Object.keys(b)) {
      if (k !== "token" && k !== "code" && k !== "name") {
        throw new TurnoutError(
          "TURNOUT_ERR_API_BAD_REQUEST",
          `unknown field ${JSON.stringify(k)}; allowed: token, code, name`,
          { path: k },
        );
      }
    }
    let name = "admin";
    if (b.name !== undefined && b.name !== "") {
      if (typeof b.name !== "string" || !NAME_RE.test(b.name)) {
        throw new TurnoutError(
          "TURNOUT_ERR_API_BAD_REQUEST",
          "name: 1..64 letters, digits, spaces or . _ @ -",
          { path: "name" },
        );
      }
      name = b.name.trim();
    }
    let ok = false;
    if (typeof b.token === "string") ok = sessions.tokenMatches(b.token.trim());
    else if (typeof b.code === "string") ok = sessions.redeemCode(b.code);
    else {
      throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "send token or code (a string)", {
        path: "token",
      });
    }
    if (!ok) {
      limiter.failed(req.ip);
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_UNAUTHORIZED",
        typeof b.token === "string"
          ? "wrong token"
          : "the sign-in code is unknown, used or expired: run `turnout dashboard` again",
      );
    }
    limiter.succeeded(req.ip);
    const s = sessions.create(name);
    setCookie(reply, req, sessions.encode(s), (s.expiresAt - s.issuedAt) / 1000);
    reply.header("cache-control", "no-store");
    return sessionBody(sessions, s);
  });

  app.get("/api/v1/sessions/current", async (req, reply) => {
    const s = sessionOf(req);
    if (s === undefined) {
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_UNAUTHORIZED",
        "not signed in with a session (a bearer token has none)",
      );
    }
    reply.header("cache-control", "no-store");
    return sessionBody(sessions, s);
  });

  app.delete("/api/v1/sessions", async (req, reply) => {
    const s = sessionOf(req);
    if (s !== undefined) sessions.revoke(s);
    setCookie(reply, req, "", 0);
    return { signedOut: s !== undefined };
  });

  app.post("/api/v1/sessions/codes", async (req) => {
    // A session minting codes could outlive its own expiry; codes are for the admin token.
    if (sessionOf(req) !== undefined) {
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_UNAUTHORIZED",
        "sign-in codes are issued to the admin token (turnout dashboard), not to a session",
      );
    }
    const { code, expiresAt } = sessions.issueCode();
    const host = req.headers.host ?? "127.0.0.1";
    const base = `${isHttps(req) ? "https" : "http"}://${host}`;
    return { code, expiresAt, url: `${base}/#code=${code}` };
  });
}
