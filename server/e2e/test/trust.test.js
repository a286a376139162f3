// Identity and moderation (issue 13) with the real socket.io-client, on two
// Go nodes linked by Redis (each with its own SQLite: every node stores
// every message, deletion and ban): each refusal of a CONNECT, verified
// names, the token's expiry, guest sign-in, deletions and bans across the
// nodes, and what survives a restart. Needs REDIS_URL (scripts/services):
// fails, never skips, without it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { io } from "socket.io-client";
import { startServer, connect, until, sleep, emitAck, freePort, redisURL } from "../lib/harness.js";
import { newSecret, claims, hs256, algNone, startJWKS } from "../lib/jwt.js";

const secret = newSecret();
const adminToken = newSecret();
let jwks, env, node1, node2, dir1, dir2;
const open = [];

/** Connects with auth {token} (or other options) and records deletions and errors too. */
async function join(url, token, opts = {}) {
  const s = await connect(url, { auth: token === undefined ? undefined : { token }, ...opts });
  s.deleted = [];
  s.on("message:deleted", (d) => s.deleted.push(d));
  open.push(s);
  return s;
}

/** Connects and resolves with the connect_error the server answers. */
function refused(url, opts) {
  return new Promise((resolve, reject) => {
    const s = io(url, { forceNew: true, reconnection: false, ...opts });
    const t = setTimeout(() => {
      s.close();
      reject(new Error("no connect_error within 10 s"));
    }, 10_000);
    s.once("connect", () => {
      clearTimeout(t);
      s.close();
      reject(new Error("connected, want a refusal"));
    });
    s.once("connect_error", (err) => {
      clearTimeout(t);
      s.close();
      resolve(err);
    });
  });
}

