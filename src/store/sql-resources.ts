/**
 * Resources in the SQL store (`SqlStore`): `resources` (the current generation of each) and
 * `resource_revisions` (every generation applied), with a "ResourceApplied" or
 * "ResourceDeleted" event for each change. Deleting a Service also removes what the controller
 * kept for it (`sql-service-state.ts`) and answers its pending commands (`sql-commands.ts`);
 * deleting a Flag removes its overrides (`forgetFlag`, `sql-flag-store.ts`).
 */
import type { Kysely, Transaction } from "kysely";
import { RESOURCE_KINDS, type Resource, type ResourceKind } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { canonicalJson } from "./json.js";
import { mapResource } from "./mappers.js";
import type { Database } from "./schema.js";
import { rejectPendingCommands } from "./sql-commands.js";
import { insertEvents } from "./sql-events.js";
import { forgetFlag } from "./sql-flag-store.js";
import { deleteServiceState } from "./sql-service-state.js";
import type { ApplyAction, ApplyOutcome, StoreChange, StoredResource } from "./store.js";

/** Who applies or deletes, and when: recorded in revisions and events. */
export interface ResourceChange {
  actor: string;
  now: number;
}

/**
 * Applies all resources in the caller's ONE transaction; if any of them throws (invalid key, a
 * value JSON cannot hold, a database error), nothing of the call is stored.
 *
 * Content is compared as canonical JSON of the whole resource (keys sorted at every level),
 * so the order of keys in the user's YAML never counts as a change:
 * - new: generation 1, action "created";
 * - different content: generation + 1, action "configured";
 * - same content: action "unchanged", same generation, nothing written, no event.
 * Each created/configured resource also gets a `resource_revisions` row and a
 * "ResourceApplied" event. Events of a Service carry the Service's name as `service`; events
 * of other kinds (AnalysisTemplate...) carry service "", so that a template that happens to
 * share a Service's name does not show up in that Service's history.
 *
 * Outcomes come back in input order. The same resource twice in one call is applied twice
 * in order (the second sees the first), which validation upstream is expected to reject.
 */
export async function applyResources(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  resources: readonly Resource[],
  opts: ResourceChange,
): Promise<ApplyOutcome[]> {
  const outcomes: ApplyOutcome[] = [];
  for (const resource of resources) {
    const { kind, name } = resourceKey(resource);
    // Serialized inside the transaction, one by one: a resource that cannot be stored
    // fails the call after earlier ones were written, and the rollback undoes those.
    const body = canonicalJson(resource);
    const existing = await trx
      .selectFrom("resources")
      .select(["generation", "body"])
      .where("kind", "=", kind)
      .where("name", "=", name)
      .executeTakeFirst();

    let action: ApplyAction;
    let generation: number;
    if (existing === undefined) {
      action = "created";
      generation = 1;
      await trx
        .insertInto("resources")
        .values({ kind, name, generation, body, created_at: opts.now, updated_at: opts.now })
        .execute();
    } else if (existing.body === body) {
      outcomes.push({
        kind,
        name,
        action: "unchanged",
        generation: Number(existing.generation),
      });
      continue;
    } else {
      action = "configured";
      generation = Number(existing.generation) + 1;
      await trx
        .updateTable("resources")
        .set({ generation, body, updated_at: opts.now })
        .where("kind", "=", kind)
        .where("name", "=", name)
        .execute();
    }

    await trx
      .insertInto("resource_revisions")
      .values({ kind, name, generation, body, applied_at: opts.now, actor: opts.actor })
      .execute();
    await insertEvents(trx, [
      {
        service: eventService(kind, name),
        type: "ResourceApplied",
        actor: opts.actor,
        message: `${kind}/${name} ${action} (generation ${generation})`,
        data: { kind, name, generation, action },
        time: opts.now,
      },
    ]);
    changed.add("resources");
    outcomes.push({ kind, name, action, generation });
  }
  return outcomes;
}

export async function getResource<K extends ResourceKind>(
  db: Kysely<Database>,
  kind: K,
  name: string,
): Promise<StoredResource<Extract<Resource, { kind: K }>> | null> {
  const row = await db
    .selectFrom("resources")
    .selectAll()
    .where("kind", "=", kind)
    .where("name", "=", name)
    .executeTakeFirst();
  return row === undefined
    ? null
    : (mapResource(row) as StoredResource<Extract<Resource, { kind: K }>>);
}

/** Resources of one kind, by name. */
export async function listResources<K extends ResourceKind>(
  db: Kysely<Database>,
  kind: K,
): Promise<StoredResource<Extract<Resource, { kind: K }>>[]> {
  const rows = await db
    .selectFrom("resources")
    .selectAll()
    .where("kind", "=", kind)
    .orderBy("name")
    .execute();
  return rows.map((r) => mapResource(r) as StoredResource<Extract<Resource, { kind: K }>>);
}

/**
 * Deletes a resource; false when there was none. Deleting a Service also deletes its status
 * and route table (routers stop serving it at their next reload) and rejects its pending
 * commands with message "service deleted", so that a CLI waiting on one gets an answer.
 * Deleting a Flag also deletes every piece of state keyed by it (`forgetFlag`: a person's
 * override, what rollouts put on it), so that a flag applied again starts clean.
 * Events are kept: the history of a deleted service survives, and a "ResourceDeleted" event
 * is appended to it. Revisions are kept too. Applying the resource again starts over at
 * generation 1, as Kubernetes does.
 */
export async function deleteResource(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  kind: ResourceKind,
  name: string,
  opts: ResourceChange,
): Promise<boolean> {
  const deleted = await trx
    .deleteFrom("resources")
    .where("kind", "=", kind)
    .where("name", "=", name)
    .returning("generation")
    .executeTakeFirst();
  if (deleted === undefined) return false;
  changed.add("resources");
  const data: Record<string, unknown> = { kind, name, generation: Number(deleted.generation) };

  if (kind === "Service") {
    await deleteServiceState(trx, changed, name);
    data.rejectedCommands = await rejectPendingCommands(trx, changed, name, opts.now);
  }
  if (kind === "Flag" && (await forgetFlag(trx, name, opts))) changed.add("status");

  await insertEvents(trx, [
    {
      service: eventService(kind, name),
      type: "ResourceDeleted",
      actor: opts.actor,
      message: `${kind}/${name} deleted`,
      data,
      time: opts.now,
    },
  ]);
  return true;
}

/** Kind and name, checked: the store is the last line before bad keys become rows. */
function resourceKey(resource: Resource): { kind: ResourceKind; name: string } {
  const kind: unknown = resource.kind;
  const name: unknown = resource.metadata?.name;
  if (!RESOURCE_KINDS.includes(kind as ResourceKind)) {
    throw new TurnoutError("TURNOUT_ERR_RESOURCE_INVALID", `unknown kind ${JSON.stringify(kind)}`, {
      path: "kind",
    });
  }
  if (typeof name !== "string" || name === "") {
    throw new TurnoutError(
      "TURNOUT_ERR_RESOURCE_INVALID",
      `${String(kind)} without metadata.name`,
      {
        path: "metadata.name",
      },
    );
  }
  return { kind: kind as ResourceKind, name };
}

/** The service an event about a resource belongs to ("" for non-Service kinds). */
function eventService(kind: ResourceKind, name: string): string {
  return kind === "Service" ? name : "";
}
