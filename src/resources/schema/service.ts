/** The Service kind: what users call, and how new versions of it roll out. */
import { z } from "zod";
import {
  apiVersion,
  capped,
  MetadataSchema,
  num,
  resourceName,
  str,
  strict,
  versionName,
} from "./blocks.js";
import { describeValue, isPlainObject, orList } from "./messages.js";
import { checkRoutingTargets, RoutingSchema, StickinessSchema } from "./routing.js";
import { RuntimeSchema } from "./runtime.js";
import { StrategySchema } from "./strategy.js";
import { TrafficSchema } from "./traffic.js";
import { TrafficPolicySchema } from "./traffic-policy.js";

const ListenSchema = strict({
  port: num({ int: true, min: 1, max: 65535 }).describe("TCP port the router listens on."),
  host: str("PATH_LENGTH")
    .regex(/^[A-Za-z0-9.:[\]-]+$/, {
      error: (iss) =>
        `must be a host name or IP address like "127.0.0.1" or "0.0.0.0", got ${describeValue(iss.input)}`,
    })
    .default("127.0.0.1")
    .describe('Address to listen on; "0.0.0.0" for every interface.'),
});

const ServiceSpecSchema = strict({
  listen: ListenSchema.describe("Where the router listens for this service's users."),
  stickiness: StickinessSchema.optional(),
  routing: RoutingSchema.optional(),
  trafficPolicy: TrafficPolicySchema.optional(),
  runtime: RuntimeSchema,
  version: versionName.describe("The desired version; changing it starts a rollout."),
  strategy: StrategySchema.optional(),
  flags: capped("SERVICE_FLAGS", "flags", z.array(resourceName))
    .optional()
    .describe(
      "Flags the router evaluates per request (targeting key: the sticky key); results go upstream in x-turnout-flags and label measurements.",
    ),
  traffic: TrafficSchema.optional(),
})
  .superRefine(
    (spec, ctx) => {
      // The desired version of a static service must be one it knows the upstreams of.
      const runtime: unknown = spec.runtime;
      const versions =
        isPlainObject(runtime) && isPlainObject(runtime.static)
          ? runtime.static.versions
          : undefined;
      if (!isPlainObject(versions) || typeof spec.version !== "string") return;
      const known = Object.keys(versions);
      if (known.length === 0 || known.includes(spec.version)) return;
      ctx.addIssue({
        code: "custom",
        path: ["version"],
        input: spec.version,
        message: `must be one of the versions of spec.runtime.static.versions (${orList(known)}), got ${describeValue(spec.version)}`,
      });
    },
    // Checked even when other fields are wrong, so that all errors come at once.
    { when: (p) => isPlainObject(p.value) },
  )
  .superRefine(checkRoutingTargets, { when: (p) => isPlainObject(p.value) });

export const ServiceSchema = strict({
  apiVersion,
  kind: z.literal("Service"),
  metadata: MetadataSchema,
  spec: ServiceSpecSchema,
}).meta({
  title: "Service",
  description: "A service users call, and how new versions of it roll out.",
});
