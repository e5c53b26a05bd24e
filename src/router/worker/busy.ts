/**
 * SQLite's busy wait, made asynchronous for the router thread.
 *
 * better-sqlite3 waits for another connection's write lock synchronously (busy_timeout), which
 * would stop the router's event loop, and every proxied request with it, for as long as the
 * main thread holds a write transaction: a few ms for a controller commit, far longer for the
 * apply of a multi-megabyte Service. So the router thread's connection does not wait
 * (busy_timeout 0); a write that finds the lock taken fails at once with SQLITE_BUSY (before
 * anything was written: every transaction takes the lock first, BEGIN IMMEDIATE) and is tried
 * again after a timer, up to the store's usual busy timeout. Requests are served meanwhile.
 */
import { sql } from "kysely";
import { TurnoutError } from "../../errors.js";
import type { SqlStore } from "../../store/sql-store.js";
import { DEFAULT_BUSY_TIMEOUT_MS } from "../../store/sqlite/sqlite-store.js";

export function isBusy(err: unknown): boolean {
  if (!(err instanceof TurnoutError) || err.code !== "TURNOUT_ERR_STORE_UNAVAILABLE") return false;
  const code = (err.details as { sqliteCode?: unknown } | undefined)?.sqliteCode;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/** Sets the connection's busy timeout to 0: from here on, a taken lock is an immediate error. */
export async function noBusyWait(store: SqlStore): Promise<void> {
  await store.query((db) => sql`PRAGMA busy_timeout = 0`.execute(db));
}

/**
 * The same store, whose promise-returning methods are tried again on SQLITE_BUSY after 1, 2,
 * 4... ms (at most 50 ms apart) until `timeoutMs` has passed; then the last error is thrown, as
 * the synchronous wait would have.
 */
export function retryingBusy(
  store: SqlStore,
  timeoutMs = DEFAULT_BUSY_TIMEOUT_MS,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): SqlStore {
  return new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        const first = v.apply(target, args);
        if (!(first instanceof Promise)) return first;
        return first.catch(async (err: unknown) => {
          if (!isBusy(err)) throw err;
          const deadline = Date.now() + timeoutMs;
          let delay = 1;
          let last = err;
          while (Date.now() < deadline) {
            await sleep(delay);
            delay = Math.min(50, delay * 2);
            try {
              return await v.apply(target, args);
            } catch (e) {
              if (!isBusy(e)) throw e;
              last = e;
            }
          }
          throw last;
        });
      };
    },
  });
}
