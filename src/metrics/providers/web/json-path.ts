/**
 * The JSON path subset the web provider understands:
 *
 *   $                 the whole document
 *   .name             a key made of letters, digits, `_` and `-` (not starting with a digit or -)
 *   ["any key"]       a key in double quotes (JSON string escapes), or ['any key'] in single
 *   [0]               an array index (0-based; [-1] is the last element)
 *
 * e.g. `$.data.result[0].value`, `$["p99 latency"]`, `$.items[-1].score`.
 *
 * Hand-written because a metric needs one value at a fixed place: no wildcards, filters or
 * recursive descent (which return lists and would need a reduce step), and no dependency for
 * ~60 lines. Anything outside the subset is a parse error naming the position, never a partial
 * match.
 */

export type PathSegment = string | number;

/** Parses `path`; throws an `Error` with the position and what was expected. */
export function parseJsonPath(path: string): PathSegment[] {
  if (!path.startsWith("$")) throw new Error(`must start with "$", got ${JSON.stringify(path)}`);
  const segs: PathSegment[] = [];
  let i = 1;
  const fail = (what: string): never => {
    throw new Error(`${what} at position ${i} of ${JSON.stringify(path)}`);
  };
  while (i < path.length) {
    const c = path[i];
    if (c === ".") {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(path.slice(i + 1));
      if (!m) fail('expected a key name after "." (use ["..."] for other keys)');
      segs.push(m![0]);
      i += 1 + m![0].length;
    } else if (c === "[") {
      const rest = path.slice(i + 1);
      const index = /^(-?\d+)\]/.exec(rest);
      const dq = /^("(?:[^"\\]|\\.)*")\]/.exec(rest);
      const sq = /^'((?:[^'\\]|\\.)*)'\]/.exec(rest);
      if (index) {
        segs.push(Number(index[1]));
        i += 1 + index[0].length;
      } else if (dq) {
        try {
          segs.push(JSON.parse(dq[1]!) as string);
        } catch {
          fail('bad string escape in ["..."]');
        }
        i += 1 + dq[0].length;
      } else if (sq) {
        segs.push(sq[1]!.replace(/\\(.)/g, "$1"));
        i += 1 + sq[0].length;
      } else {
        fail("expected [index], [\"key\"] or ['key']");
      }
    } else {
      fail('expected "." or "["');
    }
  }
  return segs;
}

/** `$.a.b[0]` for messages. */
export function formatJsonPath(segs: readonly PathSegment[]): string {
  let out = "$";
  for (const s of segs) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** Follows `segs` into `doc`; `{ found }` or `{ missing }` naming where the walk stopped. */
export function selectJsonPath(
  doc: unknown,
  segs: readonly PathSegment[],
): { found: unknown } | { missing: string } {
  let cur: unknown = doc;
  for (let k = 0; k < segs.length; k++) {
    const seg = segs[k]!;
    const at = formatJsonPath(segs.slice(0, k));
    if (typeof seg === "number") {
      if (!Array.isArray(cur)) return { missing: `${at} is ${kindOf(cur)}, not a list` };
      const idx = seg < 0 ? cur.length + seg : seg;
      if (idx < 0 || idx >= cur.length) {
        return { missing: `${at} has ${cur.length} element(s); no [${seg}]` };
      }
      cur = cur[idx];
    } else {
      if (typeof cur !== "object" || cur === null || Array.isArray(cur)) {
        return { missing: `${at} is ${kindOf(cur)}, not an object` };
      }
      if (!Object.hasOwn(cur, seg)) {
        const keys = Object.keys(cur).slice(0, 10);
        return {
          missing: `${at} has no key ${JSON.stringify(seg)} (keys: ${keys.length > 0 ? keys.join(", ") : "none"})`,
        };
      }
      cur = (cur as Record<string, unknown>)[seg];
    }
  }
  return { found: cur };
}

export function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return "a string";
  if (typeof v === "number") return "a number";
  if (typeof v === "boolean") return "a boolean";
  return typeof v;
}
