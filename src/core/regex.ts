/**
 * Regular expressions that users write in match rules, and the guard that keeps them from
 * stalling the router. They are tested against header and cookie values that clients choose,
 * with JavaScript's backtracking engine, which has no step limit: `/(a+)+b/` takes exponential
 * time and `/.*.*x/` cubic time on a long enough value (measured: 0.5 s for `.*.*x` on 1 KiB
 * of "a", 86 s for `.*.*.*x`). Production proxies avoid this with linear-time engines (Envoy
 * and Istio use RE2) or backtrack limits (nginx and HAProxy set PCRE's match limit); Node has
 * neither (V8's linear engine is experimental and was 100-600× slower on ordinary patterns
 * here). So Turnout bounds the work statically, at validation:
 *
 * 1. Values longer than `MAX_MATCH_VALUE_LENGTH` (1 KiB) never match a regex.
 * 2. Exponential forms are rejected: a repeated group that contains a quantifier (`(a+)+`,
 *    `(a?){30}`) or alternatives (`(a|ab)*`), and backreferences.
 * 3. What remains backtracks at most polynomially; its worst case is bounded by the product
 *    of the choices of each quantifier (1,025 for `*`, `+` and `{n,}` on a 1 KiB value, m-n+1
 *    for `{n,m}`, 2 for `?`), times 1,025 start positions unless the regex starts with `^`.
 *    That estimate must stay under `MAX_REGEX_STEPS` (10^7, about 5 ms here): `^v\d+\.\d+$`
 *    and `\d+` pass, `.*canary.*` does not (its `.*`s are redundant anyway: a regex is searched
 *    anywhere in the value unless anchored).
 *
 * Pure: no I/O. Used by resource validation (errors with paths) and by the router's table
 * compiler (which drops a rule that fails, in case a table was written by another version).
 */

/** Longest header or cookie value a regex is tested against; longer values do not match. */
export const MAX_MATCH_VALUE_LENGTH = 1024;

/** Upper bound on the estimated backtracking steps of one test (see the module comment). */
export const MAX_REGEX_STEPS = 10_000_000;

/** Longest regex source accepted. */
export const MAX_REGEX_SOURCE_LENGTH = 500;

interface Frame {
  /** The group contains a quantifier (at any depth). */
  quantified: boolean;
  /** The group contains alternatives (at any depth). */
  alternation: boolean;
}

/**
 * Why `source` is not accepted as a match-rule regex, or null when it is. Checks, in order:
 * length, that it compiles (no flags), the exponential forms and the step estimate.
 */
export function regexProblem(source: string): string | null {
  if (source.length > MAX_REGEX_SOURCE_LENGTH) {
    return `must be at most ${MAX_REGEX_SOURCE_LENGTH} characters, got ${source.length}`;
  }
  try {
    new RegExp(source);
  } catch (err) {
    const why = (err as Error).message.replace(/^Invalid regular expression: \/.*\/\w*: /s, "");
    return `must be a valid JavaScript regular expression: ${why}`;
  }
  return backtrackingProblem(source);
}

/** Compiles a match-rule regex (no flags), or returns why it is not accepted. */
export function compileUserRegex(source: string): RegExp | string {
  const problem = regexProblem(source);
  return problem ?? new RegExp(source);
}

