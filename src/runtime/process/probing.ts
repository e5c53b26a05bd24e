/**
 * Probing one run of an instance's process: the start-up deadline, the readiness probe (for the
 * life of the process, as Kubernetes' runs) and, once ready, the liveness probe. What an answer
 * or the deadline does to the instance is `instance-machine.ts`'s to decide; this file times the
 * probes, sends them, and acts on the decision (tell the runtime, or terminate the process).
 *
 * Every timer here belongs to one run (`m.timers`) and is unref'd; each firing checks that the
 * run is still current and wanted, so a stale timer is harmless and `clearTimers` ends them all.
 */

import type { InstanceHooks, Managed, Proc } from "./instance.js";
import * as machine from "./instance-machine.js";
import { probeHttp } from "./probe.js";
import { terminate } from "./signals.js";

/**
 * Arms the start-up deadline of a new run and schedules its first readiness probe after
 * `firstDelayMs`.
 */
export function startProbing(h: InstanceHooks, m: Managed, proc: Proc, firstDelayMs: number): void {
  proc.startupTimer = addTimer(h, m, m.launch.startupTimeoutMs, () => onStartupTimeout(h, m, proc));
  scheduleProbe(h, m, proc, firstDelayMs);
}

/** Ends the run's probe and deadline timers and cancels probes in flight. */
export function clearTimers(m: Managed): void {
  for (const t of m.timers) clearTimeout(t);
  m.timers.clear();
  for (const h of m.probesInFlight) h.cancel();
  m.probesInFlight.clear();
}

/** The first probe of an adopted instance has an answer (or never will): its waiter goes on. */
export function firstProbeDone(m: Managed): void {
  const done = m.onFirstProbe;
  m.onFirstProbe = undefined;
  done?.();
}

/**
 * The readiness probe runs for the life of the process (what its answers do:
 * `machine.readinessAnswered`); until the first pass the startup timeout counts.
 */
function scheduleProbe(h: InstanceHooks, m: Managed, proc: Proc, delayMs: number): void {
  const probe = m.launch.readiness;
  addTimer(h, m, delayMs, async () => {
    if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
    const r = await probeOnce(m, probe.path, probe.timeoutSeconds);
    if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
    firstProbeDone(m);
    const t = machine.readinessAnswered(m, proc, r);
    if (t.becameReady && proc.startupTimer) {
      clearTimeout(proc.startupTimer);
      m.timers.delete(proc.startupTimer);
      proc.startupTimer = undefined;
    }
    if (t.changed) h.announce(m);
    if (t.firstReady && m.launch.liveness)
      scheduleLiveness(h, m, proc, m.launch.liveness.periodSeconds * 1000);
    scheduleProbe(h, m, proc, probe.periodSeconds * 1000);
  });
}

function scheduleLiveness(h: InstanceHooks, m: Managed, proc: Proc, delayMs: number): void {
  const spec = m.launch.liveness;
  if (!spec) return;
  addTimer(h, m, delayMs, async () => {
    if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
    const r = await probeOnce(m, spec.path, spec.timeoutSeconds);
    if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
    const t = machine.livenessAnswered(m, proc, r, spec.failureThreshold);
    if (t.terminate) {
      // As the kubelet does: the container is killed (gracefully) and restarted.
      if (t.changed) h.announce(m);
      terminate(h, m, proc);
      return;
    }
    scheduleLiveness(h, m, proc, spec.periodSeconds * 1000);
  });
}

function probeOnce(m: Managed, probePath: string, timeoutSeconds: number) {
  const url = `${m.url}${probePath.startsWith("/") ? "" : "/"}${probePath}`;
  const handle = probeHttp(url, timeoutSeconds * 1000);
  m.probesInFlight.add(handle);
  return handle.result.finally(() => m.probesInFlight.delete(handle));
}

function onStartupTimeout(h: InstanceHooks, m: Managed, proc: Proc): void {
  if (m.proc !== proc || proc.exited || m.removal) return;
  const t = machine.startupTimedOut(m, proc, m.launch.startupTimeoutMs);
  if (!t) return;
  firstProbeDone(m);
  if (t.changed) h.announce(m);
  terminate(h, m, proc);
}

/** Unref'd: the child process is what keeps Node alive; a probe timer never should on its own. */
function addTimer(
  h: InstanceHooks,
  m: Managed,
  ms: number,
  fn: () => void | Promise<void>,
): NodeJS.Timeout {
  const t = setTimeout(() => {
    m.timers.delete(t);
    Promise.resolve()
      .then(fn)
      .catch((err) => h.logger.error({ instance: m.id, err: String(err) }, "timer failed"));
  }, ms);
  t.unref();
  m.timers.add(t);
  return t;
}
