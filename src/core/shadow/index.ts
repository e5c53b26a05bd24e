/** Shadow comparison: pure diffing, ML comparators, drift, noise learning, reports and the gate. */
export * from "./aggregate.js";
export * from "./compare.js";
export * from "./drift.js";
export * from "./gate.js";
export * from "./json-diff.js";
export type * from "./types.js";
export { DEFAULT_MIRROR_LIMITS } from "./types.js";
