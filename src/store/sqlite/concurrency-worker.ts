/**
 * A separate process for the multi-process test in sqlite-store.test.ts: opens the store
 * file it is given, says "ready", waits for "go" on stdin (so that all workers start writing
 * together), then interleaves resource applies and controller commits on one shared service.
 * Not a test file itself; the runner only picks up *.test.ts.
 */
import { API_VERSION } from "../../core/model.js";
import { openSqliteStore } from "./sqlite-store.js";

const [file, worker, rounds] = process.argv.slice(2);
if (file === undefined || worker === undefined || rounds === undefined) {
  throw new Error("usage: concurrency-worker FILE WORKER ROUNDS");
}
const store = await openSqliteStore({ path: file });
process.stdout.write("ready\n");
await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));

for (let i = 0; i < Number(rounds); i++) {
  const now = 1_700_000_000_000 + i;
  await store.applyResources(
    [
      {
        apiVersion: API_VERSION,
        kind: "Service",
        metadata: { name: "shared", labels: { writer: `${worker}-${i}` } },
        spec: {
          listen: { port: 8080, host: "127.0.0.1" },
          runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
          version: "v1",
        },
      },
    ],
    { actor: `worker-${worker}`, now },
  );
  await store.commit({
    service: "shared",
    routeTable: {
      service: "shared",
      listen: { host: "127.0.0.1", port: 8080 },
      hashVersion: 1,
      backends: [{ version: "v1", weight: 100, endpoints: [`http://127.0.0.1:${9000 + i}`] }],
      updatedAt: now,
    },
    events: [
      {
        service: "shared",
        type: "Tick",
        actor: `worker-${worker}`,
        message: "",
        data: { i },
        time: now,
      },
    ],
    now,
  });
  await store.enqueueCommand(
    { service: "shared", type: "pause", args: { i }, actor: `worker-${worker}` },
    now,
  );
}
await store.close();
process.stdout.write("done\n");
