/**
 * The flags' admin API (admin token, like the rest of `/api/v1/`), mirrored by `turnout flags`:
 *
 * - `GET  /api/v1/flags`: every flag with its effective state (resource + overrides);
 * - `GET  /api/v1/flags/:name`: the resource, the effective definition, the overrides;
 * - `POST /api/v1/flags/:name/enable|disable`: the kill switch, `{reason?}`;
 * - `POST /api/v1/flags/:name/set`: `{percentage?, variant?, reason?}`;
 * - `POST /api/v1/flags/:name/reset`: drop a person's override;
 * - `GET  /api/v1/flags/:name/history`: every change, oldest first.
 *
 * A change answers only once the snapshot that OFREP and the router evaluate with has it
 * (`FlagSnapshotCache.refresh`), so `turnout flags disable` returns when the flag is off.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Clock } from "../core/clock.js";
import type { FlagOverride, FlagResource } from "../core/flags/types.js";
import type { Resource, RolloutStep } from "../core/model.js";
import { type FieldError, TurnoutError } from "../errors.js";
import type { FlagSnapshotCache, FlagStore } from "../store/flag-store.js";

export interface FlagsApiOptions {
  flags: FlagStore;
  /** Refreshed after every change; `turnout up` also waits for the router's edge to have it. */
  cache: Pick<FlagSnapshotCache, "current" | "refresh">;
  clock: Clock;
}

interface ChangeBody {
  reason?: unknown;
  percentage?: unknown;
  variant?: unknown;
}

function actorOf(req: FastifyRequest): string {
  const a = req.headers["x-turnout-actor"];
  return typeof a === "string" && a.length > 0 && a.length <= 200 ? a : "api";
}

function bodyOf(req: FastifyRequest): ChangeBody {
  const b = req.body;
  if (b === undefined || b === null || b === "") return {};
  if (typeof b !== "object" || Array.isArray(b))
    throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "the body must be a JSON object");
  return b as ChangeBody;
}

function reasonOf(b: ChangeBody): string | undefined {
  if (b.reason === undefined || b.reason === null) return undefined;
  if (typeof b.reason !== "string")
    throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "reason must be a string", {
      path: "reason",
    });
  return b.reason;
}

export function registerFlagsApi(app: FastifyInstance, opts: FlagsApiOptions): void {
  const { flags, cache, clock } = opts;
  const store = flags.store;

  const mustFlag = async (name: string) => {
    const r = await store.getResource("Flag", name);
    if (r === null)
      throw new TurnoutError("TURNOUT_ERR_RESOURCE_NOT_FOUND", `no Flag named ${name}`, {
        path: "name",
      });
    return r;
  };

  const view = async (name: string) => {
    const r = await mustFlag(name);
    const snap = cache.current;
    const effective = snap.definitions.find((d) => d.key === name)?.spec ?? r.resource.spec;
    const override = await flags.getOverride(name);
    return {
      name,
      generation: r.generation,
      resource: r.resource,
      effective,
      override: override ?? null,
      etag: snap.etag,
    };
  };

  // Segments (`turnout get segments`): each with its conditions and included/excluded keys, and
  // the flags whose rules use it.
  app.get("/api/v1/segments", async () => {
    const segs = await store.listResources("Segment");
    const flagResources = await store.listResources("Flag");
    const usedBy = (name: string) =>
      flagResources
        .filter((f) => f.resource.spec.rules?.some((r) => r.segments?.includes(name)))
        .map((f) => f.name);
    return {
      segments: segs.map((sg) => ({
        name: sg.name,
        generation: sg.generation,
        spec: sg.resource.spec,
        usedBy: usedBy(sg.name),
      })),
    };
  });

  app.get("/api/v1/flags", async () => {
    await cache.refresh();
    const snap = cache.current;
    const resources = await store.listResources("Flag");
    const overrides = new Map((await flags.listOverrides()).map((o) => [o.flag, o]));
    return {
      flags: resources.map((r) => {
        const eff = snap.definitions.find((d) => d.key === r.name)?.spec ?? r.resource.spec;
        return {
          name: r.name,
          generation: r.generation,
          type: eff.type,
          state: eff.state,
          defaultVariant: eff.defaultVariant,
          variants: Object.keys(eff.variants),
          rollout: eff.rollout ?? null,
          rules: eff.rules?.length ?? 0,
          override: overrides.get(r.name) ?? null,
        };
      }),
    };
  });

  app.get<{ Params: { name: string } }>("/api/v1/flags/:name", async (req) => {
    await cache.refresh();
    return view(req.params.name);
  });

  app.get<{ Params: { name: string }; Querystring: { limit?: string } }>(
    "/api/v1/flags/:name/history",
    async (req) => {
      const name = req.params.name;
      const limit = req.query.limit === undefined ? 200 : Number(req.query.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
        throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "limit must be 1..10000", {
          path: "limit",
        });
      const exists = (await store.getResource("Flag", name)) !== null;
      const history = await flags.history(name, limit);
      if (!exists && history.length === 0) await mustFlag(name);
      return { name, history };
    },
  );

  const change = async (
    req: FastifyRequest<{ Params: { name: string } }>,
    action: "enable" | "disable" | "set" | "reset",
  ) => {
    const name = req.params.name;
    const flag: FlagResource = (await mustFlag(name)).resource;
    const body = bodyOf(req);
    const reason = reasonOf(body);
    let patch: FlagOverride | null;
    let message: string;
    const who = actorOf(req);
    const why = reason ? ` (${reason})` : "";
    if (action === "enable") {
      patch = { state: "ENABLED" };
      message = `flag ${name} enabled by ${who}${why}`;
    } else if (action === "disable") {
      patch = { state: "DISABLED" };
      message = `flag ${name} disabled (kill switch) by ${who}${why}`;
    } else if (action === "reset") {
      patch = null;
      message = `flag ${name}: override removed by ${who}${why}`;
    } else {
      patch = {};
      const { percentage, variant } = body;
      if (percentage === undefined && variant === undefined)
        throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "set needs percentage or variant");
      if (percentage !== undefined) {
        if (
          typeof percentage !== "number" ||
          !(percentage >= 0 && percentage <= 100) ||
          Math.abs(percentage * 10_000 - Math.round(percentage * 10_000)) > 1e-6
        )
          throw new TurnoutError(
            "TURNOUT_ERR_API_BAD_REQUEST",
            `percentage must be a number 0..100 with at most 4 decimals, got ${JSON.stringify(percentage)}`,
            { path: "percentage" },
          );
        patch.percentage = percentage;
      }
      if (variant !== undefined) {
        const names = Object.keys(flag.spec.variants);
        if (typeof variant !== "string" || !names.includes(variant))
          throw new TurnoutError(
            "TURNOUT_ERR_API_BAD_REQUEST",
            `variant must be one of ${names.join(", ")}, got ${JSON.stringify(variant)}`,
            { path: "variant" },
          );
        patch.variant = variant;
      }
      if (patch.percentage !== undefined && patch.variant === undefined && !flag.spec.rollout) {
        if (!Object.keys(flag.spec.variants).some((v) => v !== flag.spec.defaultVariant))
          throw new TurnoutError(
            "TURNOUT_ERR_API_BAD_REQUEST",
            `flag ${name} has one variant: there is nothing to roll out`,
            { path: "percentage" },
          );
      }
      message = `flag ${name} set by ${who}${why}: ${[
        patch.percentage !== undefined ? `${patch.percentage}%` : "",
        patch.variant !== undefined ? `variant ${patch.variant}` : "",
      ]
        .filter(Boolean)
        .join(" ")}`;
    }
    await flags.changeOverride(name, patch, {
      actor: who,
      ...(reason !== undefined ? { reason } : {}),
      now: clock.now(),
      action,
      message,
    });
    // In force before we answer: the snapshot OFREP and the router read has it.
    await cache.refresh();
    return { message, ...(await view(name)) };
  };

  for (const action of ["enable", "disable", "set", "reset"] as const) {
    app.post<{ Params: { name: string } }>(`/api/v1/flags/:name/${action}`, (req) =>
      change(req, action),
    );
  }
}

