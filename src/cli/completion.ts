/**
 * `turnout completion bash|zsh|fish`: a completion script made from the CLI's own command tree
 * (commander's), so a new command or option completes without editing this file. It completes
 * commands, subcommands, the kinds of `get` and `delete`, options, option choices, and file
 * names elsewhere; it never calls the server (a completion must not wait on the network).
 *
 *   source <(turnout completion bash)         # in ~/.bashrc
 *   source <(turnout completion zsh)          # in ~/.zshrc
 *   turnout completion fish > ~/.config/fish/completions/turnout.fish
 */
import type { Command, Option } from "commander";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** Words that complete the first argument of these commands. */
const ARGUMENT_WORDS: Record<string, string[]> = {
  get: ["services", "analysistemplates", "flags", "experiments", "segments"],
  delete: ["service", "flag", "segment", "analysistemplate"],
  completion: [...SHELLS],
};

interface Node {
  name: string;
  description: string;
  options: {
    flags: string[];
    description: string;
    /** The option takes a value (the next word). */
    value: boolean;
    choices?: readonly string[];
  }[];
  subcommands: Node[];
}

function nodeOf(cmd: Command): Node {
  return {
    name: cmd.name(),
    description: cmd.description().split("\n")[0] ?? "",
    options: cmd.options.map((o: Option) => ({
      flags: [o.long, o.short].filter((f): f is string => typeof f === "string"),
      description: o.description,
      value: o.required || o.optional,
      ...(o.argChoices ? { choices: o.argChoices } : {}),
    })),
    subcommands: cmd.commands.filter((c) => !hidden(c)).map(nodeOf),
  };
}

function hidden(c: Command): boolean {
  return (c as unknown as { _hidden?: boolean })._hidden === true;
}

export function completionScript(shell: Shell, program: Command): string {
  const root = nodeOf(program);
  if (shell === "fish") return fish(root);
  const script = bash(root);
  // zsh runs bash's completion functions through bashcompinit.
  return shell === "zsh"
    ? `# turnout completion (zsh): source <(turnout completion zsh)\nautoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n${script}`
    : `# turnout completion (bash): source <(turnout completion bash)\n${script}`;
}

const shellWord = (s: string) => s.replace(/[^A-Za-z0-9_.:/=-]/g, "");

function bash(root: Node): string {
  const globals = root.options.flatMap((o) => o.flags).join(" ");
  const valued = new Set<string>();
  const collect = (n: Node) => {
    for (const o of n.options) if (o.value) for (const f of o.flags) valued.add(f);
    n.subcommands.forEach(collect);
  };
  collect(root);
  const cases: string[] = [];
  for (const c of root.subcommands) {
    const subs = [...c.subcommands.map((s) => s.name), ...(ARGUMENT_WORDS[c.name] ?? [])];
    const opts = c.options.flatMap((o) => o.flags);
    cases.push(
      `    ${shellWord(c.name)}) subs="${subs.map(shellWord).join(" ")}"; opts="${opts.join(" ")}" ;;`,
    );
    for (const s of c.subcommands) {
      cases.push(
        `    "${shellWord(c.name)} ${shellWord(s.name)}") opts="${s.options.flatMap((o) => o.flags).join(" ")}" ;;`,
      );
    }
  }
  const choices: string[] = [];
  const seen = new Set<string>();
  const visit = (n: Node) => {
    for (const o of n.options) {
      if (!o.choices) continue;
      for (const f of o.flags) {
        if (seen.has(f)) continue;
        seen.add(f);
        choices.push(
          `    ${f}) COMPREPLY=( $(compgen -W "${o.choices.join(" ")}" -- "$cur") ); return ;;`,
        );
      }
    }
    n.subcommands.forEach(visit);
  };
  visit(root);
  return `_turnout() {
  local cur prev cmd sub i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
${choices.join("\n")}
  esac
  # The command and subcommand: the first two words that are not options.
  cmd=""; sub=""
  for (( i=1; i<COMP_CWORD; i++ )); do
    case "\${COMP_WORDS[i]}" in
      ${[...valued].join("|")}) (( i++ )) ;;
      -*) ;;
      *) if [[ -z "$cmd" ]]; then cmd="\${COMP_WORDS[i]}"; elif [[ -z "$sub" ]]; then sub="\${COMP_WORDS[i]}"; fi ;;
    esac
  done
  if [[ -z "$cmd" ]]; then
    if [[ "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "${globals}" -- "$cur") ); return; fi
    COMPREPLY=( $(compgen -W "${root.subcommands.map((c) => shellWord(c.name)).join(" ")}" -- "$cur") )
    return
  fi
  local subs="" opts=""
  case "$cmd" in
${cases.filter((c) => !c.startsWith('    "')).join("\n")}
  esac
  if [[ -n "$sub" ]]; then
    case "$cmd $sub" in
${cases.filter((c) => c.startsWith('    "')).join("\n")}
    esac
  fi
  if [[ "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "$opts ${globals}" -- "$cur") ); return; fi
  if [[ -z "$sub" && -n "$subs" ]]; then COMPREPLY=( $(compgen -W "$subs" -- "$cur") ); return; fi
  COMPREPLY=( $(compgen -f -- "$cur") )
}
complete -o filenames -F _turnout turnout
`;
}

function fish(root: Node): string {
  const q = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  const lines = [
    "# turnout completion (fish): turnout completion fish > ~/.config/fish/completions/turnout.fish",
    "complete -c turnout -f",
  ];
  const opt = (cond: string, o: Node["options"][number]) => {
    const parts = [`complete -c turnout${cond}`];
    for (const f of o.flags)
      parts.push(f.startsWith("--") ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`);
    if (o.choices) parts.push(`-x -a ${q(o.choices.join(" "))}`);
    parts.push(`-d ${q(o.description)}`);
    return parts.join(" ");
  };
  for (const o of root.options) lines.push(opt("", o));
  for (const c of root.subcommands) {
    lines.push(
      `complete -c turnout -n __fish_use_subcommand -a ${shellWord(c.name)} -d ${q(c.description)}`,
    );
    const inCmd = ` -n '__fish_seen_subcommand_from ${shellWord(c.name)}'`;
    for (const o of c.options) lines.push(opt(inCmd, o));
    for (const s of c.subcommands) {
      lines.push(`complete -c turnout${inCmd} -a ${shellWord(s.name)} -d ${q(s.description)}`);
      const inSub = ` -n '__fish_seen_subcommand_from ${shellWord(c.name)}; and __fish_seen_subcommand_from ${shellWord(s.name)}'`;
      for (const o of s.options) lines.push(opt(inSub, o));
    }
    for (const w of ARGUMENT_WORDS[c.name] ?? []) lines.push(`complete -c turnout${inCmd} -a ${w}`);
    if (["apply", "validate"].includes(c.name)) lines.push(`complete -c turnout${inCmd} -F`);
  }
  return `${lines.join("\n")}\n`;
}
