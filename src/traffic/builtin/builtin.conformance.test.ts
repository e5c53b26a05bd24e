/**
 * The built-in router passes the traffic-provider conformance suite, nothing skipped by data.
 * Without `edgeFlags` it does not claim edge flags, so "refused capability" runs: a table with
 * flags is refused and the previous one keeps serving.
 */
import { trafficProviderConformance } from "../conformance.js";
import { BuiltinProvider } from "./provider.js";

trafficProviderConformance("builtin", async () => {
  // Pools retired at once (no grace): a pool closed while a table still routes to it fails
  // a case at once instead of after the default 10 s.
  const provider = new BuiltinProvider({ drainTimeoutMs: 1000, poolIdleGraceMs: 0 });
  await provider.start();
  return { provider };
});
