/**
 * Text (YAML or JSON) and files -> validated resources, with every problem reported at once and
 * each located by file, document, field path, line and column.
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseAllDocuments,
  parseDocument,
  stringify,
} from "yaml";
import type { Resource, ServiceResource } from "../core/model.js";
import type { FieldError } from "../errors.js";
import {
  checkJson,
  checkYaml,
  INPUT_LIMITS,
  InputLimitError,
  yamlOptions,
} from "./input-limits.js";
import { LIMITS } from "./limits.js";
import {
  type DocumentIssue,
  formatPath,
  type PathSegment,
  validateDocument,
} from "./schema/index.js";

export type ResourceFormat = "yaml" | "json";

export interface LoadResult {
  /** The valid resources, in file and document order, with defaults applied. */
  resources: Resource[];
  /** Every problem found; a resource with a problem of its own is not in `resources`. */
  errors: FieldError[];
  /**
   * Puts file, document, line and column on errors found later about these resources (by the
   * API at apply: a missing template, a port taken by a stored service), as `validate` gives
   * them for its own. Errors about other resources, or already placed, are returned as they are.
   */
  place(errors: readonly FieldError[]): FieldError[];
}

export interface ParseOptions {
  /** Named in errors. Also picks the format when `format` is "auto" (.json is JSON). */
  file?: string;
  /** "auto" (default): by the file's extension, else JSON when the text starts with { or [. */
  format?: ResourceFormat | "auto";
}

type Position = { line: number; column: number };
type Locate = (path: readonly PathSegment[], atKey?: boolean) => Position | undefined;

/** A valid resource and where it came from, so later checks can point at it. */
interface Entry {
  resource: Resource;
  file?: string;
  document?: number;
  locate?: Locate;
}

interface ParsedText {
  entries: Entry[];
  errors: FieldError[];
}

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/**
 * Parses and validates the resources in one YAML (several `---` documents) or JSON (an object
 * or an array of objects) text, then checks them as a set (duplicate names, port clashes).
 *
 * @example
 * const { resources, errors } = parseResources(text, { file: "fraud.yaml" });
 * for (const e of errors) console.error(formatFieldError(e));
 */
export function parseResources(text: string, opts: ParseOptions = {}): LoadResult {
  const parsed = parseText(text, opts);
  return finish(parsed.entries, parsed.errors);
}

/** `spec.steps[2].setWeight` or `versions["1.0"]` -> its segments (the inverse of formatPath). */
export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  const re = /\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([A-Za-z_][A-Za-z0-9_-]*)/gy;
  let m: RegExpExecArray | null = re.exec(path);
  while (m !== null) {
    if (m[1] !== undefined) out.push(Number(m[1]));
    else if (m[2] !== undefined) out.push(JSON.parse(m[2]) as string);
    else if (m[3] !== undefined) out.push(m[3]);
    if (re.lastIndex >= path.length) break;
    m = re.exec(path);
  }
  return out;
}

export interface LoadPathsOptions {
  /**
   * Read the subdirectories of a directory too (`apply -R`). Without it a directory gives its own
   * .yaml/.yml/.json files only, as kubectl reads one: `apply -f .` in a project must not take
   * every package.json below it for a resource.
   */
  recursive?: boolean;
  /** Where the path `-` reads from (the CLI passes process.stdin); without it `-` is a file name. */
  stdin?: AsyncIterable<Buffer | string>;
}

/** How errors name the text read from stdin (`-f -`), as `file` of a FieldError. */
export const STDIN_NAME = "<stdin>";

/**
 * Loads a file, or the .yaml/.yml/.json files of a directory (in sorted order, skipping hidden
 * entries; its subdirectories too, skipping node_modules, with `recursive`), and checks all of
 * them together as one set.
 */
export async function loadPath(path: string, opts: LoadPathsOptions = {}): Promise<LoadResult> {
  return loadPaths([path], opts);
}

/**
 * Like `loadPath` for several files or directories (`apply -f a.yaml -f dir/`), checked as one
 * set, so a port clash between two of them still points at the file and line. With
 * `opts.stdin`, the path `-` is the text read from it (once).
 */
