/** Feature flag evaluation: pure (see `evaluate.ts` for the algorithm). */
export {
  type CompiledFlag,
  compileFlags,
  effectiveSpec,
  errorResult,
  evaluate,
  evaluateCompiled,
  FLAG_HASH_VERSION,
  type FlagDefinition,
  type FlagSet,
  valueHasType,
} from "./evaluate.js";
export { compareSemver, parseSemver } from "./semver.js";
export type * from "./types.js";
