// The page's calls to Turnout's JSON API, authenticated by the session cookie; changes carry
// the session's CSRF value (src/api/dashboard/sessions.ts explains the defence).

export interface SessionInfo {
  name: string;
  expiresAt: number;
  csrf: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf = "";
let onSignedOut: () => void = () => {};

export function setSession(s: SessionInfo | null): void {
  csrf = s?.csrf ?? "";
}

export function whenSignedOut(f: () => void): void {
  onSignedOut = f;
}

/** Tells the page the session is gone (it shows the sign-in form). */
export function signedOut(): void {
  onSignedOut();
}

export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (method !== "GET") headers["x-turnout-csrf"] = csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json?.error;
    if (res.status === 401 && !path.startsWith("/api/v1/sessions")) onSignedOut();
    throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? text);
  }
  return json as T;
}

export async function currentSession(): Promise<SessionInfo | null> {
  try {
    return await call<SessionInfo>("GET", "/api/v1/sessions/current");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export function signIn(body: { token?: string; code?: string; name?: string }) {
  return call<SessionInfo>("POST", "/api/v1/sessions", body);
}

export function signOut() {
  return call("DELETE", "/api/v1/sessions");
}
