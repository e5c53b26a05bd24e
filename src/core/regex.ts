/**
 * Regular expressions that users write (routing and mirror match rules, flag and segment
 * `matches` conditions), compiled to matchers that take linear time on any input.
 *
 * They are tested against header, cookie and context values that clients choose. JavaScript's
 * RegExp backtracks without a step limit (`^(a+)+$` on 30 characters takes seconds), and no
 * static check of the pattern closes every door: the heuristic guard this module used to be
 * was bypassed by `\p{1,}` and `\u{1,}` (plain `p+`/`u+` without the u flag) and by quantifiers
 * longer than it scanned. So user patterns never reach RegExp: they run on re2js, a pure-JS port
 * of RE2 (the engine Envoy and Istio use for the same job), whose automata visit each input
 * character once per program instruction at most. What remains to bound is that product:
 *
 * - the program: at most `MAX_REGEX_PROGRAM_SIZE` instructions (Envoy bounds RE2 program size
 *   the same way); `a{1000}` or `.{1,300}` compile past it, `^[a-z0-9]{1,63}$` (129) does not;
 * - the value: longer than `MAX_MATCH_VALUE_LENGTH` (16 KiB, the router's default header limit)
 *   never matches;
 * - the DFA's state cache: `DFA_MEMORY_BYTES` per pattern; a pattern whose DFA would need more
 *   (`(a|b)*a(a|b){20}` has 2^20 states) falls back to RE2's NFA instead of growing.
 *
 * Measured on the 2-core dev machine: the worst pattern under the cap on a 16 KiB value takes
 * tens of ms; ordinary header patterns 0.2-1.5 µs per test (RegExp: 0.01-0.15 µs).
 *
 * Syntax (docs/resources.md): RE2's (https://github.com/google/re2/wiki/Syntax), searched
 * anywhere in the value unless anchored with `^`/`$`, matched by Unicode code point: `.` is
 * one code point, `\p{L}` and `\p{Greek}` are Unicode classes, `\x{1F600}` a code point;
 * inline flags `(?i)`, `(?s)`, `(?m)`, `(?U)`. Not supported, refused at validation with the
 * construct's name: backreferences (`\1`, `\k<name>`), lookahead and lookbehind, and
 * JavaScript-only escapes (`\uXXXX`: write `\x{XXXX}`; `\cX`).
 *
 * Pure: no I/O. Used by resource validation (errors with paths) and by the compilers of the
 * route table, the mirror and the flags (which drop a rule whose pattern fails, in case it was
 * written by another version of Turnout).
 */
import { RE2JS, RE2Set } from "re2js";

/** Longest header, cookie or context value a pattern is tested against; longer never match. */
export const MAX_MATCH_VALUE_LENGTH = 16 * 1024;

/** Longest pattern source accepted. */
export const MAX_REGEX_SOURCE_LENGTH = 500;

/** Most RE2 program instructions a pattern may compile to (bounds the work per character). */
export const MAX_REGEX_PROGRAM_SIZE = 160;

/** The DFA state cache of one pattern; beyond it RE2 resets the cache or uses its NFA. */
const DFA_MEMORY_BYTES = 256 * 1024;

/** A compiled user pattern: `test` searches the value, in time linear in its length. */
export interface UserRegex {
  readonly source: string;
  test(value: string): boolean;
}

const SYNTAX_HELP = "RE2 syntax, see https://github.com/google/re2/wiki/Syntax";

/**
 * Compiles a user pattern to a linear-time matcher, or returns why it is not accepted (a
 * sentence fragment, e.g. "must not use lookahead ..."). Values over `MAX_MATCH_VALUE_LENGTH`
 * never match.
 */
