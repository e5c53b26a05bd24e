/** A/B experiments in the pure core: declarations, analysis and the decision. No I/O. */
export * from "./analyze.js";
export * from "./spec.js";
export * from "./types.js";
