// Test harness: starts the real Go chat server as a child process on a free
// port, and connects real socket.io-client sockets to it.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { io } from "socket.io-client";

const serverDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

let builtBinary;
/** Path of the chat-server binary: $CHAT_SERVER_BIN, or built once here. */
export function serverBinary() {
  if (process.env.CHAT_SERVER_BIN) return process.env.CHAT_SERVER_BIN;
  if (!builtBinary) {
    const dir = mkdtempSync(join(tmpdir(), "chat-bin-"));
    builtBinary = join(dir, "chat-server");
    execFileSync("go", ["build", "-o", builtBinary, "./cmd/chat-server"], { cwd: serverDir, stdio: "inherit" });
  }
  return builtBinary;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/**
 * Starts the server with the given environment (on top of test defaults) and
 * waits until /readyz answers 200. Returns {url, stop, kill, logs, dataDir}.
 */
export async function startServer(env = {}, { dataDir } = {}) {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const ownDir = !dataDir;
  dataDir ??= mkdtempSync(join(tmpdir(), "chat-data-"));
  const child = spawn(serverBinary(), [], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      HOST: "127.0.0.1",
      PORT: String(port),
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
      PRESENCE_INTERVAL: "200ms",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let logs = "";
  child.stderr.on("data", (d) => (logs += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode}):\n${logs}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server not ready in 20 s:\n${logs}`);
    }
    await sleep(50);
  }
  return {
    url,
    port,
    pid: child.pid,
    dataDir,
    logs: () => logs,
    exited,
    /** SIGTERM, wait for the exit, return {code, signal}. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const r = await exited;
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      return r;
    },
    /** Stops without removing the data directory. */
    async stopKeepData() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const MODES = {
  default: {},
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
};

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
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("connect timeout")), 10_000);
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

/** Waits until pred() is true, polling, or throws after ms. */
export async function until(pred, ms = 10_000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Emits with an acknowledgement and resolves with the server's answer. */
export function emitAck(socket, payload, ms = 10_000) {
  return socket.timeout(ms).emitWithAck("event:message", payload);
}

export { existsSync };
