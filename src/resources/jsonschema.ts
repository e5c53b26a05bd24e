/**
 * The JSON Schema that editors use to complete and check Turnout YAML (e.g. with
 * `# yaml-language-server: $schema=...`), generated from the same zod schemas that validate.
 * `npm run schema` writes it to schema/turnout.schema.json; a test fails when that file is stale.
 */
import { z } from "zod";
import { SCHEMAS } from "./schema/kinds.js";

export const JSON_SCHEMA_ID = "https://turnout.dev/schema/turnout.schema.json";

/** The schema of one resource document: one of the kinds, told apart by `kind`. */
export function generateJsonSchema(): Record<string, unknown> {
  // Every kind of the registry, so a new kind is in the editor's schema (and the reference) at once.
  const kinds = Object.values(SCHEMAS) as unknown as [z.ZodObject, ...z.ZodObject[]];
  const resource = z.discriminatedUnion("kind", kinds);
  // "input": what users may write, so fields with defaults are optional. Draft 7 because it is
  // what most editor plugins (yaml-language-server, VS Code) understand fully.
  const generated = z.toJSONSchema(resource, { io: "input", target: "draft-7" }) as Record<
    string,
    unknown
  >;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    $id: JSON_SCHEMA_ID,
    title: "Turnout resource",
    description: `A Turnout resource (apiVersion turnout.dev/v1): one of ${Object.keys(SCHEMAS).join(", ")}. See docs/reference/resources.md.`,
    ...rest,
  };
}

/** The file's exact text: stable key order, two-space indent, final newline. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(generateJsonSchema(), null, 2)}\n`;
}
