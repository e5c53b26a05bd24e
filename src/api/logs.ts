/**
 * `GET /api/v1/services/:name/logs?version=&instance=&tail=&from=`: the logs of a service's
 * process-runtime instances, read from the data dir (so also those of stopped instances, and of
 * a deleted service). `turnout logs` is its client; `--follow` polls with `from`, the byte offset
 * the previous answer returned for that instance's current file. Bearer token as the rest of
 * /api/v1 (the hook in server.ts covers every route).
 */
import type { FastifyInstance } from "fastify";
import { TurnoutError } from "../errors.js";
import { MAX_TAIL_LINES, readServiceLogs } from "../runtime/process/logs.js";
import type { Store } from "../store/store.js";

export interface LogsRouteOptions {
  store: Store;
  /** Turnout's data dir (instance logs are under `logs/`). */
  dataDir: string;
}

interface LogsQuery {
  version?: string;
  instance?: string;
  tail?: string;
  from?: string;
}

export function registerLogsRoutes(app: FastifyInstance, opts: LogsRouteOptions): void {
  app.get<{ Params: { name: string }; Querystring: LogsQuery }>(
    "/api/v1/services/:name/logs",
    async (req) => {
      const { name } = req.params;
      const q = req.query;
      const version = q.version === undefined || q.version === "" ? undefined : q.version;
      const instance = int(q.instance, "instance");
      const tail = int(q.tail, "tail");
      const from = int(q.from, "from");
      if (tail !== undefined && tail > MAX_TAIL_LINES)
        throw bad("tail", `must be at most ${MAX_TAIL_LINES}, got ${tail}`);
      if (from !== undefined && (version === undefined || instance === undefined))
        throw bad("from", "needs version and instance: an offset belongs to one instance's file");
      const logs = readServiceLogs(opts.dataDir, name, {
        ...(version !== undefined ? { version } : {}),
        ...(instance !== undefined ? { instance } : {}),
        ...(tail !== undefined ? { tail } : {}),
        ...(from !== undefined ? { from } : {}),
      });
      if (logs.length === 0) {
        // A deleted service keeps its logs; a name never seen is an error, not an empty answer.
        const stored = await opts.store.getResource("Service", name);
        const logged = versionsWithLogs(opts.dataDir, name);
        if (stored === null && logged.length === 0) {
          throw new TurnoutError(
            "TURNOUT_ERR_SERVICE_NOT_FOUND",
            `no service named ${JSON.stringify(name)} (and no logs of one)`,
            { path: "name" },
          );
        }
        // So is a version never seen: a typo must not read as "no output yet". One the service
        // names but that has not started (or runs elsewhere: static runtime) has no lines yet.
        if (version !== undefined) {
          const known = new Set(logged);
          if (stored !== null) {
            known.add(stored.resource.spec.version);
            const runtime = stored.resource.spec.runtime;
            if ("static" in runtime)
              for (const v of Object.keys(runtime.static.versions)) known.add(v);
          }
          const status = await opts.store.getStatus(name);
          for (const v of [status?.stableVersion, status?.canaryVersion])
            if (v != null) known.add(v);
          if (!known.has(version)) {
            throw new TurnoutError(
              "TURNOUT_ERR_VERSION_NOT_FOUND",
              `service ${JSON.stringify(name)} has no version ${JSON.stringify(version)}; known: ${[...known].sort().join(", ") || "none"}`,
              { path: "version", known: [...known].sort() },
            );
          }
        }
      }
      return {
        service: name,
        logs: logs.map((l) => ({
          version: l.version,
          instance: l.instance,
          offset: l.offset,
          lines: l.lines,
        })),
      };
    },
  );
}

/** The versions that have instance logs (file names keep the version; see safeName). */
function versionsWithLogs(dataDir: string, service: string): string[] {
  return [...new Set(readServiceLogs(dataDir, service, { tail: 0 }).map((l) => l.version))];
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === "") return undefined;
  if (!/^\d{1,15}$/.test(v))
    throw bad(name, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function bad(path: string, message: string): TurnoutError {
  return new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", `${path}: ${message}`, { path });
}
