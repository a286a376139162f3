// Three Go nodes behind HAProxy, started by scripts/lb-local with the
// balancer configuration compose.yaml uses (scripts/haproxy/haproxy.cfg),
// driven by the real socket.io-client in its default mode (long-polling, then
// the upgrade to WebSocket) from several 127.0.0.x source addresses (Linux
// routes all of 127.0.0.0/8 to lo), so that clients land on different nodes:
// they chat across nodes, a long-polling-only client stays on its node, the
// per-address connection limit counts each real client (X-Forwarded-For from
// a trusted proxy), and when one node is killed (SIGKILL) its clients
// reconnect through the balancer to the others and keep chatting, while the
// clients of the other nodes are not disturbed.
//
// Needs haproxy (scripts/test balancer installs Debian's package) and Redis
// (REDIS_URL); fails, never skips, without them.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { io } from "socket.io-client";
import { serverBinary, freePort, until, sleep } from "../lib/harness.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const lbLocal = join(repo, "scripts", "lb-local");
const NODES = ["node1", "node2", "node3"];
const PER_IP = 3; // MAX_CONNECTIONS_PER_IP on the nodes

function requirements() {
  const h = spawnSync("haproxy", ["-v"], { encoding: "utf8" });
  if (h.error || h.status !== 0) {
    throw new Error("haproxy is not installed: scripts/test balancer installs it (apt-get install haproxy)");
  }
  if (!process.env.REDIS_URL) {
    throw new Error('REDIS_URL is not set: start Redis with eval "$(scripts/services up redis)" (scripts/test does)');
  }
}

/** Runs scripts/lb-local with env; resolves {code, stdout, stderr}. */
function lb(args, env, ms = 120_000) {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [lbLocal, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`scripts/lb-local ${args.join(" ")} took over ${ms} ms:\n${stderr}`));
    }, ms);
    child.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The process is running (not gone, not a zombie). */
