import { readFileSync } from "node:fs";

let cached: string | undefined;

/** The package's version, read from package.json beside dist/ or src/. */
export function packageVersion(): string {
  if (cached) return cached;
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    cached = pkg.version ?? "0.0.0";
  } catch {
    cached = "0.0.0";
  }
  return cached;
}

/** The package's root folder (where package.json and examples/ are), from src/ or dist/. */
export function packageRoot(): string {
  return new URL("..", import.meta.url).pathname;
}