export async function loadPaths(
  paths: readonly string[],
  opts: LoadPathsOptions = {},
): Promise<LoadResult> {
  const files: string[] = [];
  const errors: FieldError[] = [];
  let stdinSeen = false;
  for (const path of paths) {
    if (path === "-" && opts.stdin !== undefined) {
      if (stdinSeen)
        errors.push({
          file: STDIN_NAME,
          path: "",
          message: "given twice: stdin is read only once",
        });
      else files.push(path);
      stdinSeen = true;
      continue;
    }
    try {
      const st = await stat(path);
      const found = st.isDirectory()
        ? await listResourceFiles(path, opts.recursive === true)
        : [path];
      if (found.length === 0) {
        const sub = !opts.recursive && (await hasSubdirectories(path));
        errors.push({
          file: path,
          path: "",
          message: `the directory holds no .yaml, .yml or .json files${sub ? " (its subdirectories are read only with -R, --recursive)" : ""}`,
        });
      }
      files.push(...found);
    } catch (err) {
      errors.push({ file: path, path: "", message: fsMessage(err) });
    }
  }
  const entries: Entry[] = [];
  for (const path of files) {
    const fromStdin = path === "-" && opts.stdin !== undefined;
    const file = fromStdin ? STDIN_NAME : path;
    let text: string;
    try {
      text =
        fromStdin && opts.stdin !== undefined
          ? await readStreamBounded(opts.stdin, INPUT_LIMITS.maxBytes)
          : await readBounded(path, INPUT_LIMITS.maxBytes);
    } catch (err) {
      if (err instanceof InputLimitError) errors.push(limitError(err, file));
      else errors.push({ file, path: "", message: fsMessage(err) });
      continue;
    }
    const parsed = parseText(text, { file });
    entries.push(...parsed.entries);
    errors.push(...parsed.errors);
  }
  return finish(entries, errors);
}

/**
 * Checks resources as a set: each is valid on its own (so resources built in code are checked
 * too), no kind+name appears twice, and no two Services listen on the same port and host.
 * `existing` are resources already stored: a resource of the same kind and name in
 * `resources` replaces its stored one, every other stored Service keeps its port.
 */
export function crossCheck(
  resources: readonly Resource[],
  existing: readonly Resource[] = [],
): FieldError[] {
  const errors: FieldError[] = [];
  for (const resource of resources) {
    for (const issue of validateDocument(resource).issues) {
      errors.push({
        resource: labelOf(resource),
        path: formatPath(issue.path),
        message: issue.message,
      });
    }
  }
  errors.push(
    ...checkSet(
      resources.map((resource) => ({ resource })),
      existing,
    ).errors,
  );
  return errors;
}

/**
 * A listener this Turnout holds besides its Services' (the API and dashboard, when a router runs
 * in the same process), which no Service may take.
 */
export interface ReservedListener {
  host: string;
  port: number;
  /** Who holds it, for the message ("the Turnout API"). */
  what: string;
}

/**
 * Refuses each Service whose listener would take a reserved one's port: its router would fail
 * to bind it (EADDRINUSE) and serve nothing. `routerHost` is the address the router binds
 * instead of the spec's host (`--router-address`). An attached HAProxy (`runtimeApi`) listens
 * where its owner configured it, not on `spec.listen`: it is not checked.
 */
export function checkReservedListeners(
  resources: readonly Resource[],
  reserved: readonly ReservedListener[],
  opts: { routerHost?: string } = {},
): FieldError[] {
  const errors: FieldError[] = [];
  for (const r of resources) {
    if (r.kind !== "Service") continue;
    const t = r.spec.traffic;
    if (t !== undefined && "haproxy" in t && t.haproxy.runtimeApi !== undefined) continue;
    const { port } = r.spec.listen;
    const host = opts.routerHost ?? r.spec.listen.host;
    const taken = reserved.find((x) => x.port === port && hostsOverlap(x.host, host));
    if (taken === undefined) continue;
    errors.push({
      resource: labelOf(r),
      path: "spec.listen.port",
      message: `port ${port} on ${host} is taken by ${taken.what} (listening on ${taken.host}:${taken.port}); choose another port`,
    });
  }
  return errors;
}

