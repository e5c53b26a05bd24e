/**
 * The route-table revisions a data plane has in force, and the callers waiting for one: the
 * built-in router's handle (src/router/worker/handle.ts) and the traffic agent of other
 * providers (agent.ts) answer "is revision N in force?" with it.
 */

/** How long a wait for a revision lasts before it answers false. */
export const DEFAULT_IN_FORCE_TIMEOUT_MS = 5000;

/** The revisions a router has in force, and the callers waiting for one. */
export class AppliedRevisions {
  #applied: ReadonlyMap<string, number> = new Map();
  readonly #unref: boolean;

  /**
   * `unref`: whether a pending wait lets the process exit (the router thread's handle: the
   * listeners keep it alive). The traffic agent's callers await the answer, so its waits hold
   * the process until they have one.
   */
  constructor(opts: { unref?: boolean } = {}) {
    this.#unref = opts.unref ?? true;
  }
  readonly #waiters = new Set<{ service: string; revision: number; done: (ok: boolean) => void }>();

  /** Replaces what is in force (the router's full set after a reload; empty after a crash). */
  set(applied: ReadonlyMap<string, number>): void {
    this.#applied = applied;
    for (const w of this.#waiters) {
      if (this.#has(w.service, w.revision)) w.done(true);
    }
  }

  wait(
    service: string,
    revision: number,
    timeoutMs = DEFAULT_IN_FORCE_TIMEOUT_MS,
  ): Promise<boolean> {
    if (this.#has(service, revision)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        service,
        revision,
        done: (ok: boolean) => {
          clearTimeout(timer);
          this.#waiters.delete(w);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => w.done(false), timeoutMs);
      if (this.#unref) timer.unref();
      this.#waiters.add(w);
    });
  }

  /** Ends every wait now with false (the router is stopping). */
  cancelAll(): void {
    for (const w of this.#waiters) w.done(false);
  }

  #has(service: string, revision: number): boolean {
    return (this.#applied.get(service) ?? Number.NEGATIVE_INFINITY) >= revision;
  }
}
