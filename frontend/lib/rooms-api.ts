// The HTTP side of rooms (the server's /api/rooms endpoints; see
// server/docs/protocol.md): the room list and its search, a room's older
// messages, and deleting a room. Each call carries the user's token when
// there is one. A server without these endpoints (the original, or an older
// Go server) answers 404: that is "no rooms", never an error to show.

import { parseServerError, type ServerError } from "./chat-state";

/** An answer: ok with the body, or why not (status 0: the server could not be reached). */
export type ApiResult = { ok: true; body: unknown } | { ok: false; status: number; error: ServerError };

async function call(url: string, path: string, token: string | null, init: RequestInit = {}, signal?: AbortSignal): Promise<ApiResult> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, { ...init, headers, signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    return { ok: false, status: 0, error: { code: "unavailable", reason: "the server cannot be reached" } };
  }
  const body: unknown = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.ok) return { ok: true, body };
  const error = parseServerError((body as Record<string, unknown> | null)?.error) ?? {
    code: res.status === 404 ? "not_found" : "internal",
    reason: `the server answered ${res.status}`,
  };
  return { ok: false, status: res.status, error };
}

/** GET /api/rooms: the global room, the caller's rooms, then public rooms (whose name starts with q). */
export function fetchRooms(
  url: string,
  token: string | null,
  o: { q?: string; cursor?: string; limit?: number } = {},
  signal?: AbortSignal,
): Promise<ApiResult> {
  const p = new URLSearchParams();
  if (o.q) p.set("q", o.q);
  if (o.cursor) p.set("cursor", o.cursor);
  if (o.limit) p.set("limit", String(o.limit));
  const qs = p.toString();
  return call(url, `/api/rooms${qs ? `?${qs}` : ""}`, token, {}, signal);
}

/**
 * A page of a room's messages older than before (newest first):
 * {messages, nextBefore}. The global room's come from /api/messages, which
 * a Go server without rooms has too.
 */
export function fetchOlder(url: string, token: string | null, room: string, before: string | undefined, limit: number): Promise<ApiResult> {
  const p = new URLSearchParams({ limit: String(limit) });
  if (before) p.set("before", before);
  const path = room === "global" ? "/api/messages" : `/api/rooms/${encodeURIComponent(room)}/messages`;
  return call(url, `${path}?${p}`, token);
}

/** DELETE /api/rooms/{id}: the room's owner, or a moderator. */
export function deleteRoom(url: string, token: string | null, room: string): Promise<ApiResult> {
  return call(url, `/api/rooms/${encodeURIComponent(room)}`, token, { method: "DELETE" });
}
