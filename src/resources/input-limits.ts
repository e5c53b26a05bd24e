/**
 * Bounds on untrusted text, checked by one linear scan of the raw text *before* any parser runs.
 * Every place that parses user input (API bodies of every route, OFREP contexts, events, flag
 * definitions, files given to the CLI) goes through here.
 *
 * Why before parsing: the parsers are not safe on hostile input. The `yaml` composer recurses
 * once per nesting level; about 1,000 levels exhaust the stack, and it catches the RangeError
 * and goes on running near the stack limit, where V8 may have to compile a regular expression
 * (the second run of a pattern is compiled to machine code) and then aborts the whole process
 * ("FATAL ERROR: RegExpCompiler Allocation failed"), taking every router down with the API.
 * `JSON.parse` copes with any depth, but everything after it (validation, canonical JSON,
 * `JSON.stringify`) recurses and fails with "Maximum call stack size exceeded". Its duplicate
 * key check is quadratic in the keys of one mapping, and alias expansion is exponential. So
 * depth, keys per mapping, values, scalar length and aliases are bounded here, in time linear
 * in the text and with memory bounded by `maxDepth`, and the parsers only ever see text that
 * is far from their limits.
 *
 * The JSON scan is exact. The YAML scan is a conservative approximation of YAML's structure
 * (indentation levels, compact `- ` and `? ` entries, flow collections, quoted and block
 * scalars, comments): it may count one level more or less than the composer would, which the
 * generous limits absorb; it never mistakes the contents of a quoted or block scalar for
 * structure.
 */
import { CST, Lexer } from "yaml";
import { TurnoutError } from "../errors.js";

export interface InputLimits {
  /** Bytes of one text (UTF-8). */
  maxBytes: number;
  /** Nested collections (mappings and sequences, objects and arrays). */
  maxDepth: number;
  /** Entries of one mapping (object). */
  maxKeys: number;
  /** Values in one text, about (collections and their entries). */
  maxNodes: number;
  /** Characters of one scalar (string). */
  maxScalarChars: number;
  /** YAML aliases (`*name`) in one text; also the `yaml` library's `maxAliasCount`. */
  maxAliases: number;
}

/**
 * Far above anything a resource, an event batch or an evaluation context needs (a Service is
 * about 10 levels deep), far below where the parsers get into trouble. The scalar bound is
 * Linux's longest single argument of a command (MAX_ARG_STRLEN, 128 KiB).
 */
export const INPUT_LIMITS: Readonly<InputLimits> = Object.freeze({
  maxBytes: 4 * 1024 * 1024,
  maxDepth: 64,
  maxKeys: 1_000,
  maxNodes: 100_000,
  maxScalarChars: 128 * 1024,
  maxAliases: 100,
});

export type LimitKind = "bytes" | "depth" | "keys" | "nodes" | "scalar" | "aliases";

/** A text over one of the limits: a TurnoutError with the limit, its value and the position. */
export class InputLimitError extends TurnoutError {
  constructor(
    readonly kind: LimitKind,
    readonly limit: number,
    message: string,
    readonly line?: number,
    readonly column?: number,
    path?: string,
  ) {
    super(codeOf(kind), message, {
      ...(path !== undefined ? { path } : {}),
      limit: kind,
      max: limit,
      ...(line !== undefined ? { line, column } : {}),
    });
    this.name = "InputLimitError";
  }
}

function codeOf(kind: LimitKind) {
  if (kind === "depth") return "TURNOUT_ERR_INPUT_TOO_DEEP" as const;
  if (kind === "aliases") return "TURNOUT_ERR_INPUT_TOO_MANY_ALIASES" as const;
  return "TURNOUT_ERR_INPUT_TOO_LARGE" as const;
}

const WHAT: Record<LimitKind, (max: number) => string> = {
  bytes: (max) => `is larger than ${formatBytes(max)}`,
  depth: (max) => `nests deeper than ${max} levels`,
  keys: (max) => `has a mapping with more than ${max} keys`,
  nodes: (max) => `holds more than ${max} values`,
  scalar: (max) => `has a string longer than ${max} characters`,
  aliases: (max) => `uses more than ${max} YAML aliases`,
};

function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** The byte check alone (cheap: it is the first thing every check does). */
export function checkBytes(
  text: string,
  limits: InputLimits = INPUT_LIMITS,
  what = "the document",
): void {
  // Each UTF-16 unit is at most 3 bytes of UTF-8: most texts need no count at all.
  if (text.length * 3 <= limits.maxBytes) return;
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.maxBytes)
    throw new InputLimitError(
      "bytes",
      limits.maxBytes,
      `${what} ${WHAT.bytes(limits.maxBytes)} (${bytes} bytes)`,
    );
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

interface JsonFrame {
  /** 123 `{` or 91 `[`. */
  open: number;
  /** Commas seen: the entry index. */
  commas: number;
  /** The last key of an object, for the error's path. */
  key: string | undefined;
  expectKey: boolean;
}