function api(node, method, path, { token, body } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(`${node.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

const moderator = () => hs256(secret, claims({ sub: "mod-1", name: "Moderator", roles: ["moderator"] }));

before(async () => {
  jwks = await startJWKS();
  env = {
    REDIS_URL: redisURL(),
    REDIS_KEY_PREFIX: `e2e-trust-${randomBytes(4).toString("hex")}`,
    AUTH_JWT_SECRET: secret,
    AUTH_JWKS_URL: jwks.url,
    AUTH_GUEST: "on",
    ADMIN_TOKEN: adminToken,
    BATCH_WAIT: "5ms",
  };
  dir1 = mkdtempSync(joinPath(tmpdir(), "chat-trust-1-"));
  dir2 = mkdtempSync(joinPath(tmpdir(), "chat-trust-2-"));
  node1 = await startServer(env, { dataDir: dir1 });
  node2 = await startServer(env, { dataDir: dir2 });
  for (let i = 0; i < 100; i++) {
    if ((await (await fetch(`${node2.url}/readyz`)).json()).servers === 2) break;
    await sleep(100);
  }
});

after(async () => {
  for (const s of open) s.close();
  await node1?.stop();
  await node2?.stop();
  await jwks?.close();
  for (const d of [dir1, dir2]) if (d) rmSync(d, { recursive: true, force: true });
});

test("a CONNECT without a valid token is refused with connect_error unauthorized, and why", async () => {
  const cases = [
    ["no token", {}, /token is required/],
    ["a token signed with another secret", { auth: { token: hs256(newSecret(), claims()) } }, /signature/],
    ["an expired token", { auth: { token: hs256(secret, claims({ exp: Math.floor(Date.now() / 1000) - 120 })) } }, /expired/],
    ["alg none", { auth: { token: algNone(claims()) } }, /not valid/],
    ["not a JWT", { auth: { token: "hello" } }, /not a JWT/],
    ["a bad Authorization header", { extraHeaders: { Authorization: "Bearer nope" }, transports: ["websocket"] }, /not a JWT/],
  ];
  for (const [name, opts, reason] of cases) {
    for (const node of [node1, node2]) {
      const err = await refused(node.url, opts);
      assert.equal(err.message, "unauthorized", `${name}: message`);
      assert.equal(err.data?.code, "unauthorized", `${name}: data.code`);
      assert.match(err.data?.reason ?? "", reason, `${name}: reason`);
    }
  }
  const metrics = await (await fetch(`${node1.url}/metrics`)).text();
  assert.match(metrics, /^chat_connect_refused_total\{reason="unauthorized"\} [6-9]/m);
});

test("a verified sender is who its token says: name, userId and verified true on both nodes, whatever the payload says", async () => {
  const zoe = await join(node1.url, hs256(secret, claims({ sub: "zoe-1", name: "Zoë" })));
  // EdDSA from the JWKS document, through the Authorization header (a client that is no browser).
  const ada = await join(node2.url, undefined, {
    extraHeaders: { Authorization: `Bearer ${jwks.sign(claims({ sub: "ada-1", preferred_username: "ada" }))}` },
    transports: ["websocket"],
  });
  await sleep(200);
  const ack = await emitAck(zoe, { message: "hello from Zoë", username: "admin" });
  assert.equal(ack.ok, true);
  ada.emit("event:message", { message: "hello from ada", username: "Zoë" });
  for (const s of [zoe, ada]) {
    await until(() => s.messages.length >= 2, 10_000, "both messages on both nodes");
  }
  for (const s of [zoe, ada]) {
    const byText = Object.fromEntries(s.messages.map((m) => [m.message, m]));
    assert.deepEqual(
      [byText["hello from Zoë"].username, byText["hello from Zoë"].userId, byText["hello from Zoë"].verified],
      ["Zoë", "zoe-1", true],
    );
    assert.deepEqual(
      [byText["hello from ada"].username, byText["hello from ada"].userId, byText["hello from ada"].verified],
      ["ada", "ada-1", true],
    );
  }
  // Stored under the token's name: the history API of the other node says so.
  let page;
  for (let i = 0; i < 50; i++) {
    page = await (await fetch(`${node2.url}/api/messages`)).json();
    if (page.messages.some((m) => m.message === "hello from Zoë")) break;
    await sleep(100);
  }
  const stored = page.messages.find((m) => m.message === "hello from Zoë");
  assert.deepEqual([stored.username, stored.userId, stored.verified], ["Zoë", "zoe-1", true]);
  // Presence lists them by id.
  await until(() => zoe.presence.some((p) => p.users?.some((u) => u.userId === "ada-1" && u.name === "ada")), 10_000, "presence with userId");
  zoe.close();
  ada.close();
});

test("at its token's expiry the socket is disconnected", async () => {
  const exp = Math.floor(Date.now() / 1000) + 3;
  const s = await join(node1.url, hs256(secret, claims({ exp })), { reconnection: false });
  const gone = new Promise((resolve) => s.once("disconnect", (reason) => resolve({ reason, at: Date.now() })));
  const { at } = await gone;
  assert.ok(at >= exp * 1000 - 50, "not before the expiry");
  assert.ok(at <= exp * 1000 + 1500, `within the node's tick after the expiry (${at - exp * 1000} ms late)`);
});

test("guest sign-in: /api/config says auth is on, a name is one live guest's across the cluster", async () => {
  const config = await (await fetch(`${node1.url}/api/config`)).json();
  assert.deepEqual(config, { auth: "required", guest: true });
  const name = `guest-${randomBytes(3).toString("hex")}`;
  const res = await api(node1, "POST", "/api/session", { body: { username: name } });
  assert.equal(res.status, 200);
  const session = await res.json();
  assert.ok(session.token && session.expiresAt);
  // The same name, another case, on the other node: taken.
  const again = await api(node2, "POST", "/api/session", { body: { username: name.toUpperCase() } });
  assert.equal(again.status, 409);
  assert.equal((await again.json()).error.code, "name_taken");
  // The holder renews with its token.
  const renewed = await api(node2, "POST", "/api/session", { token: session.token, body: { username: name } });
  assert.equal(renewed.status, 200);
  assert.equal((await renewed.json()).userId, session.userId);
  // Its token connects, and its messages carry its name.
  const g = await join(node2.url, session.token);
  const ack = await emitAck(g, { message: "a guest speaks", username: "someone else" });
  assert.equal(ack.ok, true);
  await until(() => g.messages.some((m) => m.message === "a guest speaks"), 10_000, "the guest's message");
  const m = g.messages.find((m) => m.message === "a guest speaks");
  assert.deepEqual([m.username, m.userId, m.verified], [name, session.userId, true]);
  // A guest token with roles is no moderator.
  const del = await g.timeout(5000).emitWithAck("event:delete", { id: m.id });
  assert.equal(del.ok, false);
  assert.equal(del.error.code, "forbidden");
  g.close();
});

