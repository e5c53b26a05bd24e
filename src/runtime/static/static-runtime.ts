/**
 * The static runtime: versions run somewhere Turnout does not manage, and the spec names their
 * addresses. Instances are exactly the configured upstreams of each targeted version, always
 * "ready": whether an upstream gets traffic is the router's call, per request, from its active
 * health checks (`trafficPolicy.healthCheck`) and outlier detection (`router/health.ts`), which
 * act on the endpoint and not on the instance's state here. Nothing is started or stopped, so
 * every operation completes at once.
 */
import type { RuntimeSpec } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import type { Instance, Runtime, VersionTarget } from "../runtime.js";

export class StaticRuntime implements Runtime {
  private readonly services = new Map<string, Instance[]>();
  private readonly listeners = new Set<() => void>();

  /**
   * Replaces the service's instances with the upstreams of the targeted versions. `replicas`
   * is ignored: the spec decides how many upstreams a version has. A targeted version without
   * an entry in `spec.static.versions` is an error (there is nothing to route to), and then
   * nothing changes.
   */
  async ensure(service: string, spec: RuntimeSpec, targets: VersionTarget[]): Promise<void> {
    if (!("static" in spec)) {
      throw new TurnoutError(
        "TURNOUT_ERR_INTERNAL_BUG",
        `static runtime: service ${service} has no static runtime spec`,
      );
    }
    const versions = spec.static.versions;
    const next: Instance[] = [];
    const seen = new Set<string>();
    for (const t of targets) {
      if (seen.has(t.version)) {
        throw new TurnoutError(
          "TURNOUT_ERR_INTERNAL_BUG",
          `static runtime: version ${t.version} of ${service} listed twice`,
        );
      }
      seen.add(t.version);
      // hasOwn: a version named "constructor" must not find Object.prototype's.
      const v = Object.hasOwn(versions, t.version) ? versions[t.version] : undefined;
      if (!v) {
        throw new TurnoutError(
          "TURNOUT_ERR_RESOURCE_INVALID",
          `service ${service}: version ${t.version} has no upstreams in spec.runtime.static.versions`,
          { path: `spec.runtime.static.versions.${t.version}` },
        );
      }
      v.upstreams.forEach((url, i) => {
        next.push({ id: `${service}/${t.version}/${i}`, version: t.version, url, state: "ready" });
      });
    }
    const prev = this.services.get(service) ?? [];
    if (sameInstances(prev, next)) return;
    if (next.length === 0) this.services.delete(service);
    else this.services.set(service, next);
    this.emit();
  }

  instances(service: string): Instance[] {
    return (this.services.get(service) ?? []).map((i) => ({ ...i }));
  }

  async remove(service: string): Promise<void> {
    if (this.services.delete(service)) this.emit();
  }

  async shutdown(): Promise<void> {
    const had = this.services.size > 0;
    this.services.clear();
    if (had) this.emit();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch {
        // A listener's failure is its own; the others must still hear of the change.
      }
    }
  }
}

function sameInstances(a: Instance[], b: Instance[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i]!;
      return x.id === y.id && x.url === y.url && x.state === y.state && x.version === y.version;
    })
  );
}