/** Resources as YAML documents separated by `---`, or as a JSON array (for `get -o yaml|json`). */
export function serializeResources(resources: readonly Resource[], format: ResourceFormat): string {
  if (format === "json") return `${JSON.stringify(resources, null, 2)}\n`;
  // lineWidth 0: folding long strings (commands, URLs) would make the output harder to diff.
  return resources.map((r) => stringify(r, { lineWidth: 0 })).join("---\n");
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

function parseText(raw: string, opts: ParseOptions): ParsedText {
  // A UTF-8 BOM is invisible in editors, and JSON.parse rejects it.
  const text = raw.startsWith("\uFEFF") ? raw.slice(1) : raw;
  const file = opts.file;
  const format = pickFormat(text, opts);
  if (format === "yaml") return parseYaml(text, file);
  return parseJson(text, file, format === "probably-json");
}

/** "probably-json": no format given and no telling extension, but the text starts like JSON. */
function pickFormat(text: string, opts: ParseOptions): ResourceFormat | "probably-json" {
  if (opts.format === "yaml" || opts.format === "json") return opts.format;
  const file = opts.file?.toLowerCase() ?? "";
  if (file.endsWith(".json")) return "json";
  if (file.endsWith(".yaml") || file.endsWith(".yml")) return "yaml";
  return /^\s*[[{]/.test(text) ? "probably-json" : "yaml";
}

function parseYaml(text: string, file: string | undefined): ParsedText {
  try {
    checkYaml(text);
  } catch (err) {
    if (err instanceof InputLimitError) return { entries: [], errors: [limitError(err, file)] };
    throw err;
  }
  const lineCounter = new LineCounter();
  const docs = Array.from(
    parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true }),
  ) as Document.Parsed[];
  const tooMany = tooManyDocuments(docs.filter((d) => !isEmptyDocument(d)).length, file);
  if (tooMany) return { entries: [], errors: [tooMany] };
  const entries: Entry[] = [];
  const errors: FieldError[] = [];
  docs.forEach((doc, document) => {
    const at = (pos: Position | undefined) => pos ?? {};
    if (doc.errors.length > 0) {
      // The values of a document with syntax errors are guesses; validating them would only
      // add confusing follow-up errors.
      for (const e of doc.errors) {
        const start = e.linePos?.[0];
        errors.push({
          ...(file !== undefined ? { file } : {}),
          document,
          path: "",
          message: `YAML syntax error: ${yamlMessage(e.message)}`,
          ...at(start ? { line: start.line, column: start.col } : undefined),
        });
      }
      return;
    }
    if (isEmptyDocument(doc)) return; // a stray `---`, or only comments
    const locate = locator(doc.contents, doc, lineCounter);
    let value: unknown;
    try {
      value = doc.toJS(yamlOptions());
    } catch (err) {
      // Alias expansion bombs ("billion laughs"): few aliases, each naming a large node.
      const bomb = /alias/i.test((err as Error).message);
      errors.push({
        ...(file !== undefined ? { file } : {}),
        document,
        path: "",
        message: bomb
          ? `YAML error: the aliases would expand to more than ${INPUT_LIMITS.maxAliases} nodes (an alias bomb)`
          : `YAML error: ${(err as Error).message}`,
        ...at(locate([])),
        ...(bomb ? { code: "TURNOUT_ERR_INPUT_TOO_MANY_ALIASES" as const } : {}),
      });
      return;
    }
    validateInto(value, { file, document, locate }, entries, errors);
  });
  return { entries, errors };
}

function parseJson(text: string, file: string | undefined, yamlFallback: boolean): ParsedText {
  if (text.trim() === "") return { entries: [], errors: [] };
  let value: unknown;
  try {
    checkJson(text);
  } catch (err) {
    if (err instanceof InputLimitError) return { entries: [], errors: [limitError(err, file)] };
    throw err;
  }
  try {
    value = JSON.parse(text);
  } catch (err) {
    // Text that merely starts with "{" may be a YAML flow mapping; try that before giving up.
    if (yamlFallback) {
      const asYaml = parseYaml(text, file);
      if (asYaml.errors.every((e) => !e.message.startsWith("YAML"))) return asYaml;
    }
    return { entries: [], errors: [jsonSyntaxError(err as Error, text, file)] };
  }
  // JSON is YAML, so the YAML parser gives node positions; the values come from JSON.parse,
  // which is the authority on what JSON means.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true }) as Document.Parsed;
  const entries: Entry[] = [];
  const errors: FieldError[] = [];
  // JSON.parse lets the last of two equal keys win without a word; that hides mistakes.
  const duplicates = doc.errors.filter((e) => e.code === "DUPLICATE_KEY");
  if (duplicates.length > 0) {
    for (const e of duplicates) {
      const start = e.linePos?.[0];
      errors.push({
        ...(file !== undefined ? { file } : {}),
        document: 0,
        path: "",
        message: "JSON error: a key appears twice in the same object",
        ...(start ? { line: start.line, column: start.col } : {}),
      });
    }
    return { entries, errors };
  }
  const root = doc.errors.length === 0 ? doc.contents : null;
  const tooMany = Array.isArray(value) ? tooManyDocuments(value.length, file) : null;
  if (tooMany) return { entries, errors: [tooMany] };
  if (Array.isArray(value)) {
    value.forEach((item, document) => {
      const node = root && isSeq(root) ? (root.items[document] as Node | undefined) : undefined;
      validateInto(
        item,
        { file, document, locate: locator(node ?? null, doc, lineCounter) },
        entries,
        errors,
      );
    });
  } else {
    validateInto(
      value,
      { file, document: 0, locate: locator(root, doc, lineCounter) },
      entries,
      errors,
    );
  }
  return { entries, errors };
}

function validateInto(
  value: unknown,
  where: { file: string | undefined; document: number; locate: Locate },
  entries: Entry[],
  errors: FieldError[],
): void {
  const result = validateDocument(value);
  if (result.resource) {
    entries.push({
      resource: result.resource,
      ...(where.file !== undefined ? { file: where.file } : {}),
      document: where.document,
      locate: where.locate,
    });
    return;
  }
  const located = result.issues.map((issue) => ({
    issue,
    pos: where.locate(issue.path, issue.atKey),
  }));
  // In file order, which is how a person fixes them; zod's order follows the schema instead.
  located.sort(
    (a, b) =>
      (a.pos?.line ?? 0) - (b.pos?.line ?? 0) || (a.pos?.column ?? 0) - (b.pos?.column ?? 0),
  );
  for (const { issue, pos } of located) {
    errors.push(toFieldError(issue, where, result.label, pos));
  }
}

function toFieldError(
  issue: DocumentIssue,
  where: { file?: string | undefined; document?: number },
  label: string | undefined,
  pos: Position | undefined,
): FieldError {
  return {
    ...(where.file !== undefined ? { file: where.file } : {}),
    ...(where.document !== undefined ? { document: where.document } : {}),
    ...(label !== undefined ? { resource: label } : {}),
    path: formatPath(issue.path),
    message: issue.message,
    ...(pos ? { line: pos.line, column: pos.column } : {}),
  };
}

/** The parser gives an empty document a zero-width null scalar; a written `null` has width. */
/** One error for the whole file: a thousand resources is a fleet; more is a generator gone wrong. */
function tooManyDocuments(count: number, file: string | undefined): FieldError | null {
  const max = LIMITS.DOCUMENTS_PER_FILE.max;
  if (count <= max) return null;
  return {
    ...(file !== undefined ? { file } : {}),
    document: max,
    path: "",
    message: `${count} documents in one file; at most ${max} (limit DOCUMENTS_PER_FILE): split the file, or apply a directory`,
    code: "TURNOUT_ERR_INPUT_TOO_LARGE",
  };
}

function isEmptyDocument(doc: Document.Parsed): boolean {
  const c = doc.contents;
  if (c === null) return true;
  return isScalar(c) && c.value === null && c.range[0] === c.range[1];
}

/** "Nested mappings are not allowed ... at line 3, column 7:\n\n<excerpt>" -> the first clause. */
function yamlMessage(message: string): string {
  const first = message.split("\n")[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?\s*$/, "");
}

function jsonSyntaxError(err: Error, text: string, file: string | undefined): FieldError {
  // V8: "Unexpected token } in JSON at position 42" (newer: "... (line 3 column 5)").
  const m = /at position (\d+)/.exec(err.message);
  const offset = m ? Number(m[1]) : text.length;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  const message = err.message
    .replace(/\s*in JSON at position \d+.*$/, "")
    .replace(/\s*\(line \d+ column \d+\)\s*$/, "");
  return {
    ...(file !== undefined ? { file } : {}),
    document: 0,
    path: "",
    message: `JSON syntax error: ${message}`,
    line,
    column,
  };
}

// ---------------------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------------------

/**
 * Maps a field path to a position in the source: the value for scalars, the key for collections
 * (a wrong `runtime:` reads best at `runtime:`, not at its first child) and for unknown keys, and
 * the nearest existing parent when the field is missing.
 */
function locator(root: Node | null, doc: Document.Parsed, lineCounter: LineCounter): Locate {
  const pos = (node: Node | null | undefined): Position | undefined => {
    const offset = node?.range?.[0];
    if (offset === undefined) return undefined;
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  return (path, atKey = false) => {
    let node: unknown = root;
    let best = pos(root);
    for (let i = 0; i < path.length; i++) {
      if (isAlias(node)) node = node.resolve(doc);
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => keyString(p.key) === String(seg));
        if (!pair) break;
        const key = pair.key as Node | null;
        const value = pair.value as Node | null;
        best = (last && atKey) || !isScalar(value) ? (pos(key) ?? best) : (pos(value) ?? best);
        node = value;
      } else if (isSeq(node) && typeof seg === "number") {
        const item = node.items[seg] as Node | undefined;
        if (!item) break;
        best = pos(item) ?? best;
        node = item;
      } else break;
    }
    return best;
  };
}

