// The chat's state as a pure reducer: the messages of every room the
// client follows (each knows its room), the outbox of the user's own
// messages, the connection state and the last error the server reported.
// No I/O here: the provider (ChatProvider) feeds it socket events, pages of
// older messages and clock readings, and performs the sends it asks for.
//
// Own messages carry a clientId (a UUID) from the moment they are typed. The
// Go server uses it as the message id, broadcasts it back and de-duplicates
// retries by it, so a retry with the same clientId is always safe there. A
// server speaking only the original protocol sends neither ids nor
// acknowledgements: there an own message counts as "sent" as soon as its echo
// (same username and text, no id) comes back, and is never retried after
// that.

/** Connection states shown to the user. */
export type ConnectionStatus = "connecting" | "live" | "reconnecting" | "offline";

/** What the user sees about one of their own messages. */
export type Delivery =
  | "pending" // not acknowledged yet (queued, in flight or waiting to retry)
  | "stored" // the server acknowledged it: stored and broadcast
  | "echoed" // the server broadcast it but does not acknowledge (original protocol)
  | "unconfirmed" // no acknowledgement after every attempt; can be retried
  | "failed"; // the server refused it; error says why

/** An error the server sent (`error` event or negative acknowledgement). */
export interface ServerError {
  code: string;
  reason: string;
  retryAfterMs?: number;
  /** When a ban ends (RFC 3339), for `banned`. */
  until?: string;
  /** The setting a `limit` refusal names. */
  limit?: string;
}

/** The outbox part of an own message. */
export interface Outgoing {
  /** Sends so far. */
  attempts: number;
  /** An emit is waiting for its acknowledgement. */
  inFlight: boolean;
  /** When the next send is due (epoch ms), or null when nothing is to be sent. */
  due: number | null;
  delivery: Delivery;
  error?: ServerError;
}

/** The room every client is in, where the original protocol talks. */
export const GLOBAL_ROOM = "global";

/** One line of the message list. */
export interface ChatItem {
  /** Stable React key: the id, the clientId, or a local counter. */
  key: string;
  /** The room it belongs to; absent: the global room. */
  room?: string;
  /** The server's id, when it sent one. */
  id?: string;
  /** Set on messages typed here. */
  clientId?: string;
  username: string;
  text: string;
  /** The sender's verified user id, when the server says it was verified. */
  userId?: string;
  /**
   * What the server says of the sender: true for a verified one (a token),
   * false for an anonymous one (anyone may give that name), absent when the
   * server has no sign-in (the original protocol).
   */
  verified?: boolean;
  /** The server's time (RFC 3339), when it sent one. */
  createdAt?: string;
  /** When this client created or received it (epoch ms): the fallback time. */
  localAt: number;
  /** Present on messages typed here. */
  out?: Outgoing;
}

/** The connection, as far as the client can tell. */
export interface Connection {
  /** A connection was established at least once. */
  everConnected: boolean;
  connected: boolean;
  /** Failed connection attempts since the last success. */
  failures: number;
  /** The browser says it has no network. */
  browserOffline: boolean;
}

/** The whole chat state. */
export interface ChatState {
  /** The messages of every room, each room's in its order. */
  items: ChatItem[];
  connection: Connection;
  /** The last error the server reported, for the banner. */
  lastError: (ServerError & { at: number }) | null;
  /** Counter for local keys. */
  seq: number;
}

/** Tunables of the outbox and the list. */
export const LIMITS = {
  /** Sends of one message before it is shown as unconfirmed or failed. */
  maxAttempts: 5,
  /** Back-off after the first failed attempt, doubled each time up to backoffMaxMs. */
  backoffMs: 1000,
  backoffMaxMs: 10_000,
  /** Failed connection attempts after which "reconnecting" becomes "offline". */
  offlineAfterFailures: 2,
  /** Most messages kept of one room (older settled ones are dropped). */
  maxItems: 500,
} as const;

/** Server error codes after which sending the same message again may work. */
const RETRYABLE = new Set(["rate_limited", "unavailable", "not_stored", "internal"]);

/** Whether a message refused with this code is worth sending again. */
export function isRetryable(code: string): boolean {
  return RETRYABLE.has(code);
}

/** The empty state. */
export function initialState(): ChatState {
  return {
    items: [],
    connection: { everConnected: false, connected: false, failures: 0, browserOffline: false },
    lastError: null,
    seq: 0,
  };
}

/** The connection state to show. */
export function connectionStatus(c: Connection): ConnectionStatus {
  if (c.connected) return "live";
  if (c.browserOffline || c.failures >= LIMITS.offlineAfterFailures) return "offline";
  return c.everConnected ? "reconnecting" : "connecting";
}

