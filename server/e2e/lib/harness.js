// Test harness: the real Go chat server as a child process on a free port
// (scripts/lib/harness.mjs, shared with the other JavaScript suites), and real
// socket.io-client sockets connected to it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { io } from "socket.io-client";
import { chatServerBinary, freePort, redisURL, sleep, startChatServer, until as untilSeen } from "../../../scripts/lib/harness.mjs";

export { freePort, redisURL, sleep, existsSync };

/** Path of the chat-server binary: $CHAT_SERVER_BIN, or built once here. */
export const serverBinary = chatServerBinary;

/**
 * Starts the server with the given environment (on top of test defaults) and
 * waits until /readyz answers 200. Returns {url, port, pid, dataDir, logs,
 * exited, stop, stopKeepData, kill}.
 */
export const startServer = (env = {}, opts = {}) => startChatServer(env, opts);

/** The variable name's value, or a failed assertion that says how to start the services. */
export function requireEnv(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is not set: this test needs the real services. Start them with: eval "$(scripts/services up)" (or run scripts/test)`);
  return v;
}

/** psql from PATH, or the newest of Debian's /usr/lib/postgresql/N/bin. */
function psqlPath() {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, "psql"))) return join(dir, "psql");
  }
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(a) - Number(b)) : [];
  for (const v of versions.reverse()) {
    if (existsSync(join(root, v, "bin", "psql"))) return join(root, v, "bin", "psql");
  }
  throw new Error("psql not found in PATH or /usr/lib/postgresql/*/bin");
}

/** Runs sql on the database url; its rows, one per line, columns apart by tabs, without the last newline. */
export function psql(url, sql) {
  return execFileSync(psqlPath(), ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-d", url, "-c", sql], { encoding: "utf-8" }).replace(/\n$/, "");
}

export const MODES = {
  default: {},
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
};

// The sockets connect() made and the test has not closed: what a wait that
// gives up reports.
const sockets = new Set();

/** What each open socket stands at, for a wait that gives up. */
export function describeSockets() {
  if (sockets.size === 0) return "no open socket";
  return [...sockets]
    .map((s) => {
      const last = s.messages.at(-1);
      return (
        `socket ${s.id ?? "(no id)"}: ${s.connected ? "connected" : "disconnected"} over ${s.io.engine?.transport?.name ?? "-"}, ` +
        `${s.messages.length} messages (last ${last ? JSON.stringify(last.message) : "-"}), ` +
        `errors [${s.errors.map((e) => e.code).join(", ")}], presence ${s.presence.at(-1)?.online ?? "-"}`
      );
    })
    .join("; ");
}

/**
 * Connects a socket.io-client socket and records what it receives.
 * Returns the socket with .messages, .errors, .presence and .events arrays.
 */
export async function connect(url, opts = {}) {
  const socket = io(url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500, ...opts });
  socket.messages = [];
  socket.errors = [];
  socket.presence = [];
  socket.on("message", (m) => socket.messages.push(m));
  socket.on("error", (e) => socket.errors.push(e));
  socket.on("presence", (p) => socket.presence.push(p));
  sockets.add(socket);
  socket.on("disconnect", (reason) => reason === "io client disconnect" && sockets.delete(socket));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connect to ${url}: no connection within 10 s`)), 10_000);
    socket.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
    socket.once("connect_error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
  return socket;
}

/**
 * Waits until pred() is true, polling, or throws after ms, saying what seen()
 * returns then (by default: where every open socket stands).
 */
export function until(pred, ms = 10_000, what = "condition", seen = describeSockets) {
  return untilSeen(pred, ms, what, seen);
}

/** Emits with an acknowledgement and resolves with the server's answer. */
export function emitAck(socket, payload, ms = 10_000) {
  return socket.timeout(ms).emitWithAck("event:message", payload);
}
