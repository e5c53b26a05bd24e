/**
 * docs/reference/ is in step with the code: each generated section is what
 * `npm run docs:reference` would write now (the CLI's commander tree, the error table, the
 * event catalogue), the CLI page names every command, option, environment variable and exit
 * code the code has, the index links every page, and every relative link in README.md and docs/
 * leads somewhere.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { cliProgram, commandsOf } from "./cli.js";
import { REFERENCE_PAGES, renderPage } from "./pages.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && name !== "testing.ts")
      out.push(p);
  }
  return out;
}

function markdownFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) markdownFiles(p, out);
    else if (name.endsWith(".md")) out.push(p);
  }
  return out;
}

/** GitHub's anchors of a page's headings (fenced code left out). */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const m = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (m)
      anchors.add(
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\p{L}\p{N}_\- ]/gu, "")
          .replaceAll(" ", "-"),
      );
  }
  return anchors;
}

/** The code of a file without its comments (a variable named in a comment is not read). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

describe("docs/reference", () => {
  for (const page of REFERENCE_PAGES) {
    it(`${page.path} is what \`npm run docs:reference\` writes`, async () => {
      assert.ok(
        (await renderPage(ROOT, page)) === read(page.path),
        `${page.path} is out of date: run \`npm run docs:reference\` and commit it`,
      );
    });
  }

  it("cli.md has a section for every command and a row for every option", async () => {
    const doc = read("docs/reference/cli.md");
    const commands = commandsOf(await cliProgram());
    assert.ok(commands.length > 20, `only ${commands.length} commands found`);
    for (const { name, cmd } of commands) {
      const at = doc.indexOf(`\n### \`${name}\`\n`);
      assert.ok(at >= 0, `no section for ${name}`);
      const section = doc.slice(at, doc.indexOf("\n### ", at + 1));
      for (const o of cmd.options.filter((o) => !o.hidden))
        assert.ok(section.includes(`| \`${o.flags}\``), `${name}: no row for ${o.flags}`);
      for (const a of cmd.registeredArguments)
        assert.ok(section.includes(a.name()), `${name}: no row for the argument ${a.name()}`);
    }
  });

  it("cli.md documents every TURNOUT_* environment variable the code reads", () => {
    const doc = read("docs/reference/cli.md");
    const env = doc.slice(doc.indexOf("## Environment"), doc.indexOf("## Commands"));
    const read_ = new Map<string, string>();
    for (const file of sourceFiles(join(ROOT, "src"))) {
      const code = withoutComments(readFileSync(file, "utf8"));
      for (const m of code.matchAll(/\benv\.(TURNOUT_[A-Z0-9_]+)/g))
        read_.set(m[1]!, relative(ROOT, file));
    }
    assert.ok(read_.has("TURNOUT_DATA_DIR"), "the scan finds the variables read");
    for (const [name, file] of read_)
      assert.ok(env.includes(`\`${name}\``), `${name} (read in ${file}) is not in cli.md's table`);
  });

  it("cli.md explains every exit code the CLI uses", () => {
    const doc = read("docs/reference/cli.md");
    const table = doc.slice(doc.indexOf("## Exit codes"), doc.indexOf("## Environment"));
    const documented = new Set([...table.matchAll(/^\| (\d+) +\|/gm)].map((m) => Number(m[1])));
    const used = new Set<number>();
    for (const file of sourceFiles(join(ROOT, "src/cli"))) {
      const code = withoutComments(readFileSync(file, "utf8"));
      for (const m of code.matchAll(/process\.exit\((\d+)\)|process\.exitCode = (\d+)/g))
        used.add(Number(m[1] ?? m[2]));
    }
    // reportError's answers (main.ts): 0 for --help and --version, 1, and 2 for usage.
    const report = read("src/cli/main.ts").split("function reportError")[1] ?? "";
    for (const m of report.matchAll(/(?:return|\?|:) (\d)\b/g)) used.add(Number(m[1]));
    assert.deepEqual(
      [...used].sort((a, b) => a - b),
      [0, 1, 2, 130],
    );
    for (const c of used) assert.ok(documented.has(c), `exit code ${c} is not in cli.md`);
  });

  it("every relative link in README.md and docs/ names a file, and a heading there when it has an anchor", () => {
    // The README links to the guides instead of repeating them, so its links are checked too.
    const pages = [join(ROOT, "README.md"), ...markdownFiles(join(ROOT, "docs"))];
    const broken: string[] = [];
    for (const page of pages) {
      const text = readFileSync(page, "utf8");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!;
        if (/^[a-z]+:/.test(link)) continue;
        const [path = "", anchor] = link.split("#");
        const target = path === "" ? page : resolve(dirname(page), path);
        const where = `${relative(ROOT, page)}: ${link}`;
        if (!existsSync(target)) broken.push(`${where} (no such file)`);
        else if (anchor && target.endsWith(".md") && !anchorsOf(target).has(anchor))
          broken.push(`${where} (no such heading)`);
      }
    }
    assert.ok(pages.length >= 18, `only ${pages.length} pages found`);
    assert.deepEqual(broken, []);
  });

  it("the index links every page of docs/reference", () => {
    const index = read("docs/reference/README.md");
    for (const name of readdirSync(join(ROOT, "docs/reference")))
      if (name !== "README.md")
        assert.ok(index.includes(`](${name})`), `README.md: no link to ${name}`);
  });
});
