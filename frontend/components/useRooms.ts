"use client";

// useRooms is the rooms part of ChatProvider: on the provider's socket it
// handles the server's room:* events and sends the room events; over HTTP it
// reads the room list, a room's older messages, and deletes rooms. It keeps
// the rooms reducer (lib/rooms-state.ts), follows the URL for the open room
// (lib/room-url.ts), joins the open room at each connection (its history),
// and tells the server what the user read. Against a server without rooms
// (the original: GET /api/rooms is 404) it does nothing but say so.

import { useCallback, useEffect, useMemo, useReducer, useRef, useState, useSyncExternalStore } from "react";
import { parseAck, type Action as ChatAction, type ChatItem, type ServerError } from "@/lib/chat-state";
import { ACK_TIMEOUT_MS } from "@/lib/config";
import { goToRoom, readRoom, readRoomOnServer, subscribeRoom } from "@/lib/room-url";
import { deleteRoom as apiDeleteRoom, fetchOlder, fetchRooms } from "@/lib/rooms-api";
import {
  GLOBAL,
  describeRoomError,
  initialRoomsState,
  newestSeen,
  parseRoomList,
  roomsReducer,
  type Room,
  type RoomsState,
} from "@/lib/rooms-state";
import type { ChatSocket, ClientToServer, ServerToClient } from "./chat-socket";

/** Messages a page of older history holds. */
const PAGE = 50;
/** How long after a change the room list is read again (several changes, one read). */
const LIST_DEBOUNCE_MS = 200;
/** How long a message must be on screen before it counts as read. */
const READ_DELAY_MS = 300;

/** What the provider gives the hook. */
export interface RoomsDeps {
  url: string;
  socket: ChatSocket | null;
  connected: boolean;
  /** The user's token (null: anonymous), and its user id. */
  token: string | null;
  userId: string | null;
  /** The messages of every room (chat-state), and whether one is the user's own. */
  items: ChatItem[];
  isOwn: (it: ChatItem) => boolean;
  chat: (a: ChatAction) => void;
  /** Forgets the live state (presence, typing) of a room the user is out of. */
  forgetLive: (room: string) => void;
}

/** A public room found by a search, and the cursor of the next page. */
export interface Found {
  rooms: Room[];
  next: string | null;
}

/** The rooms, and what the user can do with them; verbs that can fail resolve with a sentence to show, or null. */
export interface RoomsApi {
  state: RoomsState;
  /** The open room's id (the URL's). */
  active: string;
  open: (id: string) => void;
  create: (name: string, kind: "public" | "private") => Promise<string | null>;
  leave: (id: string) => Promise<string | null>;
  invite: (id: string, userId: string, name: string) => Promise<string>;
  remove: (id: string, userId: string, name: string) => Promise<string>;
  /** Opens the direct room with a user. */
  directMessage: (userId: string, name: string) => Promise<string | null>;
  deleteRoom: (id: string) => Promise<string | null>;
  loadOlder: (id: string) => void;
  /** Public rooms whose name starts with q. */
  search: (q: string, cursor?: string) => Promise<Found | string>;
  dismissNotice: () => void;
  /** The user sees the open room's newest messages (its list is scrolled to the bottom). */
  setSeen: (seen: boolean) => void;
}

type RoomEvent = "room:create" | "room:join" | "room:leave" | "room:invite" | "room:remove" | "dm:open" | "room:read";
type Answer = { ok: true; room?: unknown } | { ok: false; error: ServerError };

/** Emits a room event and resolves with its acknowledgement (a time-out is `unavailable`). */
async function ask<E extends RoomEvent>(socket: ChatSocket | null, event: E, payload: Parameters<ClientToServer[E]>[0]): Promise<Answer> {
  if (!socket?.connected) return { ok: false, error: { code: "unavailable", reason: "not connected" } };
  try {
    // The event and its payload are checked by this function's signature.
    const emitter = socket.timeout(ACK_TIMEOUT_MS) as unknown as { emitWithAck: (e: string, p: unknown) => Promise<unknown> };
    const answer = await emitter.emitWithAck(event, payload);
    const r = answer as Record<string, unknown> | null;
    if (r?.ok === true) return { ok: true, room: r.room };
    const a = parseAck(answer);
    return a.ok ? { ok: true } : a;
  } catch {
    return { ok: false, error: { code: "unavailable", reason: "no answer in time" } };
  }
}