/** Delay before attempt number `attempts + 1`. */
export function backoff(attempts: number): number {
  return Math.min(LIMITS.backoffMs * 2 ** Math.max(0, attempts - 1), LIMITS.backoffMaxMs);
}

/** A `message` event's payload, checked; null when it is not a chat message. */
export interface IncomingMessage {
  message: string;
  username: string;
  /** The room; absent for the global room (whose payloads are the original's). */
  room?: string;
  id?: string;
  createdAt?: string;
  userId?: string;
  verified?: boolean;
}

/** Reads a `message` payload; extra fields are ignored, wrong types rejected. */
export function parseIncoming(p: unknown): IncomingMessage | null {
  if (typeof p !== "object" || p === null) return null;
  const r = p as Record<string, unknown>;
  if (typeof r.message !== "string") return null;
  const m: IncomingMessage = {
    message: r.message,
    username: typeof r.username === "string" ? r.username : "",
  };
  if (typeof r.room === "string" && r.room !== "" && r.room !== GLOBAL_ROOM) m.room = r.room;
  if (typeof r.id === "string" && r.id !== "") m.id = r.id;
  if (typeof r.createdAt === "string" && !Number.isNaN(Date.parse(r.createdAt))) m.createdAt = r.createdAt;
  if (typeof r.userId === "string" && r.userId !== "") m.userId = r.userId;
  if (typeof r.verified === "boolean") m.verified = r.verified;
  return m;
}

/**
 * Whether an item is the user's own: one typed here, or, for what the
 * server sends, by who sent it. A signed-in user (meId, its token's sub)
 * owns the messages of its user id only: a name is not an identity, since
 * an anonymous client, or another verified user, may show the same one.
 * Without a sign-in (the original protocol, or an anonymous user) the name
 * is all there is, but a verified sender's message is never an anonymous
 * user's own.
 */
export function isOwn(it: ChatItem, me: string, meId: string | null): boolean {
  if (it.out) return true;
  if (meId) return it.userId === meId;
  return it.verified !== true && it.username === me;
}

/** Reads an `error` payload or the error of a negative acknowledgement. */
export function parseServerError(p: unknown): ServerError | null {
  if (typeof p !== "object" || p === null) return null;
  const r = p as Record<string, unknown>;
  if (typeof r.code !== "string") return null;
  const e: ServerError = { code: r.code, reason: typeof r.reason === "string" ? r.reason : "" };
  if (typeof r.retryAfterMs === "number" && r.retryAfterMs > 0) e.retryAfterMs = r.retryAfterMs;
  if (typeof r.until === "string" && !Number.isNaN(Date.parse(r.until))) e.until = r.until;
  if (typeof r.limit === "string" && r.limit !== "") e.limit = r.limit;
  return e;
}

/** An acknowledgement, read: ok with the id, or the server's error. */
export type AckResult = { ok: true; id?: string } | { ok: false; error: ServerError };

/** Reads an acknowledgement payload; anything unreadable is an `internal` error. */
export function parseAck(p: unknown): AckResult {
  if (typeof p === "object" && p !== null) {
    const r = p as Record<string, unknown>;
    if (r.ok === true) return typeof r.id === "string" ? { ok: true, id: r.id } : { ok: true };
    const e = parseServerError(r.error);
    if (e) return { ok: false, error: e };
  }
  return { ok: false, error: { code: "internal", reason: "the server's answer could not be read" } };
}

/** The room of an item, a message or a payload's `room` (absent: global). */
export function roomOf(x: { room?: string }): string {
  return x.room ?? GLOBAL_ROOM;
}

/** Everything that changes the state. */
export type Action =
  | { type: "submit"; clientId: string; username: string; text: string; now: number; room?: string }
  | { type: "send-started"; clientId: string }
  | { type: "acked"; clientId: string; result: AckResult; now: number }
  | { type: "ack-timeout"; clientId: string; connected: boolean; now: number }
  | { type: "received"; payload: unknown; me: string | null; now: number }
  | { type: "connected" }
  | { type: "disconnected" }
  | { type: "connect-failed" }
  | { type: "browser-online"; online: boolean }
  | { type: "server-error"; payload: unknown; now: number }
  | { type: "dismiss-error" }
  | { type: "retry"; clientId: string; now: number }
  | { type: "remove"; clientId: string }
  | { type: "deleted"; payload: unknown }
  /** A page of a room's older messages (`messages` of the history API: newest first). */
  | { type: "older"; room: string; payload: unknown; now: number }
  /** The user is out of a room (left, removed, deleted): its messages go. */
  | { type: "forget-room"; room: string };

