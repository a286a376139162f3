// scripts/dev: --help, a taken port stops it before anything starts,
// however it is stopped (SIGTERM, or SIGKILL with its watchdogs) nothing it
// started is left, and its page chats in Chromium at 127.0.0.1, localhost and
// the machine's host name while another site gets none of next dev's
// resources. It runs the real server and the real `next dev`, so
// frontend/node_modules and Chromium must be installed (scripts/test runs
// this stage after the frontend stage, which installs both; scripts/dev would
// install node_modules, slowly, on its own).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import http from "node:http";
import { join } from "node:path";
import net from "node:net";
import { freePort, repoDir, until } from "../lib/harness.mjs";
import { enterRoom, openUser, say, screenshot, untilMessages } from "../../frontend/test/e2e/harness.mjs";
import { claims, hs256, newSecret } from "../../server/e2e/lib/jwt.js";

const dev = join(repoDir, "scripts", "dev");
const ownStat = readFileSync("/proc/self/stat", "utf8");
/** This test's process group, which scripts/dev shares (it is not started detached). */
const ownGroup = Number(ownStat.slice(ownStat.lastIndexOf(")") + 2).split(" ")[2]);

/** Every process whose parent chain leads to pid, or whose process group is one of groups: [{pid, pgid, cmd}]. */
function descendants(pid, groups = new Set()) {
  const procs = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      procs.push({ pid: Number(name), ppid: Number(f[1]), pgid: Number(f[2]), state: f[0], cmd });
    } catch {
      // gone meanwhile
    }
  }
  const live = procs.filter((p) => p.state !== "Z");
  const out = new Map();
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of live) {
      if (!out.has(p.pid) && (p.ppid === pid || out.has(p.ppid) || groups.has(p.pgid))) {
        out.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...out.values()];
}

/** The processes whose environment holds the entry entry: [{pid, cmd}]. */
function withEnv(entry) {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, "utf8").split("\0").includes(entry)) {
        out.push({ pid: Number(name), cmd: readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim() });
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

/** Runs scripts/dev with env; resolves once both ports answer, with the child and its output. */
async function startDev(env) {
  const child = spawn(dev, [], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  child.stdout.on("data", (d) => (logs += d));
  child.stderr.on("data", (d) => (logs += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const answers = async (port, path) => {
    try {
      return (await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) })).status === 200;
    } catch {
      return false;
    }
  };
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`scripts/dev exited (${child.exitCode}):\n${logs}`);
      return (await answers(env.PORT, "/readyz")) && (await answers(env.WEB_PORT, "/"));
    },
    180_000,
    `the server on :${env.PORT} and next dev on :${env.WEB_PORT}`,
    () => logs,
  );
  return { child, exited, logs: () => logs };
}

const listening = (port) =>
  new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.on("connect", () => (c.destroy(), resolve(true)));
    c.on("error", () => resolve(false));
  });