const visibility = {
  subscribe(onChange: () => void) {
    document.addEventListener("visibilitychange", onChange);
    return () => document.removeEventListener("visibilitychange", onChange);
  },
  read: () => document.visibilityState === "visible",
  server: () => false,
};

export function useRooms(d: RoomsDeps): RoomsApi {
  const [state, dispatch] = useReducer(roomsReducer, undefined, initialRoomsState);
  const active = useSyncExternalStore(subscribeRoom, readRoom, readRoomOnServer);
  const visible = useSyncExternalStore(visibility.subscribe, visibility.read, visibility.server);
  const [seen, setSeen] = useState(true);
  // A reason to read the list again (a counter: each change asks once more).
  const [listWanted, setListWanted] = useState(0);
  // Bumped to try the open room's join again (after a rate limit, say).
  const [joinAgain, setJoinAgain] = useState(0);

  // What the socket's handlers read: the latest of each.
  const latest = useRef({ d, state, active });
  useEffect(() => {
    latest.current = { d, state, active };
  });
  // Rooms whose history this connection was sent (room:join answered).
  const joined = useRef(new Set<string>());

  const wantList = useCallback(() => setListWanted((n) => n + 1), []);

  // The user is out of a room: its messages and live state go, and the
  // page goes to the global room if it was open.
  const out = useCallback((id: string, why: "left" | "removed" | "deleted") => {
    const { d: deps, active: open } = latest.current;
    dispatch({ type: "out", id, why, active: open });
    deps.chat({ type: "forget-room", room: id });
    deps.forgetLive(id);
    joined.current.delete(id);
    if (open === id) goToRoom(GLOBAL, true);
  }, []);

  // The server's room events.
  useEffect(() => {
    const socket = d.socket;
    if (!socket) return;
    const idOf = (p: unknown) => {
      const room = (p as Record<string, unknown> | null)?.room;
      return typeof room === "string" ? room : undefined;
    };
    const onConnect = () => {
      joined.current.clear();
      const { d: deps, state: s } = latest.current;
      // An anonymous socket's rooms are this socket's: join them again.
      if (deps.userId === null) {
        for (const r of s.rooms) {
          if (r.id !== GLOBAL && r.member) {
            joined.current.add(r.id);
            void ask(socket, "room:join", { room: r.id });
          }
        }
      }
      wantList();
    };
    const onInvited = (p: unknown) => {
      const room = (p as Record<string, unknown> | null)?.room;
      dispatch({ type: "in", room });
      wantList(); // its unread count, a direct room's name
    };
    const onJoined = (p: unknown) => {
      const id = idOf(p);
      if (!id) return;
      dispatch({ type: "joined", id });
      if (!latest.current.state.rooms.some((r) => r.id === id)) wantList();
    };
    const onOut = (why: "left" | "removed" | "deleted") => (p: unknown) => {
      const id = idOf(p);
      if (id) out(id, why);
    };
    const onRead = (p: unknown) => {
      const id = idOf(p);
      const upTo = (p as Record<string, unknown> | null)?.upTo;
      if (!id || typeof upTo !== "string") return;
      const it = latest.current.d.items.find((x) => x.id === upTo);
      if (it?.createdAt) dispatch({ type: "read", id, at: it.createdAt });
      else wantList(); // read up to a message this tab does not hold
    };
    const handlers: [keyof ServerToClient, (p: unknown) => void][] = [
      ["room:invited", onInvited],
      ["room:joined", onJoined],
      ["room:left", onOut("left")],
      ["room:removed", onOut("removed")],
      ["room:deleted", onOut("deleted")],
      ["room:read", onRead],
    ];
    socket.on("connect", onConnect);
    for (const [event, handler] of handlers) socket.on(event, handler);
    return () => {
      socket.off("connect", onConnect);
      for (const [event, handler] of handlers) socket.off(event, handler);
    };
  }, [d.socket, wantList, out]);

  // The room list: at each connection, when the user's identity changes,
  // and when a room came that the list does not describe yet.
  const { url, token } = d;
  useEffect(() => {
    const ctl = new AbortController();
    const t = setTimeout(() => {
      fetchRooms(url, token, {}, ctl.signal).then(
        (r) => {
          if (ctl.signal.aborted) return;
          if (r.ok) dispatch({ type: "list", body: r.body, anonymous: token === null });
          else if (r.status === 404 || r.status === 405) dispatch({ type: "no-rooms", availability: "no" });
          else if (r.error.code === "unavailable" && r.status !== 0) {
            dispatch({ type: "no-rooms", availability: "unavailable", reason: r.error.reason });
          }
        },
        () => {}, // aborted
      );
    }, LIST_DEBOUNCE_MS);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [url, token, listWanted]);

  // A server without rooms: the page shows the global room.
  useEffect(() => {
    if (state.availability === "no" || state.availability === "unavailable") goToRoom(GLOBAL, true);
  }, [state.availability]);

  // The open room, at each connection: joined, with its history (a member's
  // socket is in it already, live; joining again sends the history).
  const { socket, connected } = d;
  useEffect(() => {
    if (!connected || active === GLOBAL || state.availability !== "yes" || joined.current.has(active)) return;
    joined.current.add(active);
    let stopped = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    void ask(socket, "room:join", { room: active }).then((a) => {
      if (stopped) return;
      if (a.ok) {
        dispatch({ type: "in", room: a.room });
        return;
      }
      joined.current.delete(active);
      const e = a.error;
      if (e.code === "rate_limited" || (e.code === "unavailable" && e.reason === "no answer in time")) {
        retry = setTimeout(() => setJoinAgain((n) => n + 1), Math.max(1000, e.retryAfterMs ?? 0));
        return;
      }
      const why =
        e.code === "not_found"
          ? `That room does not exist, or it is private${latest.current.d.userId === null ? ": private rooms need a sign-in" : ""}.`
          : describeRoomError(e, "The room could not be opened");
      dispatch({ type: "notice", text: why });
      if (e.code === "unavailable") dispatch({ type: "no-rooms", availability: "unavailable", reason: e.reason });
      goToRoom(GLOBAL, true);
    });
    return () => {
      stopped = true;
      clearTimeout(retry);
    };
  }, [socket, connected, active, state.availability, joinAgain]);

  // Read positions: the open room's newest message, once the user sees it
  // (the page visible, its list at the bottom), for a verified member.
  const { items, userId } = d;
  const openRoom = state.rooms.find((r) => r.id === active);
  const newest = active === GLOBAL ? undefined : newestSeen(items, active);
  const readAt = openRoom?.readAt;
  const member = openRoom?.member === true;
  useEffect(() => {
    if (!connected || !userId || !member || !visible || !seen || !newest?.id || !newest.createdAt) return;
    if (readAt !== undefined && readAt >= newest.createdAt) return;
    const room = active;
    const upTo = newest.id;
    const at = newest.createdAt;
    let stopped = false;
    let t = setTimeout(function send(attempt = 1) {
      dispatch({ type: "read", id: room, at });
      void ask(socket, "room:read", { room, upTo }).then((a) => {
        // The store may not have the message yet (it lags the broadcast by
        // a batch): once more, a little later.
        if (!stopped && !a.ok && a.error.code === "not_found" && attempt < 3) t = setTimeout(() => send(attempt + 1), 1000 * attempt);
      });
    }, READ_DELAY_MS);
    return () => {
      stopped = true;
      clearTimeout(t);
    };
  }, [socket, connected, userId, member, visible, seen, active, newest?.id, newest?.createdAt, readAt]);

  const open = useCallback((id: string) => goToRoom(id || GLOBAL), []);

  const create = useCallback(
    async (name: string, kind: "public" | "private") => {
      const a = await ask(latest.current.d.socket, "room:create", { name, kind });
      if (!a.ok) return describeRoomError(a.error, "The room was not created");
      const id = (a.room as Record<string, unknown> | undefined)?.id;
      dispatch({ type: "in", room: a.room });
      if (typeof id === "string") {
        joined.current.add(id); // new: no history to ask for
        goToRoom(id);
      }
      return null;
    },
    [],
  );

  const leave = useCallback(
    async (id: string) => {
      const a = await ask(latest.current.d.socket, "room:leave", { room: id });
      if (!a.ok) return describeRoomError(a.error, "You did not leave the room");
      out(id, "left");
      return null;
    },
    [out],
  );

  const invite = useCallback(async (id: string, userId: string, name: string) => {
    const a = await ask(latest.current.d.socket, "room:invite", { room: id, userId });
    return a.ok ? `${name} is in the room now.` : describeRoomError(a.error, `${name} was not invited`);
  }, []);

  const remove = useCallback(async (id: string, userId: string, name: string) => {
    const a = await ask(latest.current.d.socket, "room:remove", { room: id, userId });
    return a.ok ? `${name} was removed from the room.` : describeRoomError(a.error, `${name} was not removed`);
  }, []);

  const directMessage = useCallback(async (userId: string, name: string) => {
    const a = await ask(latest.current.d.socket, "dm:open", { userId });
    if (!a.ok) return describeRoomError(a.error, `No direct messages with ${name}`);
    const id = (a.room as Record<string, unknown> | undefined)?.id;
    dispatch({ type: "in", room: a.room, name });
    if (typeof id === "string") goToRoom(id);
    return null;
  }, []);

  const deleteRoom = useCallback(async (id: string) => {
    const { d: deps } = latest.current;
    const r = await apiDeleteRoom(deps.url, deps.token, id);
    // Every member's sockets, this one too, get room:deleted.
    return r.ok ? null : describeRoomError(r.error, "The room was not deleted");
  }, []);

  const loadOlder = useCallback((id: string) => {
    const { d: deps, state: s } = latest.current;
    const p = s.paging[id];
    if (p?.loading || p?.next === null) return;
    const oldest = deps.items.find((it) => (it.room ?? GLOBAL) === id && it.id && it.createdAt);
    const before = p?.next ?? oldest?.id;
    dispatch({ type: "paging", id, loading: true });
    void fetchOlder(deps.url, deps.token, id, before, PAGE).then((r) => {
      if (r.ok) {
        const body = r.body as Record<string, unknown> | null;
        deps.chat({ type: "older", room: id, payload: body?.messages, now: Date.now() });
        const next = typeof body?.nextBefore === "string" && body.nextBefore !== "" ? body.nextBefore : null;
        dispatch({ type: "paging", id, loading: false, next });
      } else if (r.status === 404 && id === GLOBAL) {
        dispatch({ type: "paging", id, loading: false, next: null }); // a server without the history API
      } else {
        dispatch({ type: "paging", id, loading: false, failed: true });
      }
    });
  }, []);

  const search = useCallback(async (q: string, cursor?: string): Promise<Found | string> => {
    const { d: deps } = latest.current;
    const r = await fetchRooms(deps.url, deps.token, { q, cursor, limit: 20 });
    if (!r.ok) return describeRoomError(r.error, "The rooms could not be listed");
    const rooms = (parseRoomList(r.body) ?? []).filter((x) => x.kind === "public" && (!q || x.name.toLowerCase().startsWith(q.toLowerCase())));
    const next = (r.body as Record<string, unknown> | null)?.nextCursor;
    return { rooms, next: typeof next === "string" ? next : null };
  }, []);

  const dismissNotice = useCallback(() => dispatch({ type: "dismiss-notice" }), []);

  // The user's token changed (signed in, out, or as someone else): the
  // list is someone else's.
  useEffect(() => {
    joined.current.clear();
  }, [userId]);

  return useMemo(
    () => ({ state, active, open, create, leave, invite, remove, directMessage, deleteRoom, loadOlder, search, dismissNotice, setSeen }),
    [state, active, open, create, leave, invite, remove, directMessage, deleteRoom, loadOlder, search, dismissNotice],
  );
}

