// Configuration of the web client. NEXT_PUBLIC_* variables are inlined into
// the browser bundle by `next build` (and read at start by `next dev`), so
// the server URL is fixed when the app is built.

/** The chat server's URL: NEXT_PUBLIC_SOCKET_URL, default http://localhost:8000. */
export const SOCKET_URL: string = process.env.NEXT_PUBLIC_SOCKET_URL || "http://localhost:8000";

/** How long a send waits for the server's acknowledgement before it counts as timed out. */
export const ACK_TIMEOUT_MS = 5000;
