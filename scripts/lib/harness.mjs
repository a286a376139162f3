// What the JavaScript test suites share (server/e2e, frontend/test/e2e,
// prisma-compat/test, scripts/tests): free ports, a child process in a
// process group of its own with its output kept for the failure message,
// the chat-server binary and a server started from it, and a wait that says
// what it saw when it gives up.
//
// Node's built-in modules only, so that every npm package of the repository
// imports it by its path without installing anything.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import net from "node:net";

/** The repository's root directory. */
export const repoDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** REDIS_URL, or an error that says how to start Redis (tests fail, never skip, without it). */
export function redisURL() {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: start Redis with eval "$(scripts/services up redis)" (scripts/test does)');
  return url;
}

// Ports freePort hands out: below the kernel's ephemeral range (32768 and
// up, where outgoing connections get their local port), so no connection can
// take one between the pick and the bind, and above the ports
// scripts/services gives the checkouts' services (20000-29999). The Go
// suites' testkit.FreePort uses the same range.
const FREE_LOW = 30000;
const FREE_HIGH = 32767;

/**
 * A TCP port nothing listens on at 127.0.0.1 now (see FREE_LOW). Another
 * process may still take it before the caller binds it; startChatServer
 * avoids the question by letting the server bind port 0.
 */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = FREE_LOW + Math.floor(Math.random() * (FREE_HIGH - FREE_LOW + 1));
    const free = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${FREE_LOW}-${FREE_HIGH} after 200 tries`);
}

/** show renders what a wait saw: strings as they are, anything else inspected. */
export function show(v) {
  return typeof v === "string" ? v : inspect(v, { depth: 4, breakLength: 120, maxArrayLength: 20 });
}

/**
 * Waits until pred() (which may be async) is truthy, polling every 10 ms, and
 * resolves with its value. After ms it throws, naming what it waited for and,
 * when seen is given, what seen() returns then.
 */
export async function until(pred, ms = 10_000, what = "condition", seen) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}` + (seen ? `; saw ${show(await seen())}` : ""));
    }
    await sleep(10);
  }
}

const started = new Set();
process.on("exit", () => {
  for (const child of started) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** signalGroup sends sig to the process group led by child; false when it is gone. */
function signalGroup(child, sig) {
  try {
    process.kill(-child.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts cmd in a process group of its own, keeps its output, and, when
 * readyUrl is given, waits until it answers 200 there. The group is killed
 * when this process exits. Returns {child, pid, logs(), exited, stop(), kill()};
 * stop() sends SIGTERM to the group, SIGKILL after stopMs, and resolves with
 * the exit {code, signal}.
 */
export async function startProcess(name, cmd, args, { cwd, env, readyUrl, timeoutMs = 30_000, stopMs = 20_000 } = {}) {
  const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  started.add(child);
  let logs = "";
  child.stdout.on("data", (d) => (logs += d));
  child.stderr.on("data", (d) => (logs += d));
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      started.delete(child);
      resolve({ code, signal });
    }),
  );
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const p = {
    child,
    pid: child.pid,
    logs: () => logs,
    exited,
    /** SIGTERM to the group, SIGKILL after stopMs; resolves with the exit. */
    async stop() {
      if (!gone()) {
        signalGroup(child, "SIGTERM");
        const t = setTimeout(() => signalGroup(child, "SIGKILL"), stopMs);
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
    /** sig (SIGKILL by default) to the process alone, not to its group. */
    kill(sig = "SIGKILL") {
      if (!gone()) child.kill(sig);
      return exited;
    },
  };
  if (!readyUrl) return p;
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  for (;;) {
    if (gone()) throw new Error(`${name} exited early (${child.exitCode ?? child.signalCode}):\n${logs}`);
    try {
      const res = await fetch(readyUrl, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return p;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = String(e.cause?.code ?? e.message);
    }
    if (Date.now() > deadline) {
      signalGroup(child, "SIGKILL");
      throw new Error(`${name} not ready at ${readyUrl} in ${timeoutMs} ms (last: ${last}):\n${logs}`);
    }
    await sleep(50);
  }
}

let builtBinary;
/** The chat-server binary: $CHAT_SERVER_BIN, or built once here with go build. */
export function chatServerBinary() {
  if (process.env.CHAT_SERVER_BIN) return process.env.CHAT_SERVER_BIN;
  if (!builtBinary) {
    const dir = mkdtempSync(join(tmpdir(), "chat-bin-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    builtBinary = join(dir, "chat-server");
    execFileSync("go", ["build", "-o", builtBinary, "./cmd/chat-server"], { cwd: join(repoDir, "server"), stdio: "inherit" });
  }
  return builtBinary;
}

// The address in chat-server's "chat-server ready" line (text or JSON logs).
const READY = /msg="chat-server ready" addr=(\S+)|"msg":"chat-server ready","addr":"([^"]+)"/;

/**
 * Starts chat-server on 127.0.0.1 with env on top of the test defaults (its
 * own data directory unless dataDir, LOG_LEVEL info, PRESENCE_INTERVAL
 * 200ms) and waits until /readyz answers 200. Unless env.PORT is given the
 * server binds port 0 and its "chat-server ready" line says which port it
 * got, so no other process can take the port first.
 * Returns {url, port, pid, dataDir, logs(), exited, stop(), stopKeepData(), kill()}:
 * stop() also removes a data directory it made.
 */
export async function startChatServer(env = {}, { dataDir, timeoutMs = 30_000 } = {}) {
  const fixed = env.PORT !== undefined && env.PORT !== "0";
  const ownDir = !dataDir;
  dataDir ??= mkdtempSync(join(tmpdir(), "chat-data-"));
  let p;
  let url = fixed ? `http://127.0.0.1:${env.PORT}` : undefined;
  try {
    p = await startProcess("chat-server", chatServerBinary(), [], {
      cwd: dataDir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        HOST: "127.0.0.1",
        DATA_DIR: dataDir,
        LOG_LEVEL: "info",
        PRESENCE_INTERVAL: "200ms",
        ...env,
        PORT: fixed ? String(env.PORT) : "0",
      },
    });
    const deadline = Date.now() + timeoutMs;
    if (!url) {
      const gone = () => p.child.exitCode !== null || p.child.signalCode !== null;
      const addr = await until(
        () => {
          if (gone()) throw new Error(`chat-server exited early (${p.child.exitCode ?? p.child.signalCode}):\n${p.logs()}`);
          const m = READY.exec(p.logs());
          return m && (m[1] ?? m[2]);
        },
        timeoutMs,
        'the "chat-server ready" line (with LOG_LEVEL above info there is none: give a PORT)',
        () => p.logs(),
      );
      url = `http://${addr}`;
    }
    let last = "no answer yet";
    await until(
      async () => {
        if (p.child.exitCode !== null) throw new Error(`chat-server exited early (${p.child.exitCode}):\n${p.logs()}`);
        try {
          const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
          last = `HTTP ${res.status}`;
          return res.status === 200;
        } catch (e) {
          last = String(e.cause?.code ?? e.message);
          return false;
        }
      },
      Math.max(deadline - Date.now(), 1000),
      `chat-server ready at ${url}/readyz`,
      () => `${last}; output:\n${p.logs()}`,
    );
  } catch (e) {
    await p?.stop();
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    ...p,
    url,
    port: Number(new URL(url).port),
    dataDir,
    async stop() {
      const r = await p.stop();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      return r;
    },
    /** Stops without removing the data directory. */
    stopKeepData: () => p.stop(),
  };
}