test("a moderator deletes a message: message:deleted on every node, gone from history, the API and newcomers", async () => {
  const alice = await join(node1.url, hs256(secret, claims({ sub: "alice", name: "Alice" })));
  const bob = await join(node2.url, hs256(secret, claims({ sub: "bob", name: "Bob" })));
  const mod = await join(node2.url, moderator());
  await sleep(200);
  const a1 = await emitAck(alice, { message: "regrettable" });
  const a2 = await emitAck(alice, { message: "fine" });
  assert.equal(a1.ok && a2.ok, true);
  await until(() => bob.messages.some((m) => m.id === a2.id), 10_000, "bob has both");

  // A user who is not a moderator may not.
  const no = await bob.timeout(5000).emitWithAck("event:delete", { id: a1.id });
  assert.deepEqual([no.ok, no.error.code], [false, "forbidden"]);
  const unknown = await mod.timeout(5000).emitWithAck("event:delete", { id: "no-such-message" });
  assert.deepEqual([unknown.ok, unknown.error.code], [false, "not_found"]);

  const ok = await mod.timeout(5000).emitWithAck("event:delete", { id: a1.id });
  assert.equal(ok.ok, true);
  for (const s of [alice, bob, mod]) {
    await until(() => s.deleted.some((d) => d.id === a1.id), 5000, "message:deleted everywhere");
  }
  for (const node of [node1, node2]) {
    let page;
    for (let i = 0; i < 50; i++) {
      page = await (await fetch(`${node.url}/api/messages?limit=200`)).json();
      if (!page.messages.some((m) => m.id === a1.id)) break;
      await sleep(100);
    }
    assert.ok(!page.messages.some((m) => m.id === a1.id), `${node.url}: the deleted message is not in /api/messages`);
    assert.ok(page.messages.some((m) => m.id === a2.id), `${node.url}: the other one is`);
    const newcomer = await join(node.url, hs256(secret, claims()));
    await until(() => newcomer.messages.some((m) => m.id === a2.id), 10_000, "history for a newcomer");
    assert.ok(!newcomer.messages.some((m) => m.id === a1.id), "no deleted message in a newcomer's history");
    newcomer.close();
  }

  // The API: 401 without a token, 403 for a user, 404 for an unknown id, 204 (again: idempotent).
  assert.equal((await api(node1, "DELETE", `/api/messages/${a2.id}`)).status, 401);
  assert.equal((await api(node1, "DELETE", `/api/messages/${a2.id}`, { token: hs256(secret, claims()) })).status, 403);
  assert.equal((await api(node1, "DELETE", "/api/messages/nope", { token: adminToken })).status, 404);
  assert.equal((await api(node1, "DELETE", `/api/messages/${a2.id}`, { token: adminToken })).status, 204);
  assert.equal((await api(node2, "DELETE", `/api/messages/${a2.id}`, { token: moderator() })).status, 204);
  await until(() => bob.deleted.some((d) => d.id === a2.id), 5000, "the API's deletion reaches the other node");
  const metrics = await (await fetch(`${node1.url}/metrics`)).text();
  assert.match(metrics, /^chat_moderation_actions_total\{action="delete"\} [1-9]/m);

  // Connection-state recovery: a client away while a message came and went
  // recovers without it.
  const carol = await join(node1.url, hs256(secret, claims({ sub: "carol", name: "Carol" })), { transports: ["websocket"] });
  await sleep(200);
  const back = new Promise((resolve) => carol.io.once("reconnect", resolve));
  carol.io.engine.close();
  const m3 = await emitAck(alice, { message: "said while Carol was away, then deleted" });
  const m4 = await emitAck(alice, { message: "said while Carol was away" });
  assert.equal((await mod.timeout(5000).emitWithAck("event:delete", { id: m3.id })).ok, true);
  await back;
  await until(() => carol.connected, 5000, "Carol back");
  assert.equal(carol.recovered, true, "the session was recovered");
  await until(() => carol.messages.some((m) => m.id === m4.id), 5000, "what Carol missed");
  assert.ok(!carol.messages.some((m) => m.id === m3.id), "not the deleted message");
  for (const s of [alice, bob, mod, carol]) s.close();
});

