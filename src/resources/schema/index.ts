/**
 * Zod schemas for the resources users write (`apiVersion: turnout.dev/v1`), and the one place
 * that turns zod issues into messages a person can act on ("must be 0..100, got 120").
 *
 * The schemas are the single source for validation, defaults, the model types (checked at
 * compile time in `kinds.ts`) and the editor JSON Schema (`../jsonschema.ts`).
 *
 * One file per part: `messages.ts` (how values read in messages), `blocks.ts` (the zod
 * building blocks and the shared `metadata`), one file per resource kind (`service.ts` with
 * its parts: `routing.ts`, `traffic-policy.ts`, `runtime.ts`, `steps.ts`, `strategy.ts`,
 * `experiment.ts`, `shadow.ts`; `analysis-template.ts`, `flag.ts`, `segment.ts`), the registry
 * of kinds (`kinds.ts`) and the validation of one document (`validate.ts`).
 */

export { AnalysisTemplateSchema } from "./analysis-template.js";
export { RESOURCE_NAME, VERSION_NAME } from "./blocks.js";
export { FlagSchema } from "./flag.js";
export { SCHEMAS } from "./kinds.js";
export {
  closest,
  describeValue,
  formatPath,
  isPlainObject,
  jsonBytes,
  type PathSegment,
} from "./messages.js";
export { SegmentSchema } from "./segment.js";
export { ServiceSchema } from "./service.js";
export { type DocumentIssue, type DocumentResult, validateDocument } from "./validate.js";
