/**
 * The runtime the rest of Turnout uses: one `Runtime` that sends each service to the
 * implementation its spec names (`runtime.static` or `runtime.process`).
 */
import type { RuntimeSpec } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { ProcessRuntime, type ProcessRuntimeOptions } from "./process/process-runtime.js";
import type { Instance, Runtime, StopGate, VersionTarget } from "./runtime.js";
import { StaticRuntime } from "./static/static-runtime.js";

export { type InstanceLog, type LogQuery, readServiceLogs } from "./process/logs.js";
export { PortAllocator } from "./process/ports.js";
export {
  type ProcessInstance,
  ProcessRuntime,
  type ProcessRuntimeOptions,
} from "./process/process-runtime.js";
export type {
  Instance,
  Runtime,
  StopGate,
  StoppingInstance,
  VersionTarget,
} from "./runtime.js";
export { StaticRuntime } from "./static/static-runtime.js";

export type RuntimeKind = "static" | "process";
const KINDS: readonly RuntimeKind[] = ["static", "process"];

/** Which implementation a spec asks for; exactly one key must be present. */
export function runtimeKind(spec: RuntimeSpec): RuntimeKind {
  const present = KINDS.filter((k) => Object.hasOwn(spec, k));
  if (present.length !== 1) {
    const keys = Object.keys(spec);
    throw new TurnoutError(
      "TURNOUT_ERR_RESOURCE_INVALID",
      `spec.runtime: must have exactly one of ${KINDS.join(", ")}; got ${keys.length > 0 ? keys.join(", ") : "none"}`,
      { path: "spec.runtime" },
    );
  }
  return present[0]!;
}

export interface MultiRuntimeOptions {
  static?: Runtime;
  process?: Runtime;
  /** Used to build the default process runtime when `process` is not given. */
  processOptions?: ProcessRuntimeOptions;
}

/**
 * Dispatches per service to the static or process runtime. It remembers the kind each service
 * last used, so `instances` and `remove` need no spec; when a service switches kind, its
 * instances in the old runtime are removed (waiting for them to stop) before the new one starts
 * any: a brief gap, accepted because switching runtimes is rare and mixing them is confusing.
 *
 * @example
 *   const runtime = new MultiRuntime({ processOptions: { dataDir: ".turnout", logger } });
 *   await runtime.ensure("fraud-model", service.spec.runtime, [{ version: "v2", replicas: 2 }]);
 */
export class MultiRuntime implements Runtime {
  readonly staticRuntime: Runtime;
  readonly processRuntime: Runtime;
  private readonly kinds = new Map<string, RuntimeKind>();

  constructor(opts: MultiRuntimeOptions = {}) {
    this.staticRuntime = opts.static ?? new StaticRuntime();
    this.processRuntime = opts.process ?? new ProcessRuntime(opts.processOptions);
  }

  async ensure(service: string, spec: RuntimeSpec, targets: VersionTarget[]): Promise<void> {
    const kind = runtimeKind(spec);
    // Instances adopted from a previous run count as the process kind's.
    const previous =
      this.kinds.get(service) ??
      (this.processRuntime.instances(service).length > 0 ? "process" : undefined);
    this.kinds.set(service, kind);
    if (previous !== undefined && previous !== kind) await this.of(previous).remove(service);
    await this.of(kind).ensure(service, spec, targets);
  }

  instances(service: string): Instance[] {
    const kind = this.kinds.get(service);
    // Unknown kind: instances adopted by the process runtime before any ensure named them.
    return kind ? this.of(kind).instances(service) : this.processRuntime.instances(service);
  }

  serviceNames(): string[] {
    return [
      ...new Set([
        ...(this.staticRuntime.serviceNames?.() ?? []),
        ...(this.processRuntime.serviceNames?.() ?? []),
      ]),
    ];
  }

  /** Resolves once the process runtime's adopted instances (if any) have been probed once. */
  adopted(): Promise<void> {
    return this.processRuntime instanceof ProcessRuntime
      ? this.processRuntime.adopted
      : Promise.resolve();
  }

  async remove(service: string): Promise<void> {
    const kind =
      this.kinds.get(service) ??
      (this.processRuntime.instances(service).length > 0 ? "process" : undefined);
    if (!kind) return;
    await this.of(kind).remove(service);
    // Only forget the kind if no ensure switched it meanwhile.
    if (this.kinds.get(service) === kind) this.kinds.delete(service);
  }

  async shutdown(): Promise<void> {
    // Both, even if one fails: a failure in one must not leave the other's processes running.
    const results = await Promise.allSettled([
      this.staticRuntime.shutdown(),
      this.processRuntime.shutdown(),
    ]);
    this.kinds.clear();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  onChange(listener: () => void): () => void {
    const offStatic = this.staticRuntime.onChange(listener);
    const offProcess = this.processRuntime.onChange(listener);
    return () => {
      offStatic();
      offProcess();
    };
  }

  setStopGate(gate: StopGate | null): void {
    this.staticRuntime.setStopGate?.(gate);
    this.processRuntime.setStopGate?.(gate);
  }

  private of(kind: RuntimeKind): Runtime {
    return kind === "static" ? this.staticRuntime : this.processRuntime;
  }
}
