/** The Segment kind: a named set of contexts that Flag rules share. */
import { z } from "zod";
import { apiVersion, capped, MetadataSchema, str, strict } from "./blocks.js";
import { FlagConditionSchema } from "./flag.js";

export const SegmentSchema = strict({
  apiVersion,
  kind: z.literal("Segment"),
  metadata: MetadataSchema,
  spec: strict({
    included: capped("SEGMENT_KEYS", "keys", z.array(str("VALUE_LENGTH")))
      .optional()
      .describe("targetingKeys that always belong."),
    excluded: capped("SEGMENT_KEYS", "keys", z.array(str("VALUE_LENGTH")))
      .optional()
      .describe("targetingKeys that never belong (wins)."),
    conditions: capped("CONDITIONS", "conditions", z.array(FlagConditionSchema))
      .optional()
      .describe("Contexts meeting all belong."),
    description: str("TEXT_LENGTH").optional(),
  }),
}).meta({ title: "Segment", description: "A named set of contexts that Flag rules share." });
