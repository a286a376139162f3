// Configuration of the web client. NEXT_PUBLIC_* variables are inlined into
// the browser bundle by `next build` (and read at start by `next dev`), so
// the server URL is fixed when the app is built.

/**
 * The chat server's URL: NEXT_PUBLIC_SOCKET_URL; without it, with
 * NEXT_PUBLIC_SOCKET_PORT (scripts/dev sets it), that port on the host the
 * page was opened at, so a page opened at any address of the machine (a
 * phone on the LAN too) finds the server; else http://localhost:8000. It is
 * used in effects only, in the browser.
 */
export const SOCKET_URL: string = process.env.NEXT_PUBLIC_SOCKET_URL || sameHostURL(process.env.NEXT_PUBLIC_SOCKET_PORT) || "http://localhost:8000";

function sameHostURL(port: string | undefined): string {
  if (!port || typeof window === "undefined") return "";
  return `${window.location.protocol}//${window.location.hostname}:${port}`;
}

/** How long a send waits for the server's acknowledgement before it counts as timed out. */
export const ACK_TIMEOUT_MS = 5000;