/**
 * Checks a JSON text against the limits; throws an `InputLimitError` naming the limit, the
 * line and column and the path where it was first exceeded. Says nothing about syntax: the
 * parser that runs next does.
 */
export function checkJson(
  text: string,
  limits: InputLimits = INPUT_LIMITS,
  what = "the document",
): void {
  checkBytes(text, limits, what);
  const frames: JsonFrame[] = [];
  const n = text.length;
  let nodes = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (kind: LimitKind, max: number, at: number): never => {
    const column = at - lineStart + 1;
    // Depth and keys: the path of the collection at fault; a string: the path of the string.
    const path = jsonPath(kind === "depth" || kind === "keys" ? frames.slice(0, -1) : frames);
    throw new InputLimitError(
      kind,
      max,
      `${what} ${WHAT[kind](max)} (at line ${line}, column ${column}${path ? `, ${path.length > 60 ? `${path.slice(0, 60)}…` : path}` : ""})`,
      line,
      column,
      path,
    );
  };
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      lineStart = i + 1;
    } else if (c === 34) {
      const start = i;
      // The closing quote is the next one not escaped by an odd run of backslashes.
      let j = text.indexOf('"', i + 1);
      for (;;) {
        if (j === -1) {
          j = n;
          break;
        }
        let k = j - 1;
        while (text.charCodeAt(k) === 92) k--;
        if ((j - k) % 2 === 1) break;
        j = text.indexOf('"', j + 1);
      }
      if (j - start - 1 > limits.maxScalarChars) fail("scalar", limits.maxScalarChars, start);
      const top = frames[frames.length - 1];
      if (top?.expectKey) {
        top.key = text.slice(start + 1, Math.min(j, start + 101));
        top.expectKey = false;
      }
      i = j;
    } else if (c === 91 || c === 123) {
      if (++nodes > limits.maxNodes) fail("nodes", limits.maxNodes, i);
      frames.push({ open: c, commas: 0, key: undefined, expectKey: c === 123 });
      if (frames.length > limits.maxDepth) fail("depth", limits.maxDepth, i);
    } else if (c === 93 || c === 125) {
      frames.pop();
    } else if (c === 44) {
      const top = frames[frames.length - 1];
      if (top === undefined) continue;
      top.commas++;
      if (++nodes > limits.maxNodes) fail("nodes", limits.maxNodes, i);
      if (top.open === 123) {
        top.expectKey = true;
        if (top.commas + 1 > limits.maxKeys) fail("keys", limits.maxKeys, i);
      }
    }
  }
}

/** `JSON.parse` behind `checkJson`. */
export function parseJsonBounded(
  text: string,
  limits: InputLimits = INPUT_LIMITS,
  what?: string,
): unknown {
  checkJson(text, limits, what);
  return JSON.parse(text);
}

const IDENT = /^[A-Za-z_$][\w$-]*$/;

