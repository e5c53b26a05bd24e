/**
 * A router in its own process, for test/e2e/sticky.test.ts: reads route tables from the SQLite
 * store file it is given, prints `{"port": N}` once its listener is bound, and stops cleanly
 * when its stdin closes or it gets SIGTERM. Not a test file itself (the runner only picks up
 * *.test.ts).
 */
import { Router } from "../../src/router/router.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";

const [file] = process.argv.slice(2);
if (file === undefined) throw new Error("usage: sticky-router STORE_FILE");
const store = await openSqliteStore({ path: file });
const router = new Router({ source: store, pollIntervalMs: 100 });
await router.start();
const listener = router.listeners()[0];
process.stdout.write(`${JSON.stringify({ port: listener?.port, error: listener?.error })}\n`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await router.stop();
  await store.close();
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
process.stdin.on("end", () => void stop());
process.stdin.resume();
