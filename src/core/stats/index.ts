/** The pure statistics core: tests, intervals, sequential monitoring, planning. No I/O. */
export * from "./bayes.js";
export * from "./distributions.js";
export * from "./mannWhitney.js";
export * from "./mannWhitneyBinned.js";
export * from "./multiple.js";
export * from "./power.js";
export * from "./proportions.js";
export * from "./random.js";
export * from "./ratio.js";
export * from "./sequential.js";
export * from "./srm.js";
export type { Alternative, BinomialCounts, Interval, SampleSummary } from "./types.js";
export * from "./welch.js";