test("--help prints the usage and starts nothing", () => {
  const r = spawnSync(dev, ["--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /WEB_PORT/);
  assert.match(r.stdout, /scripts\/dev --help/);
  const bad = spawnSync(dev, ["--no-such-flag"], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown argument '--no-such-flag'/);
});

test("a taken port stops the start and names who holds it", async () => {
  const holder = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => holder.once("listening", r));
  const webPort = holder.address().port;
  const port = await freePort();
  try {
    const r = spawnSync(dev, [], { env: { ...process.env, PORT: String(port), WEB_PORT: String(webPort) }, encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`port ${webPort} \\(web client\\) is taken by node \\(pid ${process.pid}\\)`));
    assert.equal(await listening(port), false, "the server was not started");
  } finally {
    holder.close();
  }
});

test("a server that cannot start takes next dev down with it", { timeout: 240_000 }, async () => {
  const data = mkdtempSync(join(tmpdir(), "dev-test-"));
  // A host name that does not resolve: the server fails after the port check.
  const env = { ...process.env, HOST: "256.1.1.1", PORT: String(await freePort()), WEB_PORT: String(await freePort()), DATA_DIR: data };
  const child = spawn(dev, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  child.stdout.on("data", (d) => (logs += d));
  child.stderr.on("data", (d) => (logs += d));
  try {
    const code = await new Promise((resolve) => child.on("exit", resolve));
    assert.equal(code, 1, logs);
    assert.match(logs, /web client on http/, "next dev was started");
    assert.match(logs, /a process ended \(status 1\); stopping the others/);
    // Every process it started carries its DATA_DIR in its environment.
    await until(() => withEnv(`DATA_DIR=${data}`).length === 0, 2_000, "every process scripts/dev started to exit", () =>
      withEnv(`DATA_DIR=${data}`),
    );
    assert.equal(await listening(Number(env.WEB_PORT)), false, "next dev is not left on the web port");
  } finally {
    child.kill("SIGKILL");
    rmSync(data, { recursive: true, force: true });
  }
});

/** The server's GET /api/config on port. */
const authConfig = async (port) => (await fetch(`http://127.0.0.1:${port}/api/config`)).json();

// With SIGKILL it also runs with a setting the user gives: AUTH_MODE=off
// wins over its guest sign-in.
for (const signal of ["SIGTERM", "SIGKILL"]) {
  test(`stopped with ${signal}, it leaves no process behind`, { timeout: 240_000 }, async () => {
    const data = mkdtempSync(join(tmpdir(), "dev-test-"));
    const env = { PORT: String(await freePort()), WEB_PORT: String(await freePort()), DATA_DIR: data };
    if (signal === "SIGKILL") env.AUTH_MODE = "off";
    const d = await startDev(env);
    try {
      // Guest sign-in with a secret made for the data directory, kept out of git.
      assert.deepEqual(await authConfig(env.PORT), { auth: signal === "SIGKILL" ? "off" : "optional", guest: true });
      const secret = join(data, "dev-auth-secret");
      assert.match(readFileSync(secret, "utf8"), /^[0-9a-f]{64}$/);
      assert.equal(statSync(secret).mode & 0o777, 0o600, "only its owner reads the secret");
      assert.equal(spawnSync("git", ["check-ignore", "-q", "data/dev-auth-secret"], { cwd: repoDir }).status, 0, "./data is out of git");
      const procs = descendants(d.child.pid);
      const groups = new Set(procs.map((p) => p.pgid));
      const names = procs.map((p) => p.cmd).join("\n");
      assert.match(names, /chat-server/, `the server runs:\n${names}`);
      assert.match(names, /next/, `next dev runs:\n${names}`);
      assert.ok(!groups.has(ownGroup), `the children are in process groups of their own, not in the test's (${ownGroup}): ${[...groups]}`);

      d.child.kill(signal);
      const r = await d.exited;
      if (signal === "SIGTERM") assert.equal(r.code, 143, d.logs());
      // Its watchdogs end the groups within a second of a SIGKILL; SIGTERM waits for the exits.
      const left = () => [...descendants(d.child.pid, groups), ...withEnv(`DATA_DIR=${data}`)];
      await until(
        () => left().length === 0,
        signal === "SIGTERM" ? 2_000 : 5_000,
        `every process scripts/dev started to exit after ${signal}`,
        left,
      );
      assert.equal(await listening(Number(env.PORT)), false, "the server's port is free");
      assert.equal(await listening(Number(env.WEB_PORT)), false, "the web port is free");
    } finally {
      d.child.kill("SIGKILL");
      rmSync(data, { recursive: true, force: true });
    }
  });
}

/**
 * The status next dev answers a request for one of its own resources from a
 * page at url: a CORS or WebSocket request (how "origin": its Origin), or a
 * script tag of another site (how "referer": no-cors, cross-site, with its
 * Referer), as a browser sends them.
 */
function devResourceStatus(webPort, how, url) {
  const headers =
    how === "origin" ? { origin: new URL(url).origin } : { referer: url, "sec-fetch-mode": "no-cors", "sec-fetch-site": "cross-site" };
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port: webPort, path: "/_next/static/chunks/no-such-chunk.js", headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from next dev for a page at ${url}`)));
  });
}

// Next's dev server refuses its scripts and HMR to an origin it was not told
// about: the page stayed on "Loading…" at 127.0.0.1 and at the host name.
// The host name is no literal of any list: next.config.ts finds it when next
// dev starts. Chromium resolves it (and the stranger's name) to 127.0.0.1
// itself, so the test stays on loopback whatever this machine's DNS says.
test("the page chats at 127.0.0.1, localhost and the host name; another site gets no dev resources", { timeout: 300_000 }, async () => {
  const data = mkdtempSync(join(tmpdir(), "dev-test-"));
  const env = { PORT: String(await freePort()), WEB_PORT: String(await freePort()), DATA_DIR: data };
  // A secret kept from an earlier start is used again: tokens it signed stay good.
  const kept = newSecret();
  writeFileSync(join(data, "dev-auth-secret"), kept, { mode: 0o600 });
  const name = hostname().toLowerCase();
  const stranger = "not-this-machine.example";
  assert.notEqual(name, "localhost", "the machine has a host name of its own");
  const d = await startDev(env);
  const users = [];
  try {
    const rooms = (secret) =>
      fetch(`http://127.0.0.1:${env.PORT}/api/rooms`, { headers: { authorization: `Bearer ${hs256(secret, claims({ name: "dev" }))}` } });
    assert.equal((await rooms(kept)).status, 200, "a token of the kept secret");
    assert.equal((await rooms(newSecret())).status, 401, "a token of another secret");
    for (const how of ["origin", "referer"]) {
      for (const host of ["127.0.0.1", "localhost", name]) {
        const status = await devResourceStatus(env.WEB_PORT, how, `http://${host}:${env.WEB_PORT}/`);
        assert.notEqual(status, 403, `a page at ${host} gets next dev's resources (${how})`);
      }
      assert.equal(await devResourceStatus(env.WEB_PORT, how, `http://${stranger}:${env.WEB_PORT}/`), 403, `another site does not (${how})`);
    }

    const pages = [
      ["127.0.0.1", "ann"],
      ["localhost", "bob"],
      [name, "cid"],
    ];
    for (const [host, who] of pages) {
      const u = await openUser({ loopbackNames: [name, stranger] });
      users.push(u);
      u.socketRequests = [];
      u.websockets = [];
      u.page.on("request", (r) => r.url().includes("/socket.io/") && u.socketRequests.push(new URL(r.url()).host));
      u.page.on("websocket", (ws) => u.websockets.push(ws.url()));
      await enterRoom(u, `http://${host}:${env.WEB_PORT}/`, who);
    }
    for (const [i, [host, who]] of pages.entries()) {
      const text = `${who} at ${host}`;
      await say(users[i], text);
      for (const u of users) await untilMessages(u, (ms) => ms.some((m) => m.text === text && m.author === who), `"${text}" everywhere`, 60_000);
      // The page found the server on the host it was opened at.
      assert.ok(users[i].socketRequests.includes(`${host}:${env.PORT}`), `${who}'s socket went to ${host}:${env.PORT}: ${users[i].socketRequests}`);
    }
    await screenshot(users[2], "dev-hostname.png");
    for (const u of users) assert.deepEqual(u.pageErrors, [], "no page errors");

    // next dev's HMR socket: the pages opened it (it failed at 127.0.0.1 before). A page of
    // another site cannot, while one at the host name can, across origins too.
    const hmr = users[0].websockets.find((u) => u.includes("/_next/"));
    assert.ok(hmr, `the page at 127.0.0.1 opened next dev's HMR socket: ${users[0].websockets}`);
    const opens = (page) =>
      page.evaluate(
        (url) =>
          new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => (ws.close(), resolve("open"));
            ws.onerror = () => resolve("refused");
            setTimeout(() => resolve("no answer"), 10_000);
          }),
        hmr,
      );
    assert.equal(await opens(users[2].page), "open", `a page at ${name} opens ${hmr}`);
    await users[0].page.goto(`http://${stranger}:${env.PORT}/healthz`);
    assert.equal(await opens(users[0].page), "refused", `a page at ${stranger} cannot open ${hmr}`);
  } finally {
    for (const u of users) await u.close();
    d.child.kill("SIGTERM");
    await d.exited;
    rmSync(data, { recursive: true, force: true });
  }
});
