// Rooms as the web client sees them, as a pure reducer beside the chat's
// (chat-state.ts: the messages of every room) and the live one
// (live-state.ts: who is online and typing, per room): whether the server
// has rooms, the list (the global room first, then the user's rooms), which
// room is open, what is known of each room's unread messages, the paging of
// older messages, and a notice when a room went away. The provider feeds it
// GET /api/rooms, the acknowledgements of the room events, and the server's
// room:* events. Which room is open is the page's URL (`?room=<id>`), so a
// reload or a shared link opens it: see roomFromSearch and roomHref.
//
// Unread counts are the server's at the last GET /api/rooms (with the time
// of the room's newest message then), plus the messages of others that
// arrived after that time, minus what was read: on this tab (room:read sent
// as messages are seen) or another (room:read from the server). They are
// derived from the messages the client holds, so a message that arrives
// twice (history replayed, recovery) counts once.

import type { ChatItem, ServerError } from "./chat-state";

export const GLOBAL = "global";

export type RoomKind = "global" | "public" | "private" | "direct";

/** A room of the list. */
export interface Room {
  id: string;
  name: string;
  kind: RoomKind;
  /** The user is in it: a member (stored), or, anonymous, this socket joined it. */
  member: boolean;
  /** Who made it (a user id), when the server said (room:create, room:join, room:invited). */
  createdBy?: string;
  /** The unread count GET /api/rooms gave, and the createdAt of the room's newest message then. */
  unreadBase?: number;
  baseAt?: string;
  /** The createdAt of the newest message the user read (here or on another tab) since. */
  readAt?: string;
}

/** Whether the server has rooms: unknown (not asked yet), yes, no (the original server), unavailable (it says so). */
export type Availability = "unknown" | "yes" | "no" | "unavailable";

/** The paging of a room's older messages. */
export interface Paging {
  /** The `before` of the next page; null: the beginning was reached; undefined: not asked yet. */
  next?: string | null;
  loading: boolean;
  failed?: boolean;
}

export interface RoomsState {
  availability: Availability;
  /** Why the server has no rooms, when it said. */
  reason?: string;
  /** The global room first, then the others in the server's order (new ones last). */
  rooms: Room[];
  paging: Record<string, Paging>;
  /** A sentence about a room that went away or could not be opened, until dismissed. */
  notice: { key: number; text: string } | null;
  seq: number;
}

export const UNREAD_MAX = 1000;

const GLOBAL_ROOM: Room = { id: GLOBAL, name: GLOBAL, kind: "global", member: true };

export function initialRoomsState(): RoomsState {
  return { availability: "unknown", rooms: [GLOBAL_ROOM], paging: {}, notice: null, seq: 0 };
}

export type RoomsAction =
  /** GET /api/rooms answered (body); anonymous: the user has no verified identity. */
  | { type: "list"; body: unknown; anonymous: boolean }
  /** The server has no rooms: "no" (no such endpoint), or "unavailable" with its reason. */
  | { type: "no-rooms"; availability: "no" | "unavailable"; reason?: string }
  /** The user is in a room now (a room of an acknowledgement or of room:invited); name: when the server gives none (a direct room). */
  | { type: "in"; room: unknown; name?: string }
  /** Another tab of the user joined a room (room:joined {room}: an id). */
  | { type: "joined"; id: string }
  /** The user is out of a room: left (here or on another tab), removed, deleted; active: the open room. */
  | { type: "out"; id: string; why: "left" | "removed" | "deleted"; active: string }
  /** The user read a room up to a message of this createdAt. */
  | { type: "read"; id: string; at: string }
  | { type: "paging"; id: string; loading: true }
  | { type: "paging"; id: string; loading: false; next?: string | null; failed?: boolean }
  | { type: "notice"; text: string }
  | { type: "dismiss-notice" };

const KINDS: readonly string[] = ["global", "public", "private", "direct"];

function str(v: unknown, max = 200): string | undefined {
  return typeof v === "string" && v !== "" ? v.slice(0, max) : undefined;
}

