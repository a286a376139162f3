"use client";

// ChatProvider owns the one Socket.IO connection of the page. It turns the
// socket's events into actions of the chat reducer, performs the sends the
// outbox asks for (each with its clientId and an acknowledgement, under a
// timeout), and gives the components the state and a few verbs through
// context. No other component touches the socket.

import { createContext, useCallback, useContext, useEffect, useMemo, useReducer, useRef, useState, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import { io, type Socket } from "socket.io-client";
import {
  chatReducer,
  connectionStatus,
  dueSends,
  initialState,
  nextDue,
  parseAck,
  type ChatState,
  type ConnectionStatus,
} from "@/lib/chat-state";
import { ACK_TIMEOUT_MS, SOCKET_URL } from "@/lib/config";
import { LIVE_LIMITS, initialLiveState, liveReducer, nextLiveChange, onInput, stopTyping, type LiveState, type OwnTyping } from "@/lib/live-state";
import { newClientId } from "@/lib/ids";
import { readUsername, readUsernameOnServer, subscribeUsername, writeUsername } from "@/lib/username";

/** What the server emits; payloads are checked by the reducer, so unknown. */
interface ServerToClient {
  message: (payload: unknown) => void;
  presence: (payload: unknown) => void;
  "presence:join": (payload: unknown) => void;
  "presence:leave": (payload: unknown) => void;
  typing: (payload: unknown) => void;
  error: (payload: unknown) => void;
}

/** The events the client emits: messages, and whether the user is typing. */
interface ClientToServer {
  "event:message": (payload: { message: string; username: string; clientId: string }, ack: (answer: unknown) => void) => void;
  typing: (payload: { typing: boolean; username: string }) => void;
}

type ChatSocket = Socket<ServerToClient, ClientToServer>;

/** What components get from useChat(). */
export interface ChatContextValue {
  state: ChatState;
  status: ConnectionStatus;
  /** The user's name; null before they chose one; undefined while unknown (server render). */
  username: string | null | undefined;
  setUsername: (name: string | null) => void;
  /** Queues a message; it goes out now or when the connection is back. */
  send: (text: string) => void;
  retry: (clientId: string) => void;
  remove: (clientId: string) => void;
  dismissError: () => void;
  /** Who is online and who is typing. */
  live: LiveState;
  /** The user's input changed (hasText: it is not empty): tells the others they are typing. */
  typing: (hasText: boolean) => void;
  /** The user stopped typing (left the input). */
  stopTyping: () => void;
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
  const inFlight = useRef(new Set<string>());
  const [tick, setTick] = useState(0);
  const [live, liveDispatch] = useReducer(liveReducer, undefined, initialLiveState);
  // The name the server was given at the last CONNECT, and the user's typing.
  const connectedAs = useRef<string | null>(null);
  const ownTyping = useRef<OwnTyping>({ typing: false, sentAt: 0 });
  const idleTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => {
    usernameRef.current = username;
  }, [username]);

  // The connection: one socket for the page's life, default transports
  // (long-polling first, then the upgrade to WebSocket), like the original.
  // Each CONNECT names the user (auth {username}) once they chose a name,
  // so the server lists them as online.
  useEffect(() => {
    const socket: ChatSocket = io(url, {
      auth: (cb) => {
        connectedAs.current = usernameRef.current ?? null;
        cb(connectedAs.current ? { username: connectedAs.current } : {});
      },
    });
    socketRef.current = socket;
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
    socket.on("connect_error", () => {
      dispatch({ type: "connect-failed" });
      // A refusal at the namespace level stops the built-in reconnection.
      if (!socket.active) {
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(() => socket.connect(), 5000);
      }
    });
    socket.on("message", (payload) =>
      dispatch({ type: "received", payload, me: usernameRef.current ?? null, now: Date.now() }),
    );
    socket.on("presence", (payload) => {
      dispatch({ type: "presence", payload });
      liveDispatch({ type: "presence", payload });
    });
    socket.on("presence:join", (payload) => liveDispatch({ type: "presence-change", kind: "join", payload, now: Date.now() }));
    socket.on("presence:leave", (payload) => liveDispatch({ type: "presence-change", kind: "leave", payload, now: Date.now() }));
    socket.on("typing", (payload) => liveDispatch({ type: "typing", payload, now: Date.now() }));
    socket.on("error", (payload) => dispatch({ type: "server-error", payload, now: Date.now() }));

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
      pending.clear();
    };
  }, [url]);

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
      socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("event:message", { message: it.text, username: it.username, clientId })
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
    const next = nextLiveChange(live);
    if (next === null) return;
    const t = setTimeout(() => liveDispatch({ type: "tick", now: Date.now() }), Math.max(0, next - Date.now()) + 10);
    return () => clearTimeout(t);
  }, [live]);

  const emitTyping = useCallback((step: { next: OwnTyping; send: boolean | null }) => {
    ownTyping.current = step.next;
    const socket = socketRef.current;
    const name = usernameRef.current;
    if (step.send !== null && socket?.connected && name) socket.emit("typing", { typing: step.send, username: name });
  }, []);
  const stopOwnTyping = useCallback(() => {
    clearTimeout(idleTimer.current);
    emitTyping(stopTyping(ownTyping.current));
  }, [emitTyping]);
  const typing = useCallback(
    (hasText: boolean) => {
      clearTimeout(idleTimer.current);
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
    dispatch({ type: "submit", clientId: newClientId(), username: name, text, now: Date.now() });
  }, []);
  const retry = useCallback((clientId: string) => dispatch({ type: "retry", clientId, now: Date.now() }), []);
  const remove = useCallback((clientId: string) => dispatch({ type: "remove", clientId }), []);
  const dismissError = useCallback(() => dispatch({ type: "dismiss-error" }), []);
  const setUsername = useCallback((name: string | null) => writeUsername(name === null ? null : name.trim() || null), []);

  const value = useMemo<ChatContextValue>(
    () => ({
      state,
      status: connectionStatus(state.connection),
      username,
      setUsername,
      send,
      retry,
      remove,
      dismissError,
      live,
      typing,
      stopTyping: stopOwnTyping,
    }),
    [state, username, setUsername, send, retry, remove, dismissError, live, typing, stopOwnTyping],
  );
  return <ChatContext.Provider value={value}>{children}</ChatContext.Provider>;
}