test("a ban disconnects the user's sockets on every node within a second; its CONNECTs and guest sign-in are refused; it expires and is lifted", async () => {
  const victim = () => hs256(secret, claims({ sub: "mallory-1", name: "Mallory" }));
  const m1 = await join(node1.url, victim(), { reconnection: false });
  const m2 = await join(node2.url, victim(), { reconnection: false, transports: ["polling"] });
  const bystander = await join(node2.url, hs256(secret, claims({ name: "Carol" })));
  const errors = [];
  for (const s of [m1, m2]) s.on("error", (e) => errors.push(e));
  const gone = [m1, m2].map((s) => new Promise((resolve) => s.once("disconnect", (reason) => resolve({ reason, at: Date.now() }))));
  await sleep(300);

  const t0 = Date.now();
  const res = await api(node1, "POST", "/api/bans", { token: adminToken, body: { userId: "mallory-1", durationSec: 4, reason: "spam" } });
  assert.equal(res.status, 201);
  const ban = await res.json();
  assert.ok(ban.id && ban.until && ban.userId === "mallory-1" && ban.by === "admin-token");
  const out = await Promise.all(gone);
  const took = Math.max(...out.map((o) => o.at)) - t0;
  console.log(`ban: every node disconnected the banned sockets ${took} ms after POST /api/bans was sent`);
  assert.ok(took < 1000, `disconnected within 1 s (${took} ms)`);
  assert.deepEqual(out.map((o) => o.reason), ["io server disconnect", "io server disconnect"]);
  await until(() => errors.filter((e) => e.code === "banned").length >= 2, 2000, "both were told why");
  assert.ok(bystander.connected, "the others stay");

  // Its CONNECTs are refused on both nodes, with until.
  for (const node of [node1, node2]) {
    const err = await refused(node.url, { auth: { token: victim() } });
    assert.equal(err.message, "banned");
    assert.equal(err.data.code, "banned");
    assert.match(err.data.reason, /spam/);
    assert.equal(err.data.until, ban.until);
  }
  const list = await (await api(node2, "GET", "/api/bans", { token: moderator() })).json();
  assert.ok(list.bans.some((b) => b.id === ban.id), "listed on the other node");
  assert.equal((await api(node2, "GET", "/api/bans", { token: hs256(secret, claims()) })).status, 403);

  // It expires by itself.
  await sleep(Date.parse(ban.until) - Date.now() + 300);
  (await join(node2.url, victim())).close();

  // A ban by name, lifted by a moderator on the other node; a guest may not take a banned name.
  const byName = await (await api(node2, "POST", "/api/bans", { token: moderator(), body: { username: "mallory" } })).json();
  assert.equal((await refused(node1.url, { auth: { token: victim() } })).message, "banned");
  assert.equal((await api(node1, "POST", "/api/session", { body: { username: "Mallory" } })).status, 403);
  assert.equal((await api(node1, "DELETE", `/api/bans/${byName.id}`, { token: adminToken })).status, 204);
  assert.equal((await api(node1, "DELETE", `/api/bans/${byName.id}`, { token: adminToken })).status, 404);
  await sleep(300);
  (await join(node2.url, victim())).close();
  bystander.close();
});