function updateOwn(state: ChatState, clientId: string, f: (it: ChatItem, out: Outgoing) => ChatItem): ChatState {
  const i = state.items.findIndex((it) => it.clientId === clientId && it.out);
  if (i < 0) return state;
  const it = state.items[i];
  const next = f(it, it.out as Outgoing);
  if (next === it) return state;
  const items = state.items.slice();
  items[i] = next;
  return { ...state, items };
}

/** it with what the server says of m's sender. */
function withSender(it: ChatItem, m: IncomingMessage): ChatItem {
  if (m.userId !== undefined) it.userId = m.userId;
  if (m.verified !== undefined) it.verified = m.verified;
  return it;
}

/** Drops the oldest settled items of room past LIMITS.maxItems; pending ones stay. */
function cap(items: ChatItem[], room: string): ChatItem[] {
  let excess = -LIMITS.maxItems;
  for (const it of items) if (roomOf(it) === room) excess++;
  if (excess <= 0) return items;
  return items.filter((it) => {
    if (excess > 0 && roomOf(it) === room && it.out?.delivery !== "pending") {
      excess--;
      return false;
    }
    return true;
  });
}

/** The chat reducer. */
export function chatReducer(state: ChatState, a: Action): ChatState {
  switch (a.type) {
    case "submit": {
      if (state.items.some((it) => it.clientId === a.clientId)) return state;
      const item: ChatItem = {
        key: a.clientId,
        clientId: a.clientId,
        username: a.username,
        text: a.text,
        localAt: a.now,
        out: { attempts: 0, inFlight: false, due: a.now, delivery: "pending" },
      };
      if (a.room && a.room !== GLOBAL_ROOM) item.room = a.room;
      return { ...state, items: cap([...state.items, item], roomOf(item)) };
    }
    case "send-started":
      return updateOwn(state, a.clientId, (it, out) => ({
        ...it,
        out: { ...out, attempts: out.attempts + 1, inFlight: true, due: null },
      }));
    case "acked":
      return updateOwn(state, a.clientId, (it, out) => {
        const r = a.result;
        if (r.ok) {
          return { ...it, id: r.id ?? it.id ?? it.clientId, out: { ...out, inFlight: false, due: null, delivery: "stored", error: undefined } };
        }
        if (out.delivery === "stored") return { ...it, out: { ...out, inFlight: false } };
        if (isRetryable(r.error.code) && out.attempts < LIMITS.maxAttempts) {
          const wait = Math.max(r.error.retryAfterMs ?? 0, backoff(out.attempts));
          return { ...it, out: { ...out, inFlight: false, due: a.now + wait, error: r.error } };
        }
        return { ...it, out: { ...out, inFlight: false, due: null, delivery: "failed", error: r.error } };
      });
    case "ack-timeout":
      return updateOwn(state, a.clientId, (it, out) => {
        if (!out.inFlight) return it;
        if (out.delivery !== "pending") return { ...it, out: { ...out, inFlight: false } };
        // A send that timed out because the connection was down does not
        // count as an attempt: it goes out again when the connection is back.
        const attempts = a.connected ? out.attempts : out.attempts - 1;
        if (attempts < LIMITS.maxAttempts) {
          return { ...it, out: { ...out, attempts, inFlight: false, due: a.now + (a.connected ? backoff(attempts) : 0) } };
        }
        return { ...it, out: { ...out, attempts, inFlight: false, due: null, delivery: "unconfirmed" } };
      });
    case "received": {
      const m = parseIncoming(a.payload);
      if (!m) return state;
      if (m.id) {
        const i = state.items.findIndex((it) => it.id === m.id || it.clientId === m.id);
        if (i >= 0) {
          const it = state.items[i];
          if (it.id === m.id && it.createdAt === m.createdAt) return state; // a duplicate
          const items = state.items.slice();
          items[i] = withSender({ ...it, id: m.id, createdAt: m.createdAt ?? it.createdAt }, m);
          return { ...state, items };
        }
      } else if (a.me !== null && m.username === a.me && m.room === undefined) {
        // The original protocol: no id, so the echo of an own message is
        // recognised by its text. It was broadcast: never send it again.
        const i = state.items.findIndex(
          (it) => it.out?.delivery === "pending" && it.username === m.username && it.text === m.message && !it.id && !it.room,
        );
        if (i >= 0) {
          const it = state.items[i];
          const out = it.out as Outgoing;
          const items = state.items.slice();
          items[i] = { ...it, out: { ...out, due: null, delivery: "echoed", error: undefined } };
          return { ...state, items };
        }
      }
      const seq = state.seq + 1;
      const item = itemOf(m, `local-${seq}`, a.now);
      return { ...state, seq, items: cap([...state.items, item], roomOf(item)) };
    }
    case "connected":
      return { ...state, connection: { ...state.connection, everConnected: true, connected: true, failures: 0 } };
    case "disconnected":
      if (!state.connection.connected) return state;
      return { ...state, connection: { ...state.connection, connected: false, failures: 0 } };
    case "connect-failed":
      return { ...state, connection: { ...state.connection, connected: false, failures: state.connection.failures + 1 } };
    case "browser-online":
      if (state.connection.browserOffline === !a.online) return state;
      return { ...state, connection: { ...state.connection, browserOffline: !a.online } };
    case "server-error": {
      const e = parseServerError(a.payload);
      if (!e) return state;
      return { ...state, lastError: { ...e, at: a.now } };
    }
    case "dismiss-error":
      return state.lastError ? { ...state, lastError: null } : state;
    case "retry":
      return updateOwn(state, a.clientId, (it, out) => {
        if (out.delivery !== "failed" && out.delivery !== "unconfirmed") return it;
        return { ...it, out: { attempts: 0, inFlight: false, due: a.now, delivery: "pending" } };
      });
    case "deleted": {
      // message:deleted {id}: a moderator took the message back, for everyone.
      if (typeof a.payload !== "object" || a.payload === null) return state;
      const id = (a.payload as Record<string, unknown>).id;
      if (typeof id !== "string" || id === "") return state;
      const items = state.items.filter((it) => it.id !== id && it.clientId !== id);
      return items.length === state.items.length ? state : { ...state, items };
    }
    case "remove": {
      const items = state.items.filter((it) => !(it.clientId === a.clientId && it.out && it.out.delivery !== "pending"));
      return items.length === state.items.length ? state : { ...state, items };
    }
    case "older": {
      // Older than everything of the room shown: they go first, oldest
      // first; one shown already (a page that overlaps) is skipped.
      const list = Array.isArray(a.payload) ? a.payload : [];
      const known = new Set(state.items.map((it) => it.id));
      const older: ChatItem[] = [];
      for (const p of list) {
        const m = parseIncoming(p);
        if (!m?.id || known.has(m.id)) continue;
        known.add(m.id);
        older.push(itemOf({ ...m, room: a.room === GLOBAL_ROOM ? undefined : a.room }, m.id, a.now));
      }
      if (older.length === 0) return state;
      return { ...state, items: [...older.reverse(), ...state.items] };
    }
    case "forget-room": {
      const items = state.items.filter((it) => roomOf(it) !== a.room);
      return items.length === state.items.length ? state : { ...state, items };
    }
  }
}

