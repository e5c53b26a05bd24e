/**
 * A count with its noun, singular for exactly one: "1 step", "0 steps", "3 steps". Every count
 * the CLI, the history and the lab print goes through here, so that none reads "(1 steps)".
 *
 * @example plural(steps.length, "step") // "1 step"
 * @example plural(n, "reply", "replies")
 */
export function plural(
  n: number,
  one: string,
  many = `${one}s`,
  format: (n: number) => string = String,
): string {
  return `${format(n)} ${n === 1 ? one : many}`;
}
