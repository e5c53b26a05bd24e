/** Defaults shared by the server and the CLI (kept apart so the CLI loads no server code). */
export const DEFAULT_DATA_DIR = ".turnout";
export const DEFAULT_PORT = 4040;
export const DEFAULT_HOST = "127.0.0.1";
/**
 * Largest request head (request line and headers) that the router and the API accept; larger
 * gets a 431. One value, so a client that gets through one gets through the other.
 */
export const MAX_REQUEST_HEAD_BYTES = 16 * 1024;

/** Outcome events one `POST /api/v1/events` takes; `turnout events post -f` sends more in batches. */
export const MAX_EVENTS_PER_REQUEST = 1000;
