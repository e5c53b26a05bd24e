/**
 * The one logger type: the part of pino's API that Turnout's components call. A pino logger
 * fits as is (`createLogger` in `server.ts` makes the real one); tests pass `silentLogger` or a
 * recorder. The pure core (`src/core/`) never logs: it returns events and reasons instead.
 */

/**
 * One level's method: structured fields first, then the message (pino's order). One form only,
 * so that a test's recorder is a plain function; a bare message is `log.info({}, "...")`.
 */
export type LogFn = (obj: object, msg?: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const noop = () => {};

/** Logs nothing. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
