// Makes the bin executable after tsc (tsc does not keep file modes), and copies the non-TS
// assets the code loads at run time next to their compiled modules.
import { chmodSync, copyFileSync } from "node:fs";

chmodSync(new URL("../dist/cli/main.js", import.meta.url), 0o755);
// HAProxy's Lua helpers (sticky buckets, match rules), loaded by src/traffic/haproxy.
copyFileSync(
  new URL("../src/traffic/haproxy/turnout.lua", import.meta.url),
  new URL("../dist/traffic/haproxy/turnout.lua", import.meta.url),
);