/**
 * References to flags, checked at apply time against the stored Flags and Segments and those
 * in the same apply: a Service's `flags`, its setFlag steps (canary steps and
 * `blueGreen.flagSteps`: the flag exists, a `variant` is one of its variants, a `percentage`
 * has a variant to roll out), and Flag rules' segments. A typo would otherwise be evaluated
 * as "flag not found" at the edge, or a segment that matches nobody.
 */
export function checkFlagRefs(
  resources: readonly Resource[],
  stored: { flags: readonly FlagResource[]; segments: readonly string[] },
): FieldError[] {
  const flags = new Map<string, FlagResource>();
  for (const f of stored.flags) flags.set(f.metadata.name, f);
  const segments = new Set(stored.segments);
  for (const r of resources) {
    if (r.kind === "Flag") flags.set(r.metadata.name, r);
    if (r.kind === "Segment") segments.add(r.metadata.name);
  }
  const known = () => [...flags.keys()].sort().join(", ") || "none";
  const errors: FieldError[] = [];
  for (const r of resources) {
    const resource = `${r.kind}/${r.metadata.name}`;
    if (r.kind === "Flag") {
      (r.spec.rules ?? []).forEach((rule, i) => {
        (rule.segments ?? []).forEach((s, j) => {
          if (!segments.has(s))
            errors.push({
              resource,
              path: `spec.rules[${i}].segments[${j}]`,
              message: `no Segment named ${JSON.stringify(s)} is stored or in this apply`,
            });
        });
      });
    }
    if (r.kind !== "Service") continue;
    (r.spec.flags ?? []).forEach((name, i) => {
      if (!flags.has(name))
        errors.push({
          resource,
          path: `spec.flags[${i}]`,
          message: `no Flag named ${JSON.stringify(name)}; known: ${known()}`,
        });
    });
    const steps: { step: RolloutStep; path: string }[] = [];
    (r.spec.strategy?.canary?.steps ?? []).forEach((step, i) => {
      steps.push({ step, path: `spec.strategy.canary.steps[${i}].setFlag` });
    });
    (r.spec.strategy?.blueGreen?.flagSteps ?? []).forEach((step, i) => {
      steps.push({ step, path: `spec.strategy.blueGreen.flagSteps[${i}].setFlag` });
    });
    for (const { step, path } of steps) {
      if (!("setFlag" in step)) continue;
      const body = step.setFlag;
      const flag = flags.get(body.flag);
      if (flag === undefined) {
        errors.push({
          resource,
          path: `${path}.flag`,
          message: `no Flag named ${JSON.stringify(body.flag)}; known: ${known()}`,
        });
        continue;
      }
      const variants = Object.keys(flag.spec.variants);
      if (body.variant !== undefined && !variants.includes(body.variant))
        errors.push({
          resource,
          path: `${path}.variant`,
          message: `must be one of the variants of Flag ${body.flag} (${variants.join(", ")}), got ${JSON.stringify(body.variant)}`,
        });
      if (
        body.percentage !== undefined &&
        body.variant === undefined &&
        flag.spec.rollout === undefined &&
        !variants.some((v) => v !== flag.spec.defaultVariant)
      )
        errors.push({
          resource,
          path: `${path}.percentage`,
          message: `Flag ${body.flag} has no variant besides its default to roll out`,
        });
    }
  }
  return errors;
}
