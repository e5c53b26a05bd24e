import { RE2JS, RE2Set } from "re2js";
const mk = (p, mem) => { const s = new RE2Set(RE2Set.UNANCHORED, 0, mem); s.add(p); s.compile(); return s; };
const cases = [
  ["^beta$", "beta"], ["^(alice|bob)@example\\.com$", "carol@example.com"], ["@example\\.com$", "someone@example.com"],
  ["^v\\d+(\\.\\d+)?$", "v12.3"], ["canary", "group=canary-users"], ["^Mozilla/\\d{1,4}\\.\\d{1,4}.*Chrome/(\\d{1,4})", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"],
  ["\\p{L}+", "héllo"],
];
const N = 100000;
for (const [p, v] of cases) {
  const js = new RegExp(p, "u"); const r2 = RE2JS.compile(p); const set = mk(p, 256 * 1024);
  for (let w = 0; w < 3; w++) {
  let c=0; let t=performance.now(); for (let i=0;i<N;i++) if (js.test(v)) c++; const tj=(performance.now()-t)*1e6/N;
  t=performance.now(); for (let i=0;i<N;i++) if (r2.test(v)) c++; const tr=(performance.now()-t)*1e6/N;
  t=performance.now(); for (let i=0;i<N;i++) if (set.match(v).length) c++; const ts=(performance.now()-t)*1e6/N;
  if (w === 2) console.log(p.padEnd(46), `RegExp ${tj.toFixed(0)} ns  re2js.test ${tr.toFixed(0)} ns  set ${ts.toFixed(0)} ns`, r2.test(v), set.match(v).length>0, r2.programSize());
  }
}
let seed = 42; const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
const gen = (n) => Array.from({length: n}, () => rnd() < 0.5 ? "a" : "b").join("");
for (const mem of [64*1024, 256*1024, 1024*1024]) for (const k of [20, 50, 100]) for (const len of [1024, 16384]) {
  const p = `(a|b)*a(a|b){${k}}[^ab]`; const s = mk(p, mem);
  const ts = [];
  for (let i = 0; i < 4; i++) { const x = gen(len); const t = performance.now(); s.match(x); ts.push(performance.now() - t); }
  console.log(`mem ${mem/1024}K`, p.padEnd(24), len, ts.map((x) => x.toFixed(1)).join(" "), "ms");
}
