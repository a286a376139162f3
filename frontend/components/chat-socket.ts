// The Socket.IO events the page and the chat server exchange (see
// server/docs/protocol.md), for the one socket ChatProvider owns. Payloads
// from the server are read by the reducers, so they are unknown here.

import type { Socket } from "socket.io-client";

type Ack = (answer: unknown) => void;

/** What the server emits. */
export interface ServerToClient {
  message: (payload: unknown) => void;
  presence: (payload: unknown) => void;
  "presence:join": (payload: unknown) => void;
  "presence:leave": (payload: unknown) => void;
  typing: (payload: unknown) => void;
  error: (payload: unknown) => void;
  "message:deleted": (payload: unknown) => void;
  "room:invited": (payload: unknown) => void;
  "room:joined": (payload: unknown) => void;
  "room:left": (payload: unknown) => void;
  "room:removed": (payload: unknown) => void;
  "room:deleted": (payload: unknown) => void;
  "room:read": (payload: unknown) => void;
}

/** What the client emits: messages, typing, a moderator's deletions, and the room events. */
export interface ClientToServer {
  "event:message": (payload: { message: string; username: string; clientId: string; room?: string }, ack: Ack) => void;
  typing: (payload: { typing: boolean; username: string; room?: string }) => void;
  "event:delete": (payload: { id: string }, ack: Ack) => void;
  "room:create": (payload: { name: string; kind: "public" | "private" }, ack: Ack) => void;
  "room:join": (payload: { room: string }, ack: Ack) => void;
  "room:leave": (payload: { room: string }, ack: Ack) => void;
  "room:invite": (payload: { room: string; userId: string }, ack: Ack) => void;
  "room:remove": (payload: { room: string; userId: string }, ack: Ack) => void;
  "dm:open": (payload: { userId: string }, ack: Ack) => void;
  "room:read": (payload: { room: string; upTo: string }, ack: Ack) => void;
}

export type ChatSocket = Socket<ServerToClient, ClientToServer>;