function jsonPath(frames: readonly JsonFrame[]): string {
  let out = "";
  for (const f of frames) {
    if (f.open === 91) out += `[${f.commas}]`;
    else if (f.key !== undefined)
      out += IDENT.test(f.key) ? `${out === "" ? "" : "."}${f.key}` : `[${JSON.stringify(f.key)}]`;
    if (out.length > 200) return `${out.slice(0, 200)}…`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------

interface BlockLevel {
  col: number;
  entries: number;
  /** Whether the level is a mapping (`key:` entries): only those have the key limit. */
  map: boolean;
}

/**
 * Checks a YAML text (any number of `---` documents) against the limits, like `checkJson`,
 * with the line and column where a limit was first exceeded.
 *
 * It reads the tokens of the `yaml` library's own lexer, which is linear, iterative and the
 * one the parser uses, so quoted and block scalars, comments and flow collections are seen
 * exactly as the parser will see them. Block nesting comes from the columns of the entries:
 * a line's first entry is a sibling of the level at its column or opens a deeper one, and an
 * entry after `- ` or `? ` on the same line opens another.
 */
export function checkYaml(
  text: string,
  limits: InputLimits = INPUT_LIMITS,
  what = "the document",
): void {
  checkBytes(text, limits, what);
  const block: BlockLevel[] = [];
  /** The open flow collections: entries and whether it is a mapping. */
  const flow: { entries: number; map: boolean }[] = [];
  let nodes = 0;
  let aliases = 0;
  let offset = 0;
  let lineStart = 0;
  let atLineStart = true;
  /** After `- ` or `? ` in block context: the next node on the line nests inside. */
  let nested = false;
  let atScalar = false;
  /** After a block scalar header: the next scalar is its body. */
  let blockScalar = false;

  const fail = (kind: LimitKind, max: number, at: number): never => {
    const { line, column } = positionOf(text, at);
    throw new InputLimitError(
      kind,
      max,
      `${what} ${WHAT[kind](max)} (at line ${line}, column ${column})`,
      line,
      column,
    );
  };
  const node = () => {
    if (++nodes > limits.maxNodes) fail("nodes", limits.maxNodes, offset);
  };
  const push = (col: number, map: boolean) => {
    block.push({ col, entries: 1, map });
    if (block.length + flow.length > limits.maxDepth) fail("depth", limits.maxDepth, offset);
  };
  /** An entry (`- `, `? `, or a key) in block context at `col`: a sibling, or a new level. */
  const blockEntry = (col: number, atStart: boolean, inside: boolean, map: boolean) => {
    if (atStart) {
      while (block.length > 0 && block[block.length - 1]!.col > col) block.pop();
      const top = block[block.length - 1];
      if (top !== undefined && top.col === col) {
        top.map = map;
        if (map && ++top.entries > limits.maxKeys) fail("keys", limits.maxKeys, offset);
      } else push(col, map);
    } else if (inside) push(col, map);
  };
  /**
   * A scalar or alias in block context: a key if `:` follows, else a leaf, which opens no
   * level. Where it stood is kept until the next token says which.
   */
  let key = null as { col: number; atStart: boolean; inside: boolean } | null;
  const scalarStart = () => {
    if (flow.length === 0) key = { col: offset - lineStart, atStart: atLineStart, inside: nested };
    atLineStart = false;
    nested = false;
  };

  /** Moves past a token; a scalar may span lines, and the next token may start one. */
  const advance = (source: string) => {
    const nl = source.lastIndexOf("\n");
    if (nl !== -1) {
      lineStart = offset + nl + 1;
      if (nl === source.length - 1) {
        atLineStart = flow.length === 0;
        nested = false;
      }
    }
    offset += source.length;
  };

  for (const source of new Lexer().lex(text)) {
    if (atScalar) {
      // The scalar's own text: plain, or the body of a block scalar (placed by its header).
      atScalar = false;
      if (source !== "" && !blockScalar) scalarStart();
      blockScalar = false;
      node();
      if (source.length > limits.maxScalarChars) fail("scalar", limits.maxScalarChars, offset);
      advance(source);
      continue;
    }
    const type = CST.tokenType(source);
    switch (type) {
      case "scalar":
        atScalar = true;
        continue; // a marker, not text
      case "doc-mode":
      case "flow-error-end":
        // A new document, or the lexer gave up on an unterminated flow collection.
        if (type === "doc-mode") block.length = 0;
        flow.length = 0;
        continue;
      case "newline":
        offset += source.length;
        lineStart = offset;
        atLineStart = flow.length === 0;
        nested = false;
        key = null;
        continue;
      case "doc-start":
      case "doc-end":
        block.length = 0;
        flow.length = 0;
        atLineStart = false;
        break;
      case "seq-item-ind":
      case "explicit-key-ind":
        if (flow.length === 0) {
          blockEntry(offset - lineStart, atLineStart, nested, type === "explicit-key-ind");
          atLineStart = false;
          nested = true;
          key = null;
          node();
        }
        break;
      case "map-value-ind":
        if (flow.length === 0) {
          if (key !== null) blockEntry(key.col, key.atStart, key.inside, true);
          // The value of an explicit key (`? k` then `: v` on a line of its own).
          else if (atLineStart) blockEntry(offset - lineStart, true, false, true);
          nested = key === null && atLineStart;
          atLineStart = false;
          key = null;
        }
        break;
      case "flow-seq-start":
      case "flow-map-start":
        if (flow.length === 0) scalarStart(); // `{a: 1}: v` is rare, but a key all the same
        flow.push({ entries: 1, map: type === "flow-map-start" });
        node();
        if (block.length + flow.length > limits.maxDepth) fail("depth", limits.maxDepth, offset);
        break;
      case "flow-seq-end":
      case "flow-map-end":
        flow.pop();
        break;
      case "comma": {
        const top = flow[flow.length - 1];
        if (top !== undefined) {
          node();
          if (top.map && ++top.entries > limits.maxKeys) fail("keys", limits.maxKeys, offset);
        }
        break;
      }
      case "alias":
        if (++aliases > limits.maxAliases) fail("aliases", limits.maxAliases, offset);
        scalarStart();
        node();
        break;
      case "single-quoted-scalar":
      case "double-quoted-scalar":
        scalarStart();
        node();
        if (source.length - 2 > limits.maxScalarChars)
          fail("scalar", limits.maxScalarChars, offset);
        advance(source);
        continue;
      case "block-scalar-header":
        atLineStart = false;
        nested = false;
        key = null;
        blockScalar = true;
        break;
      default:
        // space, comment, anchor, tag, directive, byte-order mark
        break;
    }
    offset += source.length;
  }
}

/** 1-based line and column of an offset (only on the way to an error). */
function positionOf(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

/** Options for the `yaml` library that go with these limits. */
export function yamlOptions(limits: InputLimits = INPUT_LIMITS) {
  return { maxAliasCount: limits.maxAliases } as const;
}
