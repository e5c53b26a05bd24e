/**
 * What an apply will do to each service whose desired version it changes, said in the apply's
 * answer before the controller acts: in particular when the version being replaced was set by
 * `turnout undo` (re-applying the reverted file undoes the undo, and a recent stable version
 * skips every step). The words come from the pure core (`planVersionChange`).
 */
import type { Resource } from "../core/model.js";
import { planVersionChange, type UndoMark } from "../core/rollout.js";
import type { Store } from "../store/store.js";

/** Notes by service name, read before the apply writes anything. */
export async function versionChangeNotes(
  store: Store,
  resources: Resource[],
): Promise<Map<string, string>> {
  const notes = new Map<string, string>();
  for (const r of resources) {
    if (r.kind !== "Service") continue;
    const stored = await store.getResource("Service", r.metadata.name);
    if (!stored || stored.resource.spec.version === r.spec.version) continue;
    const status = await store.getStatus(r.metadata.name);
    const undo = await undoThatSet(store, r.metadata.name, stored.generation);
    const note = planVersionChange(stored.resource.spec.version, r.spec, status, undo);
    if (note !== null) notes.set(r.metadata.name, note);
  }
  return notes;
}

/** The Undo event that wrote this generation of the service, if that is what wrote it. */
async function undoThatSet(
  store: Store,
  service: string,
  generation: number,
): Promise<UndoMark | undefined> {
  // Only an apply whose version differs from the stored one gets here, so a full read of the
  // history is rare; the store has no "latest first" query.
  const events = await store.listEvents(service);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e?.type !== "Undo") continue;
    const d = e.data as { from?: unknown; to?: unknown; generation?: unknown };
    if (d.generation !== generation) return undefined;
    return { actor: e.actor, time: e.time, from: String(d.from), to: String(d.to) };
  }
  return undefined;
}