function keyString(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

// ---------------------------------------------------------------------------------------
// Set checks
// ---------------------------------------------------------------------------------------

function labelOf(r: Resource): string {
  return `${r.kind}/${r.metadata.name}`;
}

function whereOf(e: Entry): string {
  if (e.file !== undefined)
    return `${e.file}${e.document !== undefined ? ` document ${e.document + 1}` : ""}`;
  return e.document !== undefined ? `document ${e.document + 1}` : "";
}

// A wildcard listener takes the port on every address, so it clashes with any host; "localhost"
// binds the loopback addresses.
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", ""]);
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "::1", "[::1]"]);
const hostsOverlap = (a: string, b: string) =>
  a === b ||
  WILDCARD_HOSTS.has(a) ||
  WILDCARD_HOSTS.has(b) ||
  (a === "localhost" && LOOPBACK_HOSTS.has(b)) ||
  (b === "localhost" && LOOPBACK_HOSTS.has(a));

/** Adds the set checks and leaves out the resources they reject. */
function finish(entries: readonly Entry[], errors: FieldError[]): LoadResult {
  const set = checkSet(entries, []);
  const kept = entries.filter((e) => !set.rejected.has(e));
  const byLabel = new Map(kept.map((e) => [labelOf(e.resource), e]));
  return {
    resources: kept.map((e) => e.resource),
    errors: [...errors, ...set.errors],
    place: (found) =>
      found.map((err) => {
        const e = err.resource !== undefined ? byLabel.get(err.resource) : undefined;
        if (!e || err.file !== undefined) return err;
        const pos = e.locate?.(parsePath(err.path));
        return {
          ...(e.file !== undefined ? { file: e.file } : {}),
          ...(e.document !== undefined ? { document: e.document } : {}),
          ...err,
          ...(pos && err.line === undefined ? { line: pos.line, column: pos.column } : {}),
        };
      }),
  };
}

