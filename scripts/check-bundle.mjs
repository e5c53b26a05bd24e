// Measures the dashboard's bundle as a browser downloads it (gzip) and fails the build above
// the budget: 300 kB for everything the page loads (index.html and dist/web/assets/*).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 300 * 1000;
const dir = new URL("../dist/web/", import.meta.url).pathname;
const files = ["index.html", ...readdirSync(join(dir, "assets")).map((f) => join("assets", f))];
let total = 0;
for (const f of files) {
  const raw = readFileSync(join(dir, f));
  const gz = gzipSync(raw, { level: 9 }).length;
  total += gz;
  console.log(
    `  ${f.padEnd(36)} ${(raw.length / 1000).toFixed(1).padStart(7)} kB  gzip ${(gz / 1000).toFixed(1).padStart(6)} kB`,
  );
}
console.log(
  `dashboard bundle: ${(total / 1000).toFixed(1)} kB gzipped (budget ${BUDGET / 1000} kB)`,
);
if (total > BUDGET) {
  console.error(
    `the dashboard bundle is over budget by ${((total - BUDGET) / 1000).toFixed(1)} kB`,
  );
  process.exit(1);
}