/** Reads a room the server sent ({id, name, kind, createdBy?, member?, unread?, lastMessage?}); null when it is not one. */
export function parseRoom(p: unknown): Room | null {
  if (typeof p !== "object" || p === null) return null;
  const r = p as Record<string, unknown>;
  const id = str(r.id, 64);
  const kind = typeof r.kind === "string" && KINDS.includes(r.kind) ? (r.kind as RoomKind) : undefined;
  if (!id || !kind) return null;
  const room: Room = { id, name: typeof r.name === "string" ? r.name.slice(0, 200) : "", kind, member: r.member === true };
  const by = str(r.createdBy);
  if (by) room.createdBy = by;
  if (typeof r.unread === "number" && Number.isFinite(r.unread) && r.unread >= 0) room.unreadBase = r.unread;
  const last = r.lastMessage as Record<string, unknown> | undefined;
  const at = str(last?.createdAt, 40);
  if (at) room.baseAt = at;
  return room;
}

/** Reads GET /api/rooms' body: its rooms, the global room first; null when it is not one. */
export function parseRoomList(body: unknown): Room[] | null {
  const list = (body as Record<string, unknown> | null)?.rooms;
  if (!Array.isArray(list)) return null;
  const rooms: Room[] = [];
  const seen = new Set<string>();
  for (const p of list) {
    const r = parseRoom(p);
    if (!r || seen.has(r.id)) continue;
    seen.add(r.id);
    rooms.push(r.id === GLOBAL ? GLOBAL_ROOM : r);
  }
  if (!seen.has(GLOBAL)) rooms.unshift(GLOBAL_ROOM);
  else if (rooms[0].id !== GLOBAL) rooms.sort((a, b) => Number(b.id === GLOBAL) - Number(a.id === GLOBAL));
  return rooms;
}

function replace(s: RoomsState, id: string, f: (r: Room) => Room): RoomsState {
  const i = s.rooms.findIndex((r) => r.id === id);
  if (i < 0) return s;
  const next = f(s.rooms[i]);
  if (next === s.rooms[i]) return s;
  const rooms = s.rooms.slice();
  rooms[i] = next;
  return { ...s, rooms };
}

function notice(s: RoomsState, text: string): RoomsState {
  return { ...s, seq: s.seq + 1, notice: { key: s.seq + 1, text } };
}

/** A room's name for sentences. */
export function roomTitle(r: Pick<Room, "id" | "name" | "kind">): string {
  if (r.kind === "global") return "Global";
  return r.name || (r.kind === "direct" ? "Direct message" : "Unnamed room");
}

export function roomsReducer(s: RoomsState, a: RoomsAction): RoomsState {
  switch (a.type) {
    case "list": {
      const listed = parseRoomList(a.body);
      if (!listed) return s;
      // The list is the server's word, but for what it cannot know: the
      // public rooms an anonymous socket joined (nothing is stored of
      // them), and who made a room (the list does not say).
      const before = new Map(s.rooms.map((r) => [r.id, r]));
      const rooms: Room[] = listed.map((r) => {
        const old = before.get(r.id);
        const room = { ...r, member: r.member || (a.anonymous && old?.member === true) };
        if (!room.createdBy && old?.createdBy) room.createdBy = old.createdBy;
        return room;
      });
      const ids = new Set(rooms.map((r) => r.id));
      if (a.anonymous) for (const r of s.rooms) if (r.member && !ids.has(r.id)) rooms.push(r);
      return { ...s, availability: "yes", reason: undefined, rooms };
    }
    case "no-rooms":
      return { ...s, availability: a.availability, reason: a.reason, rooms: [GLOBAL_ROOM] };
    case "in": {
      const r = parseRoom(a.room);
      if (!r || r.id === GLOBAL) return s;
      const name = r.name || a.name || "";
      const known = s.rooms.find((x) => x.id === r.id);
      if (known) return replace(s, r.id, (x) => ({ ...x, name: name || x.name, member: true, createdBy: r.createdBy ?? x.createdBy }));
      return { ...s, rooms: [...s.rooms, { ...r, name, member: true }] };
    }
    case "joined":
      return replace(s, a.id, (r) => (r.member ? r : { ...r, member: true }));
    case "out": {
      const room = s.rooms.find((r) => r.id === a.id);
      if (!room || a.id === GLOBAL) return s;
      // A public room stays to be found again; the others go.
      let next: RoomsState =
        room.kind === "public" && a.why === "left"
          ? replace(s, a.id, (r) => ({ ...r, member: false, unreadBase: undefined, baseAt: undefined, readAt: undefined }))
          : { ...s, rooms: s.rooms.filter((r) => r.id !== a.id) };
      const paging = { ...next.paging };
      delete paging[a.id];
      next = { ...next, paging };
      if (a.active !== a.id && a.why === "left") return next;
      const title = `“${roomTitle(room)}”`;
      const text =
        a.why === "deleted" ? `${title} was deleted.` : a.why === "removed" ? `You were removed from ${title}.` : `You left ${title}.`;
      return notice(next, text);
    }
    case "read":
      return replace(s, a.id, (r) => (r.readAt !== undefined && r.readAt >= a.at ? r : { ...r, readAt: a.at }));
    case "paging": {
      const old = s.paging[a.id] ?? { loading: false };
      const p: Paging = a.loading ? { ...old, loading: true, failed: false } : { next: a.failed ? old.next : a.next, loading: false, failed: a.failed };
      return { ...s, paging: { ...s.paging, [a.id]: p } };
    }
    case "notice":
      return notice(s, a.text);
    case "dismiss-notice":
      return s.notice ? { ...s, notice: null } : s;
  }
}

