/** Defaults shared by the server and the CLI (kept apart so the CLI loads no server code). */
export const DEFAULT_DATA_DIR = ".turnout";
export const DEFAULT_PORT = 4040;
export const DEFAULT_HOST = "127.0.0.1";
