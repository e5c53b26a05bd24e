/**
 * The table of docs/reference/errors.md, from the one error table (src/errors.ts): every code
 * with its HTTP status, what it means and what to do about it.
 */
import { ERRORS } from "../errors.js";
import { cell, code, table } from "./markdown.js";

export function renderErrorTable(): string {
  return table(
    ["code", "HTTP", "meaning", "what to do"],
    Object.entries(ERRORS).map(([name, e]) => [
      code(name),
      String(e.status),
      cell(e.summary),
      cell(e.fix),
    ]),
  );
}
