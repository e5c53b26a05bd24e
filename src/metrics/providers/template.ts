/**
 * Argument templating of metric sources: `{{args.NAME}}`, `{{service}}`, `{{candidate}}` and
 * `{{baseline}}` (spaces inside the braces allowed) are replaced in the fields listed in
 * `resolveSource`. Anything else inside `{{ }}` is an error, and so is an argument the request
 * does not carry: a typo must not turn into an empty string in a query.
 *
 * Values are inserted as they are, without escaping for PromQL, URLs or JSON: the arguments come
 * from the operator's own resources, and escaping for one context would be wrong for another.
 * Commands get them as argv elements (no shell), so no quoting is needed there.
 */
import {
  type CommandSourceSpec,
  invalid,
  type MeasureRequest,
  type PrometheusSourceSpec,
  type ProviderSourceSpec,
  providerKind,
  type WebSourceSpec,
} from "./provider.js";

export interface TemplateVars {
  args: Record<string, string>;
  service: string;
  candidate: string;
  baseline?: string;
}

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

export function templateVars(req: MeasureRequest): TemplateVars {
  return {
    args: req.args,
    service: req.service,
    candidate: req.candidate,
    ...(req.baseline !== undefined ? { baseline: req.baseline } : {}),
  };
}

/**
 * Replaces the placeholders in `text`; throws a `TurnoutError` at `path` naming every missing
 * argument (or unknown placeholder).
 *
 * @example renderTemplate('rate(x{svc="{{args.service}}"}[1m])', vars, "source.prometheus.query")
 */
export function renderTemplate(text: string, vars: TemplateVars, path: string): string {
  const missing: string[] = [];
  const unknown: string[] = [];
  const out = text.replace(PLACEHOLDER, (whole, name: string) => {
    if (name.startsWith("args.")) {
      const arg = name.slice("args.".length);
      if (arg !== "" && Object.hasOwn(vars.args, arg)) return vars.args[arg]!;
      missing.push(arg);
      return whole;
    }
    if (name === "service") return vars.service;
    if (name === "candidate") return vars.candidate;
    if (name === "baseline") {
      if (vars.baseline !== undefined) return vars.baseline;
      missing.push("baseline");
      return whole;
    }
    unknown.push(whole);
    return whole;
  });
  if (unknown.length > 0) {
    throw invalid(
      path,
      `unknown placeholder ${unknown.join(", ")}; expected {{args.NAME}}, {{service}}, {{candidate}} or {{baseline}}`,
    );
  }
  if (missing.length > 0) {
    const names = [...new Set(missing)];
    const argNames = names.filter((n) => n !== "baseline");
    const given = Object.keys(vars.args);
    const parts: string[] = [];
    if (argNames.length > 0) {
      parts.push(
        `missing argument${argNames.length > 1 ? "s" : ""} ${argNames.map((n) => JSON.stringify(n)).join(", ")} (args given: ${given.length > 0 ? given.join(", ") : "none"})`,
      );
    }
    if (names.includes("baseline")) parts.push("{{baseline}} is used but there is no baseline");
    throw invalid(path, parts.join("; "));
  }
  return out;
}

/**
 * The source with every templated field rendered: prometheus `query`; web `url`, header values
 * and `body`; every element of a command's argv. Builtin sources have nothing to template.
 * The analysis engine may call this when an analysis starts, to fail on a missing argument
 * before the first measurement; providers call it on every measurement.
 */
export function resolveSource<S extends ProviderSourceSpec>(
  source: S,
  vars: TemplateVars,
  path = "source",
): S {
  const kind = providerKind(source, path);
  const s = source as ProviderSourceSpec;
  switch (kind) {
    case "builtin":
      return source;
    case "prometheus": {
      const p = (s as { prometheus: PrometheusSourceSpec }).prometheus;
      return {
        prometheus: { ...p, query: renderTemplate(p.query, vars, `${path}.prometheus.query`) },
      } as S;
    }
    case "web": {
      const w = (s as { web: WebSourceSpec }).web;
      const headers =
        w.headers === undefined
          ? undefined
          : Object.fromEntries(
              Object.entries(w.headers).map(([k, v]) => [
                k,
                renderTemplate(v, vars, `${path}.web.headers[${JSON.stringify(k)}]`),
              ]),
            );
      return {
        web: {
          ...w,
          url: renderTemplate(w.url, vars, `${path}.web.url`),
          ...(headers !== undefined ? { headers } : {}),
          ...(w.body !== undefined
            ? { body: renderTemplate(w.body, vars, `${path}.web.body`) }
            : {}),
        },
      } as S;
    }
    case "command": {
      const c = (s as { command: CommandSourceSpec }).command;
      return {
        command: {
          ...c,
          command: c.command.map((a, i) =>
            renderTemplate(a, vars, `${path}.command.command[${i}]`),
          ),
        },
      } as S;
    }
  }
}
