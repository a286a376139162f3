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
import { newClientId } from "@/lib/ids";
import { readUsername, readUsernameOnServer, subscribeUsername, writeUsername } from "@/lib/username";

/** What the server emits; payloads are checked by the reducer, so unknown. */
interface ServerToClient {
  message: (payload: unknown) => void;
  presence: (payload: unknown) => void;
  error: (payload: unknown) => void;
}

/** The one event the client emits. */
interface ClientToServer {
  "event:message": (payload: { message: string; username: string; clientId: string }, ack: (answer: unknown) => void) => void;
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

  useEffect(() => {
    usernameRef.current = username;
  }, [username]);

  // The connection: one socket for the page's life, default transports
  // (long-polling first, then the upgrade to WebSocket), like the original.
  useEffect(() => {
    const socket: ChatSocket = io(url);
    socketRef.current = socket;
    let reconnectTimer: ReturnType<typeof setTimeout> | undefined;

    socket.on("connect", () => dispatch({ type: "connected" }));
    socket.on("disconnect", (reason) => {
      dispatch({ type: "disconnected" });
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
    socket.on("presence", (payload) => dispatch({ type: "presence", payload }));
    socket.on("error", (payload) => dispatch({ type: "server-error", payload, now: Date.now() }));

    const online = () => dispatch({ type: "browser-online", online: true });
    const offline = () => dispatch({ type: "browser-online", online: false });
    window.addEventListener("online", online);
    window.addEventListener("offline", offline);
    if (!navigator.onLine) offline();

    const pending = inFlight.current;
    return () => {
      clearTimeout(reconnectTimer);
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

  const send = useCallback((text: string) => {
    const name = usernameRef.current;
    if (!name || text.trim() === "") return;
    dispatch({ type: "submit", clientId: newClientId(), username: name, text, now: Date.now() });
  }, []);
  const retry = useCallback((clientId: string) => dispatch({ type: "retry", clientId, now: Date.now() }), []);
  const remove = useCallback((clientId: string) => dispatch({ type: "remove", clientId }), []);
  const dismissError = useCallback(() => dispatch({ type: "dismiss-error" }), []);
  const setUsername = useCallback((name: string | null) => writeUsername(name === null ? null : name.trim() || null), []);

  const value = useMemo<ChatContextValue>(
    () => ({ state, status: connectionStatus(state.connection), username, setUsername, send, retry, remove, dismissError }),
    [state, username, setUsername, send, retry, remove, dismissError],
  );
  return <ChatContext.Provider value={value}>{children}</ChatContext.Provider>;
}