/** The item of a message the server sent; key when it has no id. */
function itemOf(m: IncomingMessage, key: string, now: number): ChatItem {
  const item: ChatItem = { key: m.id ?? key, username: m.username, text: m.message, localAt: now };
  if (m.room) item.room = m.room;
  if (m.id) item.id = m.id;
  if (m.createdAt) item.createdAt = m.createdAt;
  return withSender(item, m);
}

/** The items of one room, in order. */
export function itemsOf(items: readonly ChatItem[], room: string): ChatItem[] {
  return items.filter((it) => roomOf(it) === room);
}

/** Own messages whose next send is due at `now` (oldest first). */
export function dueSends(state: ChatState, now: number): ChatItem[] {
  return state.items.filter((it) => it.out && !it.out.inFlight && it.out.due !== null && it.out.due <= now);
}

/** The earliest future time a send is due, or null. */
export function nextDue(state: ChatState): number | null {
  let next: number | null = null;
  for (const it of state.items) {
    const d = it.out && !it.out.inFlight ? it.out.due : null;
    if (d !== null && (next === null || d < next)) next = d;
  }
  return next;
}

/** A user-facing sentence for a server error. */
export function describeError(e: ServerError): string {
  const reason = e.reason ? `: ${e.reason}` : "";
  switch (e.code) {
    case "message_too_long":
      return `Message too long${reason}`;
    case "username_too_long":
      return `Name too long${reason}`;
    case "message_empty":
      return "Empty messages are not sent";
    case "rate_limited": {
      const s = e.retryAfterMs ? ` Try again in ${Math.max(1, Math.ceil(e.retryAfterMs / 1000))} s.` : "";
      return `You are sending too fast.${s}`;
    }
    case "unavailable":
      return `The server cannot take messages right now${reason}. Your message will be retried.`;
    case "not_stored":
      return `The message was delivered but not stored${reason}`;
    case "banned": {
      const until = e.until ? ` until ${new Date(e.until).toLocaleString()}` : "";
      return `${e.reason || "You are banned"}${until}.`;
    }
    case "unauthorized":
      return `You are not signed in${reason}`;
    case "forbidden":
      return e.reason ? `Not allowed: ${e.reason}.` : "Only a moderator may do this.";
    case "not_found":
      return "That message is gone already.";
    case "name_taken":
      return "Another guest uses this name now; choose another.";
    default:
      return `The server refused the message (${e.code})${reason}`;
  }
}
