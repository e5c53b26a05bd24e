/**
 * The command section of docs/reference/cli.md, read from the CLI's own commander tree
 * (src/cli/main.ts): every command, argument and option with its description, default and
 * allowed values, as `--help` shows them. A new command or option is documented by running
 * `npm run docs:reference`; `reference.test.ts` fails until then.
 */
import type { Argument, Command, Option } from "commander";
import { cell, code, table } from "./markdown.js";

/** The CLI's command tree, built without running it (main.ts parses only as the binary). */
export async function cliProgram(): Promise<Command> {
  const url = new URL("../cli/main.js?commands", import.meta.url).href;
  return ((await import(url)) as typeof import("../cli/main.js")).program;
}

function hidden(c: Command): boolean {
  return (c as unknown as { _hidden?: boolean })._hidden === true;
}

/** Every visible command under `root`, depth first, with its full name. */
export function commandsOf(root: Command): { name: string; cmd: Command }[] {
  const out: { name: string; cmd: Command }[] = [];
  const walk = (c: Command, prefix: string) => {
    for (const sub of c.commands) {
      if (hidden(sub)) continue;
      const name = `${prefix} ${sub.name()}`;
      out.push({ name, cmd: sub });
      walk(sub, name);
    }
  };
  walk(root, root.name());
  return out;
}

/** GitHub's anchor of a heading that reads `name` in backticks. */
export function anchorOf(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replaceAll(" ", "-");
}

/** A description with its notes, as `--help` words it (lower case, no full stop). */
function described(description: string, notes: string[]): string {
  return cell([description.trim(), ...notes].filter((s) => s !== "").join("; "));
}

function shown(value: unknown): string {
  return code(typeof value === "string" ? value : JSON.stringify(value));
}

function optionRow(o: Option): string[] {
  const notes: string[] = [];
  if (o.argChoices) notes.push(`one of ${o.argChoices.map((c) => code(c)).join(", ")}`);
  if (o.variadic) notes.push("one or more values");
  if (o.mandatory) notes.push("required");
  return [
    code(o.flags),
    o.defaultValue === undefined ? "" : shown(o.defaultValueDescription ?? o.defaultValue),
    described(o.description, notes),
  ];
}

function argumentRow(a: Argument): string[] {
  const usage = a.required
    ? `<${a.name()}${a.variadic ? "..." : ""}>`
    : `[${a.name()}${a.variadic ? "..." : ""}]`;
  const notes: string[] = [];
  if (a.argChoices) notes.push(`one of ${a.argChoices.map((c) => code(c)).join(", ")}`);
  if (a.defaultValue !== undefined) notes.push(`default ${shown(a.defaultValue)}`);
  return [code(usage), a.required ? "yes" : "no", described(a.description, notes)];
}

function options(c: Command): Option[] {
  return c.options.filter((o) => !o.hidden);
}

/** The generated section: global options, an index of commands, then each command. */
export function renderCommands(program: Command): string {
  const commands = commandsOf(program);
  const out: string[] = [];
  out.push("### Global options", "");
  out.push(
    `Given before the command (\`${program.name()} --server URL status web\`), they apply to every command.`,
    "",
  );
  out.push(table(["option", "default", "description"], options(program).map(optionRow)), "");
  out.push("### Commands at a glance", "");
  out.push(
    table(
      ["command", "what it does"],
      commands.map(({ name, cmd }) => [
        `[${code(name)}](#${anchorOf(name)})`,
        cell(cmd.description()),
      ]),
    ),
    "",
  );
  for (const { name, cmd } of commands) {
    out.push(`### ${code(name)}`, "");
    out.push(cmd.description().replace(/\s*\n\s*/g, " "), "");
    out.push("```", `${name} ${cmd.usage()}`, "```", "");
    const subs = cmd.commands.filter((s) => !hidden(s));
    if (subs.length > 0) {
      out.push(
        `Subcommands: ${subs.map((s) => `[${code(s.name())}](#${anchorOf(`${name} ${s.name()}`)})`).join(", ")}.`,
        "",
      );
    }
    if (cmd.registeredArguments.length > 0)
      out.push(
        table(["argument", "required", "description"], cmd.registeredArguments.map(argumentRow)),
        "",
      );
    const opts = options(cmd);
    if (opts.length > 0)
      out.push(table(["option", "default", "description"], opts.map(optionRow)), "");
  }
  return out.join("\n").trimEnd();
}
