/**
 * The HAProxy provider (managed mode) passes the traffic-provider conformance suite, run against
 * a real HAProxy. Its declared features leave out mirror (shadow comparison) and edge flags,
 * so that case is skipped by capability with a generated reason and "refused capability"
 * checks that such a table is refused while the previous one keeps serving. Sticky keys and A/B
 * units are checked against HAProxy's own hash (hash.ts, haproxy-xxh32-v1) and its vectors.
 * Skipped with a reason where haproxy is not installed (CI installs it: .ci/haproxy.sh).
 */
import { test } from "node:test";
import { trafficProviderConformance } from "../conformance.js";
import { haproxyBucketOf } from "./hash.js";
import { HaproxyProvider } from "./provider.js";
import { needsHaproxy, tempDir } from "./testing.js";

const missing = needsHaproxy();
if (missing.skip !== undefined) {
  test("traffic provider conformance: haproxy", { skip: missing.skip }, () => {});
} else {
  trafficProviderConformance("haproxy", async () => {
    const dir = tempDir("thx-conf-");
    const provider = new HaproxyProvider({ dataDir: dir.path, reapIntervalMs: 200 });
    await provider.start();
    return {
      provider,
      close: async () => dir.remove(),
      stickyHash: {
        bucket: haproxyBucketOf,
        vectors: new URL("../../../test/fixtures/haproxy-hash-vectors.json", import.meta.url),
      },
    };
  });
}
