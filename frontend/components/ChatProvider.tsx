"use client";

// ChatProvider owns the one Socket.IO connection of the page. It turns the
// socket's events into actions of the chat reducer (messages of every room)
// and the live one (presence and typing, per room), performs the sends the
// outbox asks for (each with its clientId and an acknowledgement, under a
// timeout, to the room it was typed in), and gives the components the state
// and a few verbs through context. Its rooms part is useRooms (same socket).
// No other component touches the socket.

import { createContext, useCallback, useContext, useEffect, useMemo, useReducer, useRef, useState, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import { io } from "socket.io-client";
import {
  GLOBAL_ROOM,
  chatReducer,
  connectionStatus,
  dueSends,
  initialState,
  isOwn,
  nextDue,
  parseAck,
  type ChatItem,
  type ChatState,
  type ConnectionStatus,
} from "@/lib/chat-state";
import { ACK_TIMEOUT_MS, SOCKET_URL } from "@/lib/config";
import { LIVE_LIMITS, liveRoomsReducer, nextLiveRoomsChange, onInput, stopTyping, type LiveRooms, type OwnTyping } from "@/lib/live-state";
import { newClientId } from "@/lib/ids";
import { readUsername, readUsernameOnServer, subscribeUsername, writeUsername } from "@/lib/username";
import {
  fetchAuthConfig,
  isModeratorToken,
  readPastedToken,
  signInGuest,
  SignInError,
  tokenSubject,
  writePastedToken,
  type AuthConfig,
  type Session,
} from "@/lib/session";
import type { ChatSocket } from "./chat-socket";
import { useRooms, type RoomsApi } from "./useRooms";

/** What components get from useChat(). */
export interface ChatContextValue {
  state: ChatState;
  status: ConnectionStatus;
  /** The user's name; null before they chose one; undefined while unknown (server render). */
  username: string | null | undefined;
  /** Sets the name (signing a guest in when the server asks for it); resolves with a problem to show, or null. */
  setUsername: (name: string | null, token?: string) => Promise<string | null>;
  /** The server's sign-in settings; null while they are being read. */
  auth: AuthConfig | null;
  /** The user's token names a moderator: they see the delete control. */
  canModerate: boolean;
  /** The user id the user's token names (its sub); null without a token. */
  userId: string | null;
  /** Deletes a message for everyone (moderators). */
  deleteMessage: (id: string) => void;
  /** Queues a message for the open room; it goes out now or when the connection is back. */
  send: (text: string) => void;
  retry: (clientId: string) => void;
  remove: (clientId: string) => void;
  dismissError: () => void;
  /** Who is online and who is typing, per room (liveOf). */
  live: LiveRooms;
  /** The user's input changed (hasText: it is not empty): tells the open room's others they are typing. */
  typing: (hasText: boolean) => void;
  /** The user stopped typing (left the input). */
  stopTyping: () => void;
  /** Rooms: the list, the open room, and what the user can do with them. */
  rooms: RoomsApi;
  /** Whether a message is the user's own. */
  isOwn: (it: ChatItem) => boolean;
}

const ChatContext = createContext<ChatContextValue | null>(null);

/** useChat gives the chat state and verbs; only inside ChatProvider. */
export function useChat(): ChatContextValue {
  const v = useContext(ChatContext);
  if (!v) throw new Error("useChat must be used inside <ChatProvider>");
  return v;
}

/** ChatProvider connects to url (default NEXT_PUBLIC_SOCKET_URL) and provides the chat. */
export function ChatProvider({ children, url = SOCKET_URL }: { children: ReactNode; url?: string }) {
  const [state, dispatch] = useReducer(chatReducer, undefined, initialState);
  const username = useSyncExternalStore(subscribeUsername, readUsername, readUsernameOnServer);
  const usernameRef = useRef<string | null | undefined>(username);
  const socketRef = useRef<ChatSocket | null>(null);
  const [socket, setSocket] = useState<ChatSocket | null>(null);
  const inFlight = useRef(new Set<string>());
  const [tick, setTick] = useState(0);
  const [live, liveDispatch] = useReducer(liveRoomsReducer, {});
  // The name and the user id the server was given at the last CONNECT,
  // and the user's typing (in typingRoom).
  const connectedAs = useRef<string | null>(null);
  const connectedId = useRef<string | null>(null);
  const ownTyping = useRef<OwnTyping>({ typing: false, sentAt: 0 });
  const typingRoom = useRef<string>(GLOBAL_ROOM);
  const activeRef = useRef<string>(GLOBAL_ROOM);
  const idleTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const [auth, setAuth] = useState<AuthConfig | null>(null);
  const [token, setToken] = useState<string | null>(null);
  const tokenRef = useRef<string | null>(null);
  const sessionRef = useRef<Session | null>(null);
  // A guest sign-in is under way for the stored name: the socket waits for
  // its token (a CONNECT without it would be anonymous, in none of the
  // user's rooms). Settled once it came or failed.
  const [guestSettled, setGuestSettled] = useState(false);

  useEffect(() => {
    usernameRef.current = username;
  }, [username]);

  // What the server asks of clients (the original server: nothing).
  useEffect(() => {
    const ctl = new AbortController();
    void fetchAuthConfig(url, ctl.signal).then((c) => {
      if (!ctl.signal.aborted) setAuth(c);
    });
    return () => ctl.abort();
  }, [url]);

  const applyToken = useCallback((t: string | null) => {
    tokenRef.current = t;
    setToken(t);
    setGuestSettled(true);
  }, []);

  // A guest's token: signed in for the stored name (renewing the session
  // of this name when there is one), then renewed a minute before it
  // expires. A pasted token (a moderator's) is used as it is.
  useEffect(() => {
    if (!auth || auth.auth === "off") return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const pasted = readPastedToken();
    if (pasted) {
      void Promise.resolve().then(() => !stopped && applyToken(pasted));
      return () => {
        stopped = true;
      };
    }
    if (!auth.guest || !username) return;
    const renew = (current: Session | null) => {
      signInGuest(url, username, current).then(
        (s) => {
          if (stopped) return;
          sessionRef.current = s;
          storeSession(s);
          applyToken(s.token);
          timer = setTimeout(() => renew(s), Math.max(5000, s.expiresAt - Date.now() - 60_000));
        },
        (err: unknown) => {
          if (stopped) return;
          setGuestSettled(true);
          const e = err instanceof SignInError ? err : new SignInError("internal", String(err));
          dispatch({ type: "server-error", payload: { code: e.code, reason: e.message }, now: Date.now() });
          if (e.code === "name_taken") writeUsername(null);
          else timer = setTimeout(() => renew(current), 5000);
        },
      );
    };
    const stored = loadSession(username);
    if (stored && stored.expiresAt - Date.now() > 60_000) {
      sessionRef.current = stored;
      void Promise.resolve().then(() => !stopped && applyToken(stored.token));
      timer = setTimeout(() => renew(stored), Math.max(5000, stored.expiresAt - Date.now() - 60_000));
    } else {
      renew(stored);
    }
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [auth, username, url, applyToken]);

  // The connection: one socket for the page's life, default transports
  // (long-polling first, then the upgrade to WebSocket), like the original.
  // Each CONNECT names the user (auth {username}) once they chose a name,
  // so the server lists them as online, and carries the token when there is
  // one: every (re)connect reads it, so a renewed one is used when the
  // server closes the connection at the old one's expiry.
  useEffect(() => {
    const socket: ChatSocket = io(url, {
      autoConnect: false,
      auth: (cb) => {
        connectedAs.current = usernameRef.current ?? null;
        connectedId.current = tokenSubject(tokenRef.current);
        const a: { token?: string; username?: string } = {};
        if (tokenRef.current) a.token = tokenRef.current;
        if (connectedAs.current) a.username = connectedAs.current;
        cb(a);
      },
    });
    socketRef.current = socket;
    void Promise.resolve().then(() => setSocket(socket));
    let reconnectTimer: ReturnType<typeof setTimeout> | undefined;

    socket.on("connect", () => dispatch({ type: "connected" }));
    socket.on("disconnect", (reason) => {
      dispatch({ type: "disconnected" });
      liveDispatch({ type: "disconnected" });
      ownTyping.current = { typing: false, sentAt: 0 };
      // The client does not reconnect by itself after a disconnect the
      // server asked for (a node draining, say): go back in, through the
      // usual back-off if the server is gone.
      if (reason === "io server disconnect") socket.connect();
    });
    socket.on("connect_error", (err: Error & { data?: unknown }) => {
      dispatch({ type: "connect-failed" });
      // A refusal says why: banned (and until when), or unauthorized.
      if (err.message === "banned" || err.message === "unauthorized") {
        dispatch({ type: "server-error", payload: err.data, now: Date.now() });
      }
      // A refusal at the namespace level stops the built-in reconnection.
      if (!socket.active) {
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(() => socket.connect(), 5000);
      }
    });
    socket.on("message", (payload) =>
      dispatch({ type: "received", payload, me: usernameRef.current ?? null, now: Date.now() }),
    );
    socket.on("presence", (payload) => liveDispatch({ type: "presence", payload }));
    socket.on("presence:join", (payload) => liveDispatch({ type: "presence-change", kind: "join", payload, now: Date.now() }));
    socket.on("presence:leave", (payload) => liveDispatch({ type: "presence-change", kind: "leave", payload, now: Date.now() }));
    socket.on("typing", (payload) => liveDispatch({ type: "typing", payload, now: Date.now() }));
    socket.on("error", (payload) => dispatch({ type: "server-error", payload, now: Date.now() }));
    socket.on("message:deleted", (payload) => dispatch({ type: "deleted", payload }));

    const online = () => dispatch({ type: "browser-online", online: true });
    const offline = () => dispatch({ type: "browser-online", online: false });
    window.addEventListener("online", online);
    window.addEventListener("offline", offline);
    if (!navigator.onLine) offline();

    const pending = inFlight.current;
    const idle = idleTimer;
    return () => {
      clearTimeout(reconnectTimer);
      clearTimeout(idle.current);
      window.removeEventListener("online", online);
      window.removeEventListener("offline", offline);
      socket.removeAllListeners();
      socket.disconnect();
      socketRef.current = null;
      setSocket(null);
      pending.clear();
    };
  }, [url]);

  // Connect once the server's settings are known and, when it requires a
  // token, once there is one; a guest being signed in waits for its token.
  const guestPending = !!auth && auth.auth !== "off" && auth.guest && !!username && !token && !guestSettled;
  useEffect(() => {
    const socket = socketRef.current;
    if (!socket || !auth) return;
    if (auth.auth === "required" && !token) return;
    if (guestPending) return;
    if (!socket.connected && !socket.active) socket.connect();
  }, [auth, token, guestPending]);

  // Signed in (or out, or as someone else) while connected: connect again
  // as who the user is now. A renewed token of the same user does not need
  // it (the server closes the connection at the old one's expiry).
  const subject = tokenSubject(token);
  useEffect(() => {
    const socket = socketRef.current;
    if (socket?.connected && subject !== connectedId.current) socket.disconnect().connect();
  }, [subject, state.connection.connected]);

  // The outbox: send what is due while connected; wake up when the next
  // retry is due.
  useEffect(() => {
    const socket = socketRef.current;
    if (!socket || !state.connection.connected) return;
    const now = Date.now();
    for (const it of dueSends(state, now)) {
      const clientId = it.clientId as string;
      if (inFlight.current.has(clientId)) continue;
      inFlight.current.add(clientId);
      dispatch({ type: "send-started", clientId });
      // The global room's payload is the original's: no room in it.
      const payload = it.room ? { message: it.text, username: it.username, clientId, room: it.room } : { message: it.text, username: it.username, clientId };
      socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("event:message", payload)
        .then(
          (answer) => dispatch({ type: "acked", clientId, result: parseAck(answer), now: Date.now() }),
          () => dispatch({ type: "ack-timeout", clientId, connected: socket.connected, now: Date.now() }),
        )
        .finally(() => inFlight.current.delete(clientId));
    }
    const next = nextDue(state);
    if (next === null || next <= now) return;
    const t = setTimeout(() => setTick((n) => n + 1), next - now);
    return () => clearTimeout(t);
  }, [state, tick]);

  // A name chosen (or changed) while connected: connect again with it.
  useEffect(() => {
    const socket = socketRef.current;
    if (socket?.connected && username && username !== connectedAs.current) {
      socket.disconnect().connect();
    }
  }, [username, state.connection.connected]);

  // Typing indicators and join/leave lines expire by themselves.
  useEffect(() => {
    const next = nextLiveRoomsChange(live);
    if (next === null) return;
    const t = setTimeout(() => liveDispatch({ type: "tick", now: Date.now() }), Math.max(0, next - Date.now()) + 10);
    return () => clearTimeout(t);
  }, [live]);

  const emitTyping = useCallback((step: { next: OwnTyping; send: boolean | null }) => {
    ownTyping.current = step.next;
    const socket = socketRef.current;
    const name = usernameRef.current;
    const room = typingRoom.current;
    if (step.send !== null && socket?.connected && name) {
      socket.emit("typing", room === GLOBAL_ROOM ? { typing: step.send, username: name } : { typing: step.send, username: name, room });
    }
  }, []);
  const stopOwnTyping = useCallback(() => {
    clearTimeout(idleTimer.current);
    emitTyping(stopTyping(ownTyping.current));
  }, [emitTyping]);
  const typing = useCallback(
    (hasText: boolean) => {
      clearTimeout(idleTimer.current);
      if (typingRoom.current !== activeRef.current) {
        // The user typed in another room before: that typing ends.
        emitTyping(stopTyping(ownTyping.current));
        typingRoom.current = activeRef.current;
      }
      emitTyping(onInput(ownTyping.current, hasText, Date.now()));
      if (hasText) idleTimer.current = setTimeout(stopOwnTyping, LIVE_LIMITS.typingIdleMs);
    },
    [emitTyping, stopOwnTyping],
  );

  const send = useCallback((text: string) => {
    const name = usernameRef.current;
    if (!name || text.trim() === "") return;
    // The server ends the sender's typing when the message arrives.
    clearTimeout(idleTimer.current);
    ownTyping.current = { typing: false, sentAt: 0 };
    dispatch({ type: "submit", clientId: newClientId(), username: name, text, now: Date.now(), room: activeRef.current });
  }, []);
  const retry = useCallback((clientId: string) => dispatch({ type: "retry", clientId, now: Date.now() }), []);
  const remove = useCallback((clientId: string) => dispatch({ type: "remove", clientId }), []);
  const dismissError = useCallback(() => dispatch({ type: "dismiss-error" }), []);
  const setUsername = useCallback(
    async (name: string | null, pasted?: string): Promise<string | null> => {
      const clean = name === null ? null : name.trim() || null;
      if (clean === null) {
        writePastedToken(null);
        sessionRef.current = null;
        applyToken(null);
        writeUsername(null);
        return null;
      }
      if (pasted) {
        writePastedToken(pasted.trim());
        applyToken(pasted.trim());
        writeUsername(clean);
        return null;
      }
      if (auth && auth.auth !== "off" && auth.guest) {
        try {
          const s = await signInGuest(url, clean, sessionRef.current);
          sessionRef.current = s;
          storeSession(s);
          applyToken(s.token);
          writeUsername(s.username);
        } catch (err) {
          return err instanceof SignInError ? describeSignIn(err) : String(err);
        }
        return null;
      }
      writeUsername(clean);
      return null;
    },
    [auth, url, applyToken],
  );
  const deleteMessage = useCallback((id: string) => {
    const socket = socketRef.current;
    if (!socket) return;
    socket
      .timeout(ACK_TIMEOUT_MS)
      .emitWithAck("event:delete", { id })
      .then(
        (answer) => {
          const r = parseAck(answer);
          if (!r.ok) dispatch({ type: "server-error", payload: r.error, now: Date.now() });
        },
        () => dispatch({ type: "server-error", payload: { code: "unavailable", reason: "no answer to the deletion" }, now: Date.now() }),
      );
  }, []);
  const canModerate = isModeratorToken(token);
  const userId = subject;
  const me = username ?? null;
  const own = useCallback((it: ChatItem) => (me === null ? !!it.out : isOwn(it, me, userId)), [me, userId]);
  const forgetLive = useCallback((room: string) => liveDispatch({ type: "forget", room }), []);
  const rooms = useRooms({
    url,
    socket,
    connected: state.connection.connected,
    token,
    userId,
    items: state.items,
    isOwn: own,
    chat: dispatch,
    forgetLive,
  });
  // The open room, for the sends and typing of the callbacks above.
  const active = rooms.active;
  useEffect(() => {
    activeRef.current = active;
    // Typing in the room the user left ends.
    if (typingRoom.current !== active) {
      clearTimeout(idleTimer.current);
      emitTyping(stopTyping(ownTyping.current));
      typingRoom.current = active;
    }
  }, [active, emitTyping]);

  const value = useMemo<ChatContextValue>(
    () => ({
      state,
      status: connectionStatus(state.connection),
      username,
      setUsername,
      auth,
      canModerate,
      userId,
      deleteMessage,
      send,
      retry,
      remove,
      dismissError,
      live,
      typing,
      stopTyping: stopOwnTyping,
      rooms,
      isOwn: own,
    }),
    [state, username, setUsername, auth, canModerate, userId, deleteMessage, send, retry, remove, dismissError, live, typing, stopOwnTyping, rooms, own],
  );
  return <ChatContext.Provider value={value}>{children}</ChatContext.Provider>;
}

const SESSION_KEY = "chat.session";

/** Keeps a guest's session across reloads, so the page renews it rather than asking for its name again. */
function storeSession(s: Session): void {
  try {
    window.localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  } catch {
    // this page only, then
  }
}

function loadSession(username: string): Session | null {
  try {
    const s = JSON.parse(window.localStorage.getItem(SESSION_KEY) ?? "null") as Session | null;
    if (s && s.username === username && typeof s.token === "string" && s.expiresAt > Date.now()) return s;
  } catch {
    // none
  }
  return null;
}

function describeSignIn(e: SignInError): string {
  switch (e.code) {
    case "name_taken":
      return "Another guest uses this name now; choose another.";
    case "banned":
      return `You cannot sign in: ${e.message}.`;
    default:
      return `Sign-in failed: ${e.message}`;
  }
}