function checkSet(
  entries: readonly Entry[],
  existing: readonly Resource[],
): { errors: FieldError[]; rejected: Set<Entry> } {
  const errors: FieldError[] = [];
  const rejected = new Set<Entry>();
  const err = (e: Entry, path: PathSegment[], message: string) => {
    rejected.add(e);
    errors.push(toFieldError({ path, message }, e, labelOf(e.resource), e.locate?.(path)));
  };

  // 1. Duplicates: the later one is the error, pointing at the earlier.
  const firstByKey = new Map<string, Entry>();
  const unique: Entry[] = [];
  for (const e of entries) {
    const key = labelOf(e.resource);
    const first = firstByKey.get(key);
    if (first) {
      const where = whereOf(first);
      err(
        e,
        ["metadata", "name"],
        `duplicate ${e.resource.kind} "${e.resource.metadata.name}": also defined ${where ? `at ${where}` : "earlier in the same set"}`,
      );
    } else {
      firstByKey.set(key, e);
      unique.push(e);
    }
  }

  // 2. Ports: each new Service against the earlier new ones and the stored ones it does not replace.
  const taken: { svc: ServiceResource; where: string }[] = existing
    .filter((r): r is ServiceResource => r.kind === "Service" && !firstByKey.has(labelOf(r)))
    .map((svc) => ({ svc, where: "already applied" }));
  for (const e of unique) {
    if (e.resource.kind !== "Service") continue;
    const svc = e.resource;
    const { port, host } = svc.spec.listen;
    const clash = taken.find(
      (t) => t.svc.spec.listen.port === port && hostsOverlap(t.svc.spec.listen.host, host),
    );
    if (clash) {
      const other = clash.svc;
      err(
        e,
        ["spec", "listen", "port"],
        `port ${port} on ${host} is already taken by Service "${other.metadata.name}" (listening on ${other.spec.listen.host}:${other.spec.listen.port}${clash.where ? `, ${clash.where}` : ""})`,
      );
    }
    taken.push({ svc, where: whereOf(e) });
  }
  return { errors, rejected };
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

const RESOURCE_FILE = /\.(ya?ml|json)$/i;

async function listResourceFiles(dir: string, recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const d of entries) {
    if (d.name.startsWith(".") || d.name === "node_modules") continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) {
      if (recursive) out.push(...(await listResourceFiles(p, true)));
    } else if (d.isFile() && RESOURCE_FILE.test(d.name)) out.push(p);
  }
  return out;
}

