/** Canary analysis, pure: observations in, explained verdicts out, and the analysis-run state machine. */
export * from "./judges.js";
export * from "./observation.js";
export * from "./run.js";