function alive(pid) {
  try {
    return !/^State:\s+[ZX]/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = text.match(new RegExp(`^${escaped} (\\S+)$`, "m"));
  if (!m) throw new Error(`no ${name} on :${port}`);
  return Number(m[1]);
}

let dir;
let env;
const pidOf = (name) => Number(readFileSync(join(dir, `${name}.pid`), "utf8").trim());

// Every socket and agent made, so that none is left reconnecting when the test fails.
const made = [];
const agents = new Map();

/** A socket.io-client socket from the source address (default options but quick reconnection). */
function connectFrom(url, source, opts = {}) {
  if (!agents.has(source)) agents.set(source, new http.Agent({ keepAlive: true, localAddress: source }));
  const socket = io(url, {
    forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500,
    agent: agents.get(source), localAddress: source, ...opts,
  });
  made.push(socket);
  socket.messages = [];
  socket.on("message", (m) => socket.messages.push(m));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connect from ${source}: timeout`)), 10_000);
    socket.once("connect", () => {
      clearTimeout(t);
      resolve(socket);
    });
    socket.once("connect_error", (e) => {
      clearTimeout(t);
      if (opts.reconnection === false) socket.disconnect();
      reject(e);
    });
  });
}

after(async () => {
  made.forEach((s) => s.disconnect());
  agents.forEach((a) => a.destroy());
  if (!dir) return;
  const r = await lb(["down"], env).catch((e) => ({ code: -1, stderr: String(e) }));
  if (r.code !== 0) {
    // Stop what we started, by PID, even when `down` failed.
    for (const name of ["haproxy", ...NODES]) {
      try {
        process.kill(pidOf(name), "SIGKILL");
      } catch {}
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

test("clients from several addresses through HAProxy: spread, chat, limits, a node killed", { timeout: 240_000 }, async () => {
  requirements();
  dir = mkdtempSync(join(tmpdir(), "lb-local-"));
  const ports = [await freePort(), await freePort(), await freePort()];
  const lbPort = await freePort();
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LB_LOCAL_DIR: dir,
    LB_PORT: String(lbPort),
    LB_NODE_PORTS: ports.join(" "),
    CHAT_SERVER_BIN: serverBinary(),
    REDIS_URL: process.env.REDIS_URL,
    REDIS_KEY_PREFIX: `lb${Date.now()}`,
    MAX_CONNECTIONS_PER_IP: String(PER_IP),
    PRESENCE_INTERVAL: "200ms",
    SHUTDOWN_TIMEOUT: "5s",
    LOG_LEVEL: "info",
  };
  const url = `http://127.0.0.1:${lbPort}`;
  const sockets = [];

  // ---- up, and up again (idempotent)
  let r = await lb(["up"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^export CHAT_URL=${url}$`, "m"));
  const pids = Object.fromEntries(["haproxy", ...NODES].map((n) => [n, pidOf(n)]));
  r = await lb(["up"], env);
  assert.equal(r.code, 0, r.stderr);
  for (const [name, pid] of Object.entries(pids)) {
    assert.equal(pidOf(name), pid, `a second up leaves ${name} as it is`);
    assert.ok(alive(pid), `${name} runs`);
  }
  r = await lb(["status"], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.match(/ running /g)?.length, 4, r.stdout);
  // The balancer's own page, and /readyz of a node through it.
  assert.equal((await fetch(`${url}/lb-healthz`)).status, 200);
  assert.equal((await fetch(`${url}/readyz`)).status, 200);

  // ---- clients from 127.0.0.x until every node has two of them
  const from = (source, opts) => connectFrom(url, source, opts);
  // A node that is gone counts 0 before and after.
  const connects = () => Promise.all(ports.map((p) => metric(p, "chat_connects_total").catch(() => 0)));
  /** Connects from source and tells which node index took the socket. */
  const land = async (source, opts) => {
    const before = await connects();
    const socket = await from(source, opts);
    for (let i = 0; i < 40; i++) {
      const grown = (await connects()).map((n, j) => n - before[j]);
      const total = grown.reduce((a, b) => a + b, 0);
      if (total === 1) return { socket, node: grown.indexOf(1) };
      assert.equal(total, 0, `one socket from ${source} counted ${total} times`);
      await sleep(50);
    }
    throw new Error(`no node counted the socket from ${source}`);
  };
  const track = (socket, source, node) => {
    socket.source = source;
    socket.node = node;
    socket.label = `${source}/${socket.io.opts.transports?.join("+") ?? "default"}`;
    socket.disconnects = 0;
    socket.reconnects = 0;
    socket.on("disconnect", () => socket.disconnects++);
    socket.on("connect", () => socket.reconnects++);
    sockets.push(socket);
    return socket;
  };
  const byNode = [[], [], []];
  const hashed = new Map(); // every source tried, and the node it landed on
  for (let i = 2; i < 120 && byNode.some((n) => n.length < 2); i++) {
    const source = `127.0.0.${i}`;
    const { socket, node } = await land(source);
    hashed.set(source, node);
    if (byNode[node].length >= 2) {
      socket.disconnect();
      continue;
    }
    byNode[node].push(track(socket, source, node));
  }
  assert.ok(byNode.every((n) => n.length === 2), `clients on every node: ${byNode.map((n) => n.length)}`);
  console.log("sources per node:", byNode.map((n, i) => `${NODES[i]}: ${n.map((s) => s.source).join(", ")}`).join("; "));

  // Every default-mode client upgraded to WebSocket: the upgrade request went
  // to the node that holds its polling session.
  for (const s of sockets) {
    await until(() => s.io.engine.transport.name === "websocket", 10_000, `${s.label} to upgrade`, () => s.io.engine.transport.name);
  }
  // A client that only long-polls sends a new request for every exchange;
  // each reaches its node (the same as its address's other clients).
  const pollSource = byNode[0][0].source;
  const polling = await land(pollSource, { transports: ["polling"] });
  assert.equal(polling.node, 0, "the long-polling client lands where its address is hashed");
  track(polling.socket, pollSource, 0);

  // ---- everyone chats, across the three nodes
  const round = async (tag) => {
    for (const s of sockets) s.emit("event:message", { message: `${tag} from ${s.label}`, username: s.source });
    const want = sockets.map((s) => `${tag} from ${s.label}`).sort();
    const got = (s) => s.messages.filter((m) => m.message.startsWith(`${tag} `)).map((m) => m.message).sort();
    for (const s of sockets) {
      await until(() => got(s).length >= want.length, 15_000, `${s.label} to get every ${tag} message`, () => {
        const have = got(s);
        return `${have.length} of ${want.length}; missing ${want.filter((w) => !have.includes(w)).join(", ")}`;
      });
    }
    await sleep(300);
    for (const s of sockets) assert.deepEqual(got(s), want, `${s.label}: every ${tag} message once`);
  };
  await round("round1");
  assert.equal(polling.socket.io.engine.transport.name, "polling");

  // ---- MAX_CONNECTIONS_PER_IP counts the real client behind the balancer
  const [limited, neighbour] = byNode[1];
  const refusedBefore = await metric(ports[1], 'chat_connections_refused_total{reason="max_connections_per_ip"}').catch(() => 0);
  const extra = [];
  for (let i = 1; i < PER_IP; i++) extra.push(await from(limited.source, { transports: ["websocket"] }));
  await assert.rejects(from(limited.source, { reconnection: false }), "one address past MAX_CONNECTIONS_PER_IP is refused");
  assert.equal(
    await metric(ports[1], 'chat_connections_refused_total{reason="max_connections_per_ip"}'),
    refusedBefore + 1,
    "refused by the node its address is hashed to",
  );
  // Another address on the same node is not affected: the node does not see
  // every client as the balancer's 127.0.0.1.
  extra.push(await from(neighbour.source));
  extra.forEach((s) => s.disconnect());

  // ---- one node killed: its clients move, the others stay
  const victim = 2;
  const victims = byNode[victim];
  const others = sockets.filter((s) => s.node !== victim);
  process.kill(pidOf(NODES[victim]), "SIGKILL");
  for (const s of victims) {
    await until(() => s.reconnects >= 1 && s.connected, 20_000, `${s.label} to reconnect through the balancer`, () =>
      `${s.reconnects} reconnects, ${s.connected ? "connected" : "disconnected"}`,
    );
  }
  let onSurvivors;
  for (let i = 0; i < 50; i++) {
    onSurvivors = (await metric(ports[0], "chat_connections")) + (await metric(ports[1], "chat_connections"));
    if (onSurvivors === sockets.length) break;
    await sleep(100);
  }
  assert.equal(onSurvivors, sockets.length, "every client is on the two nodes left");
  await assert.rejects(fetch(`http://127.0.0.1:${ports[victim]}/readyz`), "the killed node is gone");
  for (const s of victims) {
    await until(() => s.io.engine.transport.name === "websocket", 10_000, `${s.label} to upgrade again`, () => s.io.engine.transport.name);
  }
  for (const s of others) {
    assert.equal(s.disconnects, 0, `${s.label} (on a node left running) was not disconnected`);
    assert.ok(s.connected);
  }
  // Consistent hashing: the addresses of the nodes left running still land
  // there (a long-polling session stays valid); only the dead node's move.
  for (const [source, node] of hashed) {
    const probe = await land(source, { transports: ["websocket"] });
    probe.socket.disconnect();
    if (node === victim) assert.notEqual(probe.node, victim);
    else assert.equal(probe.node, node, `${source} still lands on ${NODES[node]}`);
  }
  await round("round2");
  // A client that resumes on another node gets what it missed, never a message twice.
  for (const s of sockets) {
    const ids = s.messages.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, `${s.label}: no message twice`);
  }

  // ---- up again starts only the killed node
  r = await lb(["up"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual(pidOf(NODES[victim]), pids[NODES[victim]], "the killed node runs again, with a new PID");
  for (const name of ["haproxy", NODES[0], NODES[1]]) assert.equal(pidOf(name), pids[name], `${name} was left as it was`);
  assert.ok(alive(pidOf(NODES[victim])));

  // ---- down stops every process it started
  sockets.forEach((s) => s.disconnect());
  const running = ["haproxy", ...NODES].map(pidOf);
  r = await lb(["down"], env);
  assert.equal(r.code, 0, r.stderr);
  await until(() => running.every((pid) => !alive(pid)), 10_000, "every process to exit", () =>
    `still running: ${running.filter(alive).join(", ") || "none"}`,
  );
  r = await lb(["status"], env);
  assert.equal(r.code, 3, "status says they are stopped");
});
