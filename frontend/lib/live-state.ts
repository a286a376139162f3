// Who is online and who is typing, per room, as a pure reducer beside the
// chat's (chat-state.ts). The provider feeds it the server's `presence`,
// `presence:join`, `presence:leave` and `typing` events (each names its room,
// but the global room's) with clock readings, and a tick to expire what went
// stale. A server speaking only the original protocol sends none of these:
// then the state stays empty.

/** A user the server lists as online (each user once, all their tabs together). */
export interface OnlineUser {
  name: string;
  /** A verified id, when the server has one for the user. */
  userId?: string;
  /** Since when (RFC 3339), when the server says. */
  since?: string;
}

/** Someone typing, until `until` (epoch ms) unless the server renews it. */
export interface Typist {
  name: string;
  userId?: string;
  until: number;
}

/** A quiet line about someone who came or went. */
export interface Notice {
  key: string;
  kind: "join" | "leave";
  name: string;
  /** When it was received (epoch ms); it goes after LIVE_LIMITS.noticeMs. */
  at: number;
}

export interface LiveState {
  /** How many are online, from the last `presence`; null before one came. */
  online: number | null;
  /** Who is online, by name; null while unknown, or when the server lists only a count (too many users). */
  users: OnlineUser[] | null;
  /** The others who are typing now. */
  typing: Typist[];
  /** Recent joins and leaves, oldest first. */
  notices: Notice[];
  seq: number;
}

/** Tunables. */
export const LIVE_LIMITS = {
  /**
   * An indicator the server did not renew within this long goes (the
   * server renews every half TYPING_TIMEOUT, 2.5 s by default, and ends
   * a typing after 5 s).
   */
  typingExpireMs: 6000,
  /** How long a join or leave line stays. */
  noticeMs: 8000,
  /** Most join and leave lines shown at once. */
  maxNotices: 3,
  /** While the user types, the server is told again this often. */
  typingRenewMs: 2000,
  /** After this long without a keystroke, the user stops typing. */
  typingIdleMs: 4000,
} as const;

export function initialLiveState(): LiveState {
  return { online: null, users: null, typing: [], notices: [], seq: 0 };
}

export type LiveAction =
  | { type: "presence"; payload: unknown }
  | { type: "presence-change"; kind: "join" | "leave"; payload: unknown; now: number }
  | { type: "typing"; payload: unknown; now: number }
  | { type: "tick"; now: number }
  | { type: "disconnected" };

const key = (u: { name: string; userId?: string }) => (u.userId ? `id:${u.userId}` : `name:${u.name}`);

function str(v: unknown, max = 200): string | undefined {
  return typeof v === "string" && v !== "" ? v.slice(0, max) : undefined;
}

/** Reads {name, userId?}; null when there is no name. */
export function parseWho(p: unknown): { name: string; userId?: string } | null {
  if (typeof p !== "object" || p === null) return null;
  const r = p as Record<string, unknown>;
  const name = str(r.name);
  if (!name) return null;
  const userId = str(r.userId);
  return userId ? { name, userId } : { name };
}

/** Reads a `presence` payload's users; null when it lists none (or is not one). */
export function parseUsers(p: unknown): OnlineUser[] | null {
  if (typeof p !== "object" || p === null) return null;
  const list = (p as Record<string, unknown>).users;
  if (!Array.isArray(list)) return null;
  const seen = new Set<string>();
  const users: OnlineUser[] = [];
  for (const x of list) {
    const who = parseWho(x);
    if (!who || seen.has(key(who))) continue;
    seen.add(key(who));
    const since = str((x as Record<string, unknown>).since, 40);
    users.push(since ? { ...who, since } : who);
  }
  return users;
}

function expire(s: LiveState, now: number): LiveState {
  const typing = s.typing.filter((t) => t.until > now);
  const notices = s.notices.filter((n) => now - n.at < LIVE_LIMITS.noticeMs);
  if (typing.length === s.typing.length && notices.length === s.notices.length) return s;
  return { ...s, typing, notices };
}

/** The reducer. */
export function liveReducer(s: LiveState, a: LiveAction): LiveState {
  switch (a.type) {
    case "presence": {
      const n = (a.payload as Record<string, unknown> | null)?.online;
      const online = typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : s.online;
      const users = parseUsers(a.payload);
      // A payload without users (a count only) leaves the list unknown.
      if (users === null) return s.users === null && s.online === online ? s : { ...s, online, users: null };
      return { ...s, online, users };
    }
    case "presence-change": {
      const who = parseWho(a.payload);
      if (!who) return s;
      const seq = s.seq + 1;
      const notices = [...s.notices, { key: `n${seq}`, kind: a.kind, name: who.name, at: a.now }].slice(-LIVE_LIMITS.maxNotices);
      // Someone who left types no more.
      const typing = a.kind === "leave" ? s.typing.filter((t) => key(t) !== key(who)) : s.typing;
      return { ...s, seq, notices, typing };
    }
    case "typing": {
      const who = parseWho(a.payload);
      const r = a.payload as Record<string, unknown> | null;
      if (!who || typeof r?.typing !== "boolean") return s;
      const rest = s.typing.filter((t) => key(t) !== key(who));
      if (!r.typing) return rest.length === s.typing.length ? s : { ...s, typing: rest };
      return { ...s, typing: [...rest, { ...who, until: a.now + LIVE_LIMITS.typingExpireMs }] };
    }
    case "tick":
      return expire(s, a.now);
    case "disconnected":
      // What the others do is unknown until the next presence; a list kept
      // from before is shown as it was.
      return s.typing.length === 0 ? s : { ...s, typing: [] };
  }
}