/** The rooms of the side list: the global room, the user's rooms, and the open one. */
export function listedRooms(s: RoomsState, active: string): Room[] {
  return s.rooms.filter((r) => r.id === GLOBAL || r.member || r.id === active);
}

/** The open room: a room of the list, or a stand-in while it is being opened. */
export function roomById(s: RoomsState, id: string): Room {
  return s.rooms.find((r) => r.id === id) ?? { id, name: "", kind: "public", member: false };
}

/**
 * The unread messages of a room: the server's count at the list, unless
 * read since, plus the messages of others (own tells whose) that came after
 * both; counting stops at UNREAD_MAX. The global room has none.
 */
export function unreadOf(r: Room, items: readonly ChatItem[], own: (it: ChatItem) => boolean): number {
  if (r.kind === "global" || !r.member) return 0;
  const readSince = r.readAt !== undefined && (r.baseAt === undefined || r.readAt >= r.baseAt);
  let n = readSince ? 0 : (r.unreadBase ?? 0);
  const after = readSince ? r.readAt : r.baseAt;
  for (const it of items) {
    if (it.room !== r.id || !it.createdAt || own(it)) continue;
    if (after === undefined || it.createdAt > after) n++;
  }
  return Math.min(n, UNREAD_MAX);
}

/** How an unread count is shown: up to 999, then "999+". */
export function unreadLabel(n: number): string {
  return n >= UNREAD_MAX ? "999+" : String(n);
}

/** The newest message of a room the server has (an id and a time): what reading it up to means. */
export function newestSeen(items: readonly ChatItem[], room: string): ChatItem | undefined {
  for (let i = items.length - 1; i >= 0; i--) {
    const it = items[i];
    if ((it.room ?? GLOBAL) === room && it.id && it.createdAt && (!it.out || it.out.delivery === "stored")) return it;
  }
  return undefined;
}

/** The room a URL's query names (`?room=<id>`), or the global room. */
export function roomFromSearch(search: string): string {
  const id = new URLSearchParams(search).get("room");
  return id && id.length <= 64 ? id : GLOBAL;
}

/** The URL of a room, relative to the page: the global room is the page itself. */
export function roomHref(id: string): string {
  return id === GLOBAL ? "./" : `?room=${encodeURIComponent(id)}`;
}

/** A user-facing sentence for a refused room operation. */
export function describeRoomError(e: ServerError, what: string): string {
  const reason = e.reason ? ` (${e.reason})` : "";
  switch (e.code) {
    case "unauthorized":
      return `${what}: you need to be signed in.`;
    case "forbidden":
      return `${what}: only the room's owner or a moderator may do that${reason}.`;
    case "not_found":
      return `${what}: no such room or user, or the room is private${reason}.`;
    case "limit":
      return `${what}: a limit was reached${e.limit ? ` (${e.limit})` : ""}${reason}.`;
    case "rate_limited": {
      const s = e.retryAfterMs ? ` Try again in ${Math.max(1, Math.ceil(e.retryAfterMs / 1000))} s.` : "";
      return `${what}: too many at once.${s}`;
    }
    case "invalid_payload":
      return `${what}: ${e.reason || "the server did not understand it"}.`;
    case "unavailable":
      return `${what}: this server has no rooms right now${reason}.`;
    default:
      return `${what}: the server refused (${e.code})${reason}.`;
  }
}
