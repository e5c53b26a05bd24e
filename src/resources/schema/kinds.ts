/**
 * The registry of resource kinds: the schema of each by its `kind`. A new kind is its own file
 * (`<kind>.ts`) and one line here; a kind of the model (`RESOURCE_KINDS`) without a schema
 * fails `tsc`.
 */
import type { z } from "zod";
import type {
  AnalysisTemplateResource,
  CanaryStrategySpec,
  FlagResource,
  Resource,
  SegmentResource,
  ServiceResource,
} from "../../core/model.js";
import { AnalysisTemplateSchema } from "./analysis-template.js";
import { FlagSchema } from "./flag.js";
import { NotifierSchema } from "./notifier.js";
import { SegmentSchema } from "./segment.js";
import { ServiceSchema } from "./service.js";

export const SCHEMAS = {
  Service: ServiceSchema,
  AnalysisTemplate: AnalysisTemplateSchema,
  Flag: FlagSchema,
  Segment: SegmentSchema,
  Notifier: NotifierSchema,
} as const satisfies Record<Resource["kind"], z.ZodType>;

// Compile-time: what the schemas produce is the model, and the model passes the schemas (so a
// stored resource can be validated again). A drift fails `tsc` here, not at runtime elsewhere.
// The model lets `strategy` be `{}` (room for strategies to come); the schema wants one key.
type Assignable<A, B> = [A] extends [B] ? true : false;
true satisfies Assignable<z.output<typeof ServiceSchema>, ServiceResource>;
true satisfies Assignable<
  ServiceResource & { spec: { strategy?: { canary: CanaryStrategySpec } } },
  z.input<typeof ServiceSchema>
>;
true satisfies Assignable<z.output<typeof AnalysisTemplateSchema>, AnalysisTemplateResource>;
true satisfies Assignable<AnalysisTemplateResource, z.input<typeof AnalysisTemplateSchema>>;
true satisfies Assignable<z.output<typeof FlagSchema>, FlagResource>;
true satisfies Assignable<z.output<typeof SegmentSchema>, SegmentResource>;
