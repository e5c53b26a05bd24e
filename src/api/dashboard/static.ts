/**
 * Serves the built dashboard (`vite build` into the package's dist/web/) at the API's root:
 * `/` is index.html (the app routes by the URL fragment, so no other page path exists) and
 * `/assets/*` are the hashed bundles, cached for a year. Nothing is fetched from elsewhere at
 * run time; the Content-Security-Policy says so to the browser too. Without a build (running
 * from src/ before `npm run build`) `/` answers 503 with a page that says how to build it.
 */
import { existsSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import type { FastifyInstance } from "fastify";

/** dist/web/ of the package, from src/api/dashboard/ or dist/api/dashboard/ alike. */
export const WEB_DIR = new URL("../../../dist/web/", import.meta.url).pathname;

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".json": "application/json",
  ".map": "application/json",
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

/** Paths served without a session: the app shell and its assets. */
export function isDashboardAssetPath(method: string, path: string): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  return (
    path === "/" || path === "/index.html" || path === "/favicon.svg" || path.startsWith("/assets/")
  );
}

export function registerStaticRoutes(app: FastifyInstance, dir = WEB_DIR): void {
  const index = () => {
    const file = join(dir, "index.html");
    return existsSync(file) ? readFileSync(file) : null;
  };
  const sendIndex = async (_req: unknown, reply: import("fastify").FastifyReply) => {
    const html = index();
    reply.headers(SECURITY_HEADERS).header("cache-control", "no-cache");
    if (html === null) {
      return reply
        .code(503)
        .type("text/html; charset=utf-8")
        .send(
          "<!doctype html><title>Turnout</title><h1>The dashboard is not built</h1><p>Run <code>npm run build</code> in the Turnout package (it runs <code>vite build</code> into <code>dist/web/</code>), then reload. The API under <code>/api/v1/</code> works without it.</p>",
        );
    }
    return reply.type("text/html; charset=utf-8").send(html);
  };
  app.get("/", sendIndex);
  app.get("/index.html", sendIndex);
  app.get<{ Params: { "*": string } }>("/assets/*", async (req, reply) => {
    const name = req.params["*"];
    // Vite's file names only: no slashes, no dot-dot, nothing outside assets/.
    if (!/^[\w.-]+$/.test(name) || name.includes("..")) return reply.callNotFound();
    const file = join(dir, "assets", name);
    if (!existsSync(file)) return reply.callNotFound();
    reply
      .headers(SECURITY_HEADERS)
      .header("cache-control", "public, max-age=31536000, immutable")
      .type(TYPES[extname(name)] ?? "application/octet-stream");
    return reply.send(readFileSync(file));
  });
  app.get("/favicon.svg", async (_req, reply) => {
    const file = join(dir, "favicon.svg");
    if (!existsSync(file)) return reply.callNotFound();
    return reply
      .header("cache-control", "public, max-age=86400")
      .type(TYPES[".svg"]!)
      .send(readFileSync(file));
  });
}
