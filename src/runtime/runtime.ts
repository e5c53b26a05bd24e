/**
 * Where a version's instances run. One small interface, one folder per implementation
 * (`static/`, `process/`; `kubernetes/` later), one shared conformance suite.
 *
 * The controller tells a runtime which versions of a service should run, with how many
 * instances (`ensure`), and reads back which instances are ready (`instances`). A runtime
 * never decides traffic; it only runs things and reports readiness.
 */
import type { RuntimeSpec } from "../core/model.js";

export interface Instance {
  /** Stable within the runtime, e.g. "fraud-model/v2/0". */
  id: string;
  version: string;
  /** Base URL the router sends requests to, e.g. "http://127.0.0.1:41234". */
  url: string;
  state: "starting" | "ready" | "failed" | "stopping";
  /** Why it is not ready (last probe error, exit code...). */
  message?: string;
  /** Times the runtime restarted it after a crash or a failed liveness probe (process runtime). */
  restarts?: number;
  /** Why its process last ended unasked, e.g. "process exited with code 1" (process runtime). */
  lastExit?: string;
}

export interface VersionTarget {
  version: string;
  replicas: number;
}

/** An instance a runtime is about to signal, as the stop gate is asked about it. */
export interface StoppingInstance {
  service: string;
  id: string;
  version: string;
  url: string;
}

/**
 * Says when an instance that served may be signalled: resolves once no router can send it a
 * new request any more (every live router has put in force a table without it), or once the
 * gate gives up waiting (it reports that itself). Never rejects. The controller installs one;
 * DESIGN invariant 9.
 */
export type StopGate = (instance: StoppingInstance) => Promise<void>;

export interface Runtime {
  /**
   * Makes the running set for `service` match `targets`: starts missing instances of the listed
   * versions, stops (gracefully) instances of versions not listed, scales to `replicas`.
   * Returns without waiting for readiness, and without waiting for stops to finish: an instance
   * being stopped is listed as "stopping" until it is gone. Idempotent, called every controller
   * tick. Rejects when the spec is not for this runtime or cannot serve a target (e.g. a static
   * version without upstreams); then nothing changes.
   */
  ensure(service: string, spec: RuntimeSpec, targets: VersionTarget[]): Promise<void>;
  /**
   * Current instances of a service (all versions), a snapshot the caller may keep. Only "ready"
   * ones should receive traffic; "failed" ones stay listed (with `message`) until the version is
   * no longer targeted, so the controller and the user can see why. "failed" is a state, not a
   * verdict: a runtime that restarts instances (process) reports one that keeps crashing as
   * failed and, should a restart become ready, as ready again. "stopping" ones (draining) are
   * still running but must receive no new requests.
   */
  instances(service: string): Instance[];
  /**
   * Services this runtime has instances of, including ones it found running from a previous
   * life of Turnout (adopted) before any `ensure` named them; the controller removes those whose
   * service no longer exists.
   */
  serviceNames?(): string[];
  /** Stops every instance of a service (e.g. the service was deleted); resolves once they are gone. */
  remove(service: string): Promise<void>;
  /** Stops everything, waiting for graceful termination; no orphans are left. Meant for
   *  the end of the runtime's life (the process runtime refuses `ensure` afterwards). */
  shutdown(): Promise<void>;
  /**
   * Called when the state of any instance changes or instances appear or disappear, so the
   * controller can tick at once. Listeners must not throw (a throw is logged and ignored).
   */
  onChange(listener: () => void): () => void;
  /**
   * Installs the gate that every graceful stop of an instance that served waits on before it
   * signals the instance (and before `drainSeconds`, which then only covers requests in
   * flight). Runtimes that stop nothing themselves (static) need not implement it. Without a
   * gate, a stop waits `drainSeconds` alone.
   */
  setStopGate?(gate: StopGate | null): void;
}