/** Who is online and who is typing in each room, by room id. */
export type LiveRooms = Record<string, LiveState>;

const GLOBAL = "global";

/** The room a live event's payload names: its `room`, or the global room. */
export function liveRoomOf(payload: unknown): string {
  const room = (payload as Record<string, unknown> | null)?.room;
  return typeof room === "string" && room !== "" ? room : GLOBAL;
}

/** The live state of room (empty when nothing came of it). */
export function liveOf(rooms: LiveRooms, room: string): LiveState {
  return rooms[room] ?? EMPTY;
}

const EMPTY = initialLiveState();

/**
 * The reducer of every room's live state: an event goes to the room its
 * payload names; a tick and a disconnect to every room. `forget` drops a
 * room the user is out of.
 */
export function liveRoomsReducer(s: LiveRooms, a: LiveAction | { type: "forget"; room: string }): LiveRooms {
  if (a.type === "forget") {
    if (!(a.room in s)) return s;
    const rest = { ...s };
    delete rest[a.room];
    return rest;
  }
  if (a.type === "tick" || a.type === "disconnected") {
    let out = s;
    for (const [room, live] of Object.entries(s)) {
      const next = liveReducer(live, a);
      if (next !== live) out = { ...out, [room]: next };
    }
    return out;
  }
  const room = liveRoomOf(a.payload);
  const live = liveOf(s, room);
  const next = liveReducer(live, a);
  return next === live ? s : { ...s, [room]: next };
}

/** When any room's live state next changes by itself, or null. */
export function nextLiveRoomsChange(s: LiveRooms): number | null {
  let next: number | null = null;
  for (const live of Object.values(s)) {
    const t = nextLiveChange(live);
    if (t !== null && (next === null || t < next)) next = t;
  }
  return next;
}

/** When the state next changes by itself (an indicator or a notice goes), or null. */
export function nextLiveChange(s: LiveState): number | null {
  let next: number | null = null;
  for (const t of s.typing) next = next === null ? t.until : Math.min(next, t.until);
  for (const n of s.notices) {
    const end = n.at + LIVE_LIMITS.noticeMs;
    next = next === null ? end : Math.min(next, end);
  }
  return next;
}

/** The typing line: "ann is typing…", "ann and bob are typing…", "ann, bob and 2 others are typing…"; "" when no one. */
export function typingLine(typing: Typist[], me: string | null): string {
  const names = typing.map((t) => t.name).filter((n) => n !== me);
  const unique = [...new Set(names)];
  switch (unique.length) {
    case 0:
      return "";
    case 1:
      return `${unique[0]} is typing…`;
    case 2:
      return `${unique[0]} and ${unique[1]} are typing…`;
    case 3:
      return `${unique[0]}, ${unique[1]} and ${unique[2]} are typing…`;
    default:
      return `${unique[0]}, ${unique[1]} and ${unique.length - 2} others are typing…`;
  }
}

/** The user list sorted for display: the user first, then by name. */
export function sortedUsers(users: OnlineUser[], me: string | null, meId: string | null = null): OnlineUser[] {
  return [...users].sort((a, b) => {
    const am = isMe(a, me, meId);
    if (am !== isMe(b, me, meId)) return am ? -1 : 1;
    return a.name.localeCompare(b.name);
  });
}

/**
 * Whether an online user is the user: by its verified id when the user has
 * one (another user, verified or not, may show the same name), else by
 * name.
 */
export function isMe(u: OnlineUser, me: string | null, meId: string | null): boolean {
  return meId ? u.userId === meId : u.name === me;
}

/**
 * The typing the user's own input asks for: `typing: true` when they type
 * and the server was not told within typingRenewMs, `false` when they stop
 * (sent, cleared, left the input, or idle for typingIdleMs). Pure: the
 * provider keeps the result and sends what it says.
 */
export interface OwnTyping {
  typing: boolean;
  /** When `typing: true` was last sent (epoch ms). */
  sentAt: number;
}

export function onInput(own: OwnTyping, hasText: boolean, now: number): { next: OwnTyping; send: boolean | null } {
  if (!hasText) return stopTyping(own);
  if (own.typing && now - own.sentAt < LIVE_LIMITS.typingRenewMs) return { next: own, send: null };
  return { next: { typing: true, sentAt: now }, send: true };
}

export function stopTyping(own: OwnTyping): { next: OwnTyping; send: boolean | null } {
  if (!own.typing) return { next: own, send: null };
  return { next: { typing: false, sentAt: own.sentAt }, send: false };
}
