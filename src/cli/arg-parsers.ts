/**
 * Parsers for numeric options. commander's `Number` would turn "abc" into NaN and "-1" into
 * -1, which the commands then took as "no limit" or sliced with: a typo must be a usage error
 * (exit 2) that names the option, not a different answer.
 */
import { InvalidArgumentError } from "commander";

/** An integer 1..999,999,999 (`--limit`). */
export function positiveInt(v: string): number {
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1)
    throw new InvalidArgumentError(
      `must be a whole number of at least 1, got ${JSON.stringify(v)}`,
    );
  return Number(v);
}

/** A number of seconds above 0 (`--timeout`), fractions allowed. */
export function positiveSeconds(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`must be a number of seconds above 0, got ${JSON.stringify(v)}`);
  return n;
}
