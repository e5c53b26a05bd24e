/**
 * How an instance is started, worked out once from the spec when its slot is created: the
 * templated command and env (a per-version override wins), the probes, and the timings with
 * their defaults filled in. Restarts run this same config, so a changed spec applies to new
 * instances only, as a Kubernetes pod keeps its template.
 */
import path from "node:path";
import {
  DEFAULT_DRAIN_SECONDS,
  DEFAULT_PROCESS_LOGS,
  DEFAULT_RESTART_POLICY,
  type ProcessRuntimeSpec,
} from "../../core/model.js";
import type { LaunchConfig } from "./instances-file.js";

/** Replaces `${version}`, `${port}` and `${instance}`; other `${...}` text is left as written. */
export function template(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{(version|port|instance)\}/g, (whole, name: string) => vars[name] ?? whole);
}

/** The launch config of instance `index` of `version`, on `port`. */
export function launchConfig(
  p: ProcessRuntimeSpec,
  version: string,
  index: number,
  port: number,
): LaunchConfig {
  const override =
    p.versions && Object.hasOwn(p.versions, version) ? p.versions[version] : undefined;
  const vars: Record<string, string> = { version, port: String(port), instance: String(index) };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...p.env, ...override?.env })) env[k] = template(v, vars);
  // PORT last: the port is the runtime's to choose, or the router would send traffic elsewhere.
  env.PORT = String(port);
  return {
    argv: (override?.command ?? p.command).map((a) => template(a, vars)),
    cwd: path.resolve(process.cwd(), p.cwd ?? "."),
    env,
    readiness: p.readiness,
    ...(p.liveness ? { liveness: p.liveness } : {}),
    startupTimeoutMs: p.startupTimeoutSeconds * 1000,
    graceMs: p.terminationGracePeriodSeconds * 1000,
    drainMs: (p.drainSeconds ?? DEFAULT_DRAIN_SECONDS) * 1000,
    restart: { ...DEFAULT_RESTART_POLICY, ...p.restartPolicy },
    logs: { ...DEFAULT_PROCESS_LOGS, ...p.logs },
  };
}