async function hasSubdirectories(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.some((d) => d.isDirectory() && !d.name.startsWith("."));
}

const tooLarge = (max: number, what: string) =>
  new InputLimitError(
    "bytes",
    max,
    `${what} is larger than ${max / (1024 * 1024)} MiB; split it into several files`,
  );

/** Stdin's text (`-f -`), refused once it passes `max` bytes, like a file's. */
async function readStreamBounded(
  stream: AsyncIterable<Buffer | string>,
  max: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const buf = typeof c === "string" ? Buffer.from(c) : c;
    chunks.push(buf);
    size += buf.length;
    if (size > max) throw tooLarge(max, "the input");
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/**
 * A file's text, refused once it passes `max` bytes: a stat would not do, since a FIFO,
 * `/dev/zero` or `<(...)` has no size.
 */
async function readBounded(file: string, max: number): Promise<string> {
  const fh = await open(file, "r");
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, max + 1 - size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      size += bytesRead;
      if (size > max) throw tooLarge(max, "the file");
    }
    return Buffer.concat(chunks, size).toString("utf8");
  } finally {
    await fh.close();
  }
}

function limitError(err: InputLimitError, file: string | undefined): FieldError {
  return {
    ...(file !== undefined ? { file } : {}),
    path: err.details.path ?? "",
    message: err.message,
    ...(err.line !== undefined ? { line: err.line, column: err.column ?? 1 } : {}),
    code: err.code,
  };
}

function fsMessage(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file or directory";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return (err as Error).message;
}
