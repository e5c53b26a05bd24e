/**
 * A Service's `traffic`: which data plane carries it (src/core/traffic.ts). Exactly one
 * provider key; absent, the built-in router. What each provider can carry is checked against
 * the rest of the spec at apply (src/resources/traffic.ts), not here: the schema only says
 * whether the field itself is well formed.
 */
import { z } from "zod";
import type { TrafficSpec } from "../../core/model.js";
import { exactlyOne, nonEmpty, str, strict } from "./blocks.js";
import { describeValue, isPlainObject } from "./messages.js";

/** HAProxy's proxy names: letters, digits, "-", "_", ".", ":" (configuration manual §2.3). */
const HAPROXY_NAME = /^[A-Za-z0-9_.:-]+$/;

const HaproxySchema = strict({
  binary: nonEmpty("a non-empty path", "PATH_LENGTH")
    .optional()
    .describe(
      'The haproxy binary Turnout starts (default: "haproxy" on PATH). Only for an HAProxy that Turnout runs.',
    ),
  runtimeApi: str("PATH_LENGTH")
    .regex(/^unix:\/./, {
      error: (iss) =>
        `must be "unix:" and the absolute path of HAProxy's runtime API socket, like "unix:/run/haproxy/admin.sock", got ${describeValue(iss.input)}`,
    })
    .optional()
    .describe(
      "Attach mode: the runtime API socket (`stats socket ... level admin`) of an HAProxy someone else runs. Needs `backend`.",
    ),
  protocol: z
    .enum(["http", "h2c", "grpc"])
    .optional()
    .describe(
      'What the upstreams speak, end to end (an HAProxy that Turnout runs): "http" (default, HTTP/1.1), "h2c" (HTTP/2 in clear text) or "grpc" (h2c, with grpc-status counted as errors in the measurements).',
    ),
  backend: str("NAME_LENGTH")
    .regex(HAPROXY_NAME, {
      error: (iss) =>
        `must be an HAProxy backend name (letters, digits, "-", "_", "." and ":") like "fraud_model", got ${describeValue(iss.input)}`,
    })
    .optional()
    .describe(
      "Attach mode: the backend of that HAProxy whose servers and weights Turnout changes (nothing else). Needs `runtimeApi`.",
    ),
})
  .superRefine(
    (h, ctx) => {
      // Attach mode is the pair: a socket without a backend would leave Turnout guessing what
      // it may change, a backend without a socket names nothing it can reach.
      if (h.runtimeApi !== undefined && h.backend === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["backend"],
          input: undefined,
          message:
            "is required with runtimeApi (attach mode changes one named backend of that HAProxy)",
        });
      }
      if (h.backend !== undefined && h.runtimeApi === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["runtimeApi"],
          input: undefined,
          message:
            'is required with backend (the runtime API socket of the HAProxy that has it, like "unix:/run/haproxy/admin.sock")',
        });
      }
      if (h.protocol !== undefined && h.runtimeApi !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["protocol"],
          input: h.protocol,
          message:
            "applies only to an HAProxy that Turnout runs; an attached HAProxy's backend speaks what its owner configured (remove protocol)",
        });
      }
      if (h.binary !== undefined && h.runtimeApi !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["binary"],
          input: h.binary,
          message:
            "applies only to an HAProxy that Turnout runs; with runtimeApi, Turnout attaches to one that runs already (remove binary, or runtimeApi and backend)",
        });
      }
    },
    { when: (p) => isPlainObject(p.value) },
  )
  .describe(
    "HAProxy at native speed: {} for one that Turnout starts and supervises; runtimeApi and backend to drive one backend of an HAProxy someone else runs.",
  );

export const TrafficSchema = exactlyOne(
  {
    builtin: strict({}).describe("Turnout's own router (the default): every route-table feature."),
    haproxy: HaproxySchema,
  },
  { noun: "traffic provider" },
).describe(
  "The data plane that carries this service's traffic: exactly one of builtin or haproxy; absent, the built-in router. See docs/resources.md for what each carries.",
) as unknown as z.ZodType<TrafficSpec, TrafficSpec>;