export function compileUserRegex(source: string): UserRegex | string {
  if (source.length > MAX_REGEX_SOURCE_LENGTH) {
    return `must be at most ${MAX_REGEX_SOURCE_LENGTH} characters, got ${source.length}`;
  }
  let size: number;
  try {
    size = RE2JS.compile(source).programSize();
  } catch (err) {
    return unsupportedConstruct(source) ?? syntaxProblem(err);
  }
  if (size > MAX_REGEX_PROGRAM_SIZE) {
    return `compiles to ${size} RE2 instructions, more than ${MAX_REGEX_PROGRAM_SIZE}: each one is work for every character of every value tested; bound or drop large repetitions like {1000} or .{1,300}`;
  }
  const literal = literalTest(source);
  if (literal !== null) {
    return { source, test: (value) => value.length <= MAX_MATCH_VALUE_LENGTH && literal(value) };
  }
  // An RE2Set of one pattern: the same engine as RE2JS.test, with a DFA cache bound we choose.
  const set = new RE2Set(RE2Set.UNANCHORED, 0, DFA_MEMORY_BYTES);
  set.add(source);
  set.compile();
  return {
    source,
    test: (value) => value.length <= MAX_MATCH_VALUE_LENGTH && set.match(value).length > 0,
  };
}

/** ASCII punctuation: escaped, it is the literal character in RE2. */
const PUNCTUATION = /^[!-/:-@[-`{-~]$/;

/**
 * The most common rules are literals (`^beta$`, `canary`, `@example\.com$`): those become
 * string comparisons, linear and 10-50x cheaper than the automaton. Anything else, or a
 * literal with a surrogate (RE2 matches code points, `includes` code units), returns null.
 */
function literalTest(src: string): ((value: string) => boolean) | null {
  const start = src.startsWith("^");
  let end = false;
  let lit = "";
  for (let i = start ? 1 : 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "\\") {
      const d = src[i + 1] ?? "";
      if (!PUNCTUATION.test(d)) return null;
      lit += d;
      i++;
    } else if (c === "$" && i === src.length - 1) {
      end = true;
    } else if ("^$.|?*+()[]{}".includes(c) || (c >= "\ud800" && c <= "\udfff")) {
      return null;
    } else {
      lit += c;
    }
  }
  if (start && end) return (v) => v === lit;
  if (start) return (v) => v.startsWith(lit);
  if (end) return (v) => v.endsWith(lit);
  return (v) => v.includes(lit);
}

/** Why `source` is not accepted as a user pattern, or null when it is (for validation). */
export function regexProblem(source: string): string | null {
  const r = compileUserRegex(source);
  return typeof r === "string" ? r : null;
}

function syntaxProblem(err: unknown): string {
  const why = (err as Error).message.replace(/^error parsing regexp: /, "");
  return `must be a valid regular expression (${SYNTAX_HELP}): ${why}`;
}

/**
 * The JavaScript constructs RE2 lacks, named, so that a pattern written for RegExp gets more
 * than "invalid escape". Only called on patterns RE2 refused; scans escapes and classes so that
 * `[(?=]` or `\\1` are not mistaken for them.
 */
function unsupportedConstruct(src: string): string | null {
  const linear = "RE2, which Turnout uses so that matching takes linear time, has none";
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "\\") {
      const d = src[i + 1] ?? "";
      if (!inClass && d >= "1" && d <= "9") {
        return `must not use backreferences (\\${d} at position ${i}): ${linear}`;
      }
      if (!inClass && d === "k" && src[i + 2] === "<") {
        return `must not use backreferences (\\k<name> at position ${i}): ${linear}`;
      }
      if (d === "u") {
        return `must not use the JavaScript escape \\u at position ${i}: write a code point as \\x{2603} (${SYNTAX_HELP})`;
      }
      if (d === "c") {
        return `must not use the JavaScript escape \\c at position ${i}: write a control character as \\x01 (${SYNTAX_HELP})`;
      }
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      // "]" first in a class is a literal in RE2.
      if (src[i + 1] === "^") i++;
      if (src[i + 1] === "]") i++;
      continue;
    }
    if (c === "(" && src[i + 1] === "?") {
      const look = src.slice(i + 2, i + 4);
      if (look.startsWith("=") || look.startsWith("!")) {
        return `must not use lookahead (${src.slice(i, i + 3)} at position ${i}): ${linear}`;
      }
      if (look === "<=" || look === "<!") {
        return `must not use lookbehind (${src.slice(i, i + 4)} at position ${i}): ${linear}`;
      }
    }
  }
  return null;
}
