/**
 * Match-rule patterns: the cost of a test with re2js (core/regex.ts) next to RegExp, on short
 * header values (the hot path of the router) and on the worst inputs. A measurement, not a
 * test: `node --import tsx bench/regex.ts`.
 */
import { compileUserRegex, MAX_MATCH_VALUE_LENGTH, type UserRegex } from "../src/core/regex.js";

const TYPICAL: [string, string][] = [
  ["^beta$", "beta"],
  ["canary", "group=canary-users"],
  ["@example\\.com$", "someone@example.com"],
  ["^(alice|bob)@example\\.com$", "carol@example.com"],
  ["^v\\d+(\\.\\d+)?$", "v12.3"],
  [
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "0b7e2f0c-2a4e-4d1b-9c3f-6f1e2d3c4b5a",
  ],
  [
    "^Mozilla/\\d{1,4}\\.\\d{1,4}.*Chrome/(\\d{1,4})",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  ],
];

function nsPerTest(test: (v: string) => boolean, value: string, n: number): number {
  let hits = 0;
  for (let i = 0; i < n / 10; i++) if (test(value)) hits++; // warm-up
  const t = performance.now();
  for (let i = 0; i < n; i++) if (test(value)) hits++;
  const ns = ((performance.now() - t) * 1e6) / n;
  return hits < 0 ? -1 : ns;
}

console.log("typical header patterns (ns per test, median of 5 runs of 100k)");
for (const [src, value] of TYPICAL) {
  const re = new RegExp(src);
  const m = compileUserRegex(src) as UserRegex;
  const med = (f: () => number) => [0, 1, 2, 3, 4].map(f).sort((a, b) => a - b)[2]!;
  const a = med(() => nsPerTest((v) => re.test(v), value, 100_000));
  const b = med(() => nsPerTest((v) => m.test(v), value, 100_000));
  console.log(
    `  ${src.padEnd(66)} RegExp ${a.toFixed(0).padStart(5)}  re2js ${b.toFixed(0).padStart(5)}`,
  );
}

let seed = 42;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const ab = (n: number) => Array.from({ length: n }, () => (rnd() < 0.5 ? "a" : "b")).join("");
const L = MAX_MATCH_VALUE_LENGTH;
const WORST: [string, () => string][] = [
  ["^(a+)+$", () => `${"a".repeat(L - 1)}!`],
  ["(a|aa)+$", () => `${"a".repeat(L - 1)}!`],
  ["(x+x+)+y", () => "x".repeat(L)],
  ["^(?:p{1,})+$", () => `${"p".repeat(L - 1)}!`],
  ["^(?:a{00000000000000000000001,})+$", () => `${"a".repeat(L - 1)}!`],
  ["(a|b)*a(a|b){20}[^ab]", () => ab(L)],
  ["(a|b)*a(a|b){80}[^ab]", () => ab(L)],
  ["\\b(a|b)*a(a|b){80}\\b", () => ab(L)],
];
console.log(`\nworst inputs of ${L} characters (ms per test, 5 fresh inputs)`);
for (const [src, gen] of WORST) {
  const m = compileUserRegex(src);
  if (typeof m === "string") {
    console.log(`  ${src}: refused: ${m}`);
    continue;
  }
  const ms = [0, 1, 2, 3, 4].map(() => {
    const v = gen();
    const t = performance.now();
    m.test(v);
    return performance.now() - t;
  });
  console.log(`  ${src.padEnd(36)} ${ms.map((x) => x.toFixed(1)).join(" ")}`);
}
