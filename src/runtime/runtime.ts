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
}

export interface VersionTarget {
  version: string;
  replicas: number;
}

export interface Runtime {
  /**
   * Makes the running set for `service` match `targets`: starts missing instances of the listed
   * versions, stops (gracefully) instances of versions not listed, scales to `replicas`.
   * Returns without waiting for readiness; idempotent, called every controller tick.
   */
  ensure(service: string, spec: RuntimeSpec, targets: VersionTarget[]): Promise<void>;
  /** Current instances of a service (all versions). */
  instances(service: string): Instance[];
  /** Stops every instance of a service (e.g. the service was deleted). */
  remove(service: string): Promise<void>;
  /** Stops everything, waiting for graceful termination; no orphans are left. */
  shutdown(): Promise<void>;
  /** Called when readiness of any instance changes, so the controller can tick at once. */
  onChange(listener: () => void): () => void;
}
