import { RE2JS } from "re2js";
const cases = [
  ["^beta$", "beta"], ["^(alice|bob)@example\\.com$", "carol@example.com"], ["@example\\.com$", "someone@example.com"],
  ["^v\\d+(\\.\\d+)?$", "v12.3"], ["canary", "group=canary-users"], ["^Mozilla/\\d{1,4}\\.\\d{1,4}.*Chrome/(\\d{1,4})", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"],
  ["\\p{L}+", "héllo"], 
];
const N = 200000;
for (const [p, v] of cases) {
  const js = new RegExp(p, "u"); const r2 = RE2JS.compile(p);
  let c=0; let t=performance.now(); for (let i=0;i<N;i++) if (js.test(v)) c++; const tj=(performance.now()-t)*1e6/N;
  t=performance.now(); for (let i=0;i<N;i++) if (r2.test(v)) c++; const tr=(performance.now()-t)*1e6/N;
  console.log(p.padEnd(50), `RegExp ${tj.toFixed(0)} ns  re2js ${tr.toFixed(0)} ns  x${(tr/tj).toFixed(1)}`, js.test(v), r2.test(v));
}
const big = "a".repeat(10240);
for (const p of ["^(a+)+$","(x+x+)+y","(a|aa)+$","^(?:p{1,})+$","a{00000000000000000000001,}", "(.*)*b", "^(\\w+\\s?)*$", "[\\p{L}]{1000}", "(a*)*(b*)*(c*)*(d*)*(e*)*(f*)*x", "^(?:a|b|ab|ba|aab|bba)*c$"]) {
  let t=performance.now(); let r; try { r = RE2JS.compile(p); } catch (e) { console.log(p, "ERR", e.message); continue; } const tc=performance.now()-t;
  t=performance.now(); const m=r.test(big+"!"); const tm=performance.now()-t;
  t=performance.now(); r.test("b".repeat(5000)+"a".repeat(5000)+"!"); const tm2=performance.now()-t;
  console.log(p.padEnd(40), `compile ${tc.toFixed(2)} ms, 10kB test ${tm.toFixed(2)} ms ${m}, mixed ${tm2.toFixed(2)} ms, progsize ${r.programSize?.()}`);
}
