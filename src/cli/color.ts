/**
 * ANSI colours for the CLI's human-readable output: on when stdout is a terminal and NO_COLOR
 * is unset (https://no-color.org), plain text otherwise. A leaf module: the formatters
 * (`format.ts`, `shadow.ts`, ...) import it, it imports none of them.
 */
const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number) => (s: string) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const yellow = paint(33);
export const cyan = paint(36);
