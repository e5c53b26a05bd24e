/**
 * What is written once over any `FlagStore`: the layering of overrides over the resources
 * (`layer`), the compiled snapshot every evaluator works from (`loadFlagSnapshot`), and the
 * cache that keeps it fresh (`FlagSnapshotCache`). See `flag-store.ts` for where each part of a
 * flag lives.
 */
import { createHash } from "node:crypto";
import { compileFlags, effectiveSpec, type FlagDefinition } from "../core/flags/evaluate.js";
import type { FlagOverride, FlagSpec, FlagStepOverride, SegmentSpec } from "../core/flags/types.js";
import type { FlagSnapshot, FlagStore, StoredFlagOverride } from "./flag-store.js";
import { canonicalJson } from "./json.js";
import type { Store } from "./store.js";

export const EMPTY_FLAG_SNAPSHOT: FlagSnapshot = {
  etag: '"empty"',
  flags: new Map(),
  definitions: [],
  segments: {},
};

/**
 * Loads and compiles the effective flags (see `flag-store.ts` for the layering), from any core
 * store and any flag store: written once, for every implementation.
 */
export async function loadFlagSnapshot(
  store: Pick<Store, "listResources" | "getStatus">,
  flags: Pick<FlagStore, "listOverrides">,
): Promise<FlagSnapshot> {
  const [flagResources, segmentResources, services, overrides] = await Promise.all([
    store.listResources("Flag"),
    store.listResources("Segment"),
    store.listResources("Service"),
    flags.listOverrides(),
  ]);
  const stepOverrides = new Map<string, FlagStepOverride[]>();
  for (const s of services) {
    const st = await store.getStatus(s.name);
    for (const [key, e] of Object.entries(st?.flags ?? {})) {
      const list = stepOverrides.get(key) ?? [];
      list.push(e);
      stepOverrides.set(key, list);
    }
  }
  const manual = new Map(overrides.map((o) => [o.flag, o]));
  const definitions: FlagDefinition[] = flagResources.map((r) => ({
    key: r.name,
    spec: layer(r.resource.spec, manual.get(r.name), stepOverrides.get(r.name) ?? []),
    generation: r.generation,
  }));
  const segments: Record<string, SegmentSpec> = {};
  for (const s of segmentResources) segments[s.name] = s.resource.spec;
  const etag = `"${createHash("sha256")
    .update(canonicalJson({ definitions, segments }))
    .digest("base64url")
    .slice(0, 27)}"`;
  return { etag, flags: compileFlags(definitions, segments), definitions, segments };
}

/** The resource with rollout and manual overrides applied, oldest first; a person's DISABLED wins. */
export function layer(
  spec: FlagSpec,
  manual: StoredFlagOverride | undefined,
  steps: readonly FlagStepOverride[],
): FlagSpec {
  const layers: { at: number; o: FlagOverride }[] = steps.map((s) => ({ at: s.at, o: s }));
  if (manual !== undefined) layers.push({ at: manual.updatedAt, o: manual.override });
  layers.sort((a, b) => a.at - b.at);
  let out = spec;
  for (const l of layers) {
    const o: FlagOverride = {};
    if (l.o.state !== undefined) o.state = l.o.state;
    if (l.o.percentage !== undefined) o.percentage = l.o.percentage;
    if (l.o.variant !== undefined) o.variant = l.o.variant;
    out = effectiveSpec(out, o);
  }
  if (manual?.override.state === "DISABLED" && out.state !== "DISABLED")
    out = { ...out, state: "DISABLED" };
  return out;
}

/**
 * The current snapshot, kept fresh: reloaded at once after any write through the same store
 * instance, and every `pollMs` (writes by other processes). A failed reload keeps the last
 * snapshot (as routers keep their last route table).
 */
export class FlagSnapshotCache {
  readonly #flags: FlagStore;
  readonly #pollMs: number;
  #current: FlagSnapshot = EMPTY_FLAG_SNAPSHOT;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #loading: Promise<FlagSnapshot> | null = null;
  readonly #listeners = new Set<(s: FlagSnapshot) => void>();
  /** Last reload error, for diagnostics. */
  lastError: unknown = null;

  constructor(flags: FlagStore, opts: { pollMs?: number } = {}) {
    this.#flags = flags;
    this.#pollMs = opts.pollMs ?? 1000;
  }

  /** The snapshot in force; read it once per request and use it to the end. */
  get current(): FlagSnapshot {
    return this.#current;
  }

  /** Calls `fn` whenever the ETag changes. */
  onUpdate(fn: (s: FlagSnapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#flags.store.onChange((what) => {
      if (what === "resources" || what === "status") void this.refresh().catch(() => undefined);
    });
    await this.refresh().catch(() => undefined);
    const tick = () => {
      this.#timer = setTimeout(() => {
        void this.refresh()
          .catch(() => undefined)
          .finally(() => {
            if (this.#timer !== null) tick();
          });
      }, this.#pollMs);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /**
   * Reloads now; resolves once a load that started after this call has finished, so a caller
   * that just wrote sees its write (the kill switch answers only when it is in force).
   */
  refresh(): Promise<FlagSnapshot> {
    // A load in flight may have read before the caller's write: wait for it, then load again.
    if (this.#loading !== null) return this.#loading.then(() => this.refresh());
    this.#loading = this.#flags
      .loadSnapshot()
      .then((s) => {
        this.lastError = null;
        if (s.etag !== this.#current.etag) {
          this.#current = s;
          for (const fn of this.#listeners) fn(s);
        }
        return this.#current;
      })
      .catch((err: unknown) => {
        this.lastError = err;
        throw err;
      })
      .finally(() => {
        this.#loading = null;
      });
    return this.#loading;
  }
}