/** The tokeniser of the check; it only runs on sources that already compiled. */
function backtrackingProblem(src: string): string | null {
  const choices = MAX_MATCH_VALUE_LENGTH + 1;
  const stack: Frame[] = [{ quantified: false, alternation: false }];
  let topLevelAlternation = false;
  let estimate = 1;
  /** The group that just closed, when the next token may quantify it. */
  let lastGroup: Frame | null = null;
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const frame = stack[stack.length - 1]!;
    if (c === "\\") {
      const d = src[i + 1] ?? "";
      if ((d >= "1" && d <= "9") || (d === "k" && src[i + 2] === "<")) {
        return `must not use backreferences (\\${d}${d === "k" ? "<name>" : ""}): they can take exponential time`;
      }
      i += 2;
      // \p{...}, \u{...}: skip the braces so they are not read as a quantifier.
      if ((d === "p" || d === "P" || d === "u") && src[i] === "{") {
        const end = src.indexOf("}", i);
        i = end < 0 ? src.length : end + 1;
      }
      lastGroup = null;
      continue;
    }
    if (c === "[") {
      // A class; "]" right after "[" or "[^" closes it in JavaScript (the empty class).
      i++;
      if (src[i] === "^") i++;
      while (i < src.length && src[i] !== "]") i += src[i] === "\\" ? 2 : 1;
      i++;
      lastGroup = null;
      continue;
    }
    if (c === "(") {
      stack.push({ quantified: false, alternation: false });
      i++;
      if (src[i] === "?") {
        // (?: (?= (?! (?<= (?<! (?<name>
        if (src[i + 1] === "<" && src[i + 2] !== "=" && src[i + 2] !== "!") {
          const end = src.indexOf(">", i);
          i = end < 0 ? src.length : end + 1;
        } else {
          i += src[i + 1] === "<" ? 3 : 2;
        }
      }
      lastGroup = null;
      continue;
    }
    if (c === ")") {
      const closed = stack.length > 1 ? stack.pop()! : frame;
      const parent = stack[stack.length - 1]!;
      parent.quantified ||= closed.quantified;
      parent.alternation ||= closed.alternation;
      lastGroup = closed;
      i++;
      continue;
    }
    if (c === "|") {
      frame.alternation = true;
      if (stack.length === 1) topLevelAlternation = true;
      lastGroup = null;
      i++;
      continue;
    }
    const q = quantifierAt(src, i);
    if (q !== null) {
      const repeats = q.max > 1;
      if (lastGroup !== null && repeats && lastGroup.quantified) {
        return `must not repeat a group that contains a quantifier (like (a+)+ or (a?){9}) at position ${i}: it can take exponential time; drop the inner or the outer quantifier`;
      }
      if (lastGroup !== null && repeats && lastGroup.alternation) {
        return `must not repeat a group with alternatives (like (a|ab)*) at position ${i}: it can take exponential time; repeat a character class instead, e.g. [ab]*`;
      }
      frame.quantified = true;
      const n = q.max === Number.POSITIVE_INFINITY ? choices : Math.min(choices, q.max - q.min + 1);
      estimate *= n;
      i = q.end;
      lastGroup = null;
      continue;
    }
    lastGroup = null;
    i++;
  }
  const anchored = src.startsWith("^") && !topLevelAlternation;
  if (!anchored) estimate *= choices;
  if (estimate > MAX_REGEX_STEPS) {
    return `may backtrack about ${estimate.toExponential(1)} steps on a ${MAX_MATCH_VALUE_LENGTH}-character value (allowed: ${MAX_REGEX_STEPS.toExponential(0)}): each *, + or {n,} multiplies the work by the value's length, and so does a regex that does not start with ^; anchor it with ^, drop leading or trailing .* (a regex matches anywhere in the value), or bound repetitions like {1,20}`;
  }
  return null;
}

/** The quantifier at `i` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each maybe lazy), or null. */
function quantifierAt(src: string, i: number): { min: number; max: number; end: number } | null {
  const c = src[i];
  let min: number;
  let max: number;
  let end: number;
  if (c === "*" || c === "+" || c === "?") {
    min = c === "+" ? 1 : 0;
    max = c === "?" ? 1 : Number.POSITIVE_INFINITY;
    end = i + 1;
  } else if (c === "{") {
    // Without the u flag a "{" that is not a well-formed quantifier is a literal.
    const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i, i + 24));
    if (m === null) return null;
    min = Number(m[1]);
    max = m[2] === undefined ? min : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
    end = i + m[0].length;
  } else {
    return null;
  }
  if (src[end] === "?") end++;
  return { min, max, end };
}