test("bans and deletions survive a restart of every node", async () => {
  const alice = await join(node1.url, hs256(secret, claims({ sub: "alice", name: "Alice" })));
  const ack = await emitAck(alice, { message: "deleted before the restart" });
  assert.equal((await api(node2, "DELETE", `/api/messages/${ack.id}`, { token: adminToken })).status, 204);
  const ban = await (await api(node2, "POST", "/api/bans", { token: adminToken, body: { userId: "eve-1" } })).json();
  alice.close();
  await sleep(500); // node1 stores node2's tombstone and ban (each node keeps a replica)
  const [p1, p2] = [node1.port, node2.port];
  await node1.stopKeepData();
  await node2.stopKeepData();
  node1 = await startServer({ ...env, PORT: String(p1) }, { dataDir: dir1 });
  node2 = await startServer({ ...env, PORT: String(p2) }, { dataDir: dir2 });
  for (const node of [node1, node2]) {
    const err = await refused(node.url, { auth: { token: hs256(secret, claims({ sub: "eve-1" })) } });
    assert.equal(err.message, "banned", `${node.url}: the ban holds after the restart`);
    const page = await (await fetch(`${node.url}/api/messages?limit=200`)).json();
    assert.ok(!page.messages.some((m) => m.id === ack.id), `${node.url}: the deletion holds after the restart`);
  }
  assert.equal((await api(node1, "DELETE", `/api/bans/${ban.id}`, { token: adminToken })).status, 204);
});

test("AUTH_MODE=optional: anonymous clients chat, marked verified false, never under a verified user's name; a banned name is refused on events with error banned", async () => {
  const metricsPort = await freePort();
  const solo = await startServer({ AUTH_JWT_SECRET: secret, AUTH_MODE: "optional", ADMIN_TOKEN: adminToken, METRICS_ADDR: `127.0.0.1:${metricsPort}` });
  try {
    // METRICS_ADDR: /metrics and the profiler apart, none of it on the public port.
    assert.equal((await fetch(`${solo.url}/metrics`)).status, 404, "no /metrics on the public port");
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^chat_moderation_actions_total\{action="ban"\} 0$/m);
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/debug/pprof/`)).status, 200);
    assert.deepEqual(await (await fetch(`${solo.url}/api/config`)).json(), { auth: "optional", guest: false });
    const anon = await join(solo.url, undefined);
    const zoe = await join(solo.url, hs256(secret, claims({ sub: "z", name: "Zoë" })));
    await sleep(1200); // a presence tick: the node knows Zoë is online
    // A verified user's name is not an anonymous client's to take (issue 29).
    const taken = await emitAck(anon, { message: "it is me, Zoë", username: "zoë" });
    assert.deepEqual([taken.ok, taken.error?.code], [false, "name_taken"]);
    assert.equal((await emitAck(anon, { message: "anonymous", username: "Anon" })).ok, true);
    await until(() => zoe.messages.some((m) => m.message === "anonymous"), 5000, "the anonymous message");
    const m = zoe.messages.find((m) => m.message === "anonymous");
    assert.deepEqual([m.username, m.userId, m.verified], ["Anon", undefined, false]);
    assert.ok(!zoe.messages.some((m) => m.message === "it is me, Zoë"), "the impostor's message was never broadcast");
    // An invalid token is still refused.
    assert.equal((await refused(solo.url, { auth: { token: "forged" } })).message, "unauthorized");

    const res = await api(solo, "POST", "/api/bans", { token: adminToken, body: { username: "Troll", durationSec: 60 } });
    assert.equal(res.status, 201);
    const nack = await emitAck(anon, { message: "I am back", username: "troll" });
    assert.equal(nack.ok, false);
    assert.equal(nack.error.code, "banned");
    assert.ok(nack.error.until);
    await until(() => anon.errors.some((e) => e.code === "banned"), 2000, "an error event banned");
    assert.ok(!zoe.messages.some((m) => m.message === "I am back"), "never broadcast");
    // Typing under that name too.
    anon.emit("typing", { typing: true, username: "troll" });
    anon.close();
    zoe.close();
  } finally {
    await solo.stop();
  }
});
